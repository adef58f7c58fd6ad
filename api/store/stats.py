"""Fleet statistics per agent and version, aggregated from the per-run rollup."""
from __future__ import annotations

from typing import Any

from ..db import Db
from ..pagination import decode_cursor, page_of
from .runs import RunFilters, runs_subquery

QUANTILE_FUNCTION = "quantileExact"


def fleet_stats(db: Db, tenant: str, filters: RunFilters, limit: int, cursor: str | None):
    """One row per (agent_id, agent_version), ordered by that key; cursor = the last key."""
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    inner = runs_subquery(filters, params)
    having = "1"
    after = decode_cursor("stats", cursor, (str, str))
    if after is not None:
        having = "(agent_id, agent_version) > ({c_agent:String}, {c_version:String})"
        params["c_agent"], params["c_version"] = after
    # Latency is the duration of finished runs: a live run has no duration yet. The quantile is
    # QUANTILE_FUNCTION (docs/tables.md recommends the same one in SQL), so the API and an
    # analyst's query agree to the digit; `quantile` would interpolate (and sample past 8192).
    sql = f"""
        SELECT agent_id, agent_version,
               count() AS runs,
               countIf(status != '') AS finished_runs,
               countIf(status = 'FAILURE') AS failures,
               quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, status != '') AS q,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(cost_usd) AS cost_usd,
               sum(llm_calls) AS llm_calls,
               sum(tool_calls) AS tool_calls
        FROM ({inner})
        GROUP BY agent_id, agent_version
        HAVING {having}
        ORDER BY agent_id, agent_version
        LIMIT {{limit:UInt32}}
    """
    rows, next_cursor = page_of("stats", db.rows(sql, params), limit, ["agent_id", "agent_version"])
    return [shape_stats(r) for r in rows], next_cursor


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def shape_stats(r: dict[str, Any]) -> dict[str, Any]:
    finished = int(r["finished_runs"])
    q = list(r["q"] or []) if finished else []
    q = q + [None] * (3 - len(q))
    return {
        "agent_id": r["agent_id"],
        "agent_version": r["agent_version"],
        "runs": int(r["runs"]),
        "finished_runs": finished,
        "failures": int(r["failures"]),
        "failure_rate": (int(r["failures"]) / finished) if finished else None,
        "latency_p50_ms": _finite(q[0]),
        "latency_p95_ms": _finite(q[1]),
        "latency_p99_ms": _finite(q[2]),
        "input_tokens": int(r["input_tokens"]),
        "output_tokens": int(r["output_tokens"]),
        "total_tokens": int(r["input_tokens"]) + int(r["output_tokens"]),
        "cost_usd": float(r["cost_usd"]),
        "llm_calls": int(r["llm_calls"]),
        "tool_calls": int(r["tool_calls"]),
    }
