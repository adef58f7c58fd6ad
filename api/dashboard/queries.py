"""The dashboard's own read queries (what the /v1 API does not serve): fleet trend series.

Every query is bound to the session's tenant through ``{tenant:String}``, like the API's stores.
"""
from __future__ import annotations

import math
import time
from typing import Any

from agentstream.api.db import Db
from agentstream.api.store.runs import RunFilters, runs_subquery

MAX_WINDOW_S = 7 * 86400
BUCKETS = 24


def _bucket_seconds(span_s: float) -> int:
    """A round bucket so the series has about BUCKETS points over the span."""
    raw = max(span_s / BUCKETS, 10)
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if step >= raw:
            return step
    return 86400


def fleet_series(db: Db, tenant: str, window_s: int | None = None) -> dict[str, Any]:
    """Per (agent, version), one point per time bucket: runs, failure rate, p95, tokens, cost.

    With no window, the window is fitted to the tenant's data in the last 7 days, so a demo with
    ten minutes of history and a fleet with a week both get readable sparklines.
    """
    now_us = int(time.time() * 1e6)
    params: dict[str, Any] = {"tenant": tenant}
    if window_s is None:
        since = now_us - MAX_WINDOW_S * 1_000_000
        inner = runs_subquery(RunFilters(since_us=since), params)
        span = db.one(f"SELECT min(started_us) AS lo, max(started_us) AS hi, count() AS n FROM ({inner})", params)
        if not span or not span["n"]:
            return {"bucket_s": 0, "since_us": since, "until_us": now_us, "series": []}
        lo = int(span["lo"])
        window_s = max(60, math.ceil((now_us - lo) / 1e6))
    window_s = min(int(window_s), MAX_WINDOW_S)
    step = _bucket_seconds(window_s)
    since_us = now_us - window_s * 1_000_000
    # Align the first bucket to the step so buckets are stable between refreshes.
    since_us -= since_us % (step * 1_000_000)
    params = {"tenant": tenant, "step_us": step * 1_000_000, "since_us": since_us}
    inner = runs_subquery(RunFilters(since_us=since_us), params)
    rows = db.rows(f"""
        SELECT agent_id, agent_version,
               intDiv(started_us - {{since_us:Int64}}, {{step_us:Int64}}) AS b,
               count() AS runs,
               countIf(status != '') AS finished,
               countIf(status = 'FAILURE') AS failures,
               quantileExactIf(0.95)(duration_ms, status != '') AS p95,
               sum(input_tokens + output_tokens) AS tokens,
               sum(cost_usd) AS cost
        FROM ({inner})
        GROUP BY agent_id, agent_version, b
        ORDER BY agent_id, agent_version, b
    """, params)
    n = max(1, math.ceil((now_us - since_us) / (step * 1_000_000)))
    xs = [(since_us + i * step * 1_000_000) // 1_000_000 for i in range(n)]
    series: dict[tuple[str, str], dict[str, list]] = {}
    for r in rows:
        key = (r["agent_id"], r["agent_version"])
        s = series.setdefault(key, {k: [None] * n for k in ("runs", "failure_rate", "p95_ms", "tokens", "cost_usd")})
        i = int(r["b"])
        if not 0 <= i < n:
            continue
        finished = int(r["finished"])
        s["runs"][i] = int(r["runs"])
        s["failure_rate"][i] = (int(r["failures"]) / finished) if finished else None
        p95 = float(r["p95"]) if finished else None
        s["p95_ms"][i] = p95 if p95 is not None and math.isfinite(p95) else None
        s["tokens"][i] = int(r["tokens"])
        s["cost_usd"][i] = float(r["cost"])
    # Buckets with no runs are zero runs/tokens/cost (not unknown); rates and latency stay gaps.
    for s in series.values():
        for k in ("runs", "tokens", "cost_usd"):
            s[k] = [v or 0 for v in s[k]]
    return {
        "bucket_s": step, "since_us": since_us, "until_us": now_us, "x": xs,
        "series": [{"agent_id": a, "agent_version": v, **s} for (a, v), s in sorted(series.items())],
    }


CDF_POINTS = [i / 50 for i in range(1, 51)]


def _finite(xs: list[Any]) -> list[float | None]:
    """ClickHouse quantiles of an empty group are nan; JSON has no nan, so they become null."""
    return [float(x) if x is not None and math.isfinite(float(x)) else None for x in xs]


def version_distributions(db: Db, tenant: str, agent: str, versions: list[str]) -> dict[str, Any]:
    """Per version: the run-duration and cost-per-run distributions as quantile curves (CDFs)."""
    params: dict[str, Any] = {"tenant": tenant, "versions": versions}
    inner = runs_subquery(RunFilters(agent=agent), params)
    levels = ", ".join(repr(q) for q in CDF_POINTS)
    rows = db.rows(f"""
        SELECT agent_version,
               quantilesIf({levels})(duration_ms, status != '') AS latency,
               quantiles({levels})(cost_usd) AS cost,
               countIf(status != '') AS finished,
               count() AS runs
        FROM ({inner})
        WHERE agent_version IN {{versions:Array(String)}}
        GROUP BY agent_version
    """, params)
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r["agent_version"]] = {
            "runs": int(r["runs"]), "finished": int(r["finished"]), "levels": CDF_POINTS,
            "latency_ms": _finite(r["latency"]) if int(r["finished"]) else [],
            "cost_usd": _finite(r["cost"]),
        }
    # Failures by type and code, per version: what the failure-rate difference is made of.
    codes = db.rows("""
        SELECT agent_version, concat(failure_type, ':', failure_code) AS code, count() AS n
        FROM events
        WHERE tenant_id = {tenant:String} AND agent_id = {agent:String}
          AND agent_version IN {versions:Array(String)} AND kind = 'FAILURE'
        GROUP BY agent_version, code ORDER BY n DESC LIMIT 200
    """, {"tenant": tenant, "agent": agent, "versions": versions})
    for r in codes:
        if r["agent_version"] in out:
            out[r["agent_version"]].setdefault("failure_codes", {})[r["code"]] = int(r["n"])
    return {"agent": agent, "versions": out}


