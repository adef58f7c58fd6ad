"""Does tenant B's GET /v1/runs wait behind tenant A's heavy /v1/sql? Measured side by side.

Two set-ups of the same app in one run, alternating rounds: ``shared`` puts the routes and /v1/sql
on one ClickHouse client (how the API was before issue #15: one chDB handle, one lock, so every
query waited for the one before), ``separate`` is the app as built (its own pools, SQL on its own
threads behind a per-tenant limiter). In each round A sends three ~2 s queries (sleepEachRow, so
they hold a connection without burning the CPU) while B requests ``/v1/runs?limit=1`` in a loop.
Also times the /v1/sql rewrite (parse, scope, generate) of a realistic query.
Last line: JSON with B's median and max latency per set-up, their ratio, and the rewrite's ms.
Usage: python bench/sql_fairness.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

HEAVY = "SELECT sum(sleepEachRow(0.5)) FROM (SELECT * FROM events WHERE kind = 'RUN_START' LIMIT 4)"
LOAD = """
INSERT INTO events (tenant_id, ts, event_id, agent_id, agent_version, environment, run_id, seq, kind)
SELECT if(number % 2 = 0, 'a', 'b'), now64(6) - toIntervalSecond(number), generateUUIDv4(), 'agent',
       '1.0', 'prod', concat('run-', toString(intDiv(number, 2))), 0, 'RUN_START'
FROM numbers(2000)
"""
REWRITE = ("WITH costly AS (SELECT run_id FROM runs WHERE cost_usd > 0) "
           "SELECT e.agent_id, count(), quantile(0.9)(latency_ms) FROM events AS e "
           "JOIN alerts AS a USING (run_id) WHERE e.run_id IN (SELECT run_id FROM costly) "
           "GROUP BY e.agent_id ORDER BY 2 DESC LIMIT 10")


def one_round(client, keys: Path, shared: bool) -> list[float]:
    from fastapi.testclient import TestClient

    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.db import Db
    from agentstream.api.settings import ApiSettings

    app = create_app(ApiSettings(api_keys_file=keys, bootstrap_servers="",
                                 sql_max_concurrent_per_tenant=3), client=client)
    state = app.state.agentstream
    if shared:
        state.db = state.extras["sql_db"] = Db(client)
    ka = {"Authorization": "Bearer " + add_key(keys, "a", scopes=["read"], name="a")}
    kb = {"Authorization": "Bearer " + add_key(keys, "b", scopes=["read"], name="b")}
    took: list[float] = []
    with TestClient(app) as api:
        api.get("/v1/runs?limit=1", headers=kb)  # warm: connections, catalog
        heavy = [threading.Thread(target=api.post, args=("/v1/sql",),
                                  kwargs={"json": {"sql": HEAVY}, "headers": ka}) for _ in range(3)]
        for t in heavy:
            t.start()
        time.sleep(0.3)
        while any(t.is_alive() for t in heavy) and len(took) < 60:
            t0 = time.perf_counter()
            api.get("/v1/runs?limit=1", headers=kb)
            took.append((time.perf_counter() - t0) * 1000)
        for t in heavy:
            t.join()
    return took


def rewrite_ms(n: int = 200) -> float:
    from agentstream.api.sql.rewrite import scope_query

    tables = {"events", "runs", "alerts"}
    for _ in range(20):
        scope_query(REWRITE, tables, "default")
    t0 = time.perf_counter()
    for _ in range(n):
        scope_query(REWRITE, tables, "default")
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from agentstream.sink import apply_migrations, make_client

    work = Path(tempfile.mkdtemp(prefix="agentstream-sqlfair-"))
    client = make_client(f"chdb://{work}/chdb")
    apply_migrations(client)
    client.command(LOAD)
    got: dict[str, list[float]] = {"shared": [], "separate": []}
    for r in range(args.rounds):
        for mode in ("shared", "separate"):
            took = one_round(client, work / f"keys-{mode}-{r}.json", mode == "shared")
            got[mode] += took
            print(f"round {r} {mode:8s}: B n={len(took):2d} median={statistics.median(took):7.0f} ms "
                  f"max={max(took):7.0f} ms")
    fig = {f"{m}_{k}_ms": round(f(v), 1) for m, v in got.items()
           for k, f in (("median", statistics.median), ("max", max))}
    fig["median_ratio_shared_over_separate"] = round(fig["shared_median_ms"] / fig["separate_median_ms"], 1)
    fig["rewrite_ms"] = round(rewrite_ms(), 2)
    print(f"B waits {fig['median_ratio_shared_over_separate']}x longer (median) on a shared client; "
          f"the rewrite takes {fig['rewrite_ms']} ms")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
