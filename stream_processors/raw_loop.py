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
the next batch is already being processed (up to MAX_IN_FLIGHT batches). At-least-once; the run
state records the last raw offset it applied, so a batch redelivered after a crash is not counted
twice.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

from mode import Service

from agentstream.schemas import topic_name

from .chain import Chain
from .emitter import DeliveryError, Emitter
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
        except Exception as exc:  # noqa: BLE001 - another worker may have created it meanwhile
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
                 partitions: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.chain = chain
        self.metrics = metrics
        self.partitions = partitions
        self.raw_topic = topic_name("raw", settings.topic_prefix)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.store: RunStateStore | None = None

    @Service.task
    async def _run_thread(self) -> None:
        try:
            await asyncio.to_thread(self.run_blocking)
        except Exception as exc:  # noqa: BLE001
            log.exception("raw loop crashed")
            await self.crash(exc)

    async def on_stop(self) -> None:
        self._stop.set()

    def run_blocking(self) -> None:
        from confluent_kafka import Consumer

        s = self.settings
        self.store = store = RunStateStore(s, ensure_changelog(s, self.partitions))
        emitter = Emitter(s.bootstrap_servers)
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
        try:
            while not self._stop.is_set():
                self._settle(c, emitter, inflight, wait=len(inflight) >= MAX_IN_FLIGHT)
                msgs = c.consume(s.batch_size, s.batch_within_s if s.batch_within_s > 0 else 0.05)
                if not msgs:
                    continue
                t0 = time.perf_counter()
                batch = []
                last: dict[int, int] = {}
                for m in msgs:
                    if m.error() is not None:
                        log.warning("raw consume error: %s", m.error())
                        continue
                    p, off = m.partition(), m.offset()
                    batch.append(InRecord(m.topic(), p, off, m.key(), m.value(), m.headers(), m.timestamp()[1]))
                    last[p] = off
                if not batch:
                    continue
                out = chain.process(batch, store.get, store.put)
                out.extend(store.drain())
                ticket = _Ticket(last)
                ticket.total = emitter.produce_all(out, ticket.on_delivery)
                inflight.append(ticket)
                metrics.observe_batch(len(batch), out, time.perf_counter() - t0)
            self._settle(c, emitter, inflight, wait=True)
        finally:
            c.close()
            emitter.close()

    def _settle(self, c: Any, emitter: Emitter, inflight: "deque[_Ticket]", wait: bool) -> None:
        """Commits the raw offsets of every leading batch whose outputs are all acknowledged;
        with ``wait``, first waits until every batch in flight is."""
        from confluent_kafka import TopicPartition

        emitter.poll(0)
        deadline = time.monotonic() + 60.0
        while wait and inflight and inflight[-1].remaining > 0:
            if time.monotonic() > deadline:
                raise DeliveryError("outputs not acknowledged within 60s")
            emitter.poll(0.05)
        offsets: dict[int, int] = {}
        while inflight and inflight[0].remaining <= 0:
            t = inflight.popleft()
            if t.errors:
                raise DeliveryError(f"{len(t.errors)} records failed: {t.errors[:3]}")
            offsets.update(t.last)
        if offsets:
            # Only now, with every output of these batches acknowledged: the input is done.
            c.commit(offsets=[TopicPartition(self.raw_topic, p, off + 1) for p, off in offsets.items()],
                     asynchronous=not wait)


MAX_IN_FLIGHT = 3  # batches produced but not yet acknowledged; processing overlaps their flush


class _Ticket:
    __slots__ = ("last", "total", "done", "errors")

    def __init__(self, last: dict[int, int]) -> None:
        self.last = last
        self.total = -1  # set right after producing (callbacks may already run while producing)
        self.done = 0
        self.errors: list[str] = []

    @property
    def remaining(self) -> int:
        return 1 if self.total < 0 else self.total - self.done

    def on_delivery(self, err: Any, msg: Any) -> None:
        self.done += 1
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")
