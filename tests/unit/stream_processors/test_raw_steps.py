"""The raw loop's chain of steps (raw_steps) without a broker: a batch's offsets are committed
only once every output of it is acknowledged, in the order the batches were read; a full chain
refuses the next batch; outputs refused for a transient reason are produced again (a run-state
record with its latest value), any other refusal or a missing acknowledgement crashes naming the
batch with nothing committed; the DLQ ratio guard trips before anything of its batch is produced.

The producer here is a stand-in that reports deliveries from ``poll`` as librdkafka does; the
loop on the real broker is tests/integration/test_processors_errors.py."""
from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioExceeded, DlqRatioGuard
from agentstream.schemas.steps import Abandoned, MessageRejected
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.metrics import ProcessorMetrics
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.raw_loop import RunStateStore
from agentstream.stream_processors.raw_steps import RawChain, RawIO, build_raw_chain, scan
from agentstream.stream_processors.records import OutRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()
RAW, STATE = "u.raw", "u.state"


class Msg:
    """A consumed Kafka message, or a delivered one (what confluent-kafka hands callbacks)."""

    def __init__(self, topic: str, partition: int | None, offset: int, key: bytes | None, value: bytes | None,
                 headers: Any = None, error: Any = None) -> None:
        self._t, self._p, self._o, self._k, self._v, self._h, self._e = (topic, partition, offset, key, value,
                                                                         headers, error)

    def error(self) -> Any:
        return self._e

    def topic(self) -> str:
        return self._t

    def partition(self) -> int | None:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes | None:
        return self._v

    def headers(self) -> Any:
        return self._h

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._o)


class Producer:
    """Queues records; ``poll`` reports them delivered, or refused with ``refuse[topic]``'s
    errors first (one per record, in order), unless ``silent``."""

    def __init__(self) -> None:
        self.queued: list[tuple[OutRecord, Any]] = []
        self.delivered: list[OutRecord] = []
        self.refuse: dict[str, list[Any]] = {}
        self.silent = False
        self.pumps: list[float] = []

    def produce_all(self, records: Any, on_delivery: Any = None) -> int:
        n = 0
        for r in records:
            self.queued.append((r, on_delivery))
            n += 1
        return n

    def poll(self, timeout: float = 0.0) -> int:
        self.pumps.append(timeout)
        if self.silent:
            return 0
        queued, self.queued = self.queued, []
        for r, cb in queued:
            errs = self.refuse.get(r.topic)
            err = errs.pop(0) if errs else None
            if err is None:
                self.delivered.append(r)
            cb(err, Msg(r.topic, r.partition if r.partition is not None else -1, 0, r.key, r.value, r.headers))
        return len(queued)


class Rig:
    def __init__(self, stop: list[bool] | None = None, **settings: Any) -> None:
        self.settings = ProcessorsSettings(topic_prefix="u.", retry_initial_s=0.001, retry_max_s=0.002, **settings)
        self.chain = Chain(self.settings, codec, Redactor(b"k"), PolicyBook(), "u.alerts")
        self.store = RunStateStore(self.settings, STATE)
        self.producer = Producer()
        self.metrics = ProcessorMetrics()
        self.commits: list[dict[int, int]] = []
        self.stop = stop if stop is not None else [False]
        guard = DlqRatioGuard(self.settings.dlq_max_ratio, self.settings.dlq_window_records,
                              self.settings.dlq_min_records)
        self.raw: RawChain = build_raw_chain(RawIO(
            self.settings, RAW, self.chain, self.metrics, guard, self.producer,  # type: ignore[arg-type]
            STATE, self.store.get, self.store.put, self.store.drain, self.commits.append, lambda: self.stop[0]))

    def feed(self, msgs: list[Msg], polls: int = 200) -> None:
        """What the driver does: submit, polling while the chain refuses the batch."""
        for _ in range(polls):
            try:
                self.raw.head.submit(msgs)
                return
            except MessageRejected:
                self.raw.head.poll()
        pytest.fail("the chain never took the batch")

    def settle(self, polls: int = 2000) -> None:
        for _ in range(polls):
            self.raw.head.poll()
            if not self.raw.in_flight:
                return
            time.sleep(0.001)  # a retry's backoff


def events_batch(run: str, partition: int = 0, start: int = 0, steps: int = 2) -> list[Msg]:
    evs = [syn.run_start("t", run)] + [syn.step("t", run, i) for i in range(1, steps + 1)]
    return [Msg(RAW, partition, start + i, run.encode(), codec.encode(EVENT, e)) for i, e in enumerate(evs)]


def _count(rig, name: str, **labels: str) -> float:
    """A counter of the worker as its /metrics exports it."""
    value = rig.metrics.registry.get_sample_value(f"agentstream_processors_{name}_total", labels)
    return value or 0.0


def test_scan_names_each_partitions_offsets_skips_consumer_errors_and_crashes_on_a_fatal_one():
    class Err:
        def __init__(self, fatal: bool) -> None:
            self._f = fatal

        def fatal(self) -> bool:
            return self._f

    msgs = events_batch("a", 1, 7) + [Msg(RAW, 0, 0, None, None, error=Err(False))] + events_batch("b", 0, 3)
    (batch,) = scan(RAW, msgs)
    assert batch.where == f"{RAW}[0] offsets 3-5, {RAW}[1] offsets 7-9" and batch.last == {0: 5, 1: 9}
    assert len(batch.records) == 6
    assert scan(RAW, [Msg(RAW, 0, 0, None, None, error=Err(False))]) == []
    with pytest.raises(ConsumerCrash, match="fatally"):
        scan(RAW, [Msg(RAW, 0, 0, None, None, error=Err(True))])


