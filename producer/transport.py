"""Off the agent's thread: a bounded queue, one background thread, Kafka, and the disk spool.

The agent thread only appends a tuple to a deque (drop-and-count when full, never blocks). The
background thread turns items into framed records (through ``EventPipeline``), numbers each
record with ``w`` and produces it with an idempotent confluent-kafka producer.

While the broker is unreachable, records go to the disk spool instead, in ``w`` order; records
that fail in flight are spooled too and sort before newer ones by ``w``. Once a probe sees the
broker again, the producer is recreated (fresh idempotence state: an embedded broker that
restarted forgot ours) and the spool is replayed chunk by chunk, each chunk committed only
after its acks, before anything new is produced directly. So a run's records reach Kafka in
order, and a record is re-sent only if its delivery was not acknowledged.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from agentstream.schemas import PARTITIONER

from .settings import ProducerSettings
from .spool import Spool

log = logging.getLogger("agentstream.producer")

_FLUSH = object()
_REPLAY_CHUNK = 1000
_FAIL_BLOCK = 10_000_000  # > librdkafka's queue.buffering.max.messages
_LIVE: "weakref.WeakSet[Transport]" = weakref.WeakSet()
_FORK_ORPHANS: list = []


class _Marker:
    __slots__ = ("done", "ok", "timeout")

    def __init__(self, timeout: float) -> None:
        self.done = threading.Event()
        self.ok = False
        self.timeout = timeout


class Transport:
    def __init__(self, settings: ProducerSettings, topic: str,
                 process: Callable[[Any], list[tuple[bytes, bytes]]],
                 producer_factory: Callable[[dict], Any] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self._process = process
        self._producer_factory = producer_factory or _default_producer
        self.q: deque = deque()
        self.maxsize = settings.queue_size
        self.dropped = 0          # agent side: queue full; transport side: spool full
        self.failed = 0           # items the SDK could not turn into records
        self.produced = 0
        self.delivery_failed = 0
        self.spooled = 0
        self.replayed = 0
        self.sampled_out = 0
        self._w = 0
        self._fail_w = 0
        self._online = True
        self._broker_down = False
        self._fatal = False
        self._next_probe = 0.0
        self._failed_batch: list[tuple[int, bytes, bytes]] = []
        self._to_spool: list[tuple[int, bytes, bytes]] = []
        self._spool: Spool | None = None
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._stop = False
        self.needs_start = True
        self._start_lock = threading.Lock()
        _LIVE.add(self)

    # ---- agent thread -------------------------------------------------------------------
    def start(self) -> None:
        with self._start_lock:
            if not self.needs_start:
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="agentstream-producer",
                                            daemon=True)
            self._thread.start()
            self.needs_start = False

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every item enqueued so far is acked by Kafka or spooled to disk."""
        timeout = self.settings.flush_timeout_s if timeout is None else timeout
        if self.needs_start or self._thread is None or not self._thread.is_alive():
            return not self.q
        m = _Marker(timeout)
        self.q.append(m)
        return m.done.wait(timeout) and m.ok

    def close(self, timeout: float | None = None) -> bool:
        ok = self.flush(timeout)
        self._stop = True
        if self._thread is not None:
            self._thread.join(max(1.0, timeout or 0.0))
        return ok

    def stats(self) -> dict[str, Any]:
        in_flight = len(self._producer) if self._producer is not None else 0
        return {
            "sent": max(0, self.produced - self.delivery_failed - in_flight),
            "spooled": self.spooled,
            "replayed": self.replayed,
            "dropped": self.dropped,
            "failed": self.failed,
            "sampled_out": self.sampled_out,
            "queued": len(self.q),
            "in_flight": in_flight,
            "spool_bytes": self._spool.bytes_used() if self._spool else 0,
            "online": self._online,
        }

    # ---- background thread --------------------------------------------------------------
    def _conf(self) -> dict[str, Any]:
        s = self.settings
        conf = {
            "bootstrap.servers": s.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": s.compression,
            "linger.ms": s.linger_ms,
            "message.timeout.ms": s.delivery_timeout_ms,
            "delivery.report.only.error": True,
            "queue.buffering.max.messages": 200_000,
            "error_cb": self._on_error,
            # Only failures call back (delivery.report.only.error): no per-record callback
            # object on the hot path. Replay passes per-record callbacks that carry ``w``.
            "on_delivery": self._on_delivery_online,
            "logger": logging.getLogger("agentstream.producer.kafka"),
            "client.id": "agentstream-sdk",
            # a run's records land where the gateway's, the processors' and Java clients' do
            "partitioner": PARTITIONER,
        }
        conf.update(s.client_conf)
        return conf

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        code = err.code()
        if err.fatal():
            self._fatal = True
            self._go_offline()
        elif code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self._go_offline()

    def _on_delivery(self, w: int, err: Any, msg: Any) -> None:
        if err is not None:
            self.delivery_failed += 1
            self._failed_batch.append((w, msg.key() or b"", msg.value() or b""))
            self._go_offline()

    def _on_delivery_online(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._go_offline()
            self.delivery_failed += 1
            w = self._fail_w
            self._fail_w += 1
            self._failed_batch.append((w, msg.key() or b"", msg.value() or b""))

    def _go_offline(self) -> None:
        if self._online:
            log.warning("agentstream: Kafka unreachable, spooling events to %s",
                        self.settings.spool_dir)
            # Records still inside librdkafka were produced before anything spooled from now
            # on; their failures (reported in order) get numbers from a block reserved here,
            # so they replay before the newer records.
            self._fail_w = self._w + 1
            self._w += _FAIL_BLOCK
        self._online = False

    def _ensure_spool(self) -> Spool:
        if self._spool is None:
            s = self.settings
            self._spool = Spool(s.spool_dir, s.spool_max_bytes, s.spool_segment_bytes)
        return self._spool

    def _run(self) -> None:
        try:
            self._producer = self._producer_factory(self._conf())
            if os.path.isdir(self.settings.spool_dir) and os.listdir(self.settings.spool_dir):
                if not self._ensure_spool().empty():  # an earlier process left records behind
                    self._online = False
        except Exception:  # noqa: BLE001 - never raise into the agent; count and keep going
            log.exception("agentstream: producer start failed")
        q = self.q
        while True:
            try:
                busy = self._drain(q)
                self._producer.poll(0 if busy else 0.02)
                self._settle()
                if not self._online and time.monotonic() >= self._next_probe:
                    self._try_recover()
                if self._stop and not q:
                    break
            except Exception:  # noqa: BLE001
                self.failed += 1
                log.exception("agentstream: transport loop error")
                time.sleep(0.05)
        self._shutdown()

    def _drain(self, q: deque) -> bool:
        n = 0
        popleft = q.popleft
        process = self._process
        while q and n < 5000:
            item = popleft()
            n += 1
            if item.__class__ is _Marker:
                self._flush_marker(item)
                continue
            try:
                records = process(item)
            except Exception:  # noqa: BLE001
                self.failed += 1
                log.exception("agentstream: could not encode an event")
                continue
            for key, value in records:
                self._send(key, value)
        return n > 0

    def _send(self, key: bytes, value: bytes) -> None:
        self._w += 1
        w = self._w
        if not self._online:
            self._to_spool.append((w, key, value))
            return
        try:
            self._producer.produce(self.topic, value, key)
            self.produced += 1
        except Exception:  # noqa: BLE001 - BufferError: librdkafka's queue is full
            self._go_offline()
            self._w += 1  # numbered after the block reserved for in-flight failures
            self._to_spool.append((self._w, key, value))

    def _settle(self) -> None:
        """Moves failed deliveries and offline records to the spool (oldest ``w`` first)."""
        for batch in (self._failed_batch, self._to_spool):
            if not batch:
                continue
            batch.sort(key=lambda r: r[0])
            try:
                written = self._ensure_spool().append(batch)
            except Exception:  # noqa: BLE001 - disk trouble: the records are lost, say so
                log.exception("agentstream: spool write failed")
                written = 0
            self.spooled += written
            self.dropped += len(batch) - written
            batch.clear()

    def _try_recover(self) -> None:
        self._next_probe = time.monotonic() + self.settings.probe_interval_s
        if not self._probe():
            return
        # Only never-sent records are purged (no duplicate risk); in-flight ones resolve first.
        try:
            self._producer.purge(in_queue=True, in_flight=False, blocking=True)
        except Exception:  # noqa: BLE001
            pass
        self._producer.flush(self.settings.delivery_timeout_ms / 1000)
        self._settle()
        self._producer = self._producer_factory(self._conf())
        self._fatal = False
        spool = self._spool
        while spool is not None and not spool.empty():
            d, recs = spool.peek(_REPLAY_CHUNK)
            if not recs:
                break
            if not self._replay_chunk(spool, d, recs):
                return
            if self.q:  # let new items join the spool's tail between chunks
                self._drain_to_spool()
        self._online = True
        log.warning("agentstream: Kafka reachable again, spool replayed")

    def _drain_to_spool(self) -> None:
        online, self._online = self._online, False
        self._drain(self.q)
        self._settle()
        self._online = online

    def _replay_chunk(self, spool: Spool, d: Any, recs: list) -> bool:
        failed_before = self.delivery_failed
        taken = []
        for rec in recs:
            w, key, value = rec[0], rec[1], rec[2]
            try:
                self._producer.produce(self.topic, value, key,
                                       on_delivery=functools.partial(self._on_delivery, w))
            except Exception:  # noqa: BLE001 - local queue full: stop this chunk here
                break
            taken.append(rec)
        self._producer.flush(self.settings.delivery_timeout_ms / 1000 + 1)
        spool.commit(d, taken)
        failures = self.delivery_failed - failed_before
        self.produced += len(taken)
        self.replayed += len(taken) - failures
        self._settle()  # failed ones go back into the spool, sorted by their original w
        if failures or len(taken) < len(recs):
            self._online = False
            return False
        return True

    def _probe(self) -> bool:
        try:
            md = self._producer.list_topics(self.topic, timeout=1.0)
            t = md.topics.get(self.topic)
            return bool(t is not None and t.error is None and t.partitions)
        except Exception:  # noqa: BLE001
            return False

    def _flush_marker(self, m: _Marker) -> None:
        deadline = time.monotonic() + m.timeout
        self._settle()
        if self._online:
            self._producer.flush(max(0.0, deadline - time.monotonic()))
            self._settle()
        in_flight = len(self._producer) if self._producer is not None else 0
        m.ok = in_flight == 0 and not self._failed_batch
        m.done.set()

    def _shutdown(self) -> None:
        try:
            if self._producer is not None and self._online:
                self._producer.flush(self.settings.flush_timeout_s)
            if self._producer is not None:
                # Whatever is still undelivered goes to disk for the next process to replay.
                self._producer.purge(in_queue=True, in_flight=False, blocking=True)
                self._producer.poll(0)
            self._settle()
        except Exception:  # noqa: BLE001
            log.exception("agentstream: shutdown flush failed")
        if self._spool is not None:
            self._spool.close()

    # ---- fork ---------------------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        # The parent's thread, producer and spool directory do not exist for us; its queued
        # items are the parent's to send. Cleared in place: runs hold a reference to it.
        self.q.clear()
        self._thread = None
        if self._producer is not None:
            # Destroying a librdkafka handle whose threads did not survive the fork crashes:
            # keep the parent's copy alive and unused for the child's lifetime.
            _FORK_ORPHANS.append(self._producer)
        self._producer = None
        self._spool = None
        self._failed_batch = []
        self._to_spool = []
        self._online = True
        self._start_lock = threading.Lock()
        self.needs_start = True


def _default_producer(conf: dict) -> Any:
    from confluent_kafka import Producer

    return Producer(conf)


def _after_fork_in_child() -> None:
    for t in list(_LIVE):
        t._after_fork_in_child()


def _close_all_at_exit() -> None:
    for t in list(_LIVE):
        if not t.needs_start:
            try:
                t.close(t.settings.flush_timeout_s)
            except Exception:  # noqa: BLE001
                pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
