"""``alerts forward`` against a real local HTTP receiver (fails the first posts with 500/429, then
accepts), ``alerts tail`` and ``policy set`` through the typer CLI, on the session broker."""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import typer
from confluent_kafka import Producer
from typer.testing import CliRunner

from agentstream.schemas import ALERT, Codec, topic_name
from agentstream.stream_processors.alerts_io import (DELIVERED, REJECTED, UNAVAILABLE, deliver,
                                                     forward_alerts)
from agentstream.stream_processors.cli import register
from agentstream.stream_processors.policy_io import read_policy
from agentstream.stream_processors.settings import ProcessorsSettings

pytestmark = pytest.mark.integration
codec = Codec()


class Receiver:
    """A webhook on a free loopback port. ``script`` lists the status of each post in order
    (then 200 forever); every post is recorded with its time and JSON body."""

    def __init__(self, script: list[int] | None = None, retry_after: str | None = None) -> None:
        self.script = list(script or [])
        self.retry_after = retry_after
        self.posts: list[tuple[float, int, dict]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = rec.script.pop(0) if rec.script else 200
                rec.posts.append((time.monotonic(), status, body))
                self.send_response(status)
                if status == 429 and rec.retry_after:
                    self.send_header("Retry-After", rec.retry_after)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        return [b for _, s, b in self.posts if 200 <= s < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(script=None, retry_after=None) -> Receiver:
        made.append(Receiver(script, retry_after))
        return made[-1]
    yield make
    for r in made:
        r.close()


def _alert(tenant: str, n: int, severity: str = "CRITICAL") -> dict:
    return {"alert_id": f"{tenant}-a{n}", "alert_type": "loop", "severity": severity, "tenant_id": tenant,
            "agent_id": "planner", "agent_version": "1.2", "run_id": f"run-{n}",
            "title": f"step repeated {n + 5} times", "evidence": {"repeats": str(n + 5), "name": "search"},
            "detected_us": int(time.time() * 1_000_000),
            "source_offsets": [{"topic": "raw", "partition": 0, "offset": n}]}


def _produce_alerts(bootstrap: str, prefix: str, alerts: list[dict]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for a in alerts:
        p.produce(topic_name("alerts", prefix), codec.encode(ALERT, a), a["tenant_id"].encode())
    assert p.flush(30) == 0


def _settings(bootstrap: str, prefix: str) -> ProcessorsSettings:
    return ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, broker_session_timeout=6.0)


# ---- retries and backoff, one alert ---------------------------------------------------------

def test_retries_with_backoff_then_one_delivery_and_no_extra_post(receiver):
    r = receiver([500, 500, 500])
    delays: list[float] = []
    with httpx.Client() as client:
        out = deliver(client, r.url, {"text": "x"}, max_retries=5, base_s=0.05,
                      sleep=lambda d: (delays.append(d), time.sleep(d)))
    assert out == DELIVERED
    assert [s for _, s, _ in r.posts] == [500, 500, 500, 200]  # nothing after the success
    # exponential with jitter in [0.5, 1] x base*2^n, and the real gaps between posts follow it
    for n, d in enumerate(delays):
        assert 0.05 * 2 ** n * 0.5 <= d <= 0.05 * 2 ** n
    gaps = [b[0] - a[0] for a, b in zip(r.posts, r.posts[1:])]
    assert all(g >= d * 0.9 for g, d in zip(gaps, delays))


def test_429_honours_retry_after(receiver):
    r = receiver([429], retry_after="1")
    delays: list[float] = []
    with httpx.Client() as client:
        assert deliver(client, r.url, {"text": "x"}, base_s=0.01, sleep=delays.append) == DELIVERED
    assert delays == [1.0] and len(r.posts) == 2


def test_out_of_retries_is_unavailable_and_a_4xx_is_rejected_without_retry(receiver):
    r = receiver([503] * 10)
    with httpx.Client() as client:
        assert deliver(client, r.url, {"text": "x"}, max_retries=2, base_s=0.01) == UNAVAILABLE
        assert len(r.posts) == 3  # 1 + max_retries, and no extra "settle" post
        r2 = receiver([400])
        assert deliver(client, r2.url, {"text": "x"}, max_retries=5, base_s=0.01) == REJECTED
        assert len(r2.posts) == 1


# ---- the forwarder on the broker ------------------------------------------------------------

def test_forward_slack_retries_and_posts_each_alert_once(bootstrap, topic_prefix, unique, receiver):
    tenant = f"fwd-slack-{unique}"
    _produce_alerts(bootstrap, topic_prefix, [_alert(tenant, 0), _alert(tenant, 1, "WARNING")])
    r = receiver([500, 429])
    sent = forward_alerts(_settings(bootstrap, topic_prefix), r.url, fmt="slack", tenant=tenant,
                          group=f"fwd-{uuid.uuid4().hex}", stop_after=2, base_s=0.02)
    assert sent == 2
    assert [s for _, s, _ in r.posts] == [500, 429, 200, 200]
    bodies = r.accepted()
    assert len(bodies) == 2 and all(set(b) == {"text", "blocks"} for b in bodies)
    assert bodies[0]["text"] == f"[CRITICAL] loop: step repeated 5 times (tenant {tenant})"
    assert bodies[1]["text"].startswith("[WARNING] loop:")
    section, fields = bodies[0]["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": bodies[0]["text"]}}
    assert {"type": "mrkdwn", "text": "*repeats*\n5"} in fields["fields"]


def test_forward_pagerduty_events_v2_shape(bootstrap, topic_prefix, unique, receiver):
    tenant = f"fwd-pd-{unique}"
    _produce_alerts(bootstrap, topic_prefix, [_alert(tenant, 0)])
    r = receiver()
    sent = forward_alerts(_settings(bootstrap, topic_prefix), r.url, fmt="pagerduty", routing_key="R0UTING",
                          tenant=tenant, group=f"fwd-{uuid.uuid4().hex}", stop_after=1)
    assert sent == 1
    (body,) = r.accepted()
    assert body["routing_key"] == "R0UTING" and body["event_action"] == "trigger"
    assert body["dedup_key"] == f"{tenant}-a0"
    p = body["payload"]
    assert p["summary"] == "loop: step repeated 5 times" and p["severity"] == "critical"
    assert p["source"] == f"agentstream/{tenant}/planner"
    assert p["custom_details"]["run_id"] == "run-0" and p["custom_details"]["repeats"] == "5"


def test_unavailable_webhook_stops_without_commit_and_a_restart_resumes_once(bootstrap, topic_prefix, unique,
                                                                             receiver):
    tenant = f"fwd-down-{unique}"
    group = f"fwd-{uuid.uuid4().hex}"
    _produce_alerts(bootstrap, topic_prefix, [_alert(tenant, 0), _alert(tenant, 1)])
    settings = _settings(bootstrap, topic_prefix)
    down = receiver([200, 500, 500])  # first alert goes through, the second hits an outage
    with pytest.raises(RuntimeError, match="webhook unavailable"):
        forward_alerts(settings, down.url, tenant=tenant, group=group, max_retries=1, base_s=0.01)
    assert [s for _, s, _ in down.posts] == [200, 500, 500]
    up = receiver()
    assert forward_alerts(settings, up.url, tenant=tenant, group=group, stop_after=1) == 1
    # the restarted forwarder resumed at the undelivered alert, not at the delivered one
    assert [b["text"] for b in up.accepted()] == [f"[CRITICAL] loop: step repeated 6 times (tenant {tenant})"]


# ---- the typer commands -----------------------------------------------------------------------

@pytest.fixture
def cli(bootstrap, topic_prefix):
    app = typer.Typer()
    register(app)
    env = {"AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS": bootstrap,
           "AGENTSTREAM_PROCESSORS_TOPIC_PREFIX": topic_prefix,
           "AGENTSTREAM_PROCESSORS_BROKER_SESSION_TIMEOUT": "6"}
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env=env)


