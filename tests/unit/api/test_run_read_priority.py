"""Run detail reads ahead of the sink's inserts (ClickHouse query priority), and still reads
when a server refuses the setting."""
from __future__ import annotations

from typing import Any

import pytest

from agentstream.api.errors import ApiError
from agentstream.api.store import read_priority as P
from agentstream.api.store import runs as R

from run_event_codec import encode

EVENT: dict[str, Any] = {
    "kind": "RUN_START", "seq": 0, "event_id": "e0", "ts_us": 10, "step_id": "", "step_kind": "",
    "name": "main", "status": "", "parent_step_id": "", "started_us": 10, "latency_ms": 0.0,
    "attempt": 0, "retry_of": "", "provider": "", "request_model": "", "input_tokens": 0,
    "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0,
    "tool_name": "", "args_digest": "", "failure_type": "", "failure_code": "", "decision_type": "",
    "selected": "", "candidates": [], "reason_code": "", "confidence": None, "signal_type": "",
    "signal_code": "", "signal_value": None, "payload": "{}", "attributes": {},
    "agent_id": "agent", "agent_version": "1.0", "environment": "prod", "session_id": "",
    "parent_run_id": "", "run_status": "SUCCESS", "outcome": "", "duration_ms": 40.0,
    "inserted_ms": 1,
}
# a run_events row (0010_run_events.sql), as the view writes it
ROW: dict[str, Any] = {"detail": encode(EVENT)}


class ClickHouseError(Exception):
    """Shaped like clickhouse-connect's: the server's message leads with its code."""


class Reader:
    """A RowReader whose server refuses query settings with ``refuse`` (a ClickHouse code)."""

    def __init__(self, refuse: int | None = None) -> None:
        self.refuse = refuse
        self.calls: list[dict[str, Any] | None] = []

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.calls.append(settings)
        if settings and self.refuse is not None:
            cause = ClickHouseError(f"Code: {self.refuse}. DB::Exception: Cannot modify 'priority' "
                                    "setting in readonly mode. (READONLY)")
            raise ApiError(500, "query_failed", "the query failed inside ClickHouse") from cause
        return [dict(ROW)]


def test_the_point_read_asks_for_priority_over_inserts() -> None:
    from agentstream.sink.writer import INSERT_PRIORITY

    db = Reader()
    detail = R.run_detail(db, "t", "r")
    assert detail is not None and detail["run"]["status"] == "SUCCESS"
    assert db.calls == [P.READ_FIRST]
    # A smaller number runs first: the read must outrank the sink's inserts, and be non-zero
    # (priority 0 takes no part in ClickHouse's priorities).
    assert 0 < P.READ_FIRST["priority"] < INSERT_PRIORITY


@pytest.mark.parametrize("code", [164, 452])  # READONLY, SETTING_CONSTRAINT_VIOLATION
def test_a_server_that_refuses_the_setting_still_gets_the_read(code: int) -> None:
    db = Reader(refuse=code)
    first = R.run_detail(db, "t", "r")
    assert first is not None and first["run"]["event_count"] == 1
    assert db.calls == [P.READ_FIRST, None]
    # remembered: later reads on this reader go straight to the plain form
    assert R.run_detail(db, "t", "r") == first
    assert db.calls == [P.READ_FIRST, None, None]
    assert R.run_detail(Reader(), "t", "r") is not None  # another reader still asks


def test_other_failures_are_not_swallowed() -> None:
    db = Reader(refuse=241)  # MEMORY_LIMIT_EXCEEDED: a real failure, not a refused setting
    with pytest.raises(ApiError):
        R.run_detail(db, "t", "r")
    assert db.calls == [P.READ_FIRST]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_occasional_reads_always_take_the_priority() -> None:
    clock = Clock()
    budget = P.PriorityBudget(share=0.5, window_s=1.0, clock=clock)
    for _ in range(100):  # a 20 ms read every 200 ms: 10 % of the time
        assert budget.allows()
        clock.now += 0.02
        budget.spent(0.02)
        clock.now += 0.18


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_reads_back_to_back_leave_the_inserts_the_rest_of_the_time(share: float) -> None:
    clock = Clock()
    budget = P.PriorityBudget(share=share, window_s=1.0, clock=clock)
    prioritized = total = 0.0
    for _ in range(3000):  # 20 ms reads with no gap, for 60 s
        first = budget.allows()
        clock.now += 0.02
        if first:
            budget.spent(0.02)
            prioritized += 0.02
        total += 0.02
    assert share - 0.05 < prioritized / total < share + 0.05


def test_read_first_falls_back_to_a_plain_read_once_the_budget_is_spent() -> None:
    clock = Clock()
    budget = P.PriorityBudget(share=0.5, window_s=1.0, clock=clock)
    budget.spent(10.0)
    db = Reader()
    assert P.read_first(db, "SELECT 1", {}, budget) == [ROW]
    assert db.calls == [None]
    clock.now += 10.0  # the held time decays: reads take the priority again
    P.read_first(db, "SELECT 1", {}, budget)
    assert db.calls == [None, P.READ_FIRST]
