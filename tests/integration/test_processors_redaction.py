"""raw → events through the real worker process on the embedded broker: secrets never reach
events, undecodable bytes go to the DLQ with a reason while later events still flow, and an event
redaction cannot make safe goes to quarantine only. One worker serves the whole module."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from agentstream.schemas import ALERT, DLQ_HEADERS, EVENT, Codec, topic_name
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.worker_process import start_worker

pytestmark = pytest.mark.integration

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def worker(bootstrap, topic_prefix, tmp_path_factory):
    d = tmp_path_factory.mktemp("processors")
    w = start_worker(bootstrap, topic_prefix, "test-redaction-" + uuid.uuid4().hex[:6], d / "data",
                     d / "worker.log")
    try:
        yield w.wait_ready()
    finally:
        w.stop()


def _produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value in items:
        p.produce(topic, value, key)
    assert p.flush(30) == 0


def _collect(bootstrap: str, topics: list[str], until, timeout: float = 60.0) -> list:
    """Reads the topics from the beginning until ``until(messages)`` holds (never stops at the
    reported high watermark: Tansu reports it short)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe(topics)
    got: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(got):
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    got.append(m)
    finally:
        c.close()
    return got


def test_secrets_are_absent_from_events_and_bad_bytes_go_to_dlq(worker, bootstrap, topic_prefix, unique):
    codec = Codec()
    tenant, run = f"tenant-{unique}", f"run-{unique}"
    planted = [
        syn.run_start(tenant, run, attributes={"user": EMAIL}),
        syn.step(tenant, run, 1, attributes={"auth": f"aws key {AWS_KEY}", "payment": f"card {CARD}"}),
        syn.event(tenant, run, 2, "FAILURE", {"failure_type": "TOOL", "failure_code": "http_401",
                                               "message": f"rejected key {AWS_KEY} for {EMAIL}"}),
    ]
    items = [(run.encode(), codec.encode(EVENT, e)) for e in planted[:2]]
    items.append((run.encode(), b"\x00\x00\x00garbage that is not avro"))
    items.append((run.encode(), codec.encode(EVENT, planted[2])))  # after the bad record: still flows
    _produce(bootstrap, topic_name("raw", topic_prefix), items)

    events_t, dlq_t = topic_name("events", topic_prefix), topic_name("dlq", topic_prefix)

    def mine(msgs):
        return [m for m in msgs if m.key() == run.encode()]

    msgs = _collect(bootstrap, [events_t, dlq_t],
                    lambda ms: len([m for m in mine(ms) if m.topic() == events_t]) >= 3
                    and any(m.topic() == dlq_t for m in mine(ms)))
    ev = [m for m in mine(msgs) if m.topic() == events_t]
    dlq = [m for m in mine(msgs) if m.topic() == dlq_t]
    assert len(ev) == 3 and len(dlq) == 1
    for m in ev:
        raw = m.value()
        for secret in (AWS_KEY, EMAIL, CARD, CARD.replace(" ", "")):
            assert secret.encode() not in raw
        rec = codec.decode_as(EVENT, raw)
        assert rec["redaction"]["policy_version"] == "default"
    by_seq = {codec.decode_as(EVENT, m.value())["seq"]: codec.decode_as(EVENT, m.value()) for m in ev}
    assert by_seq[0]["redaction"]["rule_counts"] == {"email": 1}
    assert by_seq[1]["redaction"]["rule_counts"] == {"aws_access_key_id": 1, "payment_card": 1}
    assert by_seq[2]["payload"]["message"] == "rejected key [REDACTED:api_key] for [REDACTED:email]"
    headers = dict(dlq[0].headers())
    assert b"unknown schema id" in headers[DLQ_HEADERS["reason"]]
    assert headers[DLQ_HEADERS["stage"]] == b"redaction"
    assert headers[DLQ_HEADERS["source_topic"]] == topic_name("raw", topic_prefix).encode()
    assert int(headers[DLQ_HEADERS["source_offset"]]) >= 0
    assert dlq[0].value() == items[2][1]  # the original bytes, untouched


def test_event_whose_redaction_raises_is_quarantined_never_in_events(worker, bootstrap, topic_prefix, unique):
    codec = Codec()
    tenant, run = f"tenant-{unique}", f"run-{unique}"
    # Over the engine's bounded scan size: the detector refuses (raises), so the event fails closed.
    huge = f"{EMAIL} " + "x" * 300_000
    # (in a step name: under metadata_only a long free attribute is dropped before any scan)
    bad = syn.step(tenant, run, 1, name=huge)
    ok = syn.step(tenant, run, 2, attributes={"note": "fine"})
    # An identifier carrying a secret cannot be rewritten without breaking the run: quarantined too.
    ident = syn.step(tenant, run, 3, agent_id=f"agent-of-{EMAIL}")
    _produce(bootstrap, topic_name("raw", topic_prefix),
             [(run.encode(), codec.encode(EVENT, e)) for e in (bad, ok, ident)])
    events_t, q_t, alerts_t = (topic_name(n, topic_prefix) for n in ("events", "quarantine", "alerts"))

    def done(ms):
        return (any(m.topic() == events_t and m.key() == run.encode() for m in ms)
                and len([m for m in ms if m.topic() == q_t and m.key() == run.encode()]) >= 2
                and len([m for m in ms if m.topic() == alerts_t and m.key() == tenant.encode()]) >= 2)

    msgs = _collect(bootstrap, [events_t, q_t, alerts_t], done)
    ev = [codec.decode_as(EVENT, m.value()) for m in msgs if m.topic() == events_t and m.key() == run.encode()]
    assert [e["event_id"] for e in ev] == [ok["event_id"]]  # no copy of the bad ones
    q = [m for m in msgs if m.topic() == q_t and m.key() == run.encode()]
    assert sorted(codec.decode_as(EVENT, m.value())["event_id"] for m in q) == sorted(
        [bad["event_id"], ident["event_id"]])
    reasons = sorted(dict(m.headers())[DLQ_HEADERS["reason"]].decode() for m in q)
    assert any("scan limit" in r for r in reasons) and any("identifier field agent_id" in r for r in reasons)
    alerts = [codec.decode_as(ALERT, m.value()) for m in msgs if m.topic() == alerts_t and m.key() == tenant.encode()]
    assert {a["alert_type"] for a in alerts} == {"redaction_quarantine"}
    for a in alerts:  # the alert says why, never what
        assert EMAIL not in repr(a)


def test_worker_serves_health_and_metrics(worker):
    import urllib.request

    with urllib.request.urlopen(worker.url + "/healthz") as r:
        assert r.status == 200
    with urllib.request.urlopen(worker.url + "/metrics") as r:
        body = r.read().decode()
    assert "agentstream_processors_records_in_total" in body