def test_alerts_tail_command(cli, bootstrap, topic_prefix, unique):
    tenant = f"tail-{unique}"
    _produce_alerts(bootstrap, topic_prefix, [_alert(tenant, 0), _alert(tenant, 1, "WARNING")])
    res = cli("alerts", "tail", "--from-beginning", "--tenant", tenant, "--limit", "2", "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    assert [(a["alert_id"], a["severity"]) for a in lines] == [(f"{tenant}-a0", "CRITICAL"),
                                                                (f"{tenant}-a1", "WARNING")]
    res = cli("alerts", "tail", "--from-beginning", "--tenant", tenant, "--limit", "1")
    assert res.exit_code == 0, res.output
    line = res.stdout.strip()
    assert "CRITICAL" in line and "loop" in line and f"{tenant}/planner/1.2/run-0" in line
    assert "repeats=5" in line and "step repeated 5 times" in line


def test_policy_set_command_writes_and_merges(cli, bootstrap, topic_prefix, unique):
    tenant = f"pol-{unique}"
    res = cli("policy", "set", "--tenant", tenant, "--version", "v7", "--action", "email=hash",
              "--loop", "max_repeats=3", "--budget", "tenant_usd_per_day=50", "--budget", "hard_limit=true",
              "--capture-mode", "REDACTED")
    assert res.exit_code == 0, res.output
    assert f"policy v7 written for tenant {tenant}" in res.stdout
    settings = _settings(bootstrap, topic_prefix)
    rec = read_policy(settings, tenant)
    assert rec["version"] == "v7" and rec["capture_mode"] == "REDACTED"
    assert rec["redaction_actions"]["email"] == "hash" and rec["redaction_actions"]["jwt"] == "mask"
    assert rec["loops"]["max_repeats"] == 3
    assert rec["budgets"]["tenant_usd_per_day"] == 50.0 and rec["budgets"]["hard_limit"] is True
    # a second set merges over the current policy
    res = cli("policy", "set", "--tenant", tenant, "--version", "v8", "--loop", "max_ping_pong=2")
    assert res.exit_code == 0, res.output
    rec = read_policy(settings, tenant)
    assert rec["version"] == "v8" and rec["loops"]["max_ping_pong"] == 2 and rec["loops"]["max_repeats"] == 3
    assert rec["redaction_actions"]["email"] == "hash" and rec["budgets"]["hard_limit"] is True
    # bad input: a clear message, a non-zero exit, nothing written
    res = cli("policy", "set", "--tenant", tenant, "--action", "email=encrypt")
    assert res.exit_code == 2 and "unknown action 'encrypt'" in res.output
    res = cli("policy", "set", "--tenant", tenant, "--loop", "max_repeats=lots")
    assert res.exit_code == 2 and "error:" in res.output
    assert read_policy(settings, tenant)["version"] == "v8"


