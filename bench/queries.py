"""Loads N synthetic events (default 10M) into its own chDB and times the API's hot queries.

run detail (two ways: the run_id bloom-filter skip index alone, and the runs table as a lookup
for the run's time bounds + the skip index), fleet latency quantiles over a day (hourly rollup)
and version comparison (rollup). Each query is run 20 times after a warm-up; the median is
reported. ``run_detail_ms`` is the API's own ``run_detail()`` (one statement: the run's header
and time bounds from ``runs`` as a scalar subquery, its events ``FINAL`` within those bounds);
the earlier two-statement forms and the other variants are printed beside it. Last line:
JSON with run_detail_ms, fleet_quantiles_ms, compare_ms, and the search, session and cost
queries of issue #20 (``runs_by_*_ms``, ``sessions_list_ms``, ``session_detail_ms``, ``costs_*_ms``).
Usage: python bench/queries.py [--events 10000000]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

LOAD = """
INSERT INTO events (tenant_id, ts, event_id, agent_id, agent_version, environment, run_id, seq, kind,
                    step_kind, name, status, latency_ms, attempt, provider, request_model,
                    input_tokens, output_tokens, cost_usd, tool_name, run_status, duration_ms,
                    session_id, end_user_id, failure_type, failure_code, attributes)
SELECT
    concat('tenant-', toString(r % 20)) AS tenant_id,
    toDateTime64(now64(6) - toIntervalSecond(604800 * (r / {runs:UInt64})) + toIntervalMillisecond(seq * 50), 6, 'UTC') AS ts,
    generateUUIDv4() AS event_id,
    concat('agent-', toString(r % 13)) AS agent_id,
    if(r % 3 = 0, '2.0', '1.0') AS agent_version,
    'prod', concat('run-', toString(r)) AS run_id, seq,
    multiIf(seq = 0, 'RUN_START', seq = 19, 'RUN_END', seq = 7 AND r % 10 = 0, 'FAILURE', 'STEP') AS kind,
    if(kind = 'STEP', if(seq % 2 = 0, 'LLM', 'TOOL'), '') AS step_kind,
    if(kind = 'STEP', if(seq % 2 = 0, 'chat', concat('tool-', toString(seq % 5))), '') AS name,
    if(kind = 'STEP', if(rand() % 50 = 0, 'ERROR', 'OK'), '') AS status,
    if(kind = 'STEP', 5 + (rand() % 2000) / (if(agent_version = '2.0', 1.2, 1.0)), 0) AS latency_ms,
    1, if(step_kind = 'LLM', 'openai', ''), if(step_kind = 'LLM', 'gpt-4o', ''),
    if(step_kind = 'LLM', 100 + rand() % 400, 0), if(step_kind = 'LLM', 20 + rand() % 200, 0),
    if(step_kind = 'LLM', (rand() % 1000) / 100000, 0), if(step_kind = 'TOOL', name, ''),
    if(kind = 'RUN_END', if(r % 10 = 0, 'FAILURE', 'SUCCESS'), ''), if(kind = 'RUN_END', 1000 + rand() % 30000, 0),
    -- search columns (issue #20): sessions of 4 runs of one tenant, 5000 end users, 7 failure
    -- codes (on tenant-0's, -10's… failing runs), 2 attributes
    concat('sess-', toString(intDiv(r, 80)), '-', toString(r % 20)), if(r % 3 = 0, '', concat('u-', toString(r % 5000))),
    if(kind = 'FAILURE', 'TOOL', ''), if(kind = 'FAILURE', concat('code-', toString(r % 7)), ''),
    if(kind = 'STEP', map('customer.tier', if(r % 5 = 0, 'gold', 'free'), 'region', concat('r', toString(r % 9))),
       map())
FROM (SELECT intDiv(number, 20) AS r, number % 20 AS seq FROM numbers({offset:UInt64}, {n:UInt64}))
"""

RUN_DETAIL_INDEX = """
SELECT seq, kind, step_kind, name, status, latency_ms, input_tokens, output_tokens, cost_usd, payload
FROM events WHERE tenant_id = {t:String} AND run_id = {r:String} ORDER BY seq LIMIT 1 BY event_id
"""
RUN_DETAIL_LOOKUP = """
WITH (SELECT (min(started_ts), max(last_ts)) FROM runs WHERE tenant_id = {t:String} AND run_id = {r:String}) AS b
SELECT seq, kind, step_kind, name, status, latency_ms, input_tokens, output_tokens, cost_usd, payload
FROM events
WHERE tenant_id = {t:String} AND ts BETWEEN b.1 AND b.2 AND run_id = {r:String}
ORDER BY seq LIMIT 1 BY event_id
"""
# The run's time bounds as two scalar subqueries on runs (ORDER BY tenant_id, run_id): each is
# folded to a constant before index analysis, so the events read prunes by (tenant_id, ts).
RUN_DETAIL_BOUNDS = """
SELECT seq, kind, step_kind, name, status, latency_ms, input_tokens, output_tokens, cost_usd, payload
FROM events
WHERE tenant_id = {t:String} AND run_id = {r:String}
  AND ts >= (SELECT min(started_ts) FROM runs WHERE tenant_id = {t:String} AND run_id = {r:String})
  AND ts <= (SELECT max(last_ts) FROM runs WHERE tenant_id = {t:String} AND run_id = {r:String})
ORDER BY seq LIMIT 1 BY event_id
"""
# The API's first form: the runs row, then events FINAL by tenant + run (two statements).
API_RUN = """
SELECT run_id, min(started_ts) AS started, max(last_ts) AS last, max(status), sum(event_count)
FROM runs WHERE tenant_id = {t:String} AND run_id = {r:String} GROUP BY run_id
"""
API_EVENTS = """
SELECT kind, seq, event_id, toUnixTimestamp64Micro(ts) AS ts_us, step_id, step_kind, name, status, latency_ms,
       input_tokens, output_tokens, cost_usd, payload, attributes
FROM events FINAL WHERE tenant_id = {t:String} AND run_id = {r:String} ORDER BY seq, ts_us
"""
# The same, with the bounds the runs row already gave passed back: prunes by the sort key.
API_EVENTS_BOUNDED = """
SELECT kind, seq, event_id, toUnixTimestamp64Micro(ts) AS ts_us, step_id, step_kind, name, status, latency_ms,
       input_tokens, output_tokens, cost_usd, payload, attributes
FROM events FINAL WHERE tenant_id = {t:String} AND run_id = {r:String}
  AND ts BETWEEN {lo:DateTime64(6, 'UTC')} AND {hi:DateTime64(6, 'UTC')} ORDER BY seq, ts_us
"""
FLEET_QUANTILES = """
SELECT agent_id, quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_state) AS q, sum(events), sum(failures)
FROM step_rollup_hourly
WHERE tenant_id = {t:String} AND hour >= toStartOfHour(now() - INTERVAL 1 DAY) AND kind = 'STEP'
GROUP BY agent_id ORDER BY agent_id
"""
COMPARE = """
SELECT agent_version,
       sum(runs_ended) AS runs, sum(runs_failed) / greatest(sum(runs_ended), 1) AS run_failure_rate,
       sumIf(failures, kind = 'STEP') / greatest(sumIf(events, kind = 'STEP'), 1) AS step_failure_rate,
       quantilesTDigestMergeIf(0.5, 0.9, 0.99)(latency_state, kind = 'RUN_END') AS run_latency_q,
       sum(cost_usd) AS cost, sum(input_tokens + output_tokens) AS tokens,
       arraySort(x -> -x.2, groupArrayIf((name, events), kind = 'STEP' AND step_kind = 'TOOL')) AS tool_mix
