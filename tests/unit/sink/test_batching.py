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


def sink_with(buffers: dict, plans: dict | None = None) -> Sink:
    s = Sink(SinkSettings(topics=["events"]), client=object())
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
    assert [r.offset() for r in s._buffers[(T, 0)]] == [9, 10] and s._pending_rows == 2
    nxt = s._cut()[0][0]
    assert (nxt.start, nxt.end, nxt.token) == (9, 10, f"{T}/0/9-10@1009")


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
