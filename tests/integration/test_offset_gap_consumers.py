"""Every other consumer that more than one producer writes to reads through the offset-gap guard
(schemas/offset_gaps.py), on the real broker.

Each test writes the consumer's records with a transactional producer in three transactions:
the two commit markers between them take offsets no record is delivered at, a gap the broker
means (as in ``test_offset_gap_race.py::test_a_gap_the_broker_means_is_read_again_then_accepted``).
The consumer must deliver every record, and its guard's counts must show each marker sought
back and read again (``rechecks``) before it was taken (``settled`` or ``accepted``): a consumer
that does not read through the guard leaves those counts at 0. The topics are the test's own (the policy readers share one
written once for this module), one partition each, so every marker lies between two records."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from agentstream.schemas import ALERT, POLICY, Codec, topic_name
from agentstream.schemas.offset_gaps import GapCounts

pytestmark = pytest.mark.integration

TXNS = 3  # two commit markers between the records


def make_topics(bootstrap: str, prefix: str, *kinds: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [topic_name(k, prefix) for k in kinds]
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(15)


def produce_in_transactions(bootstrap: str, topic: str, records: list[tuple[Any, ...]], tid: str) -> None:
    """``records`` ((key, value) or (key, value, headers)) split over ``TXNS`` transactions, in
    order, on partition 0."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    p.init_transactions(15)
    per = -(-len(records) // TXNS)
    for i in range(0, len(records), per):
        p.begin_transaction()
        for key, value, *headers in records[i:i + per]:
            p.produce(topic, value=value, key=key, partition=0, headers=headers[0] if headers else None)
        p.commit_transaction(15)


def gaps_since(counts: GapCounts, before: GapCounts) -> GapCounts:
    return GapCounts(*(getattr(counts, f.name) - getattr(before, f.name) for f in dataclasses.fields(GapCounts)))


def assert_markers_read_again(delta: GapCounts, markers: int = TXNS - 1) -> None:
    """Each marker sought back and read again before it was taken: ``settled`` when it was in the
    partition before the consumer was assigned (one re-read), ``accepted`` when it came after
    (re-read over the window)."""
    assert delta.settled + delta.accepted >= markers, delta
    assert delta.rechecks >= markers, delta
    assert delta.recovered == 0, delta


def assert_exported(prefix: str, counts: GapCounts) -> None:
    """The counts are on the process's /metrics (prometheus_client's global registry)."""
    from prometheus_client import REGISTRY

    for name, labels, value in ((f"{prefix}_offset_gaps_total", {"outcome": "accepted"}, counts.accepted),
                                (f"{prefix}_offset_gaps_total", {"outcome": "settled"}, counts.settled),
                                (f"{prefix}_offset_gap_rechecks_total", {}, counts.rechecks)):
        assert REGISTRY.get_sample_value(name, labels) == value, name


def _alert(tenant: str, n: int) -> dict[str, Any]:
    return {"alert_id": f"{tenant}-a{n}", "alert_type": "loop", "severity": "CRITICAL", "tenant_id": tenant,
            "agent_id": "planner", "agent_version": "1", "run_id": f"run-{n}", "title": f"finding {n}",
            "evidence": {"n": str(n)}, "detected_us": int(time.time() * 1_000_000), "source_offsets": []}


def _processors_settings(bootstrap: str, prefix: str) -> Any:
    from agentstream.stream_processors.settings import ProcessorsSettings

    return ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, broker_session_timeout=6.0,
                              offset_gap_window_s=0.2, offset_gap_rechecks=2)


# ---- 1. the alert forwarder (alerts -> on-call destinations) --------------------------------

