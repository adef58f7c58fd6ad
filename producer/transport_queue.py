"""The agent-side half of the transport: a bounded queue that never blocks the agent.

Agent threads append to a ``deque`` (the hot path, also taken by the C step core in
``_speedups.c``: ``len(q) < maxsize`` then ``append``); only when it is full do they call
``EventQueue.overflow``, which makes room by dropping the *oldest* event.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

log = logging.getLogger("agentstream.producer")

# One warning per interval at most: an agent that outruns the transport overflows on every
# event, and a log line per event would cost it more than the events themselves.
WARN_INTERVAL_S = 10.0


class FlushMarker:
    """A ``flush()`` waiting in the queue: set once every item queued before it is acked by
    Kafka or spooled (``ok``), or when the flush could not confirm that (``ok`` False)."""

    __slots__ = ("done", "ok", "timeout")

    def __init__(self, timeout: float) -> None:
        self.done = threading.Event()
        self.ok = False
        self.timeout = timeout

    def resolve(self, ok: bool) -> None:
        self.ok = ok
        self.done.set()


class EventQueue:
    """The bounded queue between agent threads (producers) and the transport thread (the one
    consumer).

    Guarantees:

    - The agent-side hot path and ``overflow`` never wait on the transport thread or on I/O
      (threads overflowing at the same instant take turns on a short lock) and never raise
      into the agent.
    - The queue holds at most ``maxsize`` events (a few more only while several agent threads
      overflow at the same instant); flush markers do not count against it and are never
      dropped, so a ``flush()`` is always answered.
    - When it is full the **oldest** event is dropped, counted in ``dropped`` and reported by a
      warning at most once per ``WARN_INTERVAL_S``. Oldest, not newest: a full queue means the
      transport has fallen behind, and the newest events are the ones that describe what the
      agent is doing now (the failure that is happening, the RUN_END that closes the run, the
      step a budget stop refers to); the old ones describe a past the detectors have mostly
      judged already. (OpenTelemetry's BatchSpanProcessor drops the newest instead; for an
      agent that is about to fail, that loses exactly the evidence.)
    - Items leave in the order they were put (FIFO), except the dropped ones.
    """

    def __init__(self, maxsize: int) -> None:
        self.q: deque[Any] = deque()
        self.maxsize = maxsize
        self.dropped = 0
        self._unreported = 0
        # Only overflowing agent threads take it (the hot path and the worker never do): it
        # keeps ``dropped`` exact and the bound tight when several threads overflow at once.
        self._overflow_lock = threading.Lock()
        self._next_warning = 0.0

    def __len__(self) -> int:
        return len(self.q)

    def put_marker(self, marker: FlushMarker) -> None:
        self.q.append(marker)

    def overflow(self, item: Any) -> None:
        """Queues ``item`` in a full queue by dropping the oldest event (cold path)."""
        with self._overflow_lock:
            warn = self._make_room(item)
        if warn is not None:  # outside the lock: a slow log handler must not stall the others
            log.warning("agentstream: event queue full (queue_size=%d): dropped the %d oldest "
                        "event(s) since the last warning, %d in all; the transport is behind "
                        "(raise queue_size, or see tracer.stats())", self.maxsize, *warn)

    def _make_room(self, item: Any) -> tuple[int, int] | None:
        """Drops the oldest event, appends ``item``; (dropped since the last warning, in all)
        when a warning is due."""
        q = self.q
        markers = []
        try:
            old = q.popleft()
            while old.__class__ is FlushMarker:
                markers.append(old)
                old = q.popleft()
        except IndexError:
            old = None  # the transport thread emptied the queue meanwhile: nothing to drop
        for m in reversed(markers):
            q.appendleft(m)
        q.append(item)
        if old is None:
            return None
        # A C-core step is hidden from the cyclic GC while queued; dropped, it must be seen
        # again or a cycle through it would never be collected.
        taken = getattr(old, "_taken", None)
        if taken is not None:
            taken()
        self.dropped += 1
        self._unreported += 1
        now = time.monotonic()
        if now < self._next_warning:
            return None
        self._next_warning = now + WARN_INTERVAL_S
        n, self._unreported = self._unreported, 0
        return n, self.dropped

    def clear(self) -> None:
        self.q.clear()
