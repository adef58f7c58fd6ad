"""The worker's delivery mechanism on the real producer and a real broker: the raw loop's
``errors_only`` emitter hears only of refused outputs, and a batch counts as acknowledged once
librdkafka's queue has been seen empty after its outputs were queued (emitter.py).

The attack: the broker freezes (SIGSTOP) the moment a batch's outputs are produced, and the
producer's timeouts are short, so librdkafka really refuses them (``_MSG_TIMED_OUT``, reported
through the errors-only path) and keeps refusing the retries until the broker thaws. Nothing of
the batch may be committed before its outputs are acknowledged, none may be lost, and a copy
beyond the first may only come from a refused output (at-least-once: a timed-out record may
have landed after all). A broker of its own: freezing the session's would stall other tests."""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.topics import create_topics
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.emitter import Emitter
from agentstream.stream_processors.metrics import ProcessorMetrics
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.raw_loop import RawLoop
from agentstream.stream_processors.records import OutRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

from test_sink_support import committed, produce, wait_for

pytestmark = pytest.mark.integration
codec = Codec()
# The freeze lasts until librdkafka has refused an output (and at least FREEZE_MIN_S), at most
# FREEZE_MAX_S: under the 6 s session timeout, so the consumer stays in its group. A fixed 3 s was
# too short once on a loaded machine (6 suite workers on 2 cores): the thaw came before
# librdkafka's timeout scan had run, nothing was refused, and the test's premise failed.
FREEZE_MIN_S = 2.0
FREEZE_MAX_S = 5.0


class FreezingEmitter(Emitter):
    """The worker's emitter (errors_only) with timeouts short enough to expire while the broker
    is frozen; its first batch of ``events`` outputs freezes the broker until a refusal."""

    def __init__(self, bootstrap: str, broker: EmbeddedBroker, events_topic: str, idempotent: bool) -> None:
        # Without idempotence: after a timeout librdkafka bumps the producer epoch and the embedded
        # broker answers PRODUCER_FENCED, a refusal for good (the loop stops, nothing committed),
        # so only a non-idempotent producer shows the refusals worth retrying.
        extra = {"message.timeout.ms": 1500, "request.timeout.ms": 1000}
        super().__init__(bootstrap, extra if idempotent else {**extra, "enable.idempotence": False}, errors_only=True)
        self.broker, self.events_topic = broker, events_topic
        self.frozen_at: float | None = None
        self.thawed_at: float | None = None
        self.refused = threading.Event()

    def produce_all(self, records, on_delivery=None):
        records = list(records)
        if self.frozen_at is None and any(r.topic == self.events_topic for r in records):
            assert self.broker.proc is not None
            os.kill(self.broker.proc.pid, signal.SIGSTOP)
            self.frozen_at = time.monotonic()
            threading.Thread(target=self._thaw_after_a_refusal, daemon=True).start()
        report = on_delivery or self._on_delivery

        def noted(err, msg):
            if err is not None:
                self.refused.set()
            report(err, msg)

        return super().produce_all(records, noted)

    def _thaw_after_a_refusal(self) -> None:
        assert self.frozen_at is not None
        self.refused.wait(FREEZE_MAX_S)
        time.sleep(max(0.0, self.frozen_at + FREEZE_MIN_S - time.monotonic()))
        self.thaw()

    def thaw(self) -> None:
        if self.broker.proc is not None and self.thawed_at is None:
            os.kill(self.broker.proc.pid, signal.SIGCONT)
            self.thawed_at = time.monotonic()


class CommitSpy(RawLoop):
    """Notes when each commit of raw offsets is issued (asynchronously: the broker may be frozen)."""

    commits: list[tuple[float, dict[int, int]]]

    def _commit(self, last: dict[int, int]) -> None:
        self.commits.append((time.monotonic(), dict(last)))
        super()._commit(last)


