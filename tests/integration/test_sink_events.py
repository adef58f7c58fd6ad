"""The sink against the real broker and chDB: events and alerts stored once, bad records in the DLQ."""
from __future__ import annotations

import time
import uuid

import pytest

from agentstream.schemas import ALERT, DLQ_HEADERS, EVENT, Codec, topic_name
from agentstream.sink import Sink, SinkSettings, apply_migrations
from agentstream.sink.thread_sched import thread_sched

from test_sink_support import own_topics, produce, run_events, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def topic_prefix(bootstrap):
    """This module's own topics (see ``own_topics``), not the session's shared ones."""
    return own_topics(bootstrap)


@pytest.fixture(autouse=True)
def _migrated(chdb_client):
    apply_migrations(chdb_client)


def _settings(bootstrap: str, prefix: str, unique: str, **kw) -> SinkSettings:
    # these tests count the Avro path's rows: every range takes it, however small
    kw.setdefault("avro_min_rows", 0)
    return SinkSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, group_id=f"sink-{unique}",
                        session_timeout_ms=6000, batch_max_rows=500, batch_max_seconds=0.3, **kw)


def _count(client, sql: str, **params) -> int:
    return int(client.query(sql, parameters=params).result_rows[0][0])


def test_events_and_alerts_reach_clickhouse_once(bootstrap, topic_prefix, chdb_client, unique):
    codec = Codec()
    tenant = f"tenant-{unique}"
    runs = [f"run-{unique}-{i}" for i in range(5)]
    events = [e for r in runs for e in run_events(tenant, r, n_steps=4)]
    produce(bootstrap, topic_name("events", topic_prefix),
            [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in events])
    alert = {"alert_id": f"loop-{unique}", "alert_type": "loop", "severity": "WARNING", "tenant_id": tenant,
             "agent_id": "planner", "run_id": runs[0], "title": "loop detected", "evidence": {"repeats": "6"},
             "detected_us": int(time.time() * 1e6),
             "source_offsets": [{"topic": "events", "partition": 1, "offset": 7}]}
    produce(bootstrap, topic_name("alerts", topic_prefix), [(tenant.encode(), codec.encode(ALERT, alert))])

    sink = Sink(_settings(bootstrap, topic_prefix, unique), client=chdb_client).start()
    try:
        wait_for(lambda: _count(chdb_client, "SELECT count() FROM events WHERE tenant_id={t:String}", t=tenant)
                 >= len(events), what="events stored")
        wait_for(lambda: _count(chdb_client, "SELECT count() FROM alerts WHERE tenant_id={t:String}", t=tenant) == 1,
                 what="alert stored")
        wait_for(lambda: sink.health()["last_commit_at"], what="a commit")
    finally:
        sink.stop()
    assert _count(chdb_client, "SELECT count() FROM events FINAL WHERE tenant_id={t:String}", t=tenant) == len(events)
    row = chdb_client.query(
        "SELECT count(), sum(event_count), sum(step_count), sum(llm_calls), sum(input_tokens), "
        "round(sum(cost_usd), 4), groupUniqArray(status) FROM runs FINAL WHERE tenant_id={t:String}",
        parameters={"t": tenant}).result_rows[0]
    assert row[:6] == (5, len(events), 20, 10, 100, 0.1)
    assert row[6] == ["SUCCESS"]
    roll = chdb_client.query(
        "SELECT sum(events), sum(failures), sum(retries), sum(runs_ended), sum(input_tokens), "
        "round(sum(cost_usd), 4), arrayMap(x -> round(x), quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_state)) "
        "FROM step_rollup_hourly WHERE tenant_id={t:String} AND kind='STEP' AND step_kind='LLM'",
        parameters={"t": tenant}).result_rows[0]
    assert roll[:6] == (10, 0, 0, 0, 100, 0.1)
    assert 100 <= roll[6][0] <= 102
    fails = chdb_client.query("SELECT sum(failures), sum(retries) FROM step_rollup_hourly WHERE tenant_id={t:String}",
                              parameters={"t": tenant}).result_rows[0]
    assert fails == (5 + 10, 10)  # 5 FAILURE events + 10 ERROR tool steps; 10 retried attempts
    step = chdb_client.query(
        "SELECT step_kind, request_model, input_tokens, payload, retention_days, attributes FROM events "
        "WHERE tenant_id={t:String} AND kind='STEP' AND step_kind='LLM' LIMIT 1", parameters={"t": tenant}).result_rows[0]
    assert step[:3] == ("LLM", "gpt-4o", 10)
    assert '"finish_reasons":["stop"]' in step[3]
    assert step[4] == 30 and step[5] == {"team": "core"}
    a = chdb_client.query("SELECT alert_type, severity, evidence, source_offsets FROM alerts WHERE tenant_id={t:String}",
                          parameters={"t": tenant}).result_rows[0]
    assert a[:3] == ("loop", "WARNING", {"repeats": "6"})
    assert '"offset":7' in a[3]