def test_alert_forwarder_pages_every_alert_past_commit_markers(bootstrap: str, unique: str) -> None:
    from test_alert_lifecycle_routing import Receiver

    from agentstream.schemas.alerting import Destination
    from agentstream.stream_processors import alert_forwarder
    from agentstream.stream_processors.alert_forwarder import forward

    prefix, tenant = f"gapc-fw-{unique}.", f"fw-{unique}"
    make_topics(bootstrap, prefix, "alerts", "policies")
    alerts = [_alert(tenant, n) for n in range(6)]
    produce_in_transactions(bootstrap, topic_name("alerts", prefix),
                            [(tenant.encode(), Codec().encode(ALERT, a)) for a in alerts], f"fw-{unique}")
    receiver = Receiver()
    before = dataclasses.replace(alert_forwarder.GAP_COUNTS)
    try:
        stats = forward(_processors_settings(bootstrap, prefix), tenant=tenant, group=f"fw-{unique}",
                        static=Destination.from_doc({"kind": "webhook", "url": receiver.url}),
                        stop_after=len(alerts), base_s=0.01, idle_timeout=20)
    finally:
        receiver.close()
    assert stats.delivered == len(alerts)
    assert sorted(b["alert"]["alert_id"] for _h, b in receiver.accepted()) == sorted(a["alert_id"] for a in alerts)
    assert_markers_read_again(gaps_since(alert_forwarder.GAP_COUNTS, before))
    assert_exported("agentstream_alerts_forwarder", alert_forwarder.GAP_COUNTS)


def test_alert_rules_follower_reads_every_record_past_commit_markers(bootstrap: str, unique: str) -> None:
    from agentstream.schemas.alerting import AlertState, encode, make_key
    from agentstream.stream_processors import alert_forwarder
    from agentstream.stream_processors.alerting_io import read_book

    prefix, tenant = f"gapc-rules-{unique}.", f"rules-{unique}"
    make_topics(bootstrap, prefix, "policies")
    states = [AlertState(f"a{n}", "acknowledged", 1_000 + n, "cli") for n in range(6)]
    produce_in_transactions(bootstrap, topic_name("policies", prefix),
                            [(make_key(tenant, "state", s.alert_id), encode(s.to_doc())) for s in states],
                            f"rules-{unique}")
    before = dataclasses.replace(alert_forwarder.RULES_GAP_COUNTS)
    book = read_book(_processors_settings(bootstrap, prefix))
    assert sorted(book.tenant(tenant).states) == [s.alert_id for s in states]
    assert_markers_read_again(gaps_since(alert_forwarder.RULES_GAP_COUNTS, before))
    assert_exported("agentstream_alerts_forwarder_policies", alert_forwarder.RULES_GAP_COUNTS)


# ---- 2. the SDK's command listener (commands -> runs stopped) -------------------------------

class _LiveRun:
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def apply_command(self, cmd: dict[str, Any]) -> None:
        self.commands.append(cmd)


def test_command_listener_applies_every_command_past_commit_markers(bootstrap: str, unique: str) -> None:
    from agentstream.producer.commands import CommandListener
    from agentstream.schemas import COMMAND

    prefix, tenant = f"gapc-cmd-{unique}.", f"cmd-{unique}"
    make_topics(bootstrap, prefix, "commands")
    topic = topic_name("commands", prefix)
    live = {f"run-{n}": _LiveRun() for n in range(6)}
    listener = CommandListener(bootstrap, topic, tenant, live, lambda b: Codec().decode_as(COMMAND, b), 6000,
                               gap_window_s=0.2).start()
    try:
        # The listener starts at the end, and is ready once it read something (an idle topic
        # keeps it waiting 10 s): a command for no live run until one arrives.
        probe = Producer({"bootstrap.servers": bootstrap})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not listener.ready.is_set():
            probe.produce(topic, value=b"not a command", key=b"no-such-run", partition=0)
            probe.flush(10)
            listener.ready.wait(0.5)
        assert listener.ready.is_set()
        cmds = [{"command_id": f"c{n}", "tenant_id": tenant, "run_id": run_id, "command_type": "STOP",
                 "reason": "runaway", "issued_by": "test", "issued_us": time.time_ns() // 1000,
                 "throttle_ms": None, "alert_id": None} for n, run_id in enumerate(live)]
        produce_in_transactions(bootstrap, topic, [(c["run_id"].encode(), Codec().encode(COMMAND, c)) for c in cmds],
                                f"cmd-{unique}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and listener.applied < len(cmds):
            time.sleep(0.05)
    finally:
        listener.stop()
    assert {run_id: [c["command_id"] for c in run.commands] for run_id, run in live.items()} == {
        c["run_id"]: [c["command_id"]] for c in cmds}
    assert_markers_read_again(listener.gaps.counts)


# ---- 3. the OTLP exporter (events -> an OTLP/HTTP backend) ----------------------------------

def test_otlp_exporter_sends_every_span_past_commit_markers(bootstrap: str, unique: str) -> None:
    from test_export_otlp import OtlpReceiver, _run

    from agentstream.schemas import EVENT
    from agentstream.sink import otlp_exporter
    from agentstream.sink.otlp_exporter import OtlpExportSettings, run_export

    prefix, tenant = f"gapc-otlp-{unique}.", f"otlp-{unique}"
    make_topics(bootstrap, prefix, "events")
    events = _run(tenant, "run-a", int(time.time() * 1e6))
    produce_in_transactions(bootstrap, topic_name("events", prefix),
                            [(e["run_id"].encode(), Codec().encode(EVENT, e)) for e in events], f"otlp-{unique}")
    receiver = OtlpReceiver()
    before = dataclasses.replace(otlp_exporter.GAP_COUNTS)
    try:
        settings = OtlpExportSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, group_id=f"otlp-{unique}",
                                      endpoint=receiver.url, linger_s=0.2, session_timeout_ms=6000,
                                      offset_gap_window_s=0.2)
        stats = run_export(settings, stop_after_spans=5, idle_timeout=20)
        spans = receiver.spans()
    finally:
        receiver.close()
    assert stats["undecodable"] == 0 and stats["skipped"] == 0
    assert stats["spans"] == len(spans) == 5  # the run's span (its start and end) and its 3 steps' + 1 failure
    assert_markers_read_again(gaps_since(otlp_exporter.GAP_COUNTS, before))
    assert_exported("agentstream_export_otlp", otlp_exporter.GAP_COUNTS)


