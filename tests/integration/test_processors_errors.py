"""The raw loop's errors by class on the real broker: a detector failure for one run sends that
run's records to the DLQ with the reason while every other record is processed and committed;
a stream that is mostly undecodable stops the loop with nothing of it committed or produced."""
from __future__ import annotations

import threading

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from agentstream.schemas import DLQ_HEADERS, EVENT, Codec, topic_name
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioExceeded
from agentstream.schemas.topics import create_topics
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.emitter import Emitter
from agentstream.stream_processors.metrics import ProcessorMetrics
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.raw_loop import RawLoop
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

from test_sink_support import committed, produce, wait_for

pytestmark = pytest.mark.integration
codec = Codec()


class FaultyChain(Chain):
    """A detector bug for one run, injected behind the public ``detect``."""

    def detect(self, passed, get_state, put_state):
        if any(r.event["run_id"].startswith("boom") for r in passed):
            raise KeyError("a detector bug")
        return super().detect(passed, get_state, put_state)


def loop_for(bootstrap: str, unique: str, chain_cls=Chain, emitter_factory=Emitter, **extra) -> tuple[RawLoop, str]:
    prefix = f"e{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=2)
    s = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, app_id=f"app-{unique}",
                           broker_session_timeout=6.0, **extra)
    chain = chain_cls(s, codec, Redactor(b"k"), PolicyBook(), topic_name("alerts", prefix))
    return RawLoop(s, chain, ProcessorMetrics(), partitions=2, emitter_factory=emitter_factory), prefix


