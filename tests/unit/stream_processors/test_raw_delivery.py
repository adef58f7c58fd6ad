"""The raw loop's delivery with an ``errors_only`` producer (the worker's), without a broker: only
refused outputs are reported, and a batch counts as acknowledged only once the producer's queue
has been seen empty after its outputs were queued. So: nothing is committed while any output of
the batch (or of a batch queued after it) is still in the queue; batches commit in the order read;
a refused output is produced again (a DLQ record with its failure headers, which librdkafka's
report does not carry) before its batch commits; a refusal for good commits nothing.

The stand-in keeps librdkafka's contract as emitter.py relies on it: a record stays counted in
the queue until ``poll`` has served its report, and only refusals reach the callback. The same
on the real producer and broker: tests/integration/test_processors_delivery.py."""
from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from agentstream.schemas import DLQ_HEADERS
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard
from agentstream.stream_processors.raw_steps import RawIO, build_raw_chain
from agentstream.stream_processors.records import OutRecord

from .test_raw_steps import RAW, STATE, Msg, Rig, _count, events_batch


class QuietProducer:
    """Reports refusals only; ``hold`` keeps every queued record in the queue (not yet
    acknowledged); ``refuse[topic]`` refuses that topic's next records, one error each."""

    errors_only = True

    def __init__(self) -> None:
        self.queue: list[tuple[OutRecord, Any]] = []
        self.delivered: list[OutRecord] = []
        self.refuse: dict[str, list[Any]] = {}
        self.hold = False
        self.reports = 0
        self.produced = 0
        self.settled = 0

    def produce_all(self, records: Any, on_delivery: Any = None) -> int:
        self.poll(0.0)
        n = 0
        for r in records:
            self.queue.append((r, on_delivery))
            n += 1
        self.produced += n
        return n

    def poll(self, timeout: float = 0.0) -> int:
        if not self.hold:
            queue, self.queue = self.queue, []
            for r, cb in queue:
                errs = self.refuse.get(r.topic)
                err = errs.pop(0) if errs else None
                if err is None:
                    self.delivered.append(r)  # no report: errors_only
                    continue
                self.reports += 1
                # What librdkafka's report carries: no headers, the partition it was sent to.
                cb(err, Msg(r.topic, r.partition if r.partition is not None else 0, 0, r.key, r.value, None))
        if not self.queue:
            self.settled = self.produced
        return 0


def quiet_rig(**settings: Any) -> tuple[Rig, QuietProducer]:
    """``test_raw_steps``'s rig, its chain rebuilt around a ``QuietProducer``."""
    rig = Rig(**settings)
    producer = QuietProducer()
    s = rig.settings
    guard = DlqRatioGuard(s.dlq_max_ratio, s.dlq_window_records, s.dlq_min_records)
    rig.producer = producer  # type: ignore[assignment]
    rig.raw = build_raw_chain(RawIO(s, RAW, rig.chain, rig.metrics, guard, producer,  # type: ignore[arg-type]
                                    STATE, rig.store.get, rig.store.put, rig.store.drain,
                                    rig.commits.append, lambda: rig.stop[0]))
    return rig, producer


def test_nothing_is_committed_while_an_output_is_in_the_queue_and_batches_commit_in_order():
    rig, producer = quiet_rig()
    producer.hold = True
    rig.feed(events_batch("a", 0, 0))
    rig.feed(events_batch("b", 1, 0))  # queued behind a's outputs: the queue never emptied between
    for _ in range(20):
        rig.raw.head.poll()
    assert rig.commits == [] and rig.raw.in_flight == 2
    assert producer.reports == 0 and producer.queue  # nothing reported, everything still queued
    producer.hold = False
    rig.settle()
    assert rig.commits == [{0: 2}, {1: 2}]
    assert sorted(r.key for r in producer.delivered if r.topic == "u.events") == [b"a"] * 3 + [b"b"] * 3
    assert producer.reports == 0  # acknowledged without a single callback


def test_a_batch_queued_after_an_acknowledged_one_does_not_hold_back_its_commit():
    rig, producer = quiet_rig()
    rig.feed(events_batch("a", 0, 0))
    producer.poll()  # a's outputs acknowledged (queue empty) before b's are queued
    producer.hold = True
    rig.feed(events_batch("b", 0, 3))
    for _ in range(5):
        rig.raw.head.poll()
    assert rig.commits == [{0: 2}]  # a committed; b waits for its own outputs
    producer.hold = False
    rig.settle()
    assert rig.commits == [{0: 2}, {0: 5}]


def test_a_refused_dead_letter_is_produced_again_with_its_headers_before_its_batch_commits():
    rig, producer = quiet_rig()
    producer.refuse = {"u.dlq": [KafkaError(KafkaError._MSG_TIMED_OUT)] * 2,
                       "u.events": [KafkaError(KafkaError._MSG_TIMED_OUT)]}
    junk = Msg(RAW, 0, 3, b"junk", b"\x00\x00\x00\x00\x01not avro", [("trace", b"t-1")])
    rig.feed(events_batch("a", 0, 0) + [junk])
    rig.raw.head.poll()
    assert rig.raw.failing and rig.commits == []
    rig.settle()
    assert rig.commits == [{0: 3}]
    (dlq,) = [r for r in producer.delivered if r.topic == "u.dlq"]
    headers = dict(dlq.headers)
    assert headers["trace"] == b"t-1" and headers[DLQ_HEADERS["source_offset"]] == b"3"
    assert headers[DLQ_HEADERS["stage"]] == b"redaction" and headers[DLQ_HEADERS["reason"]]
    assert sorted(r.key for r in producer.delivered if r.topic == "u.events") == [b"a"] * 3
    assert _count(rig, "errors", what="produce", error_class="transient") == 3


def test_an_output_refused_for_good_commits_nothing_of_its_batch():
    rig, producer = quiet_rig()
    producer.refuse = {"u.events": [None, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)]}
    rig.feed(events_batch("a", 1, 4))
    with pytest.raises(ConsumerCrash, match=rf"refused 1 outputs of {RAW}\[1\] offsets 4-6.*too large"):
        rig.settle()
    assert rig.commits == []


def test_a_queue_that_never_empties_crashes_after_settle_timeout_with_nothing_committed():
    rig, producer = quiet_rig(settle_timeout_s=0.0)
    producer.hold = True
    rig.feed(events_batch("a", 0, 0))
    with pytest.raises(ConsumerCrash, match=rf"outputs of {RAW}\[0\] offsets 0-2 not acknowledged"):
        for _ in range(100):
            rig.raw.head.poll()
    assert rig.commits == []
