"""Sessions: the runs sharing a ``session_id``, listed with totals, and one session's runs.

A session is not stored as a row of its own: it is an aggregate over the tenant's runs (one
row per run after re-aggregating ``runs``), so it is always consistent with /v1/runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..db import Db
from ..pagination import decode_cursor, page_of
from .runs import RunFilters, runs_subquery, shape_run
from .search import SearchFilters

# Totals over one aggregated run per row (the ``runs_subquery`` columns). The aliases carry a
# t_ prefix: an alias named like an inner column would shadow it inside the aggregates.
SESSION_TOTALS = """
    count() AS t_run_count,
    countIf(status = '') AS t_running_runs,
    countIf(status != '' AND status != 'SUCCESS') AS t_failed_runs,
    toInt64(min(started_us)) AS t_started_us,
    toInt64(max(last_us)) AS t_last_us,
    (max(last_us) - min(started_us)) / 1000 AS t_duration_ms,
    sum(duration_ms) AS t_run_duration_ms,
    sum(step_count) AS t_step_count,
    sum(llm_calls) AS t_llm_calls,
    sum(tool_calls) AS t_tool_calls,
    sum(failure_count) AS t_failure_count,
    sum(input_tokens) AS t_input_tokens,
    sum(output_tokens) AS t_output_tokens,
    sum(input_tokens) + sum(output_tokens) AS t_total_tokens,
    sum(cost_usd) AS t_cost_usd,
    arraySort(groupUniqArray(16)(agent_id)) AS t_agents
"""


@dataclass
class SessionFilters:
    agent: str | None = None
    since_us: int | None = None  # sessions with a run started at or after
    until_us: int | None = None
    min_cost_usd: float | None = None

    def run_filters(self) -> RunFilters:
        return RunFilters(agent=self.agent, since_us=self.since_us, until_us=self.until_us)


def list_sessions(db: Db, tenant: str, f: SessionFilters, limit: int, cursor: str | None):
    """Most recently active first; the cursor is the last row's (last_us, session_id)."""
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    inner = runs_subquery(f.run_filters(), params)
    if f == SessionFilters():
        # Unfiltered (the dashboard's default): the page's sessions are found from the partial
        # runs rows (a session's last activity is max(last_ts) over them, merged or not), and
        # only their runs are re-aggregated; 10M events: 2-4x faster than totalling every session.
        page_ids = _newest_session_ids(db, tenant, limit, cursor)
        if not page_ids:
            return [], None
        params["page_ids"] = page_ids
        inner = inner.replace(" GROUP BY run_id", " AND runs.session_id IN {page_ids:Array(String)} GROUP BY run_id", 1)
    having = ["1"]
    if f.min_cost_usd is not None:
        having.append("t_cost_usd >= {min_cost:Float64}")
        params["min_cost"] = f.min_cost_usd
    after = decode_cursor("sessions", cursor, (int, str))
    if after is not None:
        having.append("(t_last_us, session_id) < ({c_ts:Int64}, {c_id:String})")
        params["c_ts"], params["c_id"] = after
    sql = (f"SELECT session_id, {SESSION_TOTALS} FROM ({inner}) WHERE session_id != '' "
           f"GROUP BY session_id HAVING {' AND '.join(having)} "
           "ORDER BY t_last_us DESC, session_id DESC LIMIT {limit:UInt32}")
    rows = [shape_session(r) for r in db.rows(sql, params)]
    return page_of("sessions", rows, limit, ["last_us", "session_id"])


def _newest_session_ids(db: Db, tenant: str, limit: int, cursor: str | None) -> list[str]:
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    having = "1"
    after = decode_cursor("sessions", cursor, (int, str))
    if after is not None:
        having = "(l, session_id) < ({c_ts:Int64}, {c_id:String})"
        params["c_ts"], params["c_id"] = after
    rows = db.rows("SELECT session_id, toInt64(toUnixTimestamp64Micro(max(last_ts))) AS l FROM runs "
                   "WHERE tenant_id = {tenant:String} AND session_id != '' GROUP BY session_id "
                   f"HAVING {having} ORDER BY l DESC, session_id DESC LIMIT {{limit:UInt32}}", params)
    return [r["session_id"] for r in rows]


def shape_session(row: dict[str, Any]) -> dict[str, Any]:
    out = {k[2:] if k.startswith("t_") else k: v for k, v in row.items()}
    row = out
    out["agents"] = list(row["agents"])
    out["status"] = "RUNNING" if row["running_runs"] else ("FAILURE" if row["failed_runs"] else "SUCCESS")
    return out


def session_detail(db: Db, tenant: str, session_id: str, max_runs: int = 1000) -> dict[str, Any] | None:
    """The session's totals and its runs in start order (at most ``max_runs``; ``truncated``
    says when there were more)."""
    params: dict[str, Any] = {"tenant": tenant, "limit": max_runs + 1}
    inner = runs_subquery(RunFilters(search=SearchFilters(session=session_id)), params)
    runs = db.rows(f"SELECT * FROM ({inner}) ORDER BY started_us, run_id LIMIT {{limit:UInt32}}", params)
    if not runs:
        return None
    truncated = len(runs) > max_runs
    # When there are more, the totals cover every run, not only the ones listed: a second read.
    # Its runs may have aged out since the first; then the totals are those of the runs read.
    row = db.one(f"SELECT session_id, {SESSION_TOTALS} FROM ({inner}) GROUP BY session_id",
                 params) if truncated else None
    totals = shape_session(row) if row is not None else session_totals(session_id, runs)
    return {"session": totals, "runs": [shape_run(r) for r in runs[:max_runs]], "truncated": truncated}


def session_totals(session_id: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: SESSION_TOTALS computed from the aggregated runs rows themselves (one query less)."""
    def add(column: str) -> Any:
        return sum(r[column] for r in runs)

    started, last = min(r["started_us"] for r in runs), max(r["last_us"] for r in runs)
    return shape_session({
        "session_id": session_id, "run_count": len(runs),
        "running_runs": sum(r["status"] == "" for r in runs),
        "failed_runs": sum(r["status"] not in ("", "SUCCESS") for r in runs),
        "started_us": started, "last_us": last, "duration_ms": (last - started) / 1000,
        "run_duration_ms": add("duration_ms"), "step_count": add("step_count"), "llm_calls": add("llm_calls"),
        "tool_calls": add("tool_calls"), "failure_count": add("failure_count"),
        "input_tokens": add("input_tokens"), "output_tokens": add("output_tokens"),
        "total_tokens": add("input_tokens") + add("output_tokens"), "cost_usd": add("cost_usd"),
        "agents": sorted({r["agent_id"] for r in runs})[:16],
    })

