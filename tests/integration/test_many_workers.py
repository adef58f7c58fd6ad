"""Three processor workers and two sink workers share 8 partitions on the embedded broker; one of
each dies while the stream flows. Every event is stored once, every looping run and the tenant's
budget breach are alerted exactly once (per-run and per-tenant state restored on the partitions'
new owners), and the time until every partition flows again is measured and printed.

The processor worker is SIGKILLed. The sink workers are two Sinks in this process (chDB allows
one process per data directory, so two sink processes cannot share the embedded ClickHouse); the
one that dies is cut at a crash's worst point instead: from the kill on it inserts but never
commits, then leaves, so its partitions' next owner must replay its ledger ranges under the same
dedup tokens. (tests/integration/test_sink_exactly_once.py SIGKILLs a sink process twenty times.)"""
from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from agentstream.schemas import ALERT, EVENT, Codec, topic_name
from agentstream.schemas.codec import DecodeError
from agentstream.schemas.topics import create_topics, partition_for
from agentstream.sink import Sink, SinkSettings, apply_migrations
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.policy_io import set_policy
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.worker_process import start_worker

pytestmark = pytest.mark.integration
codec = Codec()
PARTITIONS = 8
WORKERS = 3


def _produce(producer: Producer, prefix: str, events) -> None:
    for e in events:
        producer.produce(topic_name("raw", prefix), codec.encode(EVENT, e), e["run_id"].encode())
    assert producer.flush(30) == 0


def _count(client, sql: str, **params) -> int:
    return int(client.query(sql, parameters=params).result_rows[0][0])


def _wait(cond, timeout: float = 150.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.3)
    return cond()


