"""GET /v1/runs/{id}'s read on a live table: while inserts go on, and right after a run landed.

    python bench/run_read_live.py [--events 1000000] [--seconds 20] [--writers 1]

Loads ``--events`` synthetic events (bench/queries.py's generator) into its own chDB and merges
them, then keeps inserting: each writer thread, on its own handle as the sink's insert threads
are, stores a fresh 5-event run every ``--every`` s (a block per run, so the tables carry the
unmerged parts a trickle of inserts leaves between merges) and hands its id to the reader. The
reader, on a handle of its own as the API's, runs the API's ``run_detail`` (what
GET /v1/runs/{id} runs) in turn on the newest stored run (what a user who just saw a run end
asks for), on an old, merged run and on an unknown run (a 404), and reports p50/p99/max of each;
a just-stored run read back without all of its events counts as ``incomplete`` (must be 0).
Last line: JSON of the figures.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid

from e2e_hops import pct
from queries import LOAD

# One row of a run inserted the way the sink's rows land (the columns the views read).
INSERT_RUN = """
INSERT INTO events (tenant_id, ts, event_id, agent_id, agent_version, environment, run_id, seq, kind,
                    step_kind, name, status, latency_ms, run_status, duration_ms, attributes)
SELECT {tenant:String}, now64(6) + toIntervalMicrosecond(number), generateUUIDv4(), 'live-agent', '1.0',
       'prod', {run_id:String}, number,
       multiIf(number = 0, 'RUN_START', number = 4, 'RUN_END', 'STEP'),
       if(number IN (1, 2, 3), 'TOOL', ''), if(number = 0, 'main', concat('tool-', toString(number))),
       if(number IN (1, 2, 3), 'OK', ''), if(number IN (1, 2, 3), 12.5, 0),
       if(number = 4, 'SUCCESS', ''), if(number = 4, 40.0, 0), map('team', 'core')
FROM numbers(5)"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--writers", type=int, default=1)
    ap.add_argument("--every", type=float, default=0.1, help="seconds between a writer's runs")
    a = ap.parse_args()

    from agentstream.api.db import Db
    from agentstream.api.store.runs import run_detail
    from agentstream.sink import apply_migrations, make_client

    path = tempfile.mkdtemp(prefix="runreadbench-")
    main_client = make_client(f"chdb://{path}")
    apply_migrations(main_client)
    runs = max(1, a.events // 20)
    t0 = time.perf_counter()
    for off in range(0, a.events, 500_000):
        main_client.command(LOAD, parameters={"offset": off, "n": min(500_000, a.events - off), "runs": runs})
    main_client.command("OPTIMIZE TABLE events FINAL")
    main_client.command("OPTIMIZE TABLE runs FINAL")
    print(f"loaded {a.events} events in {time.perf_counter() - t0:.1f}s", flush=True)

    tenant = "tenant-0"
    latest: list[str] = []
    stop = threading.Event()

    def write() -> None:
        client = make_client(f"chdb://{path}")
        while not stop.is_set():
            rid = f"live-{uuid.uuid4().hex}"
            client.command(INSERT_RUN, parameters={"tenant": tenant, "run_id": rid})
            latest.append(rid)
            stop.wait(a.every)

    writers = [threading.Thread(target=write, daemon=True) for _ in range(a.writers)]
    for w in writers:
        w.start()
    while not latest:
        time.sleep(0.01)
    reader = make_client(f"chdb://{path}")
    db = Db(reader)
    forms = {"run_detail": lambda r: run_detail(db, tenant, r)}
    old = f"run-{(runs // 2) // 20 * 20}"  # tenant-0's runs are those with r % 20 == 0
    cases = ("new", "old", "missing")
    ms: dict[str, list[float]] = {f"{k}_{w}": [] for k in forms for w in cases}
    incomplete = 0  # a stored run read back without all of its 5 events (must stay 0)
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        rid = latest[-1]
        for name, f in forms.items():
            for which, r in (("new", rid), ("old", old), ("missing", f"missing-{uuid.uuid4().hex}")):
                t = time.perf_counter()
                out = f(r)
                ms[f"{name}_{which}"].append((time.perf_counter() - t) * 1000)
                if which == "new" and (out is None or out["run"]["event_count"] != 5):
                    incomplete += 1
    stop.set()
    for w in writers:
        w.join()
    parts = main_client.query("SELECT table, count() FROM system.parts WHERE active AND table IN "
                              "('events', 'runs') GROUP BY table").result_rows
    out = {k: {"p50_ms": round(pct(v, 0.5), 1), "p99_ms": round(pct(v, 0.99), 1),
               "max_ms": round(max(v), 1), "n": len(v)} for k, v in ms.items()}
    for k, v in out.items():
        print(f"{k:22s} p50 {v['p50_ms']:7.1f} ms  p99 {v['p99_ms']:7.1f} ms  max {v['max_ms']:7.1f} ms  n {v['n']}")
    print(f"runs written: {len(latest)}; active parts at the end: {dict(parts)}; "
          f"runs read back incomplete: {incomplete}")
    print(json.dumps({"events": a.events, "writers": a.writers, "every_s": a.every, "forms": out,
                      "incomplete": incomplete}))


if __name__ == "__main__":
    main()
