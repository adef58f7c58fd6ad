"""The sink's flush decision: full batches and the deadline always flush; a quiet input flushes
a young batch early, but never more often than the minimum interval."""
from __future__ import annotations

from agentstream.sink.flush_policy import FlushPolicy


def _policy() -> FlushPolicy:
    return FlushPolicy(max_rows=1000, max_seconds=1.0, idle_seconds=0.05, min_interval_seconds=0.2)


def test_nothing_pending_is_never_due():
    p = _policy()
    p.polled(0)
    assert not p.due(0, None, 100.0)


def test_full_batch_and_deadline_flush_whatever_the_input_does():
    p = _policy()
    p.polled(500)  # busy: records keep coming
    assert p.due(1000, 10.0, 10.0)
    assert not p.due(999, 10.0, 10.9)
    assert p.due(1, 10.0, 11.0)


def test_busy_input_waits_for_the_deadline_idle_input_does_not():
    p = _policy()
    p.polled(300)
    assert not p.due(300, 10.0, 10.5)  # more is coming: keep batching
    p.polled(0)  # caught up
    assert not p.due(300, 10.0, 10.04)  # younger than idle_seconds
    assert p.due(300, 10.0, 10.05)


def test_quiet_flushes_are_spaced_by_the_minimum_interval():
    p = _policy()
    p.polled(0)
    assert p.due(5, 10.0, 10.1)
    p.flushed(10.1)
    assert not p.due(5, 10.15, 10.25)  # 0.15 s after the last flush
    assert p.due(5, 10.15, 10.3)
    p.flushed(10.3)
    assert p.due(5, 10.3, 11.3)  # the deadline ignores the interval
