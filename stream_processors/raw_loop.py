"""The hot path's consumer: raw → chain → outputs, on confluent-kafka, outside faust's per-message
machinery.

Why not a faust stream: measured on this machine, a faust agent that does nothing but
``take_events`` reads ~1-3k records/s, while aiokafka's own ``getmany`` on the same data reads
~120k/s; the cost is faust's per-message path (a task per message in the drain loop, an Event
per message, channel queues, per-message ack bookkeeping). So the worker reads ``raw`` here,
in batches, in one thread of the worker process, and keeps faust for what is not per-event:
the fleet agent (a few records per batch), the policies GlobalTable and the web/metrics server.

Per-run detector state lives in ``RunStateStore``: a dict per owned raw partition, backed by a
compacted changelog with the same partition numbers as raw. On assignment it is restored by
reading the changelog partition up to a marker this worker wrote first (Tansu reports high
watermarks short, so "read to the end" cannot be trusted). Each batch: process → produce outputs
and state; its raw offsets are committed once every one of those records is acknowledged, while
the next batch is already being processed (up to ``max_in_flight`` batches). At-least-once; the
run state records the last raw offset it applied, so a batch redelivered after a crash is not
counted twice.

Errors by class (stream_processors/errors.py): a record that fails decoding, redaction or a
detector goes to the DLQ or quarantine with its reason and the batch proceeds, until most of a
window does (``DlqRatioGuard``: the loop stops); an output the broker did not take for a
transient reason is produced again with backoff; anything else stops the loop with the batch's
coordinates, committing nothing past them.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable

from mode import Service

from agentstream.schemas import topic_name
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard, ErrorClass

from .chain import Chain
from .emitter import Emitter
from .errors import classify, delivery_transient, process_isolating
from .metrics import ProcessorMetrics
from .records import InRecord, OutRecord
from .settings import ProcessorsSettings

log = logging.getLogger("agentstream.processors.raw")


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


class RunStateStore:
    def __init__(self, settings: ProcessorsSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.parts: dict[int, dict[bytes, bytes]] = {}
        self.pending: list[OutRecord] = []

    def get(self, partition: int, key: bytes) -> bytes | None:
        d = self.parts.get(partition)
        return None if d is None else d.get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        d = self.parts.setdefault(partition, {})
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
        self.pending.append(OutRecord(self.topic, key, value, partition=partition))

    def drain(self) -> list[OutRecord]:
        out, self.pending = self.pending, []
        return out

    def drop(self, partitions: list[int]) -> None:
        for p in partitions:
            self.parts.pop(p, None)

    def restore(self, emitter: Emitter, partitions: list[int], timeout: float = 120.0) -> int:
        """Loads the given partitions from the changelog; returns how many records were read."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        if not partitions:
            return 0
        marker = b"\x00restore-marker-" + uuid.uuid4().hex.encode()
        emitter.produce_all(OutRecord(self.topic, marker, None, partition=p) for p in partitions)
        emitter.flush_sync(30.0)
        c = Consumer({"bootstrap.servers": self.settings.bootstrap_servers,
                      "group.id": f"{self.settings.app_id}-restore-{uuid.uuid4().hex[:8]}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        pending = set(partitions)
        n = 0
        try:
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            deadline = time.monotonic() + timeout
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run-state restore of partitions {sorted(pending)} did not reach "
                                       f"its marker in {timeout}s")
                for m in c.consume(5000, 0.5):
                    if m.error() is not None or m.partition() not in pending:
                        continue
                    key = m.key()
                    if key == marker:
                        pending.discard(m.partition())
                        continue
                    n += 1
                    d = self.parts.setdefault(m.partition(), {})
                    if m.value() is None:
                        d.pop(key, None)
                    else:
                        d[key] = m.value()
        finally:
            c.close()
        return n


class RawLoop(Service):
    """Runs the raw consumer loop in a thread for the life of the faust app; a crash in the loop
    crashes the app (the worker exits non-zero instead of silently not processing)."""

    def __init__(self, settings: ProcessorsSettings, chain: Chain, metrics: ProcessorMetrics,
                 partitions: int, emitter_factory: Callable[[str], Emitter] = Emitter, **kwargs: Any) -> None:
        """``emitter_factory(bootstrap_servers)`` makes the loop's producer (a wrapper around
        ``Emitter`` can stand in for a broker that refuses deliveries)."""
        super().__init__(**kwargs)
        self.emitter_factory = emitter_factory
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
        chain, metrics = self.chain, self.metrics
        inflight: deque[_Ticket] = deque()
        c = Consumer({"bootstrap.servers": s.bootstrap_servers, "group.id": f"{s.app_id}-raw",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": int(s.broker_session_timeout * 1000),
                      "heartbeat.interval.ms": int(min(3.0, s.broker_session_timeout / 3) * 1000),
                      "partition.assignment.strategy": "range",
                      "fetch.wait.max.ms": s.fetch_wait_max_ms})

        def on_assign(consumer: Any, tps: list[Any]) -> None:
            parts = [tp.partition for tp in tps]
            n = store.restore(emitter, parts)
            log.info("raw partitions assigned %s; %d run-state records restored", parts, n)
            self.ready.set()

        def on_revoke(consumer: Any, tps: list[Any]) -> None:
            # Called inside consume(): settle every batch in flight before the partitions move.
            self._settle(c, emitter, inflight, wait=True)
            store.drop([tp.partition for tp in tps])

        c.subscribe([self.raw_topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        next_lag = 0.0
        try:
            while not self._stop.is_set():
                full = len(inflight) >= s.max_in_flight
                t_block = time.perf_counter()
                self._settle(c, emitter, inflight, wait=full)
                if full:
                    metrics.blocked_seconds.inc(time.perf_counter() - t_block)
                if time.monotonic() >= next_lag:
                    self._lag = _lag(c)
                    metrics.lag.set(self._lag)
                    next_lag = time.monotonic() + 5.0
                self._working = bool(inflight)
                if not self._lag and not inflight:
                    self._progress_at = time.monotonic()
                msgs = c.consume(s.batch_size, s.batch_within_s if s.batch_within_s > 0 else 0.05)
                if not msgs:
                    continue
                self._working = True
                t0 = time.perf_counter()
                batch = []
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
                    batch.append(InRecord(m.topic(), p, off, m.key(), m.value(), m.headers(), m.timestamp()[1]))
                    if p not in last:
                        first[p] = off
                    last[p] = off
                if not batch:
                    continue
                undecodable = chain.redaction.counts.dlq
                out, failed = process_isolating(chain, batch, store.get, store.put)
                bad = chain.redaction.counts.dlq - undecodable + failed
                if bad:
                    metrics.errors.labels("record", ErrorClass.INVALID.value).inc(bad)
                where = ", ".join(f"{self.raw_topic}[{p}] offsets {first[p]}-{o}" for p, o in sorted(last.items()))
                # Before anything of this batch is produced: a tripped guard commits none of it.
                self._guard.observe(len(batch), bad, where)
                out.extend(store.drain())
                ticket = _Ticket(last, where)
                ticket.total = emitter.produce_all(out, ticket.on_delivery)
                inflight.append(ticket)
                metrics.observe_batch(len(batch), out, time.perf_counter() - t0)
            self._settle(c, emitter, inflight, wait=True)
        finally:
            c.close()
            emitter.close()

    def _settle(self, c: Any, emitter: Emitter, inflight: "deque[_Ticket]", wait: bool) -> None:
        """Commits the raw offsets of every leading batch whose outputs are all acknowledged;
        with ``wait``, first waits until every batch in flight is. Outputs the broker refused
        for a transient reason are produced again after a backoff (the batch stays uncommitted
        meanwhile); any other refusal, or ``settle_timeout_s`` without acknowledgement, stops
        the loop with the batch's coordinates."""
        from confluent_kafka import TopicPartition

        s = self.settings
        emitter.poll(0)
        deadline = time.monotonic() + s.settle_timeout_s
        while wait and inflight and inflight[-1].remaining > 0:
            if time.monotonic() > deadline:
                raise ConsumerCrash(f"outputs of {inflight[-1].where} not acknowledged within "
                                    f"{s.settle_timeout_s:.0f}s (settle_timeout_s); nothing of it was committed")
            emitter.poll(0.05)
        offsets: dict[int, int] = {}
        while inflight and inflight[0].remaining <= 0:
            t = inflight[0]
            if t.failed:
                self._produce_again(emitter, t)
                break  # later batches commit after this one, in order
            inflight.popleft()
            offsets.update(t.last)
        if offsets:
            # Only now, with every output of these batches acknowledged: the input is done.
            tps = [TopicPartition(self.raw_topic, p, off + 1) for p, off in offsets.items()]
            self._retrying("commit", lambda: c.commit(offsets=tps, asynchronous=not wait))
            self._progress_at = time.monotonic()

    def _produce_again(self, emitter: Emitter, t: "_Ticket") -> None:
        fatal = [f"{topic}: {err}" for topic, err, _rec in t.failed if not delivery_transient(err)]
        if fatal:
            self.metrics.errors.labels("produce", ErrorClass.BUG.value).inc(len(fatal))
            raise ConsumerCrash(f"the broker refused {len(fatal)} outputs of {t.where}: {fatal[:3]}; "
                                "nothing of it was committed")
        self.metrics.errors.labels("produce", ErrorClass.TRANSIENT.value).inc(len(t.failed))
        delay = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** t.attempts)
        log.warning("%d outputs of %s not delivered (%s), producing them again in %.1fs", len(t.failed),
                    t.where, t.failed[0][1], delay)
        self._back_off(delay)
        store = self.store
        again = []
        for _topic, _err, rec in t.failed:
            if store is not None and rec.topic == store.topic and rec.partition is not None and rec.key is not None:
                # A state record: its latest value, never an older one over a newer write.
                rec = OutRecord(rec.topic, rec.key, store.get(rec.partition, rec.key), partition=rec.partition)
            again.append(rec)
        t.attempts += 1
        t.failed = []
        t.done -= len(again)
        emitter.produce_all(again, t.on_delivery)

    def _retrying(self, what: str, fn: Any) -> Any:
        """``fn()``, retried with backoff while it fails for a transient reason; anything else
        stops the loop."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                return fn()
            except Exception as exc:
                kind = classify(exc)
                self.metrics.errors.labels(what, kind.value).inc()
                if kind is not ErrorClass.TRANSIENT or self._stop.is_set():
                    raise
                log.warning("raw loop %s failed, retrying in %.1fs: %s", what, delay, exc)
                self._back_off(delay)
                delay = min(delay * 2, self.settings.retry_max_s)

    def _back_off(self, seconds: float) -> None:
        t0 = time.perf_counter()
        self._stop.wait(seconds)
        self.metrics.paused_seconds.inc(time.perf_counter() - t0)


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


class _Ticket:
    """One batch in flight: its outputs' delivery count, the ones refused, and its raw offsets."""

    __slots__ = ("last", "where", "total", "done", "failed", "attempts")

    def __init__(self, last: dict[int, int], where: str) -> None:
        self.last = last
        self.where = where
        self.total = -1  # set right after producing (callbacks may already run while producing)
        self.done = 0
        self.failed: list[tuple[str, Any, OutRecord]] = []
        self.attempts = 0

    @property
    def remaining(self) -> int:
        return 1 if self.total < 0 else self.total - self.done

    def on_delivery(self, err: Any, msg: Any) -> None:
        self.done += 1
        if err is not None:
            part = msg.partition()
            rec = OutRecord(msg.topic(), msg.key(), msg.value(), list(msg.headers() or []),
                            partition=part if part is not None and part >= 0 else None)
            self.failed.append((msg.topic(), err, rec))
