"""Cohort statistics for /v1/compare (two versions) and /v1/drift (a window against a baseline).

A cohort is a set of runs named by a key expression. Three grouped queries fetch, per cohort:
run outcomes and latency quantiles, bounded samples of per-run latency and cost (for the rank
tests), and tool-call counts (for the tool-mix test). The tests themselves are pure
(``significance``).
"""
from __future__ import annotations

from typing import Any

from ..db import Db
from ..significance import chi_square_homogeneity, ks_2samp, mann_whitney_u, two_proportion_z
from .runs import RunFilters, runs_subquery
from .stats import _finite


def cohort_summaries(db: Db, tenant: str, filters: RunFilters, cohort_sql: str,
                     params: dict[str, Any], sample_size: int) -> dict[Any, dict[str, Any]]:
    """``cohort_sql`` is an expression over the per-run columns (agent_id, agent_version,
    started_us, ...) that yields the cohort key, or NULL for runs in no cohort."""
    params = {**params, "tenant": tenant, "n_sample": sample_size}
    inner = runs_subquery(filters, params)
    rows = db.rows(f"""
        SELECT {cohort_sql} AS cohort,
               count() AS runs,
               countIf(status != '') AS finished_runs,
               countIf(status = 'FAILURE') AS failures,
               quantilesIf(0.5, 0.95, 0.99)(duration_ms, status != '') AS q,
               sum(cost_usd) AS cost_total,
               sum(input_tokens + output_tokens) AS tokens,
               groupArraySampleIf({{n_sample:UInt32}}, 7)(duration_ms, status != '') AS latency_sample,
               groupArraySample({{n_sample:UInt32}}, 7)(cost_usd) AS cost_sample
        FROM ({inner})
        WHERE cohort IS NOT NULL
        GROUP BY cohort
    """, params)
    out = {}
    for r in rows:
        finished = int(r["finished_runs"])
        q = list(r["q"] or []) if finished else []
        q += [None] * (3 - len(q))
        runs = int(r["runs"])
        out[_key(r["cohort"])] = {
            "runs": runs,
            "finished_runs": finished,
            "failures": int(r["failures"]),
            "failure_rate": int(r["failures"]) / finished if finished else None,
            "latency_p50_ms": _finite(q[0]),
            "latency_p95_ms": _finite(q[1]),
            "latency_p99_ms": _finite(q[2]),
            "cost_usd": float(r["cost_total"]),
            "cost_per_run_usd": float(r["cost_total"]) / runs if runs else None,
            "tokens_per_run": int(r["tokens"]) / runs if runs else None,
            "_latency": [float(x) for x in r["latency_sample"]],
            "_cost": [float(x) for x in r["cost_sample"]],
        }
    return out


def cohort_tool_counts(db: Db, tenant: str, where_sql: str, cohort_sql: str,
                       params: dict[str, Any]) -> dict[Any, dict[str, int]]:
    """Tool calls per cohort, from TOOL steps in ``events`` (cohort_sql over event columns)."""
    params = {**params, "tenant": tenant}
    rows = db.rows(f"""
        SELECT {cohort_sql} AS cohort, tool_name, count() AS calls
        FROM events
        WHERE tenant_id = {{tenant:String}} AND kind = 'STEP' AND tool_name != '' AND ({where_sql})
        GROUP BY cohort, tool_name
        HAVING cohort IS NOT NULL
    """, params)
    out: dict[Any, dict[str, int]] = {}
    for r in rows:
        out.setdefault(_key(r["cohort"]), {})[r["tool_name"]] = int(r["calls"])
    return out


def _key(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, tuple)) else v


def public(summary: dict[str, Any] | None) -> dict[str, Any]:
    empty = {"runs": 0, "finished_runs": 0, "failures": 0, "failure_rate": None,
             "latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None,
             "cost_usd": 0.0, "cost_per_run_usd": None, "tokens_per_run": None}
    if summary is None:
        return empty
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def tests_between(a: dict[str, Any] | None, b: dict[str, Any] | None, tools_a: dict[str, int],
                  tools_b: dict[str, int], alpha: float) -> dict[str, Any]:
    a = a or {"failures": 0, "finished_runs": 0, "_latency": [], "_cost": []}
    b = b or {"failures": 0, "finished_runs": 0, "_latency": [], "_cost": []}
    return {
        "failure_rate": two_proportion_z(a["failures"], a["finished_runs"], b["failures"],
                                         b["finished_runs"], alpha),
        "latency_mann_whitney": mann_whitney_u(a["_latency"], b["_latency"], alpha),
        "latency_ks": ks_2samp(a["_latency"], b["_latency"], alpha),
        "cost_mann_whitney": mann_whitney_u(a["_cost"], b["_cost"], alpha),
        "tool_mix_chi_square": chi_square_homogeneity(tools_a, tools_b, alpha),
    }


def tool_mix(tools_a: dict[str, int], tools_b: dict[str, int]) -> list[dict[str, Any]]:
    na, nb = sum(tools_a.values()), sum(tools_b.values())
    out = []
    for tool in sorted(set(tools_a) | set(tools_b)):
        ca, cb = tools_a.get(tool, 0), tools_b.get(tool, 0)
        out.append({"tool": tool, "a_calls": ca, "b_calls": cb,
                    "a_share": ca / na if na else None, "b_share": cb / nb if nb else None})
    return out