# metric -> (SQL aggregate over one bucket's runs, unit)
DRIFT_METRICS = {
    "failure_rate": ("countIf(status = 'FAILURE') / nullIf(countIf(status != ''), 0)", "ratio"),
    "latency_p95_ms": ("quantileExactIf(0.95)(duration_ms, status != '')", "ms"),
    "latency_p50_ms": ("quantileExactIf(0.5)(duration_ms, status != '')", "ms"),
    "cost_per_run_usd": ("avg(cost_usd)", "usd"),
    "tokens_per_run": ("avg(input_tokens + output_tokens)", "tokens"),
    "retries_per_run": ("avg(retry_count)", "count"),
    "tool_calls_per_run": ("avg(tool_calls)", "count"),
}


def drift_series(db: Db, tenant: str, agent: str, version: str | None, metric: str,
                 window_s: int | None = None, baseline_fraction: float = 1 / 3, k: float = 2.0) -> dict[str, Any]:
    """The metric per time bucket for one agent (and version), with a baseline band.

    The band is mean ± k·σ of the bucket values in the first ``baseline_fraction`` of the range
    (at least three buckets): where the series leaves it is where the behaviour moved away from
    how the version started out. σ is floored at 5% of the mean so a flat baseline still has a band.
    """
    if metric not in DRIFT_METRICS:
        raise ValueError(f"metric must be one of {sorted(DRIFT_METRICS)}")
    expr, unit = DRIFT_METRICS[metric]
    now_us = int(time.time() * 1e6)
    params: dict[str, Any] = {"tenant": tenant}
    filters = RunFilters(agent=agent, version=version or None, since_us=now_us - MAX_WINDOW_S * 1_000_000)
    if window_s is None:
        span = db.one(f"SELECT min(started_us) AS lo, count() AS n FROM ({runs_subquery(filters, params)})", params)
        if not span or not span["n"]:
            return {"metric": metric, "unit": unit, "x": [], "y": [], "runs": [], "band": None, "bucket_s": 0}
        window_s = max(600, math.ceil((now_us - int(span["lo"])) / 1e6))
    window_s = min(int(window_s), MAX_WINDOW_S)
    step = _bucket_seconds(window_s)
    since_us = now_us - window_s * 1_000_000
    since_us -= since_us % (step * 1_000_000)
    params = {"tenant": tenant, "step_us": step * 1_000_000, "since_us": since_us}
    filters.since_us = since_us
    rows = db.rows(f"""
        SELECT intDiv(started_us - {{since_us:Int64}}, {{step_us:Int64}}) AS b, {expr} AS v, count() AS n
        FROM ({runs_subquery(filters, params)})
        GROUP BY b ORDER BY b
    """, params)
    n = max(1, math.ceil((now_us - since_us) / (step * 1_000_000)))
    xs = [(since_us + i * step * 1_000_000) // 1_000_000 for i in range(n)]
    ys: list[float | None] = [None] * n
    counts = [0] * n
    for r in rows:
        i = int(r["b"])
        if 0 <= i < n:
            v = r["v"]
            ys[i] = float(v) if v is not None and math.isfinite(float(v)) else None
            counts[i] = int(r["n"])
    have = [(i, v) for i, v in enumerate(ys) if v is not None]
    band = None
    if len(have) >= 4:
        base_n = max(3, int(len(have) * baseline_fraction))
        base = [v for _, v in have[:base_n]]
        mean = sum(base) / len(base)
        sd = math.sqrt(sum((v - mean) ** 2 for v in base) / max(1, len(base) - 1))
        sd = max(sd, abs(mean) * 0.05, 1e-9)
        band = {"mean": mean, "lo": max(0.0, mean - k * sd),
                "hi": mean + k * sd, "k": k, "until_s": xs[have[base_n - 1][0]] + step,
                "baseline_buckets": base_n}
    return {"metric": metric, "unit": unit, "x": xs, "y": ys, "runs": counts, "band": band, "bucket_s": step,
            "since_us": since_us, "until_us": now_us}
