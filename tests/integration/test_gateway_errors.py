"""Errors that tell the truth, against a real gateway on the real broker: a record Kafka can never
take is 413 ``record_too_large`` naming the event (never "503, retry"), absurd event times are
400 ``out_of_range``, malformed OTLP/JSON gets a path, not a Python exception, and a body that
does not say it is JSON is 415."""
from __future__ import annotations

import copy
import json
import random
import time
import uuid

import httpx
import pytest

from agentstream.api.auth import add_key
from agentstream.api.gateway import GatewaySettings
from agentstream.api.gateway.server import ThreadedGateway, free_port

pytestmark = pytest.mark.integration

DAY_US = 86_400 * 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "api_keys.json"
    return path, add_key(path, "errs-" + uuid.uuid4().hex[:8], scopes=["write"], name="w")


def start(bootstrap, prefix, key_path, **over) -> ThreadedGateway:
    gw = ThreadedGateway(GatewaySettings(bootstrap_servers=bootstrap, topic_prefix=prefix,
                                         api_keys_file=str(key_path), port=free_port(),
                                         max_body_bytes=8 * 1024 * 1024, **over)).start()
    gw.wait_ready()
    return gw


@pytest.fixture(scope="module")
def gw(bootstrap, topic_prefix, key_file):
    g = start(bootstrap, topic_prefix, key_file[0])
    yield g
    g.stop()


def event(run_id: str, seq: int = 0, ts: int | None = None, **over) -> dict:
    ts = now_us() if ts is None else ts
    ev = {"event_id": str(uuid.uuid4()), "agent_id": "a", "agent_version": "1", "environment": "t",
          "run_id": run_id, "seq": seq, "ts_us": ts, "kind": "STEP",
          "payload": {"step_id": f"{run_id}-{seq}", "step_kind": "TOOL", "name": "search",
                      "status": "OK", "started_us": ts, "latency_ms": 3.0,
                      "tool": {"tool_name": "search"}}}
    ev.update(over)
    return ev


def big_event(run_id: str, seq: int = 0, nbytes: int = 1_200_000) -> dict:
    """A valid event that encodes to about ``nbytes``: a decision among many candidates (long
    attribute values would be dropped at the edge, so size comes from a contract field)."""
    ev = event(run_id, seq)
    ev.update(kind="DECISION", payload={"decision_type": "route", "selected": "c0",
                                        "candidates": [f"cand{i:07d}" for i in range(nbytes // 11)],
                                        "reason_code": "many_options"})
    return ev


def post(gw, body, key, ctype: str | None = "application/json", path="/v1/ingest"):
    headers = {"authorization": f"Bearer {key}"}
    if ctype is not None:
        headers["content-type"] = ctype
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gw.url + path, content=data, headers=headers, timeout=60)


# --- record size ------------------------------------------------------------------------------

def test_an_oversized_event_is_413_record_too_large_naming_it(gw, key_file):
    big = big_event("big-" + uuid.uuid4().hex[:6])
    r = post(gw, {"events": [big]}, key_file[1])
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "record_too_large"
    assert big["event_id"] in err["message"]
    assert "retry" not in r.headers.get("retry-after", "") and "retry-after" not in r.headers
    assert err["details"]["rejected"][0]["event_id"] == big["event_id"]


def test_an_oversized_event_in_a_batch_is_rejected_and_the_rest_delivered(gw, key_file):
    run = "mix-" + uuid.uuid4().hex[:6]
    good, big = event(run, 0), big_event(run, 1, 1_100_000)
    r = post(gw, {"events": [good, big]}, key_file[1])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["event_ids"] == [good["event_id"]]
    [rej] = body["rejected"]
    assert (rej["index"], rej["reason"], rej["event_id"]) == (1, "record_too_large", big["event_id"])


def test_kafkas_own_size_refusal_is_413_not_503(bootstrap, topic_prefix, key_file):
    """With the gateway's limit set above librdkafka's (message.max.bytes 1,000,000), the
    refusal comes from Kafka's client: still 413, never 'kafka_unavailable, retry'."""
    g = start(bootstrap, topic_prefix, key_file[0], max_record_bytes=4_000_000)
    try:
        big = big_event("k-" + uuid.uuid4().hex[:6], 1_500_000)
        r = post(g, {"events": [big]}, key_file[1])
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "record_too_large"
        assert big["event_id"] in r.json()["error"]["message"]
        # the producer was not retired for it: the next normal batch goes through at once
        ok = post(g, {"events": [event("k2-" + uuid.uuid4().hex[:6])]}, key_file[1])
        assert ok.status_code == 200 and ok.json()["accepted"] == 1, ok.text
    finally:
        g.stop()


# --- event times --------------------------------------------------------------------------------

def absurd_times(rng: random.Random) -> list[int]:
    now = now_us()
    fixed = [-1, 0, 1, 2**62, 2**63 - 1, now - 366 * DAY_US, now + 2 * DAY_US, 253402300799_000_000]
    return fixed + [rng.randint(now + DAY_US + 60_000_000, 2**63 - 1) for _ in range(4)] + \
        [rng.randint(1, now - 366 * DAY_US) for _ in range(4)]


@pytest.mark.parametrize("where", ["ts_us", "payload.started_us", "emitted_us"])
def test_absurd_event_times_are_400_out_of_range(gw, key_file, where):
    for ts in absurd_times(random.Random(where)):
        ev = event("t-" + uuid.uuid4().hex[:6])
        if where == "ts_us":
            ev["ts_us"] = ts
        elif where == "emitted_us":
            ev["emitted_us"] = ts
        else:
            ev["payload"]["started_us"] = ts
        r = post(gw, {"events": [ev]}, key_file[1])
        assert r.status_code == 400, (where, ts, r.text)
        err = r.json()["error"]
        assert err["code"] == "out_of_range", (where, ts, err)
        assert err["details"]["rejected"][0]["errors"][0]["field"] == where


def test_times_inside_the_bounds_are_accepted(gw, key_file):
    now = now_us()
    for ts in (now - 364 * DAY_US, now - 1, now, now + DAY_US - 60_000_000):
        r = post(gw, {"events": [event("in-" + uuid.uuid4().hex[:6], ts=ts)]}, key_file[1])
        assert r.status_code == 200 and r.json()["accepted"] == 1, (ts, r.text)


def test_the_bounds_are_configurable(bootstrap, topic_prefix, key_file):
    g = start(bootstrap, topic_prefix, key_file[0], max_event_age_s=60, max_event_ahead_s=5)
    try:
        old = post(g, {"events": [event("c-" + uuid.uuid4().hex[:6], ts=now_us() - 3_600_000_000)]},
                   key_file[1])
        assert old.status_code == 400 and old.json()["error"]["code"] == "out_of_range"
        ahead = post(g, {"events": [event("c-" + uuid.uuid4().hex[:6], ts=now_us() + 60_000_000)]},
                     key_file[1])
        assert ahead.status_code == 400
        fresh = post(g, {"events": [event("c-" + uuid.uuid4().hex[:6])]}, key_file[1])
        assert fresh.status_code == 200
    finally:
        g.stop()


def test_otlp_spans_with_absurd_times_are_rejected_not_stored(gw, key_file):
    trace = uuid.uuid4().hex
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "c" * 16, "name": "run", "startTimeUnixNano": str(2**62 * 1000 // 1000),
         "endTimeUnixNano": str(2**62 + 1000)}]}]}]}
    r = post(gw, doc, key_file[1], path="/v1/traces")
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert int(r.json()["partialSuccess"]["rejectedSpans"]) >= 1
        assert "out" in r.json()["partialSuccess"]["errorMessage"]
    else:
        assert r.json()["error"]["code"] == "invalid_spans"


