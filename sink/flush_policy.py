"""When the sink flushes: adaptive to load, pure (no I/O, a clock passed in) so it is testable.

Busy, a flush waits for ``batch_max_rows`` or ``batch_max_seconds`` (1 s): ClickHouse writes best
in blocks of 10k-100k rows, about once a second per table. Idle, waiting that second only adds
latency, since nothing more is coming: so once a poll comes back empty (the sink has read
everything there is) a batch goes as soon as its oldest record is ``flush_idle_seconds`` old,
but no sooner than ``flush_min_interval_seconds`` after the previous flush. That bounds the parts a
trickle of events can create (at most 1/interval inserts a second per table) while an isolated
run is stored within ~0.1 s of reaching the sink instead of ~1 s.

Inserts cost mostly per insert, not per row: on chDB an Avro insert costs ~125 ms of CPU
whatever its size (~95 ms of it ClickHouse analysing the staging view's query, the rest the
views on ``events``), and a flush is one insert per topic (one per partition range with
``insert_per_flush`` off). So a flush is also held back until ``insert_seconds / insert_share``
after the previous one, where ``insert_seconds`` is what the last stored flush's inserts took:
a stream that makes inserts expensive gets fewer, larger ones, up to ``max_busy_seconds`` apart
(the latency bound under load). A flush of fewer than ``busy_rows`` rows sets no gap: at idle and at light load (probe
runs every 200 ms, a few thousand events a second) a flush's small insert still costs ~125-160
ms on a busy machine, and a gap of twice that held every batch back (emit -> queryable p99
0.67 -> 1.5-1.9 s idle in bench/e2e.py) to save inserts that cost little in all. The gap holds
a batch only while records keep arriving: one nothing was added to for the minimum interval
(the tail of a burst) has nothing more to share the insert with, and goes by the other rules.
bench/sink_cpu.py measures the cost per insert and per event with and without it.
"""
from __future__ import annotations


class FlushPolicy:
    def __init__(self, max_rows: int, max_seconds: float, idle_seconds: float,
                 min_interval_seconds: float, insert_share: float = 0.0,
                 max_busy_seconds: float = 0.0, busy_rows: int = 0) -> None:
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds
        self.min_interval = min_interval_seconds
        self.insert_share = insert_share
        self.max_busy_seconds = max_busy_seconds
        self.busy_rows = busy_rows
        self.caught_up = False
        self.last_flush_at = float("-inf")
        self.gap = 0.0  # the least time between flushes the last stored flush's cost asks for
        self.added_at = float("-inf")  # when records were last added to the batch

    def polled(self, n: int) -> None:
        """After each poll of the sink's main loop: ``n`` records came back."""
        self.caught_up = n == 0

    def added(self, now: float) -> None:
        """Records were added to the batch."""
        self.added_at = now

    def flushed(self, now: float) -> None:
        self.last_flush_at = now

    def stored(self, insert_seconds: float, rows: int) -> None:
        """A flush of ``rows`` rows is stored: its inserts took ``insert_seconds`` (summed over
        its ranges)."""
        if self.insert_share > 0 and rows >= self.busy_rows:
            self.gap = min(self.max_busy_seconds, insert_seconds / self.insert_share)
        else:
            self.gap = 0.0

    def due(self, pending: int, oldest_at: float | None, now: float) -> bool:
        if not pending:
            return False
        if pending >= self.max_rows:
            return True
        since = now - self.last_flush_at
        if since < self.gap and now - self.added_at < self.min_interval:
            return False  # the inserts are expensive for this stream, and it flows: let the batch grow
        age = now - (oldest_at if oldest_at is not None else now)
        if age >= self.max_seconds:
            return True
        return self.caught_up and age >= self.idle_seconds and since >= self.min_interval
