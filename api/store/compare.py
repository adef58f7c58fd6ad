"""/v1/compare and /v1/drift over cohorts."""
from __future__ import annotations

import time
from typing import Any

from ..db import Db
from ..pagination import decode_cursor, page_of
from .cohorts import cohort_summaries, cohort_tool_counts, public, tests_between, tool_mix
from .runs import RunFilters


def compare_versions(db: Db, tenant: str, agent: str, a: str, b: str, environment: str | None,
                     since_us: int | None, until_us: int | None, sample_size: int,
                     alpha: float) -> dict[str, Any]:
    filters = RunFilters(agent=agent, environment=environment, since_us=since_us, until_us=until_us)
    params: dict[str, Any] = {"ver_a": a, "ver_b": b}
    cohort = ("multiIf(agent_version = {ver_a:String}, 'a', agent_version = {ver_b:String}, 'b', "
              "NULL)")
    summaries = cohort_summaries(db, tenant, filters, cohort, params, sample_size)
    where = ["agent_id = {agent:String}", "agent_version IN ({ver_a:String}, {ver_b:String})"]
    ev_params: dict[str, Any] = {**params, "agent": agent}
    if environment is not None:
        where.append("environment = {env:String}")
        ev_params["env"] = environment
    if since_us is not None:
        where.append("ts >= fromUnixTimestamp64Micro({since:Int64})")
        ev_params["since"] = since_us
    if until_us is not None:
        where.append("ts < fromUnixTimestamp64Micro({until:Int64})")
        ev_params["until"] = until_us
    tools = cohort_tool_counts(db, tenant, " AND ".join(where),
                               "if(agent_version = {ver_a:String}, 'a', 'b')", ev_params)
    ta, tb = tools.get("a", {}), tools.get("b", {})
    return {
        "agent": agent,
        "a": {"version": a, **public(summaries.get("a"))},
        "b": {"version": b, **public(summaries.get("b"))},
        "tool_mix": tool_mix(ta, tb),
        "tests": tests_between(summaries.get("a"), summaries.get("b"), ta, tb, alpha),
        "alpha": alpha,
    }


def drift(db: Db, tenant: str, agent: str | None, version: str | None, window_h: float,
          baseline_h: float, limit: int, cursor: str | None, sample_size: int, alpha: float,
          now_us: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Per (agent, version) active in the window: the window against the baseline before it."""
    now_us = now_us or int(time.time() * 1_000_000)
    w_start = now_us - int(window_h * 3_600_000_000)
    b_start = w_start - int(baseline_h * 3_600_000_000)
    filters = RunFilters(agent=agent, version=version, since_us=b_start, until_us=now_us)
    params: dict[str, Any] = {"w_start": w_start}
    cohort = ("(agent_id, agent_version, if(started_us >= {w_start:Int64}, 'window', 'baseline'))")
    summaries = cohort_summaries(db, tenant, filters, cohort, params, sample_size)
    keys = sorted({(k[0], k[1]) for k, s in summaries.items() if k[2] == "window"})
    after = decode_cursor("drift", cursor, (str, str))
    if after is not None:
        keys = [k for k in keys if k > tuple(after)]
    page = keys[: limit + 1]
    if not page:
        return [], None
    ev_params: dict[str, Any] = {"w_start": w_start, "b_start": b_start, "now": now_us,
                                 "agents": [k[0] for k in page], "versions": [k[1] for k in page]}
    tools = cohort_tool_counts(
        db, tenant,
        "ts >= fromUnixTimestamp64Micro({b_start:Int64}) AND ts < fromUnixTimestamp64Micro({now:Int64})"
        " AND agent_id IN {agents:Array(String)} AND agent_version IN {versions:Array(String)}",
        "(agent_id, agent_version, if(ts >= fromUnixTimestamp64Micro({w_start:Int64}), 'window', 'baseline'))",
        ev_params,
    )
    rows = []
    for agent_id, ver in page:
        cur, base = summaries.get((agent_id, ver, "window")), summaries.get((agent_id, ver, "baseline"))
        tw, tbase = tools.get((agent_id, ver, "window"), {}), tools.get((agent_id, ver, "baseline"), {})
        tests = tests_between(base, cur, tbase, tw, alpha)
        drifted = [name for name, t in tests.items() if t["significant"]]
        rows.append({"agent_id": agent_id, "agent_version": ver, "window": public(cur),
                     "baseline": public(base), "tests": tests, "drifted": bool(drifted),
                     "drifted_on": drifted})
    return page_of("drift", rows, limit, ["agent_id", "agent_version"])