def test_three_workers_one_killed_mid_stream(bootstrap, chdb_client, tmp_path, unique):
    apply_migrations(chdb_client)
    prefix = f"mw{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=PARTITIONS)
    loops_t, budget_t, bulk_t = f"loop-{unique}", f"budget-{unique}", f"bulk-{unique}"
    set_policy(ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix), budget_t,
               version="b1", budgets=["tenant_usd_per_day=1.0"], base={})
    app_id = "mw-" + uuid.uuid4().hex[:6]
    workers = [start_worker(bootstrap, prefix, app_id, tmp_path / f"data{i}", tmp_path / f"worker{i}.log")
               for i in range(WORKERS)]
    sink_settings = SinkSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, group_id=f"sink-{unique}",
                                 session_timeout_ms=6000, batch_max_rows=2000, batch_max_seconds=0.3)
    sinks = [Sink(sink_settings, client=chdb_client).start() for _ in range(2)]
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    try:
        for w in workers:
            w.wait_ready()
        assert _wait(lambda: all(s.health()["assigned"] for s in sinks), timeout=60), "the two sinks never shared the partitions"
        # Phase 1: 16 runs one step short of a loop (5 identical calls are allowed), $0.90 of a
        # $1.00 daily tenant budget, and the first half of a bulk stream.
        loop_runs = [f"lr-{unique}-{i}" for i in range(16)]
        phase1 = [e for r in loop_runs for e in
                  [syn.run_start(loops_t, r)] + [syn.step(loops_t, r, i, name="fetch", args_digest="same")
                                                 for i in range(1, 6)]]
        for i in range(3):
            r = f"br-{unique}-{i}"
            phase1 += [syn.run_start(budget_t, r), syn.llm_step(budget_t, r, 1, cost_usd=0.30), syn.run_end(budget_t, r, 2)]
        bulk = [e for i in range(400) for e in
                [syn.run_start(bulk_t, f"bk-{unique}-{i}")]
                + [syn.step(bulk_t, f"bk-{unique}-{i}", s, args_digest=f"a{s}") for s in (1, 2, 3)]
                + [syn.run_end(bulk_t, f"bk-{unique}-{i}", 4)]]
        half = len(bulk) // 2
        _produce(producer, prefix, phase1 + bulk[:half])
        assert _wait(lambda: _count(chdb_client, "SELECT count() FROM events FINAL WHERE tenant_id = {t:String}",
                                    t=loops_t) == len(loop_runs) * 6), "phase 1 never reached ClickHouse"

        # Phase 2: the rest of the bulk streams while one worker is SIGKILLed in the middle of it.
        def stream_rest():
            step = 100
            for i in range(half, len(bulk), step):
                _produce(producer, prefix, bulk[i:i + step])
                time.sleep(0.05)

        feeder = threading.Thread(target=stream_rest)
        feeder.start()
        time.sleep(0.5)
        workers[0].kill()
        killed_at = time.monotonic()
        uncommitted: list = []
        sinks[0].commit_ranges = lambda ranges: uncommitted.extend(ranges)  # stores, never commits
        feeder.join()
        time.sleep(1.0)
        sinks[0].stop()  # leaves the group with its last ranges stored and uncommitted
        # not vacuous: the dead sink stored ranges its partitions' next owner had to replay
        assert uncommitted, "the sink cut at its crash point stored nothing uncommitted"
        # the 6th identical call of every looping run, and $0.60 more: the breach needs the
        # state built before the kill, wherever its partition went
        after = [syn.step(loops_t, r, 6, name="fetch", args_digest="same") for r in loop_runs]
        for i in range(3, 5):
            r = f"br-{unique}-{i}"
            after += [syn.run_start(budget_t, r), syn.llm_step(budget_t, r, 1, cost_usd=0.30), syn.run_end(budget_t, r, 2)]
        # one probe run per partition: all eight stored means every partition flows again
        probes, n = [], 0
        while len({partition_for(p["run_id"].encode(), PARTITIONS) for p in probes}) < PARTITIONS:
            r = f"probe-{unique}-{n}"
            n += 1
            if partition_for(r.encode(), PARTITIONS) not in {partition_for(p["run_id"].encode(), PARTITIONS) for p in probes}:
                probes.append(syn.run_start(bulk_t, r))
        _produce(producer, prefix, after + probes)
        probe_ids = [p["event_id"] for p in probes]
        assert _wait(lambda: _count(chdb_client, "SELECT uniqExact(event_id) FROM events WHERE tenant_id = {t:String} "
                                    "AND has({ids:Array(String)}, event_id)", t=bulk_t, ids=probe_ids) == PARTITIONS)
        recovered_s = time.monotonic() - killed_at
        print(f"\nmany-workers: every partition flowing again {recovered_s:.1f} s after the SIGKILL "
              f"(session timeout 6 s; includes the sink's flush)")

        expected = {loops_t: len(loop_runs) * 7, budget_t: 5 * 3, bulk_t: len(bulk) + len(probes)}
        for tenant, n_events in expected.items():
            assert _wait(lambda tenant=tenant, n_events=n_events: _count(chdb_client, "SELECT count() FROM events FINAL WHERE tenant_id = {t:String}",
                                        t=tenant) == n_events), tenant
            assert _count(chdb_client, "SELECT uniqExact(event_id) FROM events WHERE tenant_id = {t:String}",
                          t=tenant) == n_events, f"{tenant}: an event lost"
        physical = _count(chdb_client, "SELECT count() FROM events WHERE tenant_id = {t:String}", t=bulk_t)
        on_topic = _records_on_events(bootstrap, prefix, bulk_t)
        print(f"many-workers: {len(bulk) + len(probes)} bulk events, {on_topic} records on the events topic "
              f"(the processors re-emit what the killed worker had not committed), {physical} rows stored "
              f"before merges; FINAL keeps one per event; the dead sink left {len(uncommitted)} stored, "
              f"uncommitted ranges ({sum(r.end - r.start + 1 for r in uncommitted)} records)")
        # the sink stored no record twice: its replayed ranges were dropped by their dedup tokens
        assert physical <= on_topic

        def loop_alerts():
            return chdb_client.query(
                "SELECT run_id, uniqExact(alert_id), count() FROM alerts FINAL WHERE tenant_id = {t:String} "
                "AND alert_type = 'loop' GROUP BY run_id", parameters={"t": loops_t}).result_rows

        assert _wait(lambda: len(loop_alerts()) == len(loop_runs)), "a looping run was never alerted"
        time.sleep(2.0)  # anything late (a repeat) would land now
        assert sorted(loop_alerts()) == sorted((r, 1, 1) for r in loop_runs)
        breaches = lambda: chdb_client.query(  # noqa: E731
            "SELECT uniqExact(alert_id) FROM alerts FINAL WHERE tenant_id = {t:String} AND alert_type = 'budget_breach'",
            parameters={"t": budget_t}).result_rows[0][0]
        assert _wait(lambda: breaches() >= 1), ("the tenant's breach (state from before the kill) was not alerted; "
                                                + _budget_trail(bootstrap, prefix, app_id, budget_t, workers))
        assert breaches() == 1
        for w in workers[1:]:
            assert w.proc.poll() is None, w.log_tail()
    finally:
        for s in sinks:
            s.stop()
        for w in workers:
            w.stop()