def test_offsets_are_committed_only_after_every_output_is_acknowledged_and_in_order():
    rig = Rig()
    rig.feed(events_batch("a", 0, 0))
    rig.feed(events_batch("b", 1, 0))
    assert rig.commits == [] and rig.raw.in_flight == 2  # produced, not yet acknowledged
    assert {r.topic for r, _cb in rig.producer.queued} >= {"u.events", STATE}
    rig.settle()
    assert rig.commits == [{0: 2}, {1: 2}] and rig.raw.in_flight == 0
    assert sorted(r.key for r in rig.producer.delivered if r.topic == "u.events") == [b"a"] * 3 + [b"b"] * 3
    assert _count(rig, "records_in") == 6
    assert _count(rig, "passed_bytes") == 6  # clean events go on as their own bytes
    secret = syn.step("t", "c", 1, attributes={"note": "mail jane.doe@example.com"})
    rig.feed([Msg(RAW, 0, 3, b"c", codec.encode(EVENT, secret))])
    rig.settle()
    assert _count(rig, "records_in") == 7 and _count(rig, "passed_bytes") == 6


def test_a_full_chain_refuses_the_next_batch_and_the_producer_is_pumped_with_a_wait():
    rig = Rig(max_in_flight=1)
    rig.producer.silent = True
    rig.raw.head.submit(events_batch("a", 0, 0))  # produced, awaiting its acknowledgements
    rig.raw.head.submit(events_batch("b", 0, 3))  # processed, waiting for room to be produced
    rig.raw.head.submit(events_batch("c", 0, 6))  # scanned, waiting for the processing step
    with pytest.raises(MessageRejected):
        rig.raw.head.submit(events_batch("d", 0, 9))
    assert rig.producer.pumps == [] and rig.raw.in_flight == 3
    rig.raw.head.poll()
    assert 0.01 in rig.producer.pumps  # a driver held back wakes on the first delivery report
    rig.producer.silent = False
    rig.feed(events_batch("d", 0, 9))
    rig.settle()
    assert rig.commits == [{0: 2}, {0: 5}, {0: 8}, {0: 11}]


def test_outputs_refused_for_a_transient_reason_are_produced_again_with_the_latest_state():
    rig = Rig()
    rig.producer.refuse = {STATE: [KafkaError(KafkaError._MSG_TIMED_OUT)],
                           "u.events": [KafkaError(KafkaError._MSG_TIMED_OUT)] * 2}
    rig.feed(events_batch("a", 0, 0))
    rig.raw.head.poll()
    assert rig.raw.failing and rig.commits == []  # the driver pauses raw meanwhile
    (state_key,) = rig.store.parts[0]  # run a's state
    rig.store.parts[0][state_key] = b"newer"  # a later batch's write before the retry
    rig.settle()
    assert rig.commits == [{0: 2}] and not rig.raw.failing
    state = [r.value for r in rig.producer.delivered if r.topic == STATE]
    assert state == [b"newer"]  # the retry never puts an older value over a newer write
    events = [r for r in rig.producer.delivered if r.topic == "u.events"]
    assert len(events) == 3  # each delivered once here (the broker may have kept a refused one)
    assert _count(rig, "errors", what="produce", error_class="transient") == 3


def test_an_output_refused_for_good_crashes_naming_the_batch_with_nothing_committed():
    rig = Rig()
    rig.producer.refuse = {"u.events": [KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)]}
    rig.feed(events_batch("a", 0, 4))
    with pytest.raises(ConsumerCrash, match=rf"refused 1 outputs of {RAW}\[0\] offsets 4-6.*too large"):
        rig.settle()
    assert rig.commits == [] and _count(rig, "errors", what="produce", error_class="bug") == 1


def test_outputs_never_acknowledged_crash_after_settle_timeout_with_nothing_committed():
    rig = Rig(settle_timeout_s=0.0)
    rig.producer.silent = True
    rig.feed(events_batch("a", 1, 0))
    with pytest.raises(ConsumerCrash, match=rf"outputs of {RAW}\[1\] offsets 0-2 not acknowledged"):
        for _ in range(100):
            rig.raw.head.poll()
    assert rig.commits == []


def test_a_mostly_undecodable_batch_trips_the_guard_before_anything_of_it_is_produced():
    rig = Rig(dlq_min_records=5, dlq_window_records=10)
    junk = [Msg(RAW, 0, i, b"k", b"\x00\x00\x00\x00\x01junk") for i in range(8)]
    with pytest.raises(DlqRatioExceeded, match=rf"{RAW}\[0\] offsets 0-7"):
        rig.feed(junk)
    rig.raw.head.terminate()  # what the driver does once the loop stops
    assert rig.producer.queued == [] and rig.producer.delivered == [] and rig.commits == []


def test_a_stop_during_a_retry_abandons_the_batch_and_commits_nothing_after_it():
    stop = [False]
    rig = Rig(stop)
    rig.producer.refuse = {"u.events": [KafkaError(KafkaError._MSG_TIMED_OUT)]}
    rig.feed(events_batch("a", 0, 0))
    rig.raw.head.poll()
    stop[0] = True
    rig.feed(events_batch("b", 0, 3))
    with pytest.raises(Abandoned):
        rig.raw.head.close()
        rig.raw.head.join()
    assert rig.commits == []


def test_join_delivers_and_commits_everything_processed():
    rig = Rig()
    rig.feed(events_batch("a", 0, 0))
    rig.feed(events_batch("b", 0, 3))
    rig.raw.head.close()
    rig.raw.head.join()
    assert rig.commits == [{0: 2}, {0: 5}]
