"""The hot path's consumer: raw → chain → outputs, on confluent-kafka, outside faust's per-message
machinery.

Why not a faust stream: measured on this machine, a faust agent that does nothing but
``take_events`` reads ~1-3k records/s, while aiokafka's own ``getmany`` on the same data reads
~120k/s; the cost is faust's per-message path (a task per message in the drain loop, an Event
per message, channel queues, per-message ack bookkeeping). So the worker reads ``raw`` here,
in batches, in one thread of the worker process, and keeps faust for what is not per-event:
the fleet agent (a few records per batch), the policy follower and the web/metrics server.

Per-run detector state lives in ``RunStateStore`` (run_state_store.py): a dict per owned raw
partition, keyed by (tenant, run), backed by a compacted changelog with the same partition
numbers as raw. On assignment it is restored by reading the changelog partition up to a marker
this worker wrote first (Tansu reports high watermarks short, so "read to the end" cannot be
trusted). At-least-once; the run state records
the last raw offset it applied, so a batch redelivered after a crash is not counted twice.

``RawLoop`` is the driver only: it reads, hands each ``consume()`` batch to the chain of steps
in ``raw_steps`` (scan → process → deliver → commit; rebuilt on each assignment), pauses raw
while the chain refuses a batch (``MessageRejected``: ``max_in_flight`` batches await their
acknowledgements) for more than a second or retries a broker failure, and on a revocation lets
the chain deliver and commit what it processed before the partitions move. Errors by class are
the chain's (see ``raw_steps`` and stream_processors/errors.py): a record that fails decoding,
redaction or a detector goes to the DLQ or quarantine with its reason until most of a window
does (``DlqRatioGuard``: the loop stops); an output refused for a transient reason is produced
again with backoff; anything else stops the loop with the batch's coordinates, committing
nothing past them.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from typing import Any, Callable

from mode import Service

from agentstream.schemas import topic_name
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, register_gap_metrics, start_positions
from agentstream.schemas.step_driver import pump
from agentstream.schemas.steps import Abandoned, HeldBatch

from .chain import Chain
from .emitter import Emitter
from .metrics import ProcessorMetrics
from .raw_steps import RawChain, RawIO, build_raw_chain
from .run_state_store import RunStateStore
from .settings import ProcessorsSettings

log = logging.getLogger("agentstream.processors.raw")

# The worker's cyclic GC once its raw loop starts (``hot_path_gc``).
GC_THRESHOLDS = (50_000, 10, 10)


def hot_path_gc() -> None:
    """Freezes what the worker built to start and raises the young generation's threshold.

    Why: with CPython's defaults (700, 10, 10) a worker spent ~6-8 µs of CPU per event in the
    cyclic GC (measured with ``gc.callbacks`` over 100k events of bench/processors.py): a batch's
    records, outputs and decoded events live for several young collections, are promoted, and
    trigger ~one full collection every 8k events, each traversing faust's, the codecs' and the
    detectors' start-up objects (~50 ms). Frozen, those are never traversed again; at 50,000 a
    young collection runs only when that many more container objects are alive than freed, which
    the batches in flight (~7k each) never reach: 0 collections over the same 100k events, 0.0 µs.
    A real cycle leak still triggers collections. Process-wide: only the worker's own process
    calls it (``RawLoop(tune_gc=True)`` from ``create_app``), never a test's or a library user's."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# A batch the chain has refused for longer than this pauses raw: the consumer keeps polling (it
# stays in its group) without fetching more than the batch it holds.
BLOCKED_PAUSE_S = 1.0


def changelog_topic(settings: ProcessorsSettings) -> str:
    return f"{settings.topic_prefix}{settings.app_id}-run-state-changelog"


def ensure_changelog(settings: ProcessorsSettings, partitions: int, timeout: float = 30.0) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = changelog_topic(settings)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    if name not in admin.list_topics(timeout=timeout).topics:
        fut = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=settings.replication_factor,
                                            config={"cleanup.policy": "compact"})],
                                  request_timeout=timeout)[name]
        try:
            fut.result(timeout)
        except Exception as exc:  # another worker may have created it meanwhile
            if "exist" not in str(exc).lower():
                raise
    return name


def raw_emitter(bootstrap_servers: str) -> Emitter:
    """The loop's producer: only refused outputs are reported to Python (emitter.py says how a
    batch's outputs are known acknowledged without a callback per record)."""
    return Emitter(bootstrap_servers, errors_only=True)


