"""Cost reports: spend and tokens grouped by model, agent, version, provider, day or end user.

Read from the daily cost rollups: ``cost_rollup_daily`` (0007: per day, agent, version,
provider and model; a month of a busy tenant is a few thousand rows) and
``cost_rollup_daily_user`` (0009: per day, end user, agent and model). A grouping neither
answers (the user with the version or provider) reads ``events``, bounded by the time range
and the same LLM-step condition as the rollups' views.
"""
from __future__ import annotations

from typing import Any

from ..db import Db
from .columns import require_column

# group_by name -> its events expression; each rollup maps the names it can answer to columns.
DIMENSIONS = {"model": "request_model", "provider": "provider", "agent": "agent_id",
              "version": "agent_version", "day": "toDate(ts)", "user": "end_user_id"}
ROLLUPS = [
    ("cost_rollup_daily", {"model": "request_model", "provider": "provider", "agent": "agent_id",
                           "version": "agent_version", "day": "day"}),
    ("cost_rollup_daily_user", {"user": "end_user_id", "agent": "agent_id", "model": "request_model",
                                "day": "day"}),
]
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
    if "user" in dims:
        require_column(db, "events", "end_user_id", "group_by=user")
    table, cols = next(((t, c) for t, c in ROLLUPS if set(dims) <= set(c)), ("events", DIMENSIONS))
    from_events = table == "events"
    where = ["tenant_id = {tenant:String}"]
    if from_events:
        where.append(LLM_STEP)
    day = "toDate(ts)" if from_events else "day"
    if since_us is not None:
        # Day granularity on the rollups: a day is in when it overlaps [since, until).
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
    keys = [f"{cols[d]} AS g_{d}" for d in dims]
    order = ("g_day ASC, cost_usd DESC" if "day" in dims else "cost_usd DESC") + ", " + \
        ", ".join(f"g_{d}" for d in dims)
    sums = _EVENT_SUMS if from_events else _ROLLUP_SUMS
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
