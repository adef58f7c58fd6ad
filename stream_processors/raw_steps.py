"""The raw loop's hot path as a chain of steps (schemas/steps.py), built anew on each assignment:

    consume() batch -> FlatMap(scan)              Kafka messages -> one RawBatch with its coordinates
                    -> RunTask(process)           redaction + detectors, a failing record isolated
                                                  (errors.process_isolating), the DLQ ratio guard
                    -> AwaitCompletion(deliver)   produce the outputs; librdkafka delivers them in
                                                  its threads; up to ``max_in_flight`` batches out
                    -> RunTask(commit) -> Terminal commit the batch's raw offsets

The order of the steps is the at-least-once argument: a batch's offsets reach the commit step
only once every one of its outputs (and run-state records) is acknowledged, and batches are
forwarded in the order they were read. The guard runs before anything of its batch is
produced, so a tripped guard leaves the whole batch unproduced and uncommitted. Outputs the
broker refused for a transient reason are produced again with backoff (``Retry``: the driver
pauses raw meanwhile); any other refusal, or ``settle_timeout_s`` without acknowledgement, is a
``ConsumerCrash`` naming the batch's offsets.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard, ErrorClass
from agentstream.schemas.steps import FlatMap, Retry, RunTask, Terminal

from .chain import Chain, GetState, PutState
from .delivery_steps import AwaitCompletion
from .emitter import Emitter
from .errors import classify, delivery_transient, process_isolating
from .metrics import ProcessorMetrics
from .records import InRecord, OutRecord
from .settings import ProcessorsSettings

log = logging.getLogger("agentstream.processors.raw")


@dataclass
class RawBatch:
    """One ``consume()`` batch on its way through the chain: its records, the last offset read
    per partition (what the commit moves past), its coordinates for logs and errors."""

    records: list[InRecord]
    last: dict[int, int]
    where: str
    started: float
    out: list[OutRecord] = field(default_factory=list)


def scan(raw_topic: str, msgs: list[Any]) -> list[RawBatch]:
    """The records of a ``consume()`` batch (none when it held only consumer errors); a fatal
    consumer error is a ``ConsumerCrash``. The consumer reads only ``raw_topic``: each record is
    named for it rather than asking every message."""
    started = time.perf_counter()
    records: list[InRecord] = []
    append = records.append
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for m in msgs:
        err = m.error()
        if err is not None:
            if err.fatal():
                raise ConsumerCrash(f"raw consumer failed fatally: {err}")
            log.warning("raw consume error: %s", err)
            continue
        p, off = m.partition(), m.offset()
        append(InRecord(raw_topic, p, off, m.key(), m.value(), m.headers(), m.timestamp()[1]))
        if p not in last:
            first[p] = off
        last[p] = off
    if not records:
        return []
    where = ", ".join(f"{raw_topic}[{p}] offsets {first[p]}-{o}" for p, o in sorted(last.items()))
    return [RawBatch(records, last, where, started)]


class DeliveryFailed(Exception):
    """Outputs of a batch the broker refused; transient when every refusal is worth retrying."""

    def __init__(self, where: str, failed: list[tuple[str, Any, OutRecord]]) -> None:
        self.where, self.failed = where, failed
        self.fatal = [f"{topic}: {err}" for topic, err, _rec in failed if not delivery_transient(err)]
        super().__init__(f"{len(failed)} outputs of {where} not delivered ({failed[0][1]})")

    @property
    def transient(self) -> bool:
        return not self.fatal


class Delivery:
    """The outputs of one batch handed to the producer (a ``Pending`` of ``delivery_steps``):
    done once every output is known acknowledged or refused. With an ``errors_only`` emitter
    (the worker's) only refusals are reported, and the batch is done once the producer's queue
    has been seen empty since its outputs were queued (``Emitter.settled``; emitter.py says why
    that is every report); with an emitter that reports every record, once each report is in.
    ``again`` produces the refused ones once more, with their headers (librdkafka's report
    carries none); a run-state record goes with its latest value, never an older one over a
    newer write."""

    def __init__(self, batch: RawBatch, emitter: Emitter, state_topic: str, latest: GetState) -> None:
        self.batch, self.emitter, self.state_topic, self.latest = batch, emitter, state_topic, latest
        # An emitter that does not say otherwise reports every record (librdkafka's default).
        self.errors_only = bool(getattr(emitter, "errors_only", False))
        self.total = -1  # set right after producing (reports may already arrive while producing)
        self.reported = 0
        self.failed: list[tuple[str, Any, OutRecord]] = []
        self._unmatched: dict[tuple[str, bytes | None, bytes | None], list[OutRecord]] | None = None
        self.total = self._produce(batch.out)

    def _produce(self, records: list[OutRecord]) -> int:
        n = self.emitter.produce_all(records, self.on_delivery)
        self.mark = self.emitter.produced if self.errors_only else 0
        if self._unmatched is not None:
            self._index(records)
        return n

    def _index(self, records: list[OutRecord]) -> None:
        assert self._unmatched is not None
        for r in records:
            self._unmatched.setdefault((r.topic, r.key, r.value), []).append(r)

    def _record_of(self, msg: Any) -> OutRecord:
        """The output a refusal is about (built only once something is refused)."""
        if self._unmatched is None:
            self._unmatched = {}
            self._index(self.batch.out)
        same = self._unmatched.get((msg.topic(), msg.key(), msg.value()))
        if same:
            return same.pop(0)
        part = msg.partition()  # not one of ours: rebuilt from the report, as good as it gets
        return OutRecord(msg.topic(), msg.key(), msg.value(), list(msg.headers() or []),
                         partition=part if part is not None and part >= 0 else None)

    def on_delivery(self, err: Any, msg: Any) -> None:
        self.reported += 1
        if err is not None:
            self.failed.append((msg.topic(), err, self._record_of(msg)))

    def done(self) -> bool:
        if self.errors_only:
            return self.emitter.settled >= self.mark
        return 0 <= self.total <= self.reported

    def result(self) -> RawBatch:
        if self.failed:
            raise DeliveryFailed(self.batch.where, self.failed)
        return self.batch

    def again(self) -> None:
        again = []
        for _topic, _err, rec in self.failed:
            if rec.topic == self.state_topic and rec.partition is not None and rec.key is not None:
                rec = OutRecord(rec.topic, rec.key, self.latest(rec.partition, rec.key), partition=rec.partition)
            again.append(rec)
        self.failed = []
        self.reported -= len(again)
        self._produce(again)


def delivery_class(exc: BaseException) -> ErrorClass:
    return ErrorClass.TRANSIENT if isinstance(exc, DeliveryFailed) and exc.transient else ErrorClass.BUG


@dataclass
class RawChain:
    """One assignment's chain: ``head`` takes ``consume()`` batches; ``failing`` while a step
    retries a broker failure (the driver pauses raw); ``in_flight``: batches read and not yet
    committed."""

    head: FlatMap[list[Any]]
    deliveries: AwaitCompletion[RawBatch, RawBatch]
    retries: list[Retry]
    in_flight: int = 0

    @property
    def failing(self) -> bool:
        return any(r.failing for r in self.retries)


@dataclass
class RawIO:
    """What the chain needs of the loop that builds it."""

    settings: ProcessorsSettings
    raw_topic: str
    chain: Chain
    metrics: ProcessorMetrics
    guard: DlqRatioGuard
    emitter: Emitter
    state_topic: str
    get_state: GetState
    put_state: PutState
    drain_state: Callable[[], list[OutRecord]]
    commit: Callable[[dict[int, int]], None]
    give_up: Callable[[], bool]


def build_raw_chain(io: RawIO) -> RawChain:
    s, metrics = io.settings, io.metrics
    chain_ref: list[RawChain] = []

    def commit(batch: RawBatch) -> None:
        io.commit(batch.last)
        chain_ref[0].in_flight -= 1

    def commit_failed(where: Any, exc: BaseException, kind: ErrorClass, delay: float) -> None:
        metrics.errors.labels("commit", kind.value).inc()
        if kind is ErrorClass.TRANSIENT:
            log.warning("raw loop commit of %s failed, retrying in %.1fs: %s", where, delay, exc)

    r_commit = Retry(classify, s.retry_initial_s, s.retry_max_s, on_failure=commit_failed, give_up=io.give_up)
    committer = RunTask(commit, Terminal(), r_commit, what=lambda b: b.where)

    def deliver(batch: RawBatch) -> Delivery:
        d = Delivery(batch, io.emitter, io.state_topic, io.get_state)
        metrics.observe_batch(len(batch.records), batch.out, time.perf_counter() - batch.started)
        return d

    def delivery_failed(where: Any, exc: BaseException, kind: ErrorClass, delay: float) -> None:
        if not isinstance(exc, DeliveryFailed):
            return
        if not exc.transient:
            metrics.errors.labels("produce", ErrorClass.BUG.value).inc(len(exc.fatal))
            raise ConsumerCrash(f"the broker refused {len(exc.fatal)} outputs of {where}: {exc.fatal[:3]}; "
                                "nothing of it was committed") from exc
        metrics.errors.labels("produce", ErrorClass.TRANSIENT.value).inc(len(exc.failed))
        log.warning("%d outputs of %s not delivered (%s), producing them again in %.1fs", len(exc.failed),
                    where, exc.failed[0][1], delay)

    r_deliver = Retry(delivery_class, s.retry_initial_s, s.retry_max_s, on_failure=delivery_failed,
                      give_up=io.give_up)
    deliveries: AwaitCompletion[RawBatch, RawBatch] = AwaitCompletion(
        deliver, committer, max_pending=max(1, s.max_in_flight), pump=io.emitter.poll, retry=r_deliver,
        what=lambda b: b.where, timeout_s=s.settle_timeout_s,
        on_timeout=lambda where, t: ConsumerCrash(f"outputs of {where} not acknowledged within {t:.0f}s "
                                                  "(settle_timeout_s); nothing of it was committed"))

    def process(batch: RawBatch) -> RawBatch:
        counts = io.chain.redaction.counts
        undecodable, passed, clamped = counts.dlq, counts.passed_bytes, counts.clamped
        idle = io.chain.idle
        compacted, dropped = idle.compacted, idle.dropped
        out, failed = process_isolating(io.chain, batch.records, io.get_state, io.put_state)
        metrics.run_state_evictions.labels("compacted").inc(idle.compacted - compacted)
        metrics.run_state_evictions.labels("dropped").inc(idle.dropped - dropped)
        counts = io.chain.redaction.counts  # process_isolating may have swapped it for a retry
        metrics.passed_bytes.inc(max(0, counts.passed_bytes - passed))
        metrics.clamped_times.inc(max(0, counts.clamped - clamped))
        bad = counts.dlq - undecodable + failed
        if bad:
            metrics.errors.labels("record", ErrorClass.INVALID.value).inc(bad)
        # Before anything of this batch is produced: a tripped guard commits none of it.
        io.guard.observe(len(batch.records), bad, batch.where)
        out.extend(io.drain_state())
        batch.out = out
        return batch

    processor = RunTask(process, deliveries, what=lambda b: b.where)

    def scanned(msgs: list[Any]) -> list[RawBatch]:
        got = scan(io.raw_topic, msgs)
        chain_ref[0].in_flight += len(got)
        return got

    head: FlatMap[list[Any]] = FlatMap(scanned, processor, what=lambda _m: "raw batch")
    raw = RawChain(head, deliveries, [r_deliver, r_commit])
    chain_ref.append(raw)
    return raw