# --- OTLP/JSON shape ----------------------------------------------------------------------------

def valid_otlp() -> dict:
    t = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": [
            {"traceId": uuid.uuid4().hex, "spanId": "d" * 16, "name": "run",
             "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 1000),
             "status": {"code": 1}, "attributes": [{"key": "k", "value": {"stringValue": "v"}}],
             "events": [{"name": "e", "attributes": []}]}]}]}]}


def containers(doc, path=()):
    """Every path to a dict or list inside ``doc`` (the places a client can get the type wrong)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if isinstance(v, (dict, list)):
                yield path + (k,)
                yield from containers(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            if isinstance(v, (dict, list)):
                yield path + (i,)
                yield from containers(v, path + (i,))


def replaced(doc, path, value):
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


PYTHON_LEAKS = ("Error(", "object has no attribute", "Traceback", "NoneType", "not subscriptable",
                "'str' object", "'int' object", "'list' object")


def test_malformed_otlp_json_gets_a_clear_message_never_a_python_error(gw, key_file):
    base = valid_otlp()
    bodies = [[], "x", 3, None, {"resourceSpans": {}}]
    for path in containers(base):
        for wrong in ("text", 7, True, [1], {"a": 1}):
            bodies.append(replaced(base, path, wrong))
    seen = 0
    for body in bodies:
        r = post(gw, body, key_file[1], path="/v1/traces")
        assert r.status_code < 500, (body, r.text)
        if r.status_code >= 400 and r.headers["content-type"].startswith("application/json") \
                and "error" in r.json():
            message = r.json()["error"]["message"]
            assert not any(leak in message for leak in PYTHON_LEAKS), (body, message)
            seen += 1
    assert seen > 20  # most mutations are refused, each with a readable reason


def test_malformed_otlp_json_names_the_path(gw, key_file):
    body = valid_otlp()
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0] = "oops"
    r = post(gw, body, key_file[1], path="/v1/traces")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "malformed_otlp"
    assert "resourceSpans[0].scopeSpans[0].spans[0] is a string, not an object" in err["message"]


# --- Content-Type -------------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data", "application/jsonx", "text/json"])
def test_ingest_needs_a_json_content_type(gw, key_file, ctype):
    r = post(gw, {"events": [event("ct-" + uuid.uuid4().hex[:6])]}, key_file[1], ctype=ctype)
    assert r.status_code == 415, (ctype, r.text)
    err = r.json()["error"]
    assert err["code"] == "unsupported_media_type"
    assert "application/json" in err["message"]
    assert (ctype or "no Content-Type") in err["message"]


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "Application/JSON", "application/vnd.agentstream+json"])
def test_ingest_takes_json_content_types(gw, key_file, ctype):
    r = post(gw, {"events": [event("ok-" + uuid.uuid4().hex[:6])]}, key_file[1], ctype=ctype)
    assert r.status_code == 200, (ctype, r.text)
