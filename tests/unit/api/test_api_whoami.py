"""GET /v1/whoami: the calling key's own tenant, name and scopes, and nothing without a key."""
from __future__ import annotations

from agentstream.api.auth import add_key


def test_whoami_names_the_keys_tenant_and_scopes(api, auth, tenant, keys_file):
    r = api.get("/v1/whoami", headers=auth)
    assert r.status_code == 200 and r.json() == {"tenant_id": tenant, "key_name": "test", "scopes": ["read", "write"]}
    other = add_key(keys_file, "someone-else", scopes=["read"], name="analyst")
    r = api.get("/v1/whoami", headers={"X-API-Key": other})
    assert r.json() == {"tenant_id": "someone-else", "key_name": "analyst", "scopes": ["read"]}


def test_whoami_without_a_valid_key_is_401(api):
    assert api.get("/v1/whoami").status_code == 401
    r = api.get("/v1/whoami", headers={"Authorization": "Bearer ask_not_a_key_at_all_000000"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
