"""Kafka down for 20 s in the middle of a run: every event still arrives, in order, once.

Tansu keeps everything in memory, so a restarted broker has lost what it held. The test reads
(and keeps) everything the first broker acknowledged before stopping it; the new broker must
then hold exactly the rest of the run: together, seq 0..N-1 with no gap and no duplicate.
"""
from __future__ import annotations

import time

import pytest

from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.producer import Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name
from agentstream.schemas.topics import create_topics

pytestmark = pytest.mark.integration


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_broker_stopped_for_20s_mid_run_loses_and_duplicates_nothing(tmp_path, unique):
    prefix = f"out{unique[:6]}."
    broker = EmbeddedBroker(log_path=str(tmp_path / "tansu.log")).start()
    try:
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=2)
        raw = topic_name("raw", prefix)
        tracer = Tracer(f"tenant-{unique}", "outage-agent", "1.0", "test",
                        bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix,
                        spool_dir=str(tmp_path / "spool"), commands_enabled=False,
                        delivery_timeout_ms=3000, probe_interval_s=0.5, linger_ms=5)
        with tracer.run("long-run") as run:
            for i in range(10):
                with run.step("tool", f"before-{i}"):
                    pass
            assert tracer.flush(15)
            before = read_events(broker.bootstrap_servers, raw, [run.run_id], timeout=30,
                                 until_run_end=False, min_events=11)[run.run_id]
            assert [e["seq"] for e in before] == list(range(11))

            broker.stop()
            outage_end = time.monotonic() + 20
            n = 0
            while time.monotonic() < outage_end:
                with run.step("tool", f"during-{n}"):
                    pass
                if n % 10 == 0:
                    run.decision("tool_selection", "api", ["api", "cache"], "broker_down")
                n += 1
                time.sleep(0.1)
            _wait(lambda: tracer.stats()["spooled"] > 0, 15, "events to be spooled")

            broker.start()
            create_topics(broker.bootstrap_servers, prefix=prefix, partitions=2)
            for i in range(5):
                with run.step("respond", f"after-{i}"):
                    pass
        _wait(lambda: tracer.stats()["online"] and tracer.stats()["spool_bytes"] == 0, 60,
              "the spool to be replayed")
        assert tracer.flush(15)
        stats = tracer.stats()
        after = read_events(broker.bootstrap_servers, raw, [run.run_id], timeout=60)[run.run_id]
        tracer.close(5)
    finally:
        broker.stop()

    seqs = [e["seq"] for e in before] + [e["seq"] for e in after]
    total = seqs[-1] + 1
    assert seqs == list(range(total)), "gap, duplicate or reordering across the outage"
    assert after[0]["seq"] == 11 and after[-1]["kind"] == "RUN_END"
    assert after[-1]["payload"]["step_count"] == 10 + n + 5
    assert len({e["event_id"] for e in before + after}) == total
    names = [e["payload"]["name"] for e in before + after if e["kind"] == "STEP"]
    assert names == ([f"before-{i}" for i in range(10)] + [f"during-{i}" for i in range(n)]
                     + [f"after-{i}" for i in range(5)])
    assert stats["dropped"] == 0 and stats["failed"] == 0
    assert stats["spooled"] > 0 and stats["replayed"] >= n


def test_tracers_sharing_one_producer_each_spool_and_replay_their_own_runs(tmp_path, unique):
    """Three tracers of one process share a librdkafka handle (``share_producer``). Through an
    outage each spools its own records in its own spool, replays them, moves to a fresh shared
    handle (the restarted broker forgot the idempotent producer), and its run arrives whole,
    in order, once."""
    from confluent_kafka import Producer

    made: list[Producer] = []

    def factory(conf: dict) -> Producer:
        made.append(Producer(conf))
        return made[-1]

    prefix = f"shr{unique[:6]}."
    broker = EmbeddedBroker(log_path=str(tmp_path / "tansu.log")).start()
    try:
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=2)
        raw = topic_name("raw", prefix)
        tracers = [Tracer(f"tenant-{unique}-{i}", f"agent-{i}", "1.0", "test",
                          bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix,
                          spool_dir=str(tmp_path / f"spool-{i}"), commands_enabled=False,
                          delivery_timeout_ms=3000, probe_interval_s=0.5, linger_ms=5,
                          producer_factory=factory)
                   for i in range(3)]
        runs = [t.run(f"long-run-{i}").__enter__() for i, t in enumerate(tracers)]
        for run in runs:
            for s in range(5):
                with run.step("tool", f"before-{s}"):
                    pass
        assert all(t.flush(15) for t in tracers)
        assert len(made) == 1, "the three tracers share one producer"
        before = read_events(broker.bootstrap_servers, raw, [r.run_id for r in runs], timeout=30,
                             until_run_end=False, min_events=6 * len(runs))

        broker.stop()
        n = 0
        outage_end = time.monotonic() + 8
        while time.monotonic() < outage_end:
            for run in runs:
                with run.step("tool", f"during-{n}"):
                    pass
            n += 1
            time.sleep(0.1)
        _wait(lambda: all(t.stats()["spooled"] > 0 for t in tracers), 15, "each tracer to spool")

        broker.start()
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=2)
        for run in runs:
            with run.step("respond", "after"):
                pass
            run.__exit__(None, None, None)
        _wait(lambda: all(t.stats()["online"] and t.stats()["spool_bytes"] == 0 for t in tracers),
              60, "every spool to be replayed")
        assert all(t.flush(15) for t in tracers)
        stats = [t.stats() for t in tracers]
        after = read_events(broker.bootstrap_servers, raw, [r.run_id for r in runs], timeout=60)
        for t in tracers:
            t.close(5)
    finally:
        broker.stop()

    assert 2 <= len(made) <= 4, "a fresh shared handle after the outage, not one per tracer each time"
    for run, st in zip(runs, stats):
        events = before[run.run_id] + after[run.run_id]
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(len(seqs))), "gap, duplicate or reordering across the outage"
        assert {e["tenant_id"] for e in events} == {run.tenant_id}
        names = [e["payload"]["name"] for e in events if e["kind"] == "STEP"]
        assert names == [f"before-{s}" for s in range(5)] + [f"during-{i}" for i in range(n)] + ["after"]
        assert events[-1]["kind"] == "RUN_END"
        assert st["dropped"] == 0 and st["failed"] == 0 and st["replayed"] >= n
