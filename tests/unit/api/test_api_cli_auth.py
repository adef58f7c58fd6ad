"""Keys file format, hashing and the `agentstream api keys` commands."""
from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from agentstream.api.auth import KeyStore, add_key, hash_key, load_keys, revoke_key
from agentstream.api.cli import register


def test_keys_file_stores_only_hashes(tmp_path):
    path = tmp_path / "k.json"
    key = add_key(path, "acme", scopes=["read", "write"], name="ci")
    data = json.loads(path.read_text())
    entry = data["keys"][0]
    assert set(entry) == {"tenant_id", "key_hash", "scopes", "name", "created_us"}
    assert entry["key_hash"] == hash_key(key) and key not in path.read_text()
    store = KeyStore(path)
    who = store.verify(key)
    assert who.tenant_id == "acme" and who.has("write")
    assert store.verify(key + "x") is None and store.verify("") is None
    with pytest.raises(ValueError):
        add_key(path, "acme", key="short")
    with pytest.raises(ValueError):
        add_key(path, "acme", scopes=["admin"])
    # edits while running are picked up without a restart
    assert revoke_key(path, key) and store.verify(key) is None
    assert load_keys(tmp_path / "missing.json") == []


def test_cli_keys_create_and_list(tmp_path):
    app = typer.Typer()
    register(app)
    path = tmp_path / "keys.json"
    r = CliRunner().invoke(app, ["api", "keys", "create", "--tenant", "demo", "--scope", "read",
                                 "--scope", "write", "--keys-file", str(path)])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert KeyStore(path).verify(key).scopes == frozenset({"read", "write"})
    r = CliRunner().invoke(app, ["api", "keys", "list", "--keys-file", str(path)])
    assert "demo" in r.stdout and key not in r.stdout
    r = CliRunner().invoke(app, ["api", "keys", "create", "--tenant", "demo", "--scope", "root",
                                 "--keys-file", str(path)])
    assert r.exit_code != 0
