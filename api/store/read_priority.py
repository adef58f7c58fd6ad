"""Point reads ahead of the sink's inserts, within a share of the time.

ClickHouse pauses a query of a lower priority (a larger number; the sink's inserts run at
``SinkSettings.insert_priority``, 8) at its next block while one of a higher priority runs;
queries of priority 0 (every other route's) neither wait nor make others wait. A run read is
~4 ms idle since it reads ``run_events`` (it was 15-20 ms, ~80 % of it query planning), and
beside inserts on 2 cores its wall time is mostly waiting for the cores, which the inserts
hold too (bench/run_read_live.py). Reads that never stop (clients polling
back to back) would pause the inserts for good (measured: bench/e2e.py's two back-to-back pollers
stretched idle inserts from ~180 to ~300 ms), so reads take the priority for at most about
``share`` of the time: the inserts always keep the rest.
"""
from __future__ import annotations

import math
import threading
import time
import weakref
from typing import Any, Callable

from ..db import RowReader, error_code
from ..errors import ApiError

READ_FIRST = {"priority": 1}
# ClickHouse refuses any setting from a readonly=1 user (164) or one a profile constrains (452);
# such a reader reads at the default priority rather than not at all.
_REFUSED_SETTING = {164, 452}
_no_priority: "weakref.WeakSet[Any]" = weakref.WeakSet()


class PriorityBudget:
    """The time priority reads held the priority, halved every ``window_s`` (an exponential
    moving sum: no history kept). A read may take the priority while that sum is under the level
    it settles at when reads hold it ``share`` of the time, so reads that never stop get it for
    about ``share`` of the time and occasional ones always. Overlapping reads each count their
    own time: the cap errs on the inserts' side."""

    def __init__(self, share: float = 0.5, window_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.share, self.window_s, self.clock = share, window_s, clock
        self._cap = share * window_s / math.log(2)
        self._held = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def _decay(self, now: float) -> None:
        self._held *= 0.5 ** ((now - self._at) / self.window_s)
        self._at = now

    def allows(self) -> bool:
        with self._lock:
            self._decay(self.clock())
            return self._held < self._cap

    def spent(self, seconds: float) -> None:
        with self._lock:
            self._decay(self.clock())
            self._held += seconds


BUDGET = PriorityBudget()


class DefaultPriority:
    """A RowReader over ``db`` that reads at ClickHouse's default priority whatever the caller
    asks: a run read that must leave the inserts alone (and the "before" arm of the benches)."""

    def __init__(self, db: RowReader) -> None:
        self.db = db

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.db.rows(sql, params)


def read_first(db: RowReader, sql: str, params: dict[str, Any],
               budget: PriorityBudget = BUDGET) -> list[dict[str, Any]]:
    """``db.rows(sql, params)``, at ``READ_FIRST`` when the budget and the server allow it."""
    if db not in _no_priority and budget.allows():
        t = budget.clock()
        try:
            return db.rows(sql, params, READ_FIRST)
        except ApiError as exc:
            if error_code(exc.__cause__ or exc) not in _REFUSED_SETTING:
                raise
            _no_priority.add(db)
        finally:
            budget.spent(budget.clock() - t)
    return db.rows(sql, params)