def read_records(bootstrap: str, topic: str, at_least: int) -> list:
    """Every record of ``topic`` (2 partitions): at least ``at_least``, then a second more for
    copies beyond the first (never stop at the high watermark: Tansu reports it short)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    got: list = []
    try:
        wait_for(lambda: got.extend(m for m in c.consume(500, 0.5) if m.error() is None) or len(got) >= at_least,
                 what=f"{at_least} records on {topic}")
        got += [m for m in c.consume(500, 1.0) if m.error() is None]
    finally:
        c.close()
    return got


def read_events(bootstrap: str, topic: str, at_least: int) -> list[dict]:
    return [codec.decode_as(EVENT, m.value()) for m in read_records(bootstrap, topic, at_least)]


def frozen_loop(broker: EmbeddedBroker, prefix: str, idempotent: bool, loop_cls: type[RawLoop] = RawLoop,
                n_runs: int = 4, steps: int = 4) -> tuple[RawLoop, list[FreezingEmitter], list[dict], str, str]:
    """A raw loop on ``broker`` whose emitter freezes it, and its raw records already produced."""
    bs = broker.bootstrap_servers
    create_topics(bs, prefix=prefix, partitions=2)
    raw, events_topic = topic_name("raw", prefix), topic_name("events", prefix)
    s = ProcessorsSettings(bootstrap_servers=bs, topic_prefix=prefix, app_id=prefix.rstrip("."),
                           broker_session_timeout=6.0, retry_initial_s=0.2, retry_max_s=0.5)
    chain = Chain(s, codec, Redactor(b"k"), PolicyBook(), topic_name("alerts", prefix))
    emitters: list[FreezingEmitter] = []

    def factory(b: str) -> FreezingEmitter:
        emitters.append(FreezingEmitter(b, broker, events_topic, idempotent))
        return emitters[-1]

    loop = loop_cls(s, chain, ProcessorMetrics(), partitions=2, emitter_factory=factory)
    evs = [e for i in range(n_runs) for e in [syn.run_start("t", f"r{i}")] + [syn.step("t", f"r{i}", j)
                                                                             for j in range(1, steps + 1)]]
    produce(bs, raw, [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in evs])
    return loop, emitters, evs, raw, events_topic


def test_outputs_refused_while_the_broker_is_frozen_are_produced_again_and_committed_only_after():
    broker = EmbeddedBroker().start()
    t: threading.Thread | None = None
    emitters: list[FreezingEmitter] = []
    try:
        bs = broker.bootstrap_servers
        loop, emitters, evs, raw, events_topic = frozen_loop(broker, "frz.", idempotent=False, loop_cls=CommitSpy)
        assert isinstance(loop, CommitSpy)
        loop.commits = []
        t = threading.Thread(target=loop.run_blocking, daemon=True)
        t.start()
        wait_for(lambda: committed(bs, "frz-raw", raw) == len(evs), deadline_s=90, what="raw committed")
        assert loop.failed is None and t.is_alive()
        (em,) = emitters
        assert em.frozen_at is not None and em.thawed_at is not None
        refused = loop.metrics.errors.labels("produce", "transient")._value.get()
        assert refused > 0, "librdkafka refused nothing: the freeze did not reach the outputs"
        # Not one commit was issued while the outputs could not have been acknowledged.
        assert loop.commits and all(at > em.thawed_at for at, _last in loop.commits)
        got = read_events(bs, events_topic, len(evs))
        assert {e["event_id"] for e in got} == {e["event_id"] for e in evs}  # nothing lost
        assert len(got) - len(evs) <= refused  # a copy only where an output was refused
    finally:
        for em in emitters:
            em.thaw()
        if t is not None:
            loop._stop.set()  # what RawLoop.on_stop does
            t.join(30)
        broker.stop()


def test_the_workers_own_producer_under_the_same_freeze_commits_nothing_it_has_not_delivered():
    """The worker's exact producer (idempotent): whatever the broker answers after the thaw (a
    recovered epoch, or PRODUCER_FENCED from the embedded broker: the loop stops), every raw
    offset committed has its events on ``events``."""
    broker = EmbeddedBroker().start()
    outcome: list[BaseException | None] = []
    emitters: list[FreezingEmitter] = []
    try:
        bs = broker.bootstrap_servers
        loop, emitters, evs, raw, events_topic = frozen_loop(broker, "frzi.", idempotent=True, steps=1)

        def run() -> None:
            try:
                loop.run_blocking()
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - the outcome under test
                outcome.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda: outcome or committed(bs, "frzi-raw", raw) == len(evs), deadline_s=90,
                 what="all committed or the loop stopped")
        loop._stop.set()
        t.join(30)
        if outcome and outcome[0] is not None:
            assert "PRODUCER_FENCED" in str(outcome[0]) or "not acknowledged" in str(outcome[0]), outcome[0]
        # Every raw record below its partition's committed offset has its event on events.
        c = Consumer({"bootstrap.servers": bs, "group.id": "frzi-raw", "enable.auto.commit": False})
        try:
            marks = {tp.partition: tp.offset for tp in c.committed([TopicPartition(raw, p) for p in range(2)], 10)}
        finally:
            c.close()
        raws = read_records(bs, raw, len(evs))
        owed = {codec.decode_as(EVENT, m.value())["event_id"] for m in raws if m.offset() < marks[m.partition()]}
        if owed:
            got = {e["event_id"] for e in read_events(bs, events_topic, len(owed))}
            assert owed <= got
        assert outcome == [None] or len(owed) < len(evs)  # a stopped loop cannot have committed it all
    finally:
        for em in emitters:
            em.thaw()
        broker.stop()


def test_an_errors_only_emitter_calls_back_for_no_delivered_record_and_keeps_no_reference(bootstrap, unique):
    """The binding honours ``delivery.report.only.error`` itself (confluent-kafka-python #84/#140:
    without it the per-record state and its callback reference would leak): no call for a
    delivered record, the callback's references all released, and the queue seen empty settles
    everything produced."""
    import sys

    prefix = f"eo{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=2)
    em = Emitter(bootstrap, errors_only=True)
    calls: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        calls.append(err)

    refs = sys.getrefcount(on_delivery)
    try:
        for _ in range(5):
            em.produce_all([OutRecord(topic_name("events", prefix), f"k{i}".encode(), b"x" * 100) for i in range(2000)],
                           on_delivery)
        assert em.settled < em.produced == 10_000
        wait_for(lambda: em.poll(0.1) is not None and em.settled == em.produced, what="all settled")
        assert calls == [] and sys.getrefcount(on_delivery) == refs
    finally:
        em.close()
