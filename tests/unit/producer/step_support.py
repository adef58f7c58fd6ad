"""Shared by the step tests: a tracer without a worker thread delivering to memory, and what
it delivered, decoded - all through the SDK's public testing interface."""
from __future__ import annotations

import weakref

from agentstream.producer import Tracer
from agentstream.producer.testing import InMemoryTransport

# Each tracer's in-memory broker (a test helper's own bookkeeping, not the SDK's state).
_MEMORY: weakref.WeakKeyDictionary[Tracer, InMemoryTransport] = weakref.WeakKeyDictionary()


def make_tracer(tmp_path, speedups: bool, **kw) -> Tracer:
    """``speedups``: the C step core (True) or the pure-Python one (False). Without a worker
    thread (``worker_thread=False``) nothing leaves the queue until ``flush``, so a test sees
    exactly what it emitted."""
    memory = InMemoryTransport()
    t = memory.tracer("acme", "agent", "1.0", "test", spool_dir=str(tmp_path / f"spool-{speedups}"),
                      speedups=speedups, worker_thread=False, **kw)
    _MEMORY[t] = memory
    return t


def delivered(tracer) -> list[tuple[bytes, bytes]]:
    """Flushes, then every ``(key, framed value)`` delivered since the last call."""
    memory = _MEMORY[tracer]
    assert tracer.flush(10), tracer.stats()
    records = [(key, value) for _topic, key, value in memory.records()]
    memory.clear()
    return records


def drain(tracer) -> list[dict]:
    """Flushes, then every event delivered since the last call, decoded as the pipeline
    decodes it."""
    memory = _MEMORY[tracer]
    assert tracer.flush(10), tracer.stats()
    events = memory.events()
    memory.clear()
    return events
