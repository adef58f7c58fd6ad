"""Kafka delivery with acknowledgement: a batch resolves only when Kafka acked (or refused) each
record, and a bounded count of in-flight events is the gateway's only queue.

librdkafka's callbacks run on a poll thread; each batch counts its outstanding records and
wakes the waiting request once, so a 100-event batch costs one cross-thread hop, not 100.
The in-flight slots are released by the poll thread, never by the request: a client that hangs
up does not free capacity its records still occupy.

An idempotent producer whose records failed (timed out while the broker was down, or a fatal
error such as UNKNOWN_PRODUCER_ID after the broker lost its state) can stay wedged: it is
retired, drained in the background, and the next batch gets a fresh producer.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger(__name__)


# A record Kafka refuses for its size (librdkafka's own check or the broker's) fails the same way
# on every retry: its reason starts with this, so the request is answered 413, never "retry".
TOO_LARGE = "record_too_large"
_SIZE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})  # local and broker use one code


def failure_reason(err: KafkaError) -> str:
    if err.code() in _SIZE_ERRORS:
        return f"{TOO_LARGE}: kafka: {err.str()}"
    return f"kafka: {err.str()}"


class Overloaded(Exception):
    """The in-flight queue cannot take the batch."""


class BrokerUnavailable(Exception):
    """Kafka is known to be unreachable; refuse fast instead of queueing."""


@dataclass
class DeliveryResult:
    failed: dict[int, str] = field(default_factory=dict)  # index -> reason
    ack_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


class _Handle:
    """One producer and the batches it still owes an answer."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.tainted: str | None = None
        self.fatal = False
        self.retired_at: float | None = None
        self.batches: set[_Batch] = set()
        self.lock = threading.Lock()
        self.producer = Producer({**conf, "error_cb": self._on_error})

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal = True
            self.tainted = err.str()
            log.error("kafka producer fatal error: %s", err.str())
        else:
            log.warning("kafka: %s", err.str())

    def poll(self, timeout: float) -> None:
        try:
            self.producer.poll(timeout)
        except KafkaException as exc:
            # confluent-kafka raises a producer's fatal error from poll(); it must not end the
            # poll thread, or no batch would ever be answered again.
            self.fatal = True
            self.tainted = str(exc)

    def open_batches(self) -> list["_Batch"]:
        with self.lock:
            return list(self.batches)


