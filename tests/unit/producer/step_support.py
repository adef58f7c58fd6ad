"""Shared by the step tests: a tracer without a worker thread delivering to memory, and what
it delivered, decoded - all through the SDK's public testing interface."""
from __future__ import annotations

import weakref
from typing import Any, Callable

from agentstream.producer import Budget, LackOfProgress, Tracer
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


def refused_at(tracer: Tracer, limit: int, plan: list[Any],
               play: Callable[[Any, int, Any, list[Any]], None]) -> int | None:
    """Plays ``plan`` (``play(run, i, op, last)`` per op) in a run whose repeat budget is
    ``limit``: the index of the op the SDK refused with ``LackOfProgress``, or None."""
    last: list[Any] = [None, None]
    refused = None
    try:
        with tracer.run("enforced", budget=Budget(max_repeated_fingerprints=limit)) as run:
            for i, op in enumerate(plan):
                refused = i
                play(run, i, op, last)
            refused = None
    except LackOfProgress:
        pass
    drain(tracer)
    return refused


def expected_refusal(seen: int | None, plan: list[Any]) -> int | None:
    """Where the SDK refuses a plan whose first repeat the processors see at ``seen``: a "late"
    op is judged only after it ran, so the refusal falls on the op after it."""
    if seen is not None and plan[seen][0] == "late":
        return seen + 1 if seen + 1 < len(plan) else None
    return seen
