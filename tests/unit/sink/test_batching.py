"""Range cutting (replays re-form exactly the ledger's ranges) and retry-with-backoff, without a broker."""
from __future__ import annotations

import threading

from agentstream.sink.ledger import OffsetRange
from agentstream.sink.service import Sink, _STOPPED
from agentstream.sink.settings import SinkSettings

T = "agentstream.events"


class Rec:
    """The three accessors of a confluent_kafka.Message that cutting uses."""

    def __init__(self, offset: int, ts: int = 1000) -> None:
        self._o, self._ts = offset, ts

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts + self._o)


def sink_with(buffers: dict, plans: dict | None = None, **settings) -> Sink:
    s = Sink(SinkSettings(topics=["events"], **settings), client=object())
    s._buffers = {k: [Rec(o) for o in v] for k, v in buffers.items()}
    s._plans = plans or {}
    s._assigned = set(buffers)
    s._pending_rows = sum(len(v) for v in buffers.values())
    return s


def test_fresh_ranges_take_everything_buffered_per_partition():
    s = sink_with({(T, 0): [5, 6, 7], (T, 1): [], (T, 2): [0]})
    chunks = s._cut()
    assert [(c[0].partition, c[0].start, c[0].end, c[2]) for c in chunks] == [(0, 5, 7, False), (2, 0, 0, False)]
    assert chunks[0][0].first_ts_ms == 1005 and s._pending_rows == 0


def test_a_ledger_range_is_replayed_exactly_and_waits_until_complete():
    plan = OffsetRange(T, 0, 5, 8, 1005)
    s = sink_with({(T, 0): [5, 6, 7]}, {(T, 0): [plan]})
    assert s._cut() == [] and s._pending_rows == 3  # offset 8 not read again yet
    s._buffers[(T, 0)] += [Rec(8), Rec(9), Rec(10)]
    s._pending_rows += 3
    chunks = s._cut()
    assert chunks[0][0] == plan and chunks[0][2] is True and [r.offset() for r in chunks[0][1]] == [5, 6, 7, 8]
    # what follows the replayed range is a new range of the same flush
    nxt = chunks[1][0]
    assert len(chunks) == 2 and chunks[1][2] is False and [r.offset() for r in chunks[1][1]] == [9, 10]
    assert (nxt.start, nxt.end, nxt.token) == (9, 10, f"{T}/0/9-10@1009")
    assert s._buffers[(T, 0)] == [] and s._pending_rows == 0


def test_nothing_after_an_incomplete_ledger_range_is_cut_but_what_precedes_it_is():
    plan = OffsetRange(T, 0, 5, 8, 1005)
    s = sink_with({(T, 0): [3, 4, 5, 6]}, {(T, 0): [plan]})
    chunks = s._cut()
    assert [(c[0].start, c[0].end, c[2]) for c in chunks] == [(3, 4, False)]
    assert [r.offset() for r in s._buffers[(T, 0)]] == [5, 6] and s._pending_rows == 2


def test_a_partition_is_cut_into_ranges_of_at_most_range_max_rows_and_committed_past_the_last():
    s = sink_with({(T, 0): list(range(10, 20)), (T, 1): [0, 1]}, range_max_rows=4)
    chunks = s._cut()
    assert [(c[0].partition, c[0].start, c[0].end, len(c[1])) for c in chunks] == [
        (0, 10, 13, 4), (0, 14, 17, 4), (0, 18, 19, 2), (1, 0, 1, 2)]
    assert len({c[0].token for c in chunks}) == 4 and s._pending_rows == 0
    committed = []

    class Consumer:
        def commit(self, offsets, asynchronous):
            committed.extend((tp.partition, tp.offset) for tp in offsets)

    s._consumer = Consumer()
    s._commit([c[0] for c in chunks], threading.Event())
    assert sorted(committed) == [(0, 20), (1, 2)] and s.committed_ranges == 4


def test_consecutive_ledger_ranges_replay_in_one_flush_exactly_as_recorded():
    # recorded with another range_max_rows: a replay keeps the recorded boundaries
    plans = [OffsetRange(T, 0, 0, 5, 1000), OffsetRange(T, 0, 6, 7, 1006)]
    s = sink_with({(T, 0): list(range(0, 11))}, {(T, 0): list(plans)}, range_max_rows=3)
    chunks = s._cut()
    assert [(c[0].start, c[0].end, c[2]) for c in chunks] == [(0, 5, True), (6, 7, True), (8, 10, False)]


def test_stale_ledger_ranges_are_ignored():
    # committed past it already, or a recreated topic whose offset 0 is a different record
    s = sink_with({(T, 0): [7, 8], (T, 1): [0, 1]},
                  {(T, 0): [OffsetRange(T, 0, 2, 4, 1002)], (T, 1): [OffsetRange(T, 1, 0, 1, 999)]})
    chunks = {c[0].partition: c for c in s._cut()}
    assert (chunks[0][0].start, chunks[0][2]) == (7, False)
    assert (chunks[1][0].start, chunks[1][0].end, chunks[1][2]) == (0, 1, False)


def test_retry_backs_off_until_clickhouse_answers_then_resumes():
    s = Sink(SinkSettings(retry_initial_s=0.01, retry_max_s=0.02), client=object())
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("clickhouse down")
        return "stored"

    assert s._with_retry("events", flaky, threading.Event()) == "stored"
    assert len(calls) == 4 and not s.paused and s.last_error is None


def test_retry_gives_up_only_when_stopping():
    s = Sink(SinkSettings(retry_initial_s=0.01), client=object())
    stop = threading.Event()

    def down():
        stop.set()
        raise ConnectionError("down")

    assert s._with_retry("events", down, stop) is _STOPPED
    assert s.paused and "down" in s.last_error
