"""API test fixtures: the contract tables in the session chDB, an app per test, tenant keys."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings

from api_fleet import apply_migrations


@pytest.fixture(scope="session")
def ch(chdb_client):
    apply_migrations(chdb_client)
    return chdb_client


@pytest.fixture
def keys_file(tmp_path):
    return tmp_path / "api_keys.json"


@pytest.fixture
def tenant(unique) -> str:
    return "t-" + unique


@pytest.fixture
def settings(keys_file) -> ApiSettings:
    return ApiSettings(api_keys_file=keys_file, bootstrap_servers="", alerts_poll_interval_s=0.05)


@pytest.fixture
def app(settings, ch):
    return create_app(settings, client=ch)


@pytest.fixture
def api(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def key(keys_file, tenant) -> str:
    return add_key(keys_file, tenant, scopes=["read", "write"], name="test")


@pytest.fixture
def auth(key) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