# ---- 4. agentstream dlq summary / tail (the DLQ the processors and the sink both write) ------

def test_dlq_summary_counts_every_dead_letter_past_commit_markers(bootstrap: str, unique: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from agentstream.cli.dlq_commands import gap_guard, summarize
    from agentstream.schemas import DLQ_HEADERS

    prefix = f"gapc-dlq-{unique}."
    make_topics(bootstrap, prefix, "dlq")
    for name, value in (("BOOTSTRAP_SERVERS", bootstrap), ("TOPIC_PREFIX", prefix), ("BROKER_SESSION_TIMEOUT", "6"),
                        ("OFFSET_GAP_WINDOW_S", "0.2")):
        monkeypatch.setenv(f"AGENTSTREAM_PROCESSORS_{name}", value)
    letters = [(b"run-1", b"\x00garbage", [(DLQ_HEADERS["reason"], b"undecodable: not an Avro record"),
                                           (DLQ_HEADERS["stage"], stage.encode()),
                                           (DLQ_HEADERS["source_topic"], f"{prefix}raw".encode()),
                                           (DLQ_HEADERS["source_partition"], b"0"),
                                           (DLQ_HEADERS["source_offset"], str(n).encode())])
               for n, stage in enumerate(["redaction", "sink"] * 3)]
    produce_in_transactions(bootstrap, topic_name("dlq", prefix), letters, f"dlq-{unique}")
    gaps = gap_guard()
    assert gaps.window_s == 0.2  # the processors' settings
    s = summarize(idle_s=1.5, gaps=gaps)
    assert s.total == 6
    assert sorted((r["stage"], r["count"]) for r in s.rows()) == [("redaction", 3), ("sink", 3)]
    assert_markers_read_again(gaps.counts)


# ---- 5. the policy readers (the API and the CLI both write policies) ------------------------

POLICY_TENANTS = [f"t{n}" for n in range(6)]


@pytest.fixture(scope="module")
def policies(bootstrap: str) -> str:
    """A policies topic of its own: one policy per tenant (``retention_days`` 10 + n), written in
    ``TXNS`` transactions. Its prefix."""
    import uuid

    prefix = f"gapc-pol-{uuid.uuid4().hex[:10]}."
    make_topics(bootstrap, prefix, "policies")
    produce_in_transactions(bootstrap, topic_name("policies", prefix), [
        (t.encode(), Codec().encode(POLICY, {"tenant_id": t, "version": "v1", "retention_days": 10 + n}))
        for n, t in enumerate(POLICY_TENANTS)], f"pol-{prefix}")
    return prefix


def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)


