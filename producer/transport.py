"""Off the agent's thread: the bounded queue, one background worker, Kafka and the disk spool.

Two parts, composed here by ``Transport``:

- ``transport_queue.EventQueue``: what agent threads touch (a ``deque`` append; when full, the
  oldest event is dropped and counted);
- ``transport_delivery.Delivery``: the online -> offline -> replaying state machine that gets
  framed records into Kafka or onto the disk spool.

The worker thread in between turns queue items into framed records (``EventPipeline``) and
hands them to the delivery.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

from .settings import ProducerSettings
from .transport_delivery import Delivery
from .transport_queue import EventQueue, FlushMarker

log = logging.getLogger("agentstream.producer")

_DRAIN_BATCH = 5000  # items per turn, so librdkafka's callbacks and probes are served
_LIVE: weakref.WeakSet[Transport] = weakref.WeakSet()
_FORK_ORPHANS: list[Any] = []


class Transport:
    """The SDK's path from ``run.step(...)`` to Kafka.

    What callers may rely on:

    - The agent's thread never blocks and never sees an exception from here: enqueueing is a
      ``deque`` append (``q``, bounded by ``maxsize``; when full, ``overflow`` drops the
      oldest event, counts it in ``dropped`` and warns at most every 10 s).
    - One worker thread (started by ``start``, daemon) takes items in queue order, encodes
      them with ``process`` (a failure is counted in ``failed`` and logged, the rest go on)
      and passes the records to ``Delivery``, whose guarantees are in its docstring: acked by
      Kafka, or spooled to disk and replayed in order, or counted.
    - ``flush(timeout)`` returns True only when every item enqueued before the call is acked
      by Kafka or spooled; it waits at most ``timeout``.
    - ``close`` flushes, stops the worker and spools what librdkafka still holds; live
      transports are closed at interpreter exit.
    - With ``worker_thread=False`` there is no worker: items wait in the queue (bounded and
      counted as above) until ``flush``, which encodes and delivers them on the caller's
      thread, one caller at a time, before it returns. Nothing else moves them, so what
      ``stats()`` reports is exactly what the agent did since the last flush.
    - After ``fork()`` the child gets a fresh transport (its own thread, producer and spool
      directory, started on its first run); the parent's queued items stay the parent's.
    """

    def __init__(self, settings: ProducerSettings, topic: str,
                 process: Callable[[Any], list[tuple[bytes, bytes]]],
                 producer_factory: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self._process = process
        self.queue = EventQueue(settings.queue_size)
        self.q = self.queue.q              # the agent-side hot path appends here directly
        self.maxsize = settings.queue_size
        self.overflow = self.queue.overflow
        self.delivery = Delivery(settings, topic, producer_factory)
        self.failed = 0                    # items the SDK could not turn into records
        self.truncated = 0                 # over-long names and ids cut to their bound (bounds.py)
        self._thread: threading.Thread | None = None
        self._stop = False
        self.needs_start = True
        self._start_lock = threading.Lock()
        # worker_thread=False: ``flush`` does the worker's job on its caller's thread.
        self._here_lock = threading.Lock()
        self._opened = False
        self._closed = False
        _LIVE.add(self)

    @property
    def dropped(self) -> int:
        """Events lost: dropped from a full queue, not writable to a full/broken spool, or
        refused by Kafka for good (``rejected``: too large, malformed)."""
        return self.queue.dropped + self.delivery.dropped + self.delivery.rejected.count

    # ---- agent thread -------------------------------------------------------------------
    def start(self) -> None:
        with self._start_lock:
            if not self.needs_start:
                return
            if not self.settings.worker_thread:
                self.needs_start = False  # items wait in the queue for flush()
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="agentstream-producer",
                                            daemon=True)
            self._thread.start()
            self.needs_start = False

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every item enqueued so far is acked by Kafka or spooled to disk."""
        timeout = self.settings.flush_timeout_s if timeout is None else timeout
        if not self.settings.worker_thread and not self._closed:
            return self._flush_here(timeout)
        if self.needs_start or self._thread is None or not self._thread.is_alive():
            return not self.q
        m = FlushMarker(timeout)
        self.queue.put_marker(m)
        return m.done.wait(timeout) and m.ok

    def close(self, timeout: float | None = None) -> bool:
        """Flushes, stops the worker and closes the delivery (what Kafka did not ack by then is
        spooled). Events recorded after ``close`` wait in the queue (``stats()["queued"]``)
        until the next ``close``, which delivers or spools them on its caller's thread; the
        one at interpreter exit does it for everyone."""
        timeout = self.settings.flush_timeout_s if timeout is None else timeout
        ok = self.flush(timeout)
        self._stop = True
        thread = self._thread
        if thread is not None:
            # The worker stops probing once told to stop; a probe already under way takes up
            # to a second (``Delivery._probe``), and the delivery's close flushes (bounded by
            # flush_timeout_s) before it spools: wait for that much, or the records were lost.
            thread.join(max(1.0, timeout) + 1.5 + self.settings.flush_timeout_s)
        with self._here_lock:
            if self.q and (thread is None or not thread.is_alive()):
                # Events queued after the worker's last turn (or after an earlier close):
                # delivered or spooled here, never left in a queue nobody drains.
                if not self._opened:
                    self.delivery.open()
                    self._opened = True
                self._drain()
                self.delivery.tick(True, self._drain, probe=False)
                ok = self.delivery.flush(timeout) and ok
            if self._opened:  # delivered on the callers' threads: close the delivery here
                self.delivery.close()
                self._opened = False
            self._closed = True
        return ok

    def _flush_here(self, timeout: float) -> bool:
        """``flush`` without a worker thread: the worker's turns, run on the caller's thread
        until the queue is empty (or ``timeout`` is up), then the delivery's flush."""
        deadline = time.monotonic() + timeout
        with self._here_lock:
            if not self._opened and not self.q:
                return True  # nothing was ever queued: no producer to make for nothing
            if not self._opened:
                self.delivery.open()
                self._opened = True
            while True:
                busy = self._drain()
                self.delivery.tick(True, self._drain)  # callbacks, spooling, probe and replay
                if not busy or time.monotonic() >= deadline:
                    break
            ok = self.delivery.flush(max(0.0, deadline - time.monotonic()))
            return ok and not self.q

    def stats(self) -> dict[str, Any]:
        d = self.delivery
        in_flight = d.in_flight()
        return {
            "sent": max(0, d.produced - d.delivery_failed - in_flight),
            "spooled": d.spooled,
            "replayed": d.replayed,
            "dropped": self.dropped,
            "rejected": d.rejected.count,
            "failed": self.failed,
            "truncated": self.truncated,
            "sampled_out": 0,  # the pipeline's count; Tracer.stats fills it in
            "queued": len(self.q),
            "in_flight": in_flight,
            "spool_bytes": d.spool_bytes(),
            "online": d.online,
            "state": d.state.value,
        }

    # ---- worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        self.delivery.open()
        q = self.q
        while True:
            try:
                busy = self._drain()
                self.delivery.tick(busy, self._drain, probe=not self._stop)
                if self._stop and not q:
                    break
            except Exception:  # the worker must outlive any one bad turn
                self.failed += 1
                log.exception("agentstream: transport loop error")
                time.sleep(0.05)
        self.delivery.close()

    def _drain(self) -> bool:
        q = self.q
        popleft = q.popleft
        process = self._process
        send = self.delivery.send
        n = 0
        while q and n < _DRAIN_BATCH:
            item = popleft()
            n += 1
            if item.__class__ is FlushMarker:
                item.resolve(self.delivery.flush(item.timeout))
                continue
            try:
                records = process(item)
            except Exception:  # one unencodable item must not stop the rest
                self.failed += 1
                log.exception("agentstream: could not encode an event")
                continue
            for key, value in records:
                send(key, value)
        return n > 0

    # ---- fork ---------------------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        # The parent's thread, producer and spool directory do not exist for us; its queued
        # items are the parent's to send. Cleared in place: runs hold a reference to it.
        self.queue.clear()
        self._thread = None
        self.delivery.forget_after_fork(_FORK_ORPHANS)
        self._start_lock = threading.Lock()
        self._here_lock = threading.Lock()
        self._opened = False
        self.needs_start = True


def _after_fork_in_child() -> None:
    for t in list(_LIVE):
        t._after_fork_in_child()


def _close_all_at_exit() -> None:
    for t in list(_LIVE):
        if not t.needs_start or (t._closed and t.q):
            try:
                t.close(t.settings.flush_timeout_s)
            except Exception:  # noqa: BLE001 - at exit nothing is left to report to
                pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