def read_all(bootstrap: str, topic: str, expect: int = 0, idle_s: float = 0.0) -> list:
    """Every record of ``topic`` (2 partitions) by assignment, no group join: until ``expect``
    are read, or for ``idle_s`` when nothing is expected."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    got: list = []
    try:
        if expect:
            wait_for(lambda: got.extend(m for m in c.consume(500, 0.5) if m.error() is None) or len(got) >= expect,
                     what=f"{expect} records on {topic}")
        else:
            got += [m for m in c.consume(500, idle_s) if m.error() is None]
    finally:
        c.close()
    return got


def test_a_detector_failure_dead_letters_that_run_and_everything_else_is_processed(bootstrap, unique):
    loop, prefix = loop_for(bootstrap, unique, FaultyChain)
    raw = topic_name("raw", prefix)
    good = [e for i in range(3) for e in [syn.run_start("t", f"ok{i}"), syn.step("t", f"ok{i}", 1)]]
    boom = [syn.run_start("t", "boom"), syn.step("t", "boom", 1), syn.step("t", "boom", 2)]
    records = [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in good + boom]
    records += [(b"junk", b"\x00not avro"), (b"junk", b"")]
    produce(bootstrap, raw, records)
    t = threading.Thread(target=loop.run_blocking, daemon=True)
    t.start()
    try:
        wait_for(lambda: committed(bootstrap, f"app-{unique}-raw", raw) == len(records), what="raw committed")
        assert loop.health()["alive"]
    finally:
        loop._stop.set()  # what RawLoop.on_stop does
        t.join(30)
    events = read_all(bootstrap, topic_name("events", prefix), len(good) + len(boom))
    assert sorted(m.key() for m in events) == sorted(e["run_id"].encode() for e in good + boom)
    dlq = read_all(bootstrap, topic_name("dlq", prefix), len(boom) + 2)
    stages = sorted(dict(m.headers())[DLQ_HEADERS["stage"]] for m in dlq)
    assert stages == [b"detectors"] * len(boom) + [b"redaction"] * 2
    reasons = {dict(m.headers())[DLQ_HEADERS["reason"]] for m in dlq if m.key() == b"boom"}
    assert all(r.startswith(b"detectors failed: KeyError at test_processors_errors.py") for r in reasons)
    assert loop.metrics.errors.labels("record", "invalid")._value.get() == len(boom) + 2


def test_a_mostly_undecodable_stream_stops_the_loop_with_nothing_committed(bootstrap, unique):
    loop, prefix = loop_for(bootstrap, unique, dlq_min_records=20, dlq_window_records=100)
    raw = topic_name("raw", prefix)
    produce(bootstrap, raw, [(f"k{i}".encode(), b"\x00\x00\x00\x00\x01garbage") for i in range(40)]
            + [(b"r", codec.encode(EVENT, syn.run_start("t", "r")))])
    with pytest.raises(DlqRatioExceeded, match=r"dead-lettered .* the latest in .*raw\[\d\] offsets"):
        loop.run_blocking()
    assert committed(bootstrap, f"app-{unique}-raw", raw) == 0
    assert not read_all(bootstrap, topic_name("dlq", prefix), idle_s=3.0)


def test_a_loop_stuck_in_a_batch_fails_health_and_recovers_when_it_moves(bootstrap, unique):
    gate = threading.Event()

    class SlowChain(Chain):
        def process(self, batch, get_state, put_state):
            gate.wait(60)  # a wedged dependency inside the batch
            return super().process(batch, get_state, put_state)

    loop, prefix = loop_for(bootstrap, unique, SlowChain, stuck_after_s=1.0)
    raw = topic_name("raw", prefix)
    produce(bootstrap, raw, [(b"r", codec.encode(EVENT, syn.run_start("t", "r")))])
    t = threading.Thread(target=loop.run_blocking, daemon=True)
    t.start()
    try:
        h = wait_for(lambda: (lambda h: h if not h["alive"] else None)(loop.health()), what="stuck")
        assert h["stuck_seconds"] >= 1.0 and h["failed"] is None
        gate.set()
        wait_for(lambda: committed(bootstrap, f"app-{unique}-raw", raw) == 1, what="raw committed")
        wait_for(lambda: loop.health()["alive"], what="healthy again")
    finally:
        gate.set()
        loop._stop.set()
        t.join(30)


class RefusingEmitter(Emitter):
    """The real producer, whose delivery reports say ``error`` for the first ``n`` outputs to
    ``events`` (as a broker timing out would; those records may in fact have landed, which
    at-least-once allows)."""

    def __init__(self, bootstrap: str, error: int, n: int, topic: str) -> None:
        super().__init__(bootstrap)
        self.error, self.left, self.topic = error, n, topic

    def produce_all(self, records, on_delivery=None):
        then = on_delivery or self._on_delivery

        def report(err, msg):
            if err is None and self.left > 0 and msg.topic() == self.topic:
                self.left -= 1
                err = KafkaError(self.error)
            then(err, msg)

        return super().produce_all(records, report)


def test_outputs_refused_for_a_transient_reason_are_produced_again_then_committed(bootstrap, unique):
    prefix = f"e{unique}."
    loop, _ = loop_for(bootstrap, unique, retry_initial_s=0.05,
                       emitter_factory=lambda b: RefusingEmitter(b, KafkaError._MSG_TIMED_OUT, 3,
                                                                 topic_name("events", prefix)))
    raw = topic_name("raw", prefix)
    evs = [syn.run_start("t", f"r{i}") for i in range(5)]
    produce(bootstrap, raw, [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in evs])
    t = threading.Thread(target=loop.run_blocking, daemon=True)
    t.start()
    try:
        wait_for(lambda: committed(bootstrap, f"app-{unique}-raw", raw) == len(evs), what="raw committed")
    finally:
        loop._stop.set()
        t.join(30)
    got = read_all(bootstrap, topic_name("events", prefix), len(evs) + 3)  # 3 produced twice
    assert {codec.decode_as(EVENT, m.value())["event_id"] for m in got} == {e["event_id"] for e in evs}
    assert loop.metrics.errors.labels("produce", "transient")._value.get() == 3
    assert loop.metrics.paused_seconds._value.get() > 0


def test_outputs_refused_for_good_stop_the_loop_with_the_batch_uncommitted(bootstrap, unique):
    prefix = f"e{unique}."
    loop, _ = loop_for(bootstrap, unique, emitter_factory=lambda b: RefusingEmitter(
        b, KafkaError.MSG_SIZE_TOO_LARGE, 1, topic_name("events", prefix)))
    raw = topic_name("raw", prefix)
    produce(bootstrap, raw, [(b"r", codec.encode(EVENT, syn.run_start("t", "r")))])
    with pytest.raises(ConsumerCrash, match=rf"refused 1 outputs of {raw}\[\d\] offsets 0-0.*Broker: Message size too large"):
        loop.run_blocking()
    assert committed(bootstrap, f"app-{unique}-raw", raw) == 0


def test_a_worker_whose_raw_loop_stops_exits_non_zero_and_healthz_answers_while_it_runs(bootstrap, unique, tmp_path):
    import json
    import urllib.request

    from agentstream.stream_processors.worker_process import start_worker

    prefix = f"e{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=2)
    w = start_worker(bootstrap, prefix, f"w-{unique}", tmp_path / "data", tmp_path / "worker.log",
                     dlq_min_records="20", dlq_window_records="100").wait_ready()
    try:
        with urllib.request.urlopen(f"{w.url}/healthz", timeout=5) as r:
            body = json.load(r)
        assert r.status == 200 and body["alive"] and body["failed"] is None and body["stuck_seconds"] == 0
        produce(bootstrap, topic_name("raw", prefix), [(b"k", b"\x00\x00\x00\x00\x01junk")] * 60)
        code = w.proc.wait(60)
        assert code != 0 and "dead-lettered" in w.log_tail(200)
    finally:
        w.stop()
