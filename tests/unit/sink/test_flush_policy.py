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


# ---- the cost-aware gap: inserts cost mostly per insert, so expensive ones get spaced out ------

def _costed(share: float = 0.5, busy: float = 2.0, busy_rows: int = 100) -> FlushPolicy:
    return FlushPolicy(max_rows=1000, max_seconds=1.0, idle_seconds=0.05, min_interval_seconds=0.2,
                       insert_share=share, max_busy_seconds=busy, busy_rows=busy_rows)


def test_an_expensive_flush_holds_the_next_one_back_past_the_deadline():
    p = _costed()
    p.polled(500)  # busy
    p.flushed(10.0)
    p.stored(0.8, 900)  # the flush's inserts took 0.8 s in all: the next waits 0.8 / 0.5 = 1.6 s
    p.added(10.95)
    assert not p.due(900, 10.0, 11.0)  # past max_seconds, but inside the gap
    p.added(11.5)
    assert not p.due(900, 10.0, 11.59)
    assert p.due(900, 10.0, 11.61)


def test_the_gap_is_capped_by_the_busy_bound():
    p = _costed(share=0.25, busy=2.0)
    p.polled(500)
    p.flushed(10.0)
    p.stored(5.0, 900)  # 20 s asked for; 2 s is the most a batch waits under load
    p.added(11.9)
    assert not p.due(900, 10.0, 11.99)
    assert p.due(900, 10.0, 12.0)


def test_a_full_batch_goes_inside_the_gap():
    p = _costed()
    p.flushed(10.0)
    p.stored(0.9, 900)
    assert p.due(1000, 10.0, 10.01)  # memory stays bounded by max_rows whatever inserts cost


def test_a_cheap_insert_keeps_the_idle_path_as_fast_as_before():
    p = _costed()
    p.polled(0)  # caught up
    p.flushed(10.0)
    p.stored(0.05, 900)  # one small insert: a gap of 0.1 s, under the 0.2 s minimum interval
    p.added(10.1)
    assert not p.due(5, 10.1, 10.19)
    assert p.due(5, 10.1, 10.21)


def test_the_gap_follows_the_last_stored_flush_not_the_most_expensive_one():
    p = _costed()
    p.polled(0)
    p.flushed(10.0)
    p.stored(0.9, 900)  # 1.8 s
    p.flushed(11.8)
    p.stored(0.04, 900)  # the load went away: back to the minimum interval
    assert p.due(5, 11.9, 12.01)


def test_share_zero_turns_the_gap_off():
    p = _costed(share=0.0)
    p.polled(500)
    p.flushed(10.0)
    p.stored(30.0, 900)
    p.added(10.9)
    assert p.due(900, 10.0, 11.0)  # the deadline alone, as without the gap


def test_the_tail_of_a_burst_is_not_held_back_by_the_gap():
    p = _costed()
    p.polled(0)
    p.flushed(10.0)
    p.stored(0.9, 900)  # a big flush: 1.8 s asked for while records keep coming
    p.added(10.01)  # the burst's last records, then nothing
    assert not p.due(80, 10.01, 10.2)  # maybe more is coming
    assert p.due(80, 10.01, 10.22)  # quiet for the minimum interval: goes by the idle rule


def test_a_small_flush_sets_no_gap_however_slow_its_insert():
    # idle probes on a busy machine: one small insert took 0.3 s; holding the next probe's
    # records back 0.6 s for it would save almost nothing and cost the latency
    p = _costed()
    p.polled(0)
    p.flushed(10.0)
    p.stored(0.3, 15)
    p.added(10.1)
    assert not p.due(5, 10.1, 10.19)  # the minimum interval still bounds the inserts
    assert p.due(5, 10.1, 10.21)
    p.flushed(10.21)
    p.stored(0.3, 900)  # busy again: the gap (0.6 s) is back while records keep arriving
    p.polled(500)
    p.added(10.7)
    assert not p.due(900, 9.7, 10.8)  # past max_seconds, inside the gap
    assert p.due(900, 9.7, 10.82)
