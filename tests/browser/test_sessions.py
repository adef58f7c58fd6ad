"""Dashboard session cookies, without a browser: signing, expiry, revocation, garbage."""
from __future__ import annotations

import time

import pytest

from agentstream.api.auth import add_key, revoke_key
from agentstream.api.dashboard.sessions import SessionManager


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "keys.json"
    return path, add_key(path, "acme", scopes=["read"]), add_key(path, "acme", scopes=["write"])


def test_login_verify_and_revoke(keys):
    path, read_key, write_only = keys
    m = SessionManager(path, "s3cret")
    cookie, session = m.login(read_key)
    assert session.tenant_id == "acme" and read_key not in cookie
    assert m.verify(cookie).principal.tenant_id == "acme"
    # Another replica with the same secret accepts it; another secret does not.
    assert SessionManager(path, "s3cret").verify(cookie) is not None
    assert SessionManager(path, "other").verify(cookie) is None
    assert m.login(write_only) is None  # no read scope, no dashboard
    assert m.login("ask_" + "x" * 40) is None
    time.sleep(0.01)  # the keys file's mtime must move for the re-read
    assert revoke_key(path, read_key)
    assert m.verify(cookie) is None  # revoking the key ends its sessions


def test_expired_and_tampered_cookies_are_refused(keys):
    path, read_key, _ = keys
    m = SessionManager(path, "s3cret", max_age_s=-1)
    cookie, _ = m.login(read_key)
    assert m.verify(cookie) is None
    m = SessionManager(path, "s3cret")
    cookie, _ = m.login(read_key)
    body, sig = cookie.rsplit(".", 1)
    for bad in (body + "." + sig[:-1] + ("A" if sig[-1] != "A" else "B"), "A" + cookie, "", ".", "x" * 2000,
                "e30." + sig, "not base64!.@@", "\u00e9.\u00e9"):
        assert m.verify(bad) is None
