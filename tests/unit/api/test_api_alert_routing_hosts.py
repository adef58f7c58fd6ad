"""PUT /v1/alerts/routing refuses destinations naming internal hosts (SSRF), unless the operator's
``alert_webhook_allowed_hosts`` permits them. Refused before anything is published: 400."""
from __future__ import annotations

from fastapi.testclient import TestClient

from agentstream.api.app import create_app
from agentstream.api.settings import ApiSettings


def _rules(url):
    return {"rules": [{"rule_id": "r1", "destination": {"kind": "webhook", "url": url}}]}


def test_internal_destinations_are_refused(api, auth):
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:18000/x",
                "http://localhost:8080/x", "http://[::1]/x", "http://10.0.0.1/hook"):
        r = api.put("/v1/alerts/routing", json=_rules(url), headers=auth)
        assert r.status_code == 400, (url, r.status_code, r.text)
        assert "internal address" in r.text or "localhost" in r.text


def test_an_allowlisted_host_gets_past_the_host_check(keys_file, ch, auth):
    settings = ApiSettings(api_keys_file=keys_file, bootstrap_servers="", alert_webhook_allowed_hosts="127.0.0.1")
    with TestClient(create_app(settings, client=ch), raise_server_exceptions=False) as api:
        r = api.put("/v1/alerts/routing", json=_rules("http://127.0.0.1:18000/x"), headers=auth)
        # no Kafka here: past the check, publishing fails (503), never the host's 400
        assert r.status_code != 400, r.text
