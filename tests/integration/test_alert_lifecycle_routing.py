"""Alert lifecycle (acknowledge / resolve / reopen, silences) and routing through the API, the
CLI and the forwarder, on the session broker and chDB, with local HTTP receivers."""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from confluent_kafka import Producer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "api"))
from api_fleet import apply_migrations, insert_alerts

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings
from agentstream.schemas import ALERT, Codec, topic_name
from agentstream.stream_processors.alert_forwarder import forward
from agentstream.stream_processors.alerting_io import add_silence, set_routing
from agentstream.stream_processors.cli import register
from agentstream.stream_processors.settings import ProcessorsSettings

pytestmark = pytest.mark.integration


class Receiver:
    """A local HTTP receiver; ``script`` gives the status of each post in order, then 200."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script, self.posts = list(script or []), []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = rec.script.pop(0) if rec.script else 200
                rec.posts.append((status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[tuple[dict, dict]]:
        return [(h, b) for s, h, b in self.posts if s < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(script=None) -> Receiver:
        made.append(Receiver(script))
        return made[-1]
    yield make
    for r in made:
        r.close()


def _alert(tenant, n, alert_type="loop", severity="CRITICAL", agent="planner"):
    return {"alert_id": f"{tenant}-a{n}", "alert_type": alert_type, "severity": severity,
            "tenant_id": tenant, "agent_id": agent, "agent_version": "1", "run_id": f"run-{n}",
            "title": f"finding {n}", "evidence": {"n": str(n)},
            "detected_us": int(time.time() * 1_000_000), "source_offsets": []}


def _produce(bootstrap, prefix, alerts):
    p = Producer({"bootstrap.servers": bootstrap})
    for a in alerts:
        p.produce(topic_name("alerts", prefix), Codec().encode(ALERT, a), a["tenant_id"].encode())
    assert p.flush(30) == 0


def _psettings(bootstrap, prefix):
    return ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, broker_session_timeout=6.0)


@pytest.fixture
def lifecycle_api(tmp_path, chdb_client, bootstrap, topic_prefix, unique):
    apply_migrations(chdb_client)
    keys = tmp_path / "keys.json"
    tenant, other = "al-" + unique, "al2-" + unique
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                           kafka_client_conf={"session.timeout.ms": "6000"},
                           alert_webhook_allowed_hosts="127.0.0.1")  # the test's own receivers
    auth = {"Authorization": "Bearer " + add_key(keys, tenant, scopes=["read", "write"], name="alice")}
    other_auth = {"Authorization": "Bearer " + add_key(keys, other, scopes=["read", "write"])}
    reader = {"Authorization": "Bearer " + add_key(keys, tenant, scopes=["read"])}
    with TestClient(create_app(settings, client=chdb_client), raise_server_exceptions=False) as api:
        yield api, tenant, auth, other_auth, reader


def test_acknowledge_resolve_reopen_silence_and_tenancy(lifecycle_api, chdb_client):
    api, tenant, auth, other_auth, reader = lifecycle_api
    insert_alerts(chdb_client, tenant, [
        {"alert_id": f"{tenant}-1", "alert_type": "loop", "severity": "CRITICAL", "agent_id": "planner"},
        {"alert_id": f"{tenant}-2", "alert_type": "drift", "severity": "WARNING", "agent_id": "coder"},
        {"alert_id": f"{tenant}-3", "alert_type": "loop", "severity": "INFO", "agent_id": "coder"}])

    def ids(**params):
        body = api.get("/v1/alerts", params=params, headers=auth)
        assert body.status_code == 200, body.text
        return {a["alert_id"]: a for a in body.json()["items"]}

    assert {a["state"] for a in ids().values()} == {"open"}
    r = api.post(f"/v1/alerts/{tenant}-1/acknowledge", json={"note": "looking"}, headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged" and r.json()["by"] == "alice"
    assert api.post(f"/v1/alerts/{tenant}-2/resolve", headers=auth).json()["state"] == "resolved"
    assert set(ids(state="open")) == {f"{tenant}-3"}
    assert set(ids(state="acknowledged")) == {f"{tenant}-1"}
    assert set(ids(state="resolved")) == {f"{tenant}-2"}
    one = api.get(f"/v1/alerts/{tenant}-1", headers=auth).json()
    assert (one["state"], one["state_note"], one["state_by"]) == ("acknowledged", "looking", "alice")
    assert api.post(f"/v1/alerts/{tenant}-1/reopen", headers=auth).json()["state"] == "open"
    assert set(ids(state="open")) == {f"{tenant}-1", f"{tenant}-3"}

    # Unknown ids, another tenant's alert, a read-only key: refused, nothing written.
    assert api.post(f"/v1/alerts/{tenant}-404/acknowledge", headers=auth).status_code == 404
    assert api.post(f"/v1/alerts/{tenant}-3/acknowledge", headers=other_auth).status_code == 404
    assert api.post(f"/v1/alerts/{tenant}-3/resolve", headers=reader).status_code == 403
    assert ids()[f"{tenant}-3"]["state"] == "open"

    # A silence on agent coder + type loop covers alert 3 only, shows in listings, then expires.
    r = api.post("/v1/alerts/silences", json={"matcher": {"agent_id": "coder", "alert_type": "loop"},
                                              "duration_s": 3600, "comment": "deploying"}, headers=auth)
    assert r.status_code == 201, r.text
    sid = r.json()["silence_id"]
    listed = ids()
    assert listed[f"{tenant}-3"]["silenced_by"] == sid
    assert listed[f"{tenant}-1"]["silenced_by"] is None and listed[f"{tenant}-2"]["silenced_by"] is None
    assert [s["silence_id"] for s in api.get("/v1/alerts/silences", headers=auth).json()] == [sid]
    assert api.get("/v1/alerts/silences", headers=other_auth).json() == []
    assert api.delete(f"/v1/alerts/silences/{sid}", headers=other_auth).status_code == 404
    assert api.delete(f"/v1/alerts/silences/{sid}", headers=auth).json()["active"] is False
    assert ids()[f"{tenant}-3"]["silenced_by"] is None
    assert api.get("/v1/alerts/silences", headers=auth).json() == []
    assert len(api.get("/v1/alerts/silences", params={"include_expired": True}, headers=auth).json()) == 1
    for bad in ({"duration_s": 0}, {"duration_s": 60, "matcher": {"severity": "LOUD"}},
                {"duration_s": 60, "matcher": {"tenant_id": "x"}}):
        assert api.post("/v1/alerts/silences", json=bad, headers=auth).status_code == 422


def test_routing_rules_api_validates_and_hides_secrets(lifecycle_api):
    api, tenant, auth, other_auth, _ = lifecycle_api
    rules = {"rules": [
        {"rule_id": "pd", "severities": ["CRITICAL"],
         "destination": {"kind": "pagerduty", "url": "https://events.pagerduty.com/v2/enqueue",
                         "routing_key": "R0UTINGKEY1234"}},
        {"rule_id": "slack-drift", "alert_types": ["drift"],
         "destination": {"kind": "slack", "url": "https://hooks.slack.com/services/T0/B0/SECRET"}}]}
    r = api.put("/v1/alerts/routing", json=rules, headers=auth)
    assert r.status_code == 200, r.text
    shown = json.dumps(api.get("/v1/alerts/routing", headers=auth).json())
    assert "SECRET" not in shown and "R0UTINGKEY" not in shown and "slack-drift" in shown
    assert api.get("/v1/alerts/routing", headers=other_auth).json() == {"rules": []}
    bad = [{"rules": [{"rule_id": "x", "destination": {"kind": "pagerduty", "url": "https://e.x/y"}}]},
           {"rules": [{"rule_id": "x", "destination": {"kind": "webhook", "url": "ftp://e.x/y"}}]},
           {"rules": [rules["rules"][0], rules["rules"][0]]}]
    for body in bad:
        r = api.put("/v1/alerts/routing", json=body, headers=auth)
        assert r.status_code in (400, 422) and r.json()["error"]["message"], body


def test_forwarder_follows_rules_respects_silences_never_posts_twice(bootstrap, topic_prefix, unique,
                                                                     receivers, tmp_path):
    tenant = "fw-" + unique
    settings = _psettings(bootstrap, topic_prefix)
    critical, drift = receivers(), receivers([500])  # drift's first post fails once (retried)
    set_routing(settings, tenant, {"rules": [
        {"rule_id": "crit", "severities": ["CRITICAL"], "destination": {"kind": "slack", "url": critical.url}},
        {"rule_id": "drift", "alert_types": ["drift"], "destination": {"kind": "webhook", "url": drift.url}},
        # the same destination twice: one post per alert, not two
        {"rule_id": "drift-crit", "alert_types": ["drift"], "severities": ["CRITICAL"],
         "destination": {"kind": "webhook", "url": drift.url}}]})
    add_silence(settings, tenant, 3600, agent_id="noisy")
    alerts = [_alert(tenant, 0), _alert(tenant, 1, "drift", "WARNING"), _alert(tenant, 2, "drift"),
              _alert(tenant, 3, agent="noisy"), _alert(tenant, 4, "loop", "INFO")]
    _produce(bootstrap, topic_prefix, alerts)
    ledger = tmp_path / "ledger.jsonl"
    stats = forward(settings, tenant=tenant, group="g-" + unique, stop_after=4, base_s=0.01, ledger=ledger,
                    idle_timeout=20)
    assert stats.delivered == 4
    got_crit = sorted(b["text"] for _, b in critical.accepted())
    assert got_crit == sorted(f"[CRITICAL] {a['alert_type']}: {a['title']} (tenant {tenant})"
                              for a in (alerts[0], alerts[2]))
    got_drift = [b["alert"]["alert_id"] for _, b in drift.accepted()]
    assert sorted(got_drift) == [f"{tenant}-a1", f"{tenant}-a2"]  # the duplicate rule posts once
    assert all(h["Idempotency-Key"].endswith(b["alert"]["alert_id"]) for h, b in drift.accepted())

    # A replay of the whole topic (a new consumer group) with the same ledger posts nothing again.
    before = (len(critical.posts), len(drift.posts))
    stats = forward(settings, tenant=tenant, group="g2-" + unique, base_s=0.01, ledger=ledger, idle_timeout=3)
    assert stats.delivered == 0 and stats.duplicate == 4 and stats.silenced == 1 and stats.unrouted == 1
    assert (len(critical.posts), len(drift.posts)) == before


def test_forwarder_partial_fanout_resumes_without_reposting(bootstrap, topic_prefix, unique, receivers, tmp_path):
    tenant = "fp-" + unique
    settings = _psettings(bootstrap, topic_prefix)
    up, down = receivers(), receivers([503] * 3)
    set_routing(settings, tenant, {"rules": [
        {"rule_id": "a", "destination": {"kind": "webhook", "url": up.url}},
        {"rule_id": "b", "destination": {"kind": "webhook", "url": down.url}}]})
    _produce(bootstrap, topic_prefix, [_alert(tenant, 0)])
    ledger, group = tmp_path / "l.jsonl", "gp-" + unique
    with pytest.raises(RuntimeError, match="unavailable"):
        forward(settings, tenant=tenant, group=group, max_retries=2, base_s=0.01, ledger=ledger, idle_timeout=20)
    assert len(up.accepted()) == 1 and down.accepted() == []
    stats = forward(settings, tenant=tenant, group=group, base_s=0.01, ledger=ledger, stop_after=1, idle_timeout=20)
    assert stats.delivered == 1 and stats.duplicate == 1
    assert len(up.accepted()) == 1 and len(down.accepted()) == 1


def test_cli_ack_silence_routing_seen_by_the_api(lifecycle_api, chdb_client, bootstrap, topic_prefix,
                                                 monkeypatch, tmp_path):
    api, tenant, auth, _, _ = lifecycle_api
    insert_alerts(chdb_client, tenant, [{"alert_id": f"{tenant}-c1", "alert_type": "loop", "agent_id": "x"}])
    monkeypatch.setenv("AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("AGENTSTREAM_PROCESSORS_TOPIC_PREFIX", topic_prefix)
    app = typer.Typer()
    register(app)
    run = CliRunner().invoke
    r = run(app, ["alerts", "ack", f"{tenant}-c1", "--tenant", tenant, "--note", "on it"])
    assert r.exit_code == 0, r.output
    r = run(app, ["alerts", "silence", "--tenant", tenant, "--for", "2h", "--type", "loop"])
    assert r.exit_code == 0 and r.output.startswith("silence sil-"), r.output
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"rule_id": "all", "destination": {"kind": "webhook",
                                                                             "url": "http://127.0.0.1:9/x"}}]}))
    assert run(app, ["alerts", "routing", "--tenant", tenant, "--file", str(rules)]).exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"rule_id": "x", "destination": {"kind": "sms", "url": "http://a"}}]}))
    r = run(app, ["alerts", "routing", "--tenant", tenant, "--file", str(bad)])
    assert r.exit_code == 2 and "destination kind" in r.output
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        a = api.get(f"/v1/alerts/{tenant}-c1", headers=auth).json()
        if a["state"] == "acknowledged" and a["silenced_by"]:
            break
        time.sleep(0.3)
    assert a["state"] == "acknowledged" and a["state_note"] == "on it" and a["silenced_by"].startswith("sil-")
    assert [r["rule_id"] for r in api.get("/v1/alerts/routing", headers=auth).json()["rules"]] == ["all"]


def test_alert_listing_survives_an_unreachable_broker(tmp_path, chdb_client, unique):
    """The lifecycle lives on Kafka; with the broker down the listing still answers (state null)
    and only the state filter, which needs it, is a 503."""
    import socket

    apply_migrations(chdb_client)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    keys = tmp_path / "keys.json"
    tenant = "down-" + unique
    auth = {"Authorization": "Bearer " + add_key(keys, tenant, scopes=["read"])}
    insert_alerts(chdb_client, tenant, [{"alert_id": f"{tenant}-1"}])
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers=dead, kafka_timeout_s=1.0)
    with TestClient(create_app(settings, client=chdb_client), raise_server_exceptions=False) as api:
        r = api.get("/v1/alerts", headers=auth)
        assert r.status_code == 200 and [(a["alert_id"], a["state"]) for a in r.json()["items"]] == [(f"{tenant}-1", None)]
        r = api.get("/v1/alerts", params={"state": "open"}, headers=auth)
        assert r.status_code == 503 and r.json()["error"]["code"] == "kafka_unavailable"