FROM step_rollup_hourly
WHERE tenant_id = {t:String} AND agent_id = {a:String} AND agent_version IN ('1.0', '2.0')
  AND hour >= toStartOfHour(now() - INTERVAL 7 DAY)
GROUP BY agent_version ORDER BY agent_version
"""


def timed_api(client, t: str, r: str, bounded: bool, reps: int = 20) -> tuple[float, int]:
    """Both of the API's round trips (runs row, then events), as one latency."""
    samples, rows = [], 0
    for i in range(reps + 1):
        t0 = time.perf_counter()
        run = client.query(API_RUN, parameters={"t": t, "r": r}).result_rows[0]
        params = {"t": t, "r": r}
        if bounded:
            params.update(lo=run[1], hi=run[2])
        rows = len(client.query(API_EVENTS_BOUNDED if bounded else API_EVENTS, parameters=params).result_rows)
        if i:
            samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), rows


def timed_store(client, t: str, r: str, reps: int = 20) -> tuple[float, int]:
    """The API's own ``run_detail`` (both queries plus shaping the response)."""
    from agentstream.api.db import Db
    from agentstream.api.store.runs import run_detail

    db = Db(client)
    samples, n = [], 0
    for i in range(reps + 1):
        t0 = time.perf_counter()
        detail = run_detail(db, t, r)
        n = sum(len(detail[k]) for k in ("steps", "failures", "decisions", "signals", "other_events"))
        if i:
            samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), n