def test_processors_policy_follower_reads_every_policy_past_commit_markers(bootstrap: str, policies: str) -> None:
    from agentstream.stream_processors.policy_follower import PolicyCopy, PolicyFollower

    copy = PolicyCopy(lambda b: Codec().decode_as(POLICY, b))
    follower = PolicyFollower(bootstrap, topic_name("policies", policies), copy, gap_window_s=0.2)
    reader = threading.Thread(target=follower.run_blocking, daemon=True)
    reader.start()
    try:
        _until(lambda: len(copy.policies) == len(POLICY_TENANTS))
    finally:
        follower._halt.set()
        reader.join(10)
    assert sorted(k.decode() for k in copy.policies) == POLICY_TENANTS and copy.undecodable == 0
    assert_markers_read_again(follower.gaps.counts)


def test_policy_cli_reads_every_policy_past_commit_markers(bootstrap: str, policies: str) -> None:
    from agentstream.schemas.offset_gaps import OffsetGapGuard
    from agentstream.stream_processors.policy_io import read_policies

    gaps = OffsetGapGuard(0.2, 2)
    got = read_policies(_processors_settings(bootstrap, policies), idle_s=1.0, gaps=gaps)
    assert {t: p["retention_days"] for t, p in got.items()} == {t: 10 + n for n, t in enumerate(POLICY_TENANTS)}
    assert_markers_read_again(gaps.counts)


def test_sink_retention_follower_reads_every_policy_past_commit_markers(bootstrap: str, policies: str) -> None:
    from agentstream.sink import retention
    from agentstream.sink.retention import PolicyFollower, RetentionBook

    book = RetentionBook(30, 90)
    before = dataclasses.replace(retention.POLICY_GAP_COUNTS)
    follower = PolicyFollower({"bootstrap.servers": bootstrap}, topic_name("policies", policies), book, Codec())
    try:
        _until(lambda: follower.poll() >= 0 and len(book.snapshot()) == len(POLICY_TENANTS))
    finally:
        follower.close()
    assert book.snapshot() == {t: 10 + n for n, t in enumerate(POLICY_TENANTS)}
    assert_markers_read_again(gaps_since(retention.POLICY_GAP_COUNTS, before))
    assert_exported("agentstream_sink_policies", retention.POLICY_GAP_COUNTS)


def test_api_policy_cache_reads_every_policy_past_commit_markers(bootstrap: str, policies: str) -> None:
    from agentstream.api import kafka_io
    from agentstream.api.kafka_io import PolicyCache
    from agentstream.api.settings import ApiSettings

    before = dataclasses.replace(kafka_io.POLICY_GAP_COUNTS)  # every tail of the process counts there
    cache = PolicyCache(ApiSettings(bootstrap_servers=bootstrap, topic_prefix=policies, offset_gap_window_s=0.2))
    try:
        _until(lambda: all(cache.get(t) for t in POLICY_TENANTS))
    finally:
        cache.close()
    assert {t: cache.get(t)["retention_days"] for t in POLICY_TENANTS} == {
        t: 10 + n for n, t in enumerate(POLICY_TENANTS)}
    assert cache.gaps.counts is kafka_io.POLICY_GAP_COUNTS
    assert_markers_read_again(gaps_since(cache.gaps.counts, before))


def test_alerts_tail_prints_every_alert_past_commit_markers(bootstrap: str, unique: str) -> None:
    import io

    from agentstream.schemas.offset_gaps import OffsetGapGuard
    from agentstream.stream_processors.alerts_io import tail_alerts

    prefix, tenant = f"gapc-tail-{unique}.", f"tail-{unique}"
    make_topics(bootstrap, prefix, "alerts")
    alerts = [_alert(tenant, n) for n in range(6)]
    produce_in_transactions(bootstrap, topic_name("alerts", prefix),
                            [(tenant.encode(), Codec().encode(ALERT, a)) for a in alerts], f"tail-{unique}")
    out, gaps = io.StringIO(), OffsetGapGuard(0.2, 2)
    n = tail_alerts(_processors_settings(bootstrap, prefix), tenant=tenant, from_beginning=True, limit=len(alerts),
                    as_json=True, out=out, idle_timeout=20, gaps=gaps)
    assert n == len(alerts)
    assert [json.loads(line)["alert_id"] for line in out.getvalue().splitlines()] == [a["alert_id"] for a in alerts]
    assert_markers_read_again(gaps.counts)