def _read_all(bootstrap: str, topics_partitions: list[tuple[str, int]], idle_s: float = 3.0) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "trail-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in topics_partitions])
    out, quiet_since = [], time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_s:
            msgs = c.consume(1000, 0.5)
            if msgs:
                quiet_since = time.monotonic()
            out += [m for m in msgs if m.error() is None]
    finally:
        c.close()
    return out


def _budget_trail(bootstrap: str, prefix: str, app_id: str, tenant: str, workers) -> str:
    """Where the tenant's spend went, stage by stage, for a failure message: the fleet deltas, the
    fleet state's changelog, the alerts on the topic, and what the workers logged of recovery."""
    key = tenant.encode()
    parts = [(f"{prefix}{app_id}-fleet", p) for p in range(PARTITIONS)]
    deltas = [(m.partition(), m.offset(), orjson.loads(m.value()).get("spend")) for m in _read_all(bootstrap, parts)
              if m.key() == key]
    states = [(m.partition(), m.offset(), orjson.loads(m.value()).get("spend") if m.value() else None)
              for m in _read_all(bootstrap, [(f"{app_id}-fleet-state-changelog", p) for p in range(PARTITIONS)])
              if m.key() == key]
    alerts = []
    for m in _read_all(bootstrap, [(topic_name("alerts", prefix), p) for p in range(PARTITIONS)]):
        try:
            a = codec.decode_as(ALERT, m.value())
        except DecodeError:
            continue
        if a["tenant_id"] == tenant:
            alerts.append((a["alert_type"], a["evidence"].get("used_usd")))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": app_id, "enable.auto.commit": False})
    try:  # the fleet agent's group is faust's, named for the app id
        fleet_parts = sorted({p for p, _o, _s in deltas})
        committed = {tp.partition: tp.offset for tp in c.committed(
            [TopicPartition(f"{prefix}{app_id}-fleet", p) for p in fleet_parts], timeout=10)}
    finally:
        c.close()
    logs = [f"worker{i}: " + line for i, w in enumerate(workers)
            for line in w.log_tail(400).splitlines() if "watermark" in line or "Traceback" in line]
    return (f"deltas {deltas}; fleet group committed {committed}; changelog states {states}; "
            f"alerts {alerts}; logs {logs}")


def _records_on_events(bootstrap: str, prefix: str, tenant: str) -> int:
    """Records of ``tenant`` on the events topic, read until idle (Tansu's end offsets run short)."""
    topic = topic_name("events", prefix)
    return sum(1 for m in _read_all(bootstrap, [(topic, p) for p in range(PARTITIONS)])
               if codec.decode_as(EVENT, m.value())["tenant_id"] == tenant)