def timed(client, sql: str, params: dict, reps: int = 20) -> tuple[float, int]:
    client.query(sql, parameters=params)
    samples = []
    rows = 0
    for _ in range(reps):
        t0 = time.perf_counter()
        rows = len(client.query(sql, parameters=params).result_rows)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), rows


def timed_search(client, t: str, probe: int, reps: int = 10) -> dict[str, tuple[float, int]]:
    """/v1/runs' search filters, /v1/sessions and /v1/costs, each through the API's own store
    function (what the route runs), median of ``reps``."""
    from agentstream.api.db import Db
    from agentstream.api.store.costs import cost_report
    from agentstream.api.store.runs import RunFilters, list_runs
    from agentstream.api.store.search import SearchFilters
    from agentstream.api.store.sessions import SessionFilters, list_sessions, session_detail

    db = Db(client)
    week_ago = int((time.time() - 7 * 86400) * 1e6)
    day_ago = int((time.time() - 86400) * 1e6)
    cases = {
        "runs_unfiltered": lambda: list_runs(db, t, RunFilters(), 50, None)[0],
        "runs_by_session": lambda: list_runs(db, t, RunFilters(search=SearchFilters(
            session=f"sess-{probe // 80}-{probe % 20}")), 50, None)[0],
        "runs_by_end_user": lambda: list_runs(db, t, RunFilters(search=SearchFilters(
            end_user=f"u-{probe % 5000}")), 50, None)[0],
        # on a tenant whose runs fail (every tenth run of tenant-0 does)
        "runs_by_failure_code": lambda: list_runs(db, "tenant-0", RunFilters(search=SearchFilters(
            failure_code="code-3")), 50, None)[0],
        "runs_by_tool_day": lambda: list_runs(db, t, RunFilters(since_us=day_ago, search=SearchFilters(
            tool="tool-3")), 50, None)[0],
        "runs_by_model_min_cost": lambda: list_runs(db, t, RunFilters(search=SearchFilters(
            model="gpt-4o", min_cost_usd=0.05)), 50, None)[0],
        "runs_by_attribute": lambda: list_runs(db, t, RunFilters(search=SearchFilters(
            attributes=[("region", "r4")])), 50, None)[0],
        "runs_min_latency": lambda: list_runs(db, t, RunFilters(search=SearchFilters(
            min_duration_ms=30000)), 50, None)[0],
        "sessions_list": lambda: list_sessions(db, t, SessionFilters(), 50, None)[0],
        "session_detail": lambda: session_detail(db, t, f"sess-{probe // 80}-{probe % 20}")["runs"],
        "costs_day_model_week": lambda: cost_report(db, t, ["day", "model"], week_ago, None)["items"],
        "costs_by_user_week": lambda: cost_report(db, t, ["user"], week_ago, None, limit=100)["items"],
    }
    out = {}
    for name, fn in cases.items():
        fn()
        samples, n = [], 0
        for _ in range(reps):
            t0 = time.perf_counter()
            n = len(fn())
            samples.append((time.perf_counter() - t0) * 1000)
        out[name] = (statistics.median(samples), n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    args = ap.parse_args()
    from agentstream.sink import apply_migrations, make_client

    client = make_client(f"chdb://{tempfile.mkdtemp(prefix='querybench-')}")
    apply_migrations(client)
    n = args.events - args.events % 20
    runs = n // 20
    t0 = time.perf_counter()
    step = 1_000_000
    for off in range(0, n, step):
        client.command(LOAD, parameters={"offset": off, "n": min(step, n - off), "runs": runs})
    load_s = time.perf_counter() - t0
    client.command("OPTIMIZE TABLE runs FINAL")
    total = client.query("SELECT count() FROM events").result_rows[0][0]
    print(f"loaded {total:,} events ({runs:,} runs) in {load_s:.1f}s")

    probe = runs // 2 + 7
    t = f"tenant-{probe % 20}"
    r = f"run-{probe}"
    idx_ms, idx_rows = timed(client, RUN_DETAIL_INDEX, {"t": t, "r": r})
    look_ms, look_rows = timed(client, RUN_DETAIL_LOOKUP, {"t": t, "r": r})
    bounds_ms, bounds_rows = timed(client, RUN_DETAIL_BOUNDS, {"t": t, "r": r})
    api_ms, api_rows = timed_api(client, t, r, bounded=False)
    api_b_ms, api_b_rows = timed_api(client, t, r, bounded=True)
    store_ms, store_rows = timed_store(client, t, r)
    fleet_ms, fleet_rows = timed(client, FLEET_QUANTILES, {"t": t})
    cmp_ms, cmp_rows = timed(client, COMPARE, {"t": t, "a": f"agent-{probe % 13}"})
    assert idx_rows == look_rows == bounds_rows == api_rows == api_b_rows == store_rows == 20, \
        (idx_rows, look_rows, bounds_rows, api_rows, api_b_rows, store_rows)
    print(f"run detail, skip index only        : {idx_ms:7.1f} ms ({idx_rows} rows)")
    print(f"run detail, runs lookup + index    : {look_ms:7.1f} ms ({look_rows} rows)")
    print(f"run detail, scalar bounds + index  : {bounds_ms:7.1f} ms ({bounds_rows} rows)")
    print(f"2 stmts: runs row + events FINAL : {api_ms:7.1f} ms ({api_rows} rows)")
    print(f"2 stmts: runs row + bounded FINAL: {api_b_ms:7.1f} ms ({api_b_rows} rows)")
    print(f"API's own run_detail() (what /v1/runs/{{id}} runs): {store_ms:6.1f} ms ({store_rows} events)")
    print(f"fleet quantiles over a day (rollup): {fleet_ms:7.1f} ms ({fleet_rows} agents)")
    print(f"version comparison (rollup)        : {cmp_ms:7.1f} ms ({cmp_rows} versions)")
    search = timed_search(client, t, probe)
    # The machine is shared and noisy: each search figure is also given as a ratio to the plain
    # /v1/runs listing (runs_unfiltered) measured in the same run.
    base = search["runs_unfiltered"][0]
    for name, (ms, n) in search.items():
        print(f"{name:<35}: {ms:7.1f} ms ({n} rows) = {ms / base:4.2f}x the unfiltered listing")
    print(json.dumps({**{f"{k}_ms": round(v[0], 1) for k, v in search.items()},
                      "search_vs_unfiltered": {k: round(v[0] / base, 2) for k, v in search.items()},
                      "run_detail_ms": round(store_ms, 1),
                      "run_detail_index_only_ms": round(idx_ms, 1), "run_detail_lookup_ms": round(look_ms, 1),
                      "run_detail_bounds_ms": round(bounds_ms, 1), "api_run_detail_ms": round(api_ms, 1),
                      "api_run_detail_bounded_ms": round(api_b_ms, 1), "fleet_quantiles_ms": round(fleet_ms, 1),
                      "compare_ms": round(cmp_ms, 1), "events": total, "load_s": round(load_s, 1)}))


if __name__ == "__main__":
    main()
