"""Cost reports: spend and tokens grouped by model, agent, version, provider, day or end user.

Read from ``cost_rollup_daily`` (0007_search_and_costs.sql), which holds one row per tenant,
day, agent, version, provider and model: a month of a busy tenant is a few thousand rows.
Grouping by end user reads ``events`` (the rollup has no user dimension: a user column there
would make it as large as the events), bounded by the time range and the LLM-step condition.
"""
from __future__ import annotations

from typing import Any

from ..db import Db
from .columns import require_column

# group_by name -> (rollup column, events column)
DIMENSIONS = {
    "model": ("request_model", "request_model"),
    "provider": ("provider", "provider"),
    "agent": ("agent_id", "agent_id"),
    "version": ("agent_version", "agent_version"),
    "day": ("day", "toDate(ts)"),
    "user": (None, "end_user_id"),
}
MAX_DIMENSIONS = 3

_ROLLUP_SUMS = """
    sum(calls) AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cached_tokens, sum(cache_write_tokens) AS cache_write_tokens,
    sum(cost_usd) AS cost_usd
"""
_EVENT_SUMS = """
    count() AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cached_tokens, sum(cache_write_tokens) AS cache_write_tokens,
    sum(cost_usd) AS cost_usd
"""
# The rollup's row condition (its materialized view's WHERE), for the events path; qualified,
# since the SELECT's sum(cost_usd) AS cost_usd would shadow the column.
LLM_STEP = ("events.kind = 'STEP' AND (events.step_kind = 'LLM' OR events.request_model != '' "
            "OR events.cost_usd != 0)")


def parse_group_by(text: str) -> list[str]:
    dims = [d.strip() for d in text.split(",") if d.strip()]
    if not dims:
        raise ValueError("group_by is empty")
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown group_by {', '.join(unknown)}; use {'|'.join(DIMENSIONS)}")
    if len(set(dims)) != len(dims):
        raise ValueError("group_by names a dimension twice")
    if len(dims) > MAX_DIMENSIONS:
        raise ValueError(f"group_by takes at most {MAX_DIMENSIONS} dimensions")
    return dims


def cost_report(db: Db, tenant: str, dims: list[str], since_us: int | None, until_us: int | None,
                agent: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Rows of ``{group: {dim: value}, calls, input/output/cached/cache_write tokens, cost}``,
    by day ascending when grouped by day, else by cost descending; plus the totals."""
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    from_events = "user" in dims
    if from_events:
        require_column(db, "events", "end_user_id", "group_by=user")
    col = 1 if from_events else 0
    where = ["tenant_id = {tenant:String}"]
    if from_events:
        where.append(LLM_STEP)
    day = "toDate(ts)" if from_events else "day"
    if since_us is not None:
        # Day granularity on the rollup: a day is in when it overlaps [since, until).
        where.append(f"{day} >= toDate(fromUnixTimestamp64Micro({{since:Int64}}))")
        if from_events:
            where.append("ts >= fromUnixTimestamp64Micro({since:Int64})")
        params["since"] = since_us
    if until_us is not None:
        where.append(f"{day} <= toDate(fromUnixTimestamp64Micro({{until:Int64}} - 1))")
        if from_events:
            where.append("ts < fromUnixTimestamp64Micro({until:Int64})")
        params["until"] = until_us
    if agent is not None:
        where.append("agent_id = {agent:String}")
        params["agent"] = agent
    keys = [f"{DIMENSIONS[d][col]} AS g_{d}" for d in dims]
    order = ("g_day ASC, cost_usd DESC" if "day" in dims else "cost_usd DESC") + ", " + \
        ", ".join(f"g_{d}" for d in dims)
    table, sums = ("events", _EVENT_SUMS) if from_events else ("cost_rollup_daily", _ROLLUP_SUMS)
    rows = db.rows(f"SELECT {', '.join(keys)}, {sums} FROM {table} WHERE {' AND '.join(where)} "
                   f"GROUP BY {', '.join(f'g_{d}' for d in dims)} ORDER BY {order} "
                   "LIMIT {limit:UInt32}", params)
    truncated = len(rows) > limit
    items = [shape_row(r, dims) for r in rows[:limit]]
    total = db.one(f"SELECT {sums} FROM {table} WHERE {' AND '.join(where)}", params) or {}
    return {"group_by": dims, "items": items, "totals": shape_row(total, []), "truncated": truncated}


def shape_row(row: dict[str, Any], dims: list[str]) -> dict[str, Any]:
    group = {d: str(row[f"g_{d}"]) for d in dims}
    out = {k: row.get(k) or 0 for k in ("calls", "input_tokens", "output_tokens", "cached_tokens",
                                          "cache_write_tokens")}
    out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
    out["cost_usd"] = float(row.get("cost_usd") or 0.0)
    return {"group": group, **out}