def test_policy_reader_skips_alerting_records_and_bad_policies(cli, bootstrap, topic_prefix, unique):
    """The policies topic also carries alert routing/state records (NUL-led keys, JSON) and may
    hold a corrupt policy; ``policy show``/``set`` must read past both, not crash on them."""
    from agentstream.schemas.alerting import make_key

    tenant = f"polskip-{unique}"
    p = Producer({"bootstrap.servers": bootstrap})
    name = topic_name("policies", topic_prefix)
    p.produce(name, b'{"alert_id":"al-1","state":"acknowledged","v":1}',
              make_key(tenant, "state", "al-1"))
    p.produce(name, b"\x00\x00\x00\x00\x07not-avro", tenant.encode())  # a corrupt policy for the tenant
    p.produce(name, b"{not framed", f"{tenant}-other".encode())
    assert p.flush(30) == 0
    res = cli("policy", "set", "--tenant", tenant, "--version", "v9", "--loop", "max_repeats=4")
    assert res.exit_code == 0, res.output
    rec = read_policy(_settings(bootstrap, topic_prefix), tenant)
    assert rec is not None and rec["version"] == "v9" and rec["loops"]["max_repeats"] == 4


def test_alerts_forward_command_out_of_retries_is_one_line_and_exit_1(cli, bootstrap, topic_prefix, unique,
                                                                      receiver, tmp_path):
    tenant = f"fwd-cli-{unique}"
    _produce_alerts(bootstrap, topic_prefix, [_alert(tenant, 0)])
    down = receiver([500, 500, 500])
    res = cli("alerts", "forward", "--webhook", down.url, "--tenant", tenant, "--max-retries", "1",
              "--ledger", str(tmp_path / "ledger"))
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "not committed" in res.output