class _Batch:
    __slots__ = ("size", "remaining", "settled", "failed", "loop", "future", "lock", "started",
                 "release", "done_at", "handle")

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop, release: Callable[[int], None],
                 handle: _Handle):
        self.size = n
        self.remaining = n
        self.settled = bytearray(n)
        self.failed: dict[int, str] = {}
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.release = release
        self.done_at = 0.0
        self.handle = handle
        with handle.lock:
            handle.batches.add(self)

    def settle(self, idx: int, reason: str | None) -> None:
        with self.lock:
            if self.settled[idx]:
                return  # a late report for a record already given up
            if reason is not None:
                self.failed[idx] = reason
            self.settled[idx] = 1
            self.remaining -= 1
            finished = self.remaining == 0
        if reason is not None and self.handle.tainted is None and not reason.startswith(TOO_LARGE):
            self.handle.tainted = reason
        if finished:
            self.done_at = time.perf_counter()
            with self.handle.lock:
                self.handle.batches.discard(self)
            self.release(self.size)
            self.loop.call_soon_threadsafe(_resolve, self.future)

    def callback(self, idx: int) -> Callable[[KafkaError | None, Any], None]:
        def cb(err: KafkaError | None, msg: Any) -> None:
            self.settle(idx, None if err is None else failure_reason(err))
        return cb

    def abandon(self, reason: str) -> None:
        for i in range(self.size):
            self.settle(i, reason)

    def unsettled_as_failed(self, reason: str) -> dict[int, str]:
        with self.lock:
            out = dict(self.failed)
            out.update({i: reason for i in range(self.size) if not self.settled[i]})
        return out


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class KafkaDelivery:
    def __init__(
        self,
        producer_conf: dict[str, Any],
        topic: str,
        max_inflight: int,
        delivery_timeout_s: float,
        probe_interval_s: float = 1.0,
        on_ack: Callable[[float], None] | None = None,
    ) -> None:
        self.conf = dict(producer_conf)
        self.topic = topic
        self.max_inflight = max_inflight
        self.delivery_timeout_s = delivery_timeout_s
        self.probe_interval_s = probe_interval_s
        self.on_ack = on_ack
        self._lock = threading.Lock()
        self._inflight = 0
        self._handle: _Handle | None = None
        self._retired: list[_Handle] = []
        self._created_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.broker_ok: bool | None = None  # None until the first probe answered
        self.topic_ok = False
        self.probe_failures = 0
        self.last_probe_error: str | None = None
        self.producers_replaced = 0

    # --- lifecycle
    def start(self) -> "KafkaDelivery":
        self._handle = self._new_handle()
        self._stop.clear()
        for target, name in ((self._poll_loop, "gateway-kafka-poll"),
                             (self._probe_loop, "gateway-kafka-probe")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 10.0) -> int:
        """Flushes what is in flight (bounded) and stops; returns records left undelivered."""
        left = 0
        if self._handle is not None:
            try:
                left = self._handle.producer.flush(timeout)
            except KafkaException:
                left = len(self._handle.producer)
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        for h in [self._handle, *self._retired]:
            if h is not None:
                for b in h.open_batches():
                    b.abandon("gateway stopped before Kafka answered")
        # Dropping the handles ends librdkafka's threads and broker connections.
        self._handle = None
        self._retired.clear()
        return left

    def _new_handle(self) -> _Handle:
        self._created_at = time.monotonic()
        return _Handle(self.conf)

    def _current(self) -> _Handle:
        h = self._handle
        assert h is not None, "KafkaDelivery.start() was not called"
        # At most one replacement a second: while the broker is down every batch fails, and
        # each replacement holds its records until they time out.
        if h.tainted is not None and (h.fatal or time.monotonic() - self._created_at >= 1.0):
            with self._lock:
                if self._handle is h:
                    log.warning("replacing the Kafka producer after: %s", h.tainted)
                    h.retired_at = time.monotonic()
                    if h.fatal:
                        try:
                            h.producer.purge()  # fails its queued records through callbacks
                        except KafkaException:
                            pass
                    self._retired.append(h)
                    self._handle = self._new_handle()
                    self.producers_replaced += 1
                current = self._handle
            if current is None:  # stop() ran meanwhile
                raise BrokerUnavailable("the gateway is stopping")
            h = current
        return h

    # --- background threads
    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            h = self._handle
            if h is not None:
                h.poll(0.05)
            else:
                time.sleep(0.05)
            for old in list(self._retired):
                old.poll(0)
                stale = time.monotonic() - (old.retired_at or 0) > self.delivery_timeout_s + 10
                if stale:
                    # A wedged producer that never reports: answer its batches ourselves.
                    for b in old.open_batches():
                        b.abandon("kafka: producer failed without reporting")
                if not old.open_batches():
                    self._retired.remove(old)

    def _probe_loop(self) -> None:
        while not self._stop.is_set():
            self.probe()
            self._stop.wait(self.probe_interval_s)

    def probe(self) -> bool:
        h = self._handle
        if h is None:
            return False
        try:
            md = h.producer.list_topics(timeout=max(1.0, self.probe_interval_s * 2))
            t = md.topics.get(self.topic)
            self.topic_ok = t is not None and t.error is None and bool(t.partitions)
            self.broker_ok = True
            self.probe_failures = 0
            self.last_probe_error = None if self.topic_ok else f"topic {self.topic} is missing"
        except KafkaException as exc:
            self.broker_ok = False
            self.probe_failures += 1
            self.last_probe_error = str(exc)
        return bool(self.broker_ok and self.topic_ok)

    # --- state
    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def ready(self) -> bool:
        return bool(self.broker_ok and self.topic_ok) and self._inflight < self.max_inflight

    @property
    def known_down(self) -> bool:
        # Two probes in a row: one slow metadata answer must not turn clients away.
        return self.probe_failures >= 2

    def _acquire(self, n: int) -> None:
        with self._lock:
            if self._inflight + n > self.max_inflight:
                raise Overloaded(f"{self._inflight} events in flight, limit {self.max_inflight}")
            self._inflight += n

    def _release(self, n: int) -> None:
        with self._lock:
            self._inflight -= n

    # --- the one operation
    async def deliver(self, records: list[tuple[bytes, bytes]]) -> DeliveryResult:
        """Produces (key, value) records; returns once Kafka acked or refused every one."""
        if not records:
            return DeliveryResult()
        if self.known_down:
            raise BrokerUnavailable(self.last_probe_error or "kafka is unreachable")
        n = len(records)
        handle = self._current()  # before _acquire: a refusal here holds no permits
        self._acquire(n)
        batch = _Batch(n, asyncio.get_running_loop(), self._release, handle)
        produce = handle.producer.produce
        topic = self.topic
        for i, (key, value) in enumerate(records):
            try:
                produce(topic, value, key, on_delivery=batch.callback(i))
            except KafkaException as exc:
                batch.settle(i, failure_reason(exc.args[0]) if exc.args and isinstance(
                    exc.args[0], KafkaError) else f"not produced: {exc}")
            except BufferError as exc:
                batch.settle(i, f"not produced: {exc}")
        try:
            # librdkafka reports every record within message.timeout.ms; the margin covers
            # the poll interval and a busy event loop.
            await asyncio.wait_for(asyncio.shield(batch.future), self.delivery_timeout_s + 5.0)
        except asyncio.TimeoutError:
            return DeliveryResult(batch.unsettled_as_failed("kafka: no acknowledgement in time"),
                                  time.perf_counter() - batch.started)
        seconds = batch.done_at - batch.started
        if self.on_ack is not None and batch.failed == {}:
            self.on_ack(seconds)
        return DeliveryResult(batch.failed, seconds)
