"""Run detail reads ahead of the sink's inserts (ClickHouse query priority), and still reads
when a server refuses the setting."""
from __future__ import annotations

from typing import Any

import pytest

from agentstream.api.errors import ApiError
from agentstream.api.store import runs as R

ROW: dict[str, Any] = {
    "run": (None, None, "agent", "1.0", "prod", "", "", "main", "SUCCESS", "", 40.0),
    "kind": "RUN_START", "seq": 0, "event_id": "e0", "ts_us": 10, "step_id": "", "step_kind": "",
    "name": "main", "status": "", "parent_step_id": "", "started_us": 10, "latency_ms": 0.0,
    "attempt": 0, "retry_of": "", "provider": "", "request_model": "", "input_tokens": 0,
    "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0,
    "tool_name": "", "args_digest": "", "failure_type": "", "failure_code": "", "decision_type": "",
    "selected": "", "candidates": [], "reason_code": "", "confidence": None, "signal_type": "",
    "signal_code": "", "signal_value": None, "payload": "{}", "attributes": {},
}


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
    assert db.calls == [R.READ_FIRST]
    # A smaller number runs first: the read must outrank the sink's inserts, and be non-zero
    # (priority 0 takes no part in ClickHouse's priorities).
    assert 0 < R.READ_FIRST["priority"] < INSERT_PRIORITY


@pytest.mark.parametrize("code", [164, 452])  # READONLY, SETTING_CONSTRAINT_VIOLATION
def test_a_server_that_refuses_the_setting_still_gets_the_read(code: int) -> None:
    db = Reader(refuse=code)
    first = R.run_detail(db, "t", "r")
    assert first is not None and first["run"]["event_count"] == 1
    assert db.calls == [R.READ_FIRST, None]
    # remembered: later reads on this reader go straight to the plain form
    assert R.run_detail(db, "t", "r") == first
    assert db.calls == [R.READ_FIRST, None, None]
    assert R.run_detail(Reader(), "t", "r") is not None  # another reader still asks


def test_other_failures_are_not_swallowed() -> None:
    db = Reader(refuse=241)  # MEMORY_LIMIT_EXCEEDED: a real failure, not a refused setting
    with pytest.raises(ApiError):
        R.run_detail(db, "t", "r")
    assert db.calls == [R.READ_FIRST]