def test_undecodable_records_go_to_the_dlq_and_later_events_flow(bootstrap, topic_prefix, chdb_client, unique):
    from confluent_kafka import Consumer

    codec = Codec()
    tenant = f"tenant-{unique}"
    good = run_events(tenant, f"run-{unique}", n_steps=2)
    marker = f"garbage-{unique}".encode()
    bad_seq = dict(good[1], event_id=str(uuid.uuid4()), seq=2**40)  # encodes, but seq overflows UInt32
    records = [(b"k", marker), (b"k", codec.encode(EVENT, bad_seq))] + \
              [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in good]
    produce(bootstrap, topic_name("events", topic_prefix), records)
    sink = Sink(_settings(bootstrap, topic_prefix, unique), client=chdb_client).start()
    try:
        wait_for(lambda: _count(chdb_client, "SELECT count() FROM events WHERE tenant_id={t:String}", t=tenant)
                 == len(good), what="good events stored")
        # the rejects are keyed apart from the good run, so they may sit on another partition
        # and reach a later batch: stopping before that batch would leave them for a restart
        wait_for(lambda: sink.dlq_records >= 2, what="both rejects dead-lettered by the sink")
    finally:
        sink.stop()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{unique}", "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000})
    c.subscribe([topic_name("dlq", topic_prefix)])
    found: dict[bytes, dict[str, bytes]] = {}
    try:
        def seen():
            for msg in c.consume(100, timeout=0.5):
                if msg.error() is None and msg.value() in (marker, records[1][1]):
                    found[msg.value()] = dict(msg.headers() or [])
            return len(found) == 2
        wait_for(seen, what="both rejects in the DLQ")
    finally:
        c.close()
    assert b"magic byte" in found[marker][DLQ_HEADERS["reason"]]
    assert found[marker][DLQ_HEADERS["stage"]] == b"sink"
    assert b"seq" in found[records[1][1]][DLQ_HEADERS["reason"]]


class _Tokens:
    """A real chDB client that notes the dedup token of every insert it runs."""

    def __init__(self, client, tokens: list) -> None:
        self._client, self._tokens = client, tokens

    def raw_insert(self, *args, **kwargs):
        self._tokens.append(kwargs["settings"]["insert_deduplication_token"])
        return self._client.raw_insert(*args, **kwargs)

    def insert(self, *args, **kwargs):
        if "insert_deduplication_token" in (kwargs.get("settings") or {}):
            self._tokens.append(kwargs["settings"]["insert_deduplication_token"])
        return self._client.insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_ranges_of_several_partitions_go_in_as_one_insert_and_are_stored_once(
        bootstrap, topic_prefix, chdb_client, chdb_path, unique):
    """An insert's fixed cost (the staging view's analysis, the views on events) is most of the
    sink's CPU, so a flush's ranges of every partition go in together: fewer inserts than
    ranges, one token per flush, every row stored once in events and its views."""
    from agentstream.schemas.topics import create_topics
    from agentstream.sink import make_client

    codec = Codec()
    tenant = f"tenant-{unique}"
    events = [e for i in range(40) for e in run_events(tenant, f"run-{unique}-{i}", n_steps=3)]
    # topics of its own: a bad record another test left in the shared ones is refused before
    # any insert on the direct path, and the flush would go range by range (a test of its own)
    topic_prefix = f"x{unique[:8]}."
    create_topics(bootstrap, prefix=topic_prefix, partitions=4)
    produce(bootstrap, topic_name("events", topic_prefix),
            [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in events])
    tokens: list[str] = []
    made: list[_Tokens] = []

    def factory():
        made.append(_Tokens(make_client(f"chdb://{chdb_path}"), tokens))
        return made[-1]

    # one flush holds every partition's range: all records are read before the 2 s batch is due
    group = f"sink-{unique}"
    settings = SinkSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, group_id=group,
                            session_timeout_ms=6000, topics=["events"], insert_workers=2,
                            batch_max_rows=100_000, batch_max_seconds=2.0, avro_min_rows=0)
    sink = Sink(settings, client=chdb_client, client_factory=factory).start()
    try:
        wait_for(lambda: _count(chdb_client, "SELECT count() FROM events WHERE tenant_id={t:String}", t=tenant)
                 >= len(events), what="events stored")
        wait_for(lambda: sink.health()["last_commit_at"], what="a commit")
    finally:
        sink.stop()
    ranges = _count(chdb_client, "SELECT count() FROM sink_batches FINAL WHERE consumer_group={g:String}", g=group)
    flushes = {t.split("/")[0] for t in tokens}  # a flush's Avro and Python inserts share its token
    assert ranges >= 2 and any(t.startswith("flush:") for t in flushes), (ranges, tokens)
    assert len(flushes) < ranges, (ranges, tokens)
    assert sink._worker_clients == []  # closed when the sink stopped
    assert _count(chdb_client, "SELECT count() FROM events WHERE tenant_id={t:String}", t=tenant) == len(events)
    assert _count(chdb_client, "SELECT sum(event_count) FROM runs WHERE tenant_id={t:String}", t=tenant) == len(events)
    assert _count(chdb_client, "SELECT sum(events) FROM step_rollup_hourly WHERE tenant_id={t:String}",
                  t=tenant) == len(events)


