"""POST /v1/ingest against the real broker: what a 2xx promises is on raw, field for field, and
every kind of bad request gets its status code with nothing valid lost."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import time
import uuid

import httpx
import pytest

from agentstream.api.auth import add_key
from agentstream.api.gateway import GatewaySettings
from agentstream.api.gateway.server import ThreadedGateway, free_port

from raw_topic import read_raw

pytestmark = pytest.mark.integration
T0 = (time.time_ns() // 1000 // 1_000_000 - 3600) * 1_000_000  # within the accepted event times


def make_event(run_id: str, n: int, **over) -> dict:
    seq = n
    base = {
        "event_id": str(uuid.uuid4()), "agent_id": "billing-agent", "agent_version": "1.4.0",
        "environment": "test", "run_id": run_id, "seq": seq, "ts_us": T0 + seq * 1000,
        "sdk_version": "ts-sdk/0.3.0", "kind": "STEP",
        "attributes": {"team": "payments"},
        "payload": {"step_id": f"{run_id}-s{seq}", "step_kind": "LLM", "name": "chat",
                    "status": "OK", "started_us": T0 + seq * 1000, "latency_ms": 812.5,
                    "llm": {"provider": "openai", "request_model": "gpt-4o-mini",
                            "response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 1200,
                            "output_tokens": 300, "cache_read_tokens": 200,
                            "cost_usd": 0.00042, "finish_reasons": ["stop"],
                            "tool_calls": ["lookup_invoice"]}},
    }
    base.update(over)
    return base


def run_events(run_id: str) -> list[dict]:
    return [
        make_event(run_id, 0, kind="RUN_START", session_id="sess-1",
                   payload={"entrypoint": "handle_ticket", "role": "triage"}),
        make_event(run_id, 1),
        make_event(run_id, 2, payload={
            "step_id": f"{run_id}-tool", "step_kind": "TOOL", "name": "lookup_invoice",
            "status": "ERROR", "started_us": T0 + 5000, "latency_ms": 30,
            "tool": {"tool_name": "lookup_invoice", "call_id": "call_1", "args_digest": "ab12" * 16}}),
        make_event(run_id, 3, kind="FAILURE", payload={
            "failure_type": "TOOL", "failure_code": "timeout", "step_id": f"{run_id}-tool",
            "message": "upstream timed out", "retryable": True}),
        make_event(run_id, 4, kind="RUN_END", payload={
            "status": "FAILURE", "outcome": "error", "started_us": T0, "duration_ms": 2000.0,
            "step_count": 2, "llm_calls": 1, "input_tokens": 1200, "output_tokens": 300,
            "cost_usd": 0.00042}),
    ]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("keys") / "api_keys.json"
    tenant = "acme-" + uuid.uuid4().hex[:8]
    return {
        "path": str(path), "tenant": tenant,
        "write": add_key(path, tenant, scopes=["read", "write"], name="writer"),
        "read": add_key(path, tenant, scopes=["read"], name="reader"),
    }


def settings_for(bootstrap: str, prefix: str, keys_path: str, **over) -> GatewaySettings:
    return GatewaySettings(bootstrap_servers=bootstrap, topic_prefix=prefix,
                           api_keys_file=keys_path, port=free_port(), **over)


@pytest.fixture(scope="module")
def gateway(bootstrap, topic_prefix, keys):
    gw = ThreadedGateway(settings_for(bootstrap, topic_prefix, keys["path"],
                                      max_body_bytes=64 * 1024, max_batch_events=50)).start()
    gw.wait_ready()
    yield gw
    gw.stop()


def post(gw, body, key=None, headers=None, path="/v1/ingest") -> httpx.Response:
    h = {"content-type": "application/json", **(headers or {})}
    if key:
        h["authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gw.url + path, content=data, headers=h, timeout=60)


def check_same(sent: dict, got: dict, tenant: str) -> None:
    """Every field sent comes back; the tenant is the key's; defaults are the contract's."""
    assert got["tenant_id"] == tenant
    for k, v in sent.items():
        if k == "payload":
            for pk, pv in v.items():
                if isinstance(pv, dict):
                    for fk, fv in pv.items():
                        assert got["payload"][pk][fk] == fv, (pk, fk)
                else:
                    assert got["payload"][pk] == pv, pk
        else:
            assert got[k] == v, k
    assert got["capture_mode"] == "METADATA_ONLY" and got["redaction"] is None
    assert 0 < got["emitted_us"] - T0 if "emitted_us" not in sent else True


def test_batch_lands_on_raw_field_for_field(gateway, keys, bootstrap, topic_prefix, unique):
    run_id = "run-" + unique
    events = run_events(run_id)
    r = post(gateway, {"events": events}, keys["write"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 5 and body["rejected"] == []
    assert body["event_ids"] == [e["event_id"] for e in events]
    got = [rec for _, _, rec in read_raw(bootstrap, topic_prefix, keys["tenant"], 5, run_id=run_id)]
    assert len(got) == 5
    by_id = {g["event_id"]: g for g in got}
    for e in events:
        check_same(e, by_id[e["event_id"]], keys["tenant"])
    # one run, one partition, in order
    assert [g["seq"] for g in got] == [0, 1, 2, 3, 4]
    llm = by_id[events[1]["event_id"]]["payload"]["llm"]
    assert llm["cache_write_tokens"] == 0 and llm["operation"] == "chat"  # contract defaults


def test_curl_batch_with_server_filled_fields(gateway, keys, bootstrap, topic_prefix, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    tenant_run = "run-curl-" + uuid.uuid4().hex[:8]
    ev = make_event(tenant_run, 0)
    for k in ("event_id", "sdk_version"):
        ev.pop(k)
    f = tmp_path / "batch.json"
    f.write_text(json.dumps([ev]))  # a bare array works too
    out = subprocess.run(
        [curl, "-sS", "-w", "\n%{http_code}", "-X", "POST", gateway.url + "/v1/ingest",
         "-H", "Content-Type: application/json", "-H", f"X-API-Key: {keys['write']}",
         "--data-binary", f"@{f}"], capture_output=True, text=True, timeout=60, check=True)
    text, status = out.stdout.rsplit("\n", 1)
    assert status == "200", text
    event_id = json.loads(text)["event_ids"][0]
    uuid.UUID(event_id)
    got = [rec for _, _, rec in read_raw(bootstrap, topic_prefix, keys["tenant"], 1, run_id=tenant_run)]
    assert len(got) == 1
    assert got[0]["event_id"] == event_id and got[0]["sdk_version"] == "gateway-http"
    check_same(ev, got[0], keys["tenant"])


def test_mixed_batch_reports_each_rejection_and_keeps_the_valid(
        gateway, keys, bootstrap, topic_prefix, unique):
    run_id = "run-" + unique
    good = [make_event(run_id, 0), make_event(run_id, 1)]
    bad = [
        make_event(run_id, 2, seq="2"),                                  # wrong type
        {k: v for k, v in make_event(run_id, 3).items() if k != "agent_id"},  # missing
        make_event(run_id, 4, kind="TELEPORT"),                          # bad enum
        make_event(run_id, 5, tenant_id="someone-else"),                 # tenant from payload
        make_event(run_id, 6, payload={"entrypoint": "x"}),              # payload vs kind
        "not an event",
        make_event(run_id, 7, prompt="secret text"),                     # unknown field
    ]
    batch = [good[0], *bad[:3], good[1], *bad[3:]]
    r = post(gateway, {"events": batch}, keys["write"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2
    reasons = {x["index"]: (x["reason"], x["errors"][0]["field"]) for x in body["rejected"]}
    assert reasons == {
        1: ("wrong_type", "seq"), 2: ("missing_field", "agent_id"), 3: ("invalid_enum", "kind"),
        5: ("tenant_mismatch", "tenant_id"), 6: ("missing_field", "payload.step_id"),
        7: ("wrong_type", ""), 8: ("unknown_field", "prompt"),
    }
    got = [rec for _, _, rec in read_raw(bootstrap, topic_prefix, keys["tenant"], 2, run_id=run_id)]
    assert sorted(g["event_id"] for g in got) == sorted(e["event_id"] for e in good)


@pytest.mark.parametrize("body,code", [
    (b'{"events": [', "malformed_json"),
    (b'{"evnts": []}', "invalid_batch"),
    (b'{"events": []}', "empty_batch"),
])
def test_bad_bodies_are_400(gateway, keys, body, code):
    r = post(gateway, body, keys["write"])
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_all_invalid_is_400_with_details(gateway, keys):
    r = post(gateway, {"events": [make_event("r", 0, ts_us=-5), make_event("r", 1, seq=-1)]},
             keys["write"])
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "out_of_range"  # the reason every rejection shares
    assert [x["reason"] for x in err["details"]["rejected"]] == ["out_of_range", "out_of_range"]


@pytest.mark.parametrize("which,status,code", [
    (None, 401, "unauthenticated"), ("bogus", 401, "invalid_api_key"),
    ("read", 403, "insufficient_scope"),
])
def test_keys(gateway, keys, which, status, code):
    key = {"read": keys["read"], "bogus": "ask_" + "x" * 40, None: None}[which]
    r = post(gateway, {"events": [make_event("r", 0)]}, key)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_size_limits(gateway, keys, bootstrap, topic_prefix):
    big = {"events": [make_event("big", 0, attributes={"pad": "x" * 70_000})]}
    r = post(gateway, big, keys["write"])
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit holds while streaming
        yield json.dumps(big).encode()
    r = httpx.post(gateway.url + "/v1/ingest", content=chunks(), timeout=60,
                   headers={"authorization": f"Bearer {keys['write']}"})
    assert r.status_code == 413

    bomb = gzip.compress(json.dumps(big).encode())  # small on the wire, too big inflated
    assert len(bomb) < 64 * 1024
    r = post(gateway, bomb, keys["write"], {"content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["error"]["message"]

    r = post(gateway, {"events": [make_event("many", i) for i in range(51)]}, keys["write"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "batch_too_large"
    assert r.json()["error"]["details"] == {"max_batch_events": 50, "events": 51}


def test_gzip_body_is_accepted(gateway, keys, bootstrap, topic_prefix, unique):
    run_id = "run-gz-" + unique
    ev = make_event(run_id, 0)
    r = post(gateway, gzip.compress(json.dumps([ev]).encode()), keys["write"],
             {"content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    got = [rec for _, _, rec in read_raw(bootstrap, topic_prefix, keys["tenant"], 1, run_id=run_id)]
    assert [g["event_id"] for g in got] == [ev["event_id"]]


def test_rate_limit_per_tenant(bootstrap, topic_prefix, keys, tmp_path):
    other = add_key(keys["path"], "other-" + uuid.uuid4().hex[:6], scopes=["write"])
    s = settings_for(bootstrap, topic_prefix, keys["path"], rate_limit_events_per_s=1.0,
                     rate_limit_burst=3)
    with ThreadedGateway(s) as gw:
        gw.wait_ready()
        assert post(gw, [make_event("rl", i) for i in range(3)], keys["write"]).status_code == 200
        r = post(gw, [make_event("rl", 3)], keys["write"])
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # another tenant has its own bucket
        assert post(gw, [make_event("rl2", 0)], other).status_code == 200
        m = httpx.get(gw.url + "/metrics").text
        assert 'agentstream_gateway_requests_throttled_total{cause="rate_limited",endpoint="/v1/ingest"} 1.0' in m


def test_health_ready_metrics(gateway, keys):
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    r = httpx.get(gateway.url + "/readyz")
    assert r.status_code == 200 and r.json()["checks"]["raw_topic"] is True
    post(gateway, [make_event("m", 0)], keys["write"])
    post(gateway, [make_event("m", 1, seq="x")], keys["write"])
    m = httpx.get(gateway.url + "/metrics").text
    assert 'agentstream_gateway_events_accepted_total{endpoint="/v1/ingest"}' in m
    assert 'agentstream_gateway_events_rejected_total{endpoint="/v1/ingest",reason="wrong_type"}' in m
    assert "agentstream_gateway_kafka_ack_seconds_count" in m
    r = httpx.get(gateway.url + "/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
