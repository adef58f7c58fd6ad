"""When the sink flushes: adaptive to load, pure (no I/O, a clock passed in) so it is testable.

Busy, a flush waits for ``batch_max_rows`` or ``batch_max_seconds`` (1 s): ClickHouse writes best
in blocks of 10k-100k rows, about once a second per table. Idle, waiting that second only adds
latency, since nothing more is coming: so once a poll comes back empty (the sink has read
everything there is) a batch goes as soon as its oldest record is ``flush_idle_seconds`` old,
but no sooner than ``flush_min_interval_seconds`` after the previous flush. That bounds the parts a
trickle of events can create (at most 1/interval inserts a second per table) while an isolated
run is stored within ~0.1 s of reaching the sink instead of ~1 s.
"""
from __future__ import annotations


class FlushPolicy:
    def __init__(self, max_rows: int, max_seconds: float, idle_seconds: float,
                 min_interval_seconds: float) -> None:
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds
        self.min_interval = min_interval_seconds
        self.caught_up = False
        self.last_flush_at = float("-inf")

    def polled(self, n: int) -> None:
        """After each poll of the sink's main loop: ``n`` records came back."""
        self.caught_up = n == 0

    def flushed(self, now: float) -> None:
        self.last_flush_at = now

    def due(self, pending: int, oldest_at: float | None, now: float) -> bool:
        if not pending:
            return False
        if pending >= self.max_rows:
            return True
        age = now - (oldest_at if oldest_at is not None else now)
        if age >= self.max_seconds:
            return True
        return (self.caught_up and age >= self.idle_seconds
                and now - self.last_flush_at >= self.min_interval)