def test_prometheus_metrics_count_rows_ranges_inserts_dead_letters_and_lag(bootstrap, topic_prefix, chdb_client, unique):
    from confluent_kafka import Consumer, TopicPartition
    from prometheus_client import REGISTRY

    from agentstream.sink import metrics as m

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    topic = topic_name("events", topic_prefix)
    def rows():  # either path: a range holding a bad record another test left goes to Python whole
        return sum(sample("agentstream_sink_rows_total", table="events", path=p) for p in ("avro", "python"))

    before = {"rows": rows(), "avro": sample("agentstream_sink_rows_total", table="events", path="avro"),
              "ranges": sample("agentstream_sink_batches_total", table="events"),
              "sizes": sample("agentstream_sink_batch_rows_count", table="events"),
              "inserts": sample("agentstream_sink_insert_seconds_count", table="events"),
              "insert_cpu": sample("agentstream_sink_insert_thread_cpu_seconds_count", table="events"),
              "insert_cpu_s": sample("agentstream_sink_insert_thread_cpu_seconds_sum", table="events"),
              "insert_wait": sample("agentstream_sink_insert_cpu_wait_seconds_count", table="events")}
    codec = Codec()
    tenant = f"tenant-{unique}"
    # enough records on every partition that a consumer near the start lags (checked below)
    good = [e for i in range(20) for e in run_events(tenant, f"run-{unique}-{i}", n_steps=2)]
    produce(bootstrap, topic, [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in good] + [(b"k", b"not avro")])
    dlq_before = sum(s.value for mt in REGISTRY.collect() if mt.name == "agentstream_sink_dlq"
                     for s in mt.samples if s.name == "agentstream_sink_dlq_total" and s.labels["topic"] == topic)
    sink = Sink(_settings(bootstrap, topic_prefix, unique, topics=["events"]), client=chdb_client).start()
    try:
        wait_for(lambda: _count(chdb_client, "SELECT count() FROM events WHERE tenant_id={t:String}", t=tenant)
                 == len(good), what="events stored")
        wait_for(lambda: sink.dlq_records >= 1, what="the bad record dead-lettered")
    finally:
        sink.stop()
    assert rows() - before["rows"] >= len(good)
    assert sample("agentstream_sink_rows_total", table="events", path="avro") > before["avro"]
    ranges = sample("agentstream_sink_batches_total", table="events") - before["ranges"]
    assert ranges >= 1
    assert sample("agentstream_sink_batch_rows_count", table="events") - before["sizes"] == ranges
    assert sample("agentstream_sink_insert_seconds_count", table="events") - before["inserts"] == ranges
    # each insert's thread time, split into work and waiting for a CPU (Linux; chDB runs the
    # insert on the calling thread, so it did work)
    if thread_sched() is not None:
        assert sample("agentstream_sink_insert_thread_cpu_seconds_count", table="events") - before["insert_cpu"] == ranges
        assert sample("agentstream_sink_insert_cpu_wait_seconds_count", table="events") - before["insert_wait"] == ranges
        assert sample("agentstream_sink_insert_thread_cpu_seconds_sum", table="events") > before["insert_cpu_s"]
    dlq_after = sum(s.value for mt in REGISTRY.collect() if mt.name == "agentstream_sink_dlq"
                    for s in mt.samples if s.name == "agentstream_sink_dlq_total" and s.labels["topic"] == topic)
    assert dlq_after - dlq_before >= 1
    # lag: a consumer positioned at offset 0 of every partition lags by that partition's
    # (reported) high watermark, which Tansu may report a little short of the real end
    # (the sink's own consumer has statistics on for the same reason: cached watermarks)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lag-{unique}", "session.timeout.ms": 6000,
                  "statistics.interval.ms": 500, "stats_cb": lambda _s: None})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(4)])

        def lagging():
            c.consume(1, timeout=0.5)
            m.report_lag(c, {(topic, p) for p in range(4)})
            return sum(sample("agentstream_sink_lag_records", topic=topic, partition=str(p)) for p in range(4)) > 0

        wait_for(lagging, deadline_s=20, what="a lag reported for a consumer near the start of the topic")
        for p in range(4):
            lag = sample("agentstream_sink_lag_records", topic=topic, partition=str(p))
            high = c.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
            assert 0 <= lag <= max(high, 0)
    finally:
        c.close()