class RawLoop(Service):
    """Runs the raw consumer loop in a thread for the life of the faust app; a crash in the loop
    crashes the app (the worker exits non-zero instead of silently not processing)."""

    def __init__(self, settings: ProcessorsSettings, chain: Chain, metrics: ProcessorMetrics,
                 partitions: int, emitter_factory: Callable[[str], Emitter] | None = None,
                 tune_gc: bool = False, **kwargs: Any) -> None:
        """``emitter_factory(bootstrap_servers)`` makes the loop's producer (default: an
        ``errors_only`` Emitter; a wrapper around ``Emitter`` can stand in for a broker that
        refuses deliveries). ``tune_gc``: ``hot_path_gc`` when the loop starts (the worker's own
        process only)."""
        super().__init__(**kwargs)
        self.tune_gc = tune_gc
        self.emitter_factory = emitter_factory or raw_emitter
        self.settings = settings
        self.chain = chain
        self.metrics = metrics
        self.partitions = partitions
        self.raw_topic = topic_name("raw", settings.topic_prefix)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.store: RunStateStore | None = None
        self.failed: str | None = None
        self._progress_at = time.monotonic()  # last commit, or last moment raw had no lag
        self._lag = 0
        self._working = False  # a batch is being processed or awaits its acknowledgements
        self._guard = DlqRatioGuard(settings.dlq_max_ratio, settings.dlq_window_records, settings.dlq_min_records)
        # A fetch that skipped offsets (the embedded broker's produce race) is read again.
        self._gaps = OffsetGapGuard.from_settings(settings)
        register_gap_metrics(metrics.registry, "agentstream_processors", lambda: self._gaps.counts)
        # The chain of the current assignment (raw_steps), the consume() batch it refused (handed
        # to it again after the next poll), since when, and since when raw is paused.
        self._consumer: Any = None
        self._chain: RawChain | None = None
        self._held = HeldBatch()
        self._paused_at: float | None = None
        self._sync_commit = False

    @Service.task
    async def _run_thread(self) -> None:
        try:
            await asyncio.to_thread(self.run_blocking)
        except Exception as exc:  # the loop is gone: the worker must exit, not idle
            self.failed = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ConsumerCrash):
                log.critical("raw loop stopped: %s", exc)
            else:
                log.exception("raw loop crashed")
            await self.crash(exc)

    def stuck_for(self) -> float:
        """Seconds without a commit while raw has lag or a batch is under way (0 while caught
        up or moving)."""
        if not self._lag and not self._working:
            return 0.0
        return max(0.0, time.monotonic() - self._progress_at)

    def health(self) -> dict[str, Any]:
        """``alive`` is False once the loop has crashed or has committed nothing for
        ``stuck_after_s`` while raw has lag; the worker's /healthz answers 503 then."""
        stuck = self.stuck_for()
        return {"alive": self.failed is None and stuck < self.settings.stuck_after_s,
                "failed": self.failed, "stuck_seconds": round(stuck, 1), "lag": self._lag}

    async def on_stop(self) -> None:
        self._stop.set()

    def run_blocking(self) -> None:
        from confluent_kafka import Consumer

        s = self.settings
        self.store = store = RunStateStore(s, ensure_changelog(s, self.partitions))
        emitter = self.emitter_factory(s.bootstrap_servers)
        c = Consumer({"bootstrap.servers": s.bootstrap_servers, "group.id": f"{s.app_id}-raw",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": int(s.broker_session_timeout * 1000),
                      "heartbeat.interval.ms": int(min(3.0, s.broker_session_timeout / 3) * 1000),
                      "partition.assignment.strategy": "range",
                      "fetch.wait.max.ms": s.fetch_wait_max_ms})
        self._consumer = c

        def on_assign(consumer: Any, tps: list[Any]) -> None:
            parts = [tp.partition for tp in tps]
            n = store.restore(emitter, parts)
            old = sum(len(store.legacy.get(p, ())) for p in parts)
            for p in parts:  # restored runs age from now on: the ones that never end are evicted
                self.chain.idle.adopt(p, list(store.parts.get(p, ())))
                # states an older version kept under the run id alone were deleted by the
                # restore: a run resuming under one begins mid-run (run_state_store.py)
                self.chain.idle.forgotten(p, store.legacy.pop(p, ()))
            self._gaps.assign(start_positions(consumer, tps))
            log.info("raw partitions assigned %s; %d run-state records restored, %d of them under the old "
                     "run-id-only key (deleted)", parts, n, old)
            self._drop_chain(join=False)
            self._paused_at = None
            self._chain = build_raw_chain(RawIO(
                s, self.raw_topic, self.chain, self.metrics, self._guard, emitter, store.topic, store.get,
                store.put, store.drain, self._commit, self._stop.is_set))
            self.ready.set()

        def on_revoke(consumer: Any, tps: list[Any]) -> None:
            # Called inside consume(): every batch processed is delivered and committed before
            # the partitions move; one read and not yet processed is left to the next owner.
            try:
                self._drop_chain(join=True)
            finally:
                self._drop_chain(join=False)
                store.drop([tp.partition for tp in tps])
                self.chain.idle.drop(tp.partition for tp in tps)
                self._gaps.forget((tp.topic, tp.partition) for tp in tps)

        c.subscribe([self.raw_topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        self._seek = consumer_seek(c)
        if self.tune_gc:
            hot_path_gc()
        next_lag = 0.0
        try:
            while not self._stop.is_set():
                self._turn(c)
                if time.monotonic() >= next_lag:
                    self._lag = _lag(c)
                    self.metrics.lag.set(self._lag)
                    next_lag = time.monotonic() + 5.0
                chain = self._chain
                self._working = bool(self._held) or (chain is not None and chain.in_flight > 0)
                if not self._lag and not self._working:
                    self._progress_at = time.monotonic()
            self._drop_chain(join=True)  # the outputs of every batch processed, then its commit
        except Abandoned:
            pass  # stopped while retrying a broker failure: nothing after it is committed
        finally:
            self._drop_chain(join=False)
            self._pause(False)
            self._consumer = None
            c.close()
            emitter.close()

    def _turn(self, c: Any) -> None:
        """One turn of the driver: read unless the chain refused the last batch, hand it to the
        chain, let the chain work, and pause raw while a step retries a broker failure or the
        chain has refused a batch for longer than ``BLOCKED_PAUSE_S``."""
        s = self.settings
        chain = self._chain
        if self._held and self._paused_at is None:
            t0 = time.perf_counter()
            if chain is not None:
                chain.head.poll()  # waits briefly for a delivery report when the chain is full
            self.metrics.blocked_seconds.inc(time.perf_counter() - t0)
        else:
            # Paused, consume() only keeps the consumer in its group: a short wait, so that the
            # chain (retrying, or waiting for acknowledgements) is polled again soon.
            wait = 0.01 if self._paused_at is not None else s.batch_within_s if s.batch_within_s > 0 else 0.05
            msgs = self._gaps.admit(c.consume(s.batch_size, wait), self._seek)
            chain = self._chain  # a rebalance during consume() rebuilt it
            if msgs and chain is not None:
                self._working = True
                self._held.add(msgs)
        if chain is None:
            return
        pump(self._held, chain.head)
        self._pause(chain.failing or self._held.blocked_for() > BLOCKED_PAUSE_S)

    def _pause(self, want: bool) -> None:
        """Pauses raw (the consumer keeps polling, so it stays in the group) or resumes it; the
        time paused is exported as ``paused_seconds``."""
        c = self._consumer
        if want == (self._paused_at is not None) or c is None:
            return
        try:
            parts = c.assignment()
            if want:
                c.pause(parts)
                self._paused_at = time.perf_counter()
                return
            c.resume(parts)
        except Exception as exc:  # noqa: BLE001 - a consumer closing or rebalancing: pausing is best effort
            log.debug("raw pause/resume failed: %s", exc)
            if want:
                return
        if self._paused_at is not None:
            self.metrics.paused_seconds.inc(time.perf_counter() - self._paused_at)
        self._paused_at = None

    def _drop_chain(self, join: bool) -> None:
        """``join``: every batch processed is delivered and committed first (bounded by
        ``settle_timeout_s`` per batch); then whatever is left, and the batch read but not yet
        taken, is dropped uncommitted (read again by whoever owns the partition next)."""
        chain = self._chain
        self._held.take()  # read but not taken: dropped uncommitted
        if chain is None:
            return
        if join:
            self._sync_commit = True
            try:
                chain.head.close()
                chain.head.join()
            finally:
                self._sync_commit = False
        else:
            chain.head.terminate()
        if self._paused_at is not None:
            self.metrics.paused_seconds.inc(time.perf_counter() - self._paused_at)
            self._paused_at = None
        self._chain = None

    def _commit(self, last: dict[int, int]) -> None:
        """Only now, with every output of the batch acknowledged: its input is done."""
        from confluent_kafka import TopicPartition

        assert self._consumer is not None
        tps = [TopicPartition(self.raw_topic, p, off + 1) for p, off in last.items()]
        self._consumer.commit(offsets=tps, asynchronous=not self._sync_commit)
        self._progress_at = time.monotonic()


def _lag(c: Any) -> int:
    """Raw lag over the loop's assignment (0 when unknown; Tansu's watermarks run short)."""
    from confluent_kafka import KafkaException

    try:
        total = 0
        for tp in c.position(c.assignment()):
            _low, high = c.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                total += max(0, high - tp.offset)
        return total
    except KafkaException as exc:  # informative only
        log.debug("raw lag update failed: %s", exc)
        return 0