# ---- 6. the SDK's policy follower (a running agent's durable action classes) ------------------

def test_sdk_policy_follower_applies_every_policy_past_commit_markers(bootstrap: str, unique: str) -> None:
    from agentstream.producer.policy_follower import DurablePolicy, PolicyFollower

    prefix, tenant = f"gapc-sdkpol-{unique}.", f"sdkpol-{unique}"
    make_topics(bootstrap, prefix, "policies")
    # Six versions of the tenant's policy, each naming its own durable class, between another
    # tenant's: the follower must apply every one, in order, and end on the last.
    versions = [{"tenant_id": tenant, "version": f"v{n}", "governance": {"durable_tools": [f"class{n}.*"]}}
                for n in range(6)]
    other = {"tenant_id": "someone-else", "version": "x", "governance": {"durable_tools": ["*"]}}
    produce_in_transactions(bootstrap, topic_name("policies", prefix), [
        (r["tenant_id"].encode(), Codec().encode(POLICY, r)) for v in versions for r in (v, other)], f"sdkpol-{unique}")
    state = DurablePolicy(tenant, lambda b: Codec().decode_as(POLICY, b))
    follower = PolicyFollower(bootstrap, topic_name("policies", prefix), state, 6000, gap_window_s=0.2).start()
    try:
        assert state.loaded.wait(20)
    finally:
        follower.stop()
    assert (state.applied, state.ignored, state.undecodable) == (len(versions), len(versions), 0)
    assert (state.version, state.patterns) == ("v5", ("class5.*",))
    assert state.durable("refund", "class5.payments") and not state.durable("refund", "class4.payments")
    assert_markers_read_again(follower.gaps.counts)


# ---- 7. the API's /metrics: its policies tails' counts --------------------------------------

def _scraped_gaps(text: str, prefix: str) -> GapCounts:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, s.labels.get("outcome")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return GapCounts(recovered=int(samples[(f"{prefix}_offset_gaps_total", "recovered")]),
                     accepted=int(samples[(f"{prefix}_offset_gaps_total", "accepted")]),
                     settled=int(samples[(f"{prefix}_offset_gaps_total", "settled")]),
                     accepted_records=int(samples[(f"{prefix}_offset_gap_records_total", None)]),
                     rechecks=int(samples[(f"{prefix}_offset_gap_rechecks_total", None)]))


def test_api_metrics_show_the_policies_tails_gap_counts(bootstrap: str, policies: str, chdb_client: Any,
                                                         tmp_path: Any) -> None:
    """The app's own policy cache (started by GET /v1/policies) reads past the markers, and the
    app's /metrics says so; a second app built in the process serves the same counts (one
    registration per app's registry, none on the global one)."""
    from fastapi.testclient import TestClient

    from agentstream.api import kafka_io
    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.settings import ApiSettings

    keys = tmp_path / "keys.json"
    auth = {"Authorization": f"Bearer {add_key(keys, POLICY_TENANTS[-1], scopes=['read'])}"}
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers=bootstrap, topic_prefix=policies,
                           offset_gap_window_s=0.2, kafka_client_conf={"session.timeout.ms": "6000"})
    before = dataclasses.replace(kafka_io.POLICY_GAP_COUNTS)
    prefix = "agentstream_api_policies"
    with TestClient(create_app(settings, client=chdb_client)) as api:
        assert gaps_since(_scraped_gaps(api.get("/metrics").text, prefix), before) == GapCounts()
        got: dict[str, Any] = {}
        # the last tenant's policy lies past both markers
        _until(lambda: got.update(api.get("/v1/policies", headers=auth).json()) or got.get("source") == "topic")
        assert (got["source"], got["retention_days"]) == ("topic", 10 + len(POLICY_TENANTS) - 1)
        scraped = _scraped_gaps(api.get("/metrics").text, prefix)
    assert_markers_read_again(gaps_since(scraped, before))
    with TestClient(create_app(settings, client=chdb_client)) as again:
        assert _scraped_gaps(again.get("/metrics").text, prefix) == kafka_io.POLICY_GAP_COUNTS
