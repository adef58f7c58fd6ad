"""GET /v1/runs/{id}'s read on a live table: where its time goes, and what inserts beside it cost.

    python bench/run_read_live.py [--events 1000000] [--seconds 10] [--rounds 2] [--rows 100]

Loads ``--events`` synthetic events (bench/queries.py's generator) into its own chDB and merges
them, then:

1. **breakdown**, nothing else running: the read of a just-stored run taken apart (p50 of
   ``--samples``): planning alone (``EXPLAIN``) and execution of its two parts (the run's header
   from ``runs``, its events), the one statement the API sends (engine + transport, raw bytes),
   the same decoded into row dicts (``decode``: clickhouse-connect's Native decoding), shaping
   them into the run detail (pure Python) and rendering the response (``RunDetail`` + JSON);
2. **idle**: the API's ``run_detail`` (what GET /v1/runs/{id} runs) in turn on the newest stored
   run, an old merged run and an unknown run (a 404);
3. **live**: ``--writers`` threads, each on its own handle as the sink's insert threads are,
   insert ``--rows`` runs of 5 events (Python rows through clickhouse-connect, as the sink's
   mapper path does; 0 = one run through a server-side ``INSERT … SELECT``) every ``--every`` s,
   while the reader repeats step 2 (back to back, or resting ``--pause`` s between rounds, as a
   user opening runs would). Two arms alternate, ``--rounds`` times each, ``--seconds``
   each: ``before`` (no query priorities: how the read ran before) and ``now`` (the read as shipped:
   at priority within ``api/store/read_priority.py``'s budget, the inserts at ``sink.writer.INSERT_PRIORITY``).

A just-stored run read back without all of its events counts as ``incomplete`` (must be 0).
Last line: JSON of the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

from e2e_hops import pct
from queries import LOAD

# One run inserted server-side (the columns the views read): ``--rows 0``.
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
ROW_COLUMNS = ["tenant_id", "ts", "event_id", "agent_id", "agent_version", "environment", "run_id",
               "seq", "kind", "step_kind", "name", "status", "latency_ms", "tool_name", "run_status",
               "duration_ms", "attributes", "payload"]
CASES = ("new", "old", "missing")


def run_rows(tenant: str, runs: int) -> tuple[list[list[Any]], str]:
    """``runs`` 5-event runs as Python rows (built per row, as the sink's mapper does)."""
    now = dt.datetime.now(dt.timezone.utc)
    rows: list[list[Any]] = []
    rid = ""
    for _ in range(runs):
        rid = f"live-{uuid.uuid4().hex}"
        for s in range(5):
            kind = "RUN_START" if s == 0 else "RUN_END" if s == 4 else "STEP"
            step = kind == "STEP"
            rows.append([tenant, now + dt.timedelta(microseconds=s), str(uuid.uuid4()), "live-agent", "1.0",
                         "prod", rid, s, kind, "TOOL" if step else "", "main" if s == 0 else f"tool-{s}",
                         "OK" if step else "", 12.5 if step else 0.0, f"tool-{s}" if step else "",
                         "SUCCESS" if s == 4 else "", 40.0 if s == 4 else 0.0, {"team": "core"},
                         json.dumps({"seq": s})])
    return rows, rid


class Given:
    """A RowReader over rows already read (the shaping step alone)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]


def breakdown(path: str, db: Any, tenant: str, rid: str, n: int) -> dict[str, float]:
    """p50 of each step, the steps taken in turn ``n`` times (so the machine's noise is shared)."""
    import chdb

    from agentstream.api.models import RunDetail
    from agentstream.api.store import runs as R

    raw = chdb.connect(path)  # a handle of its own on the same engine: engine time, no decoding
    p = {"tenant": tenant, "run_id": rid}
    header = (f"SELECT started_ts, last_ts, {', '.join(R.HEADER)} FROM runs FINAL "
              "WHERE tenant_id = {tenant:String} AND run_id = {run_id:String}")
    span = db.rows(header, p)[0]
    events = (f"SELECT {R.DETAIL_COLUMNS} FROM events FINAL WHERE tenant_id = {{tenant:String}} "
              "AND run_id = {run_id:String} AND ts BETWEEN {lo:String} AND {hi:String} "
              "ORDER BY seq, ts_us")
    pe = {**p, "lo": str(span["started_ts"]), "hi": str(span["last_ts"])}
    rows = db.rows(R.DETAIL_SQL, p)
    detail = R.run_detail(Given(rows), tenant, rid)
    steps: dict[str, Callable[[], Any]] = {
        "select_1": lambda: raw.query("SELECT 1", "Native"),
        "plan_header": lambda: raw.query("EXPLAIN " + header, "Native", params=p),
        "header": lambda: raw.query(header, "Native", params=p),
        "plan_events": lambda: raw.query("EXPLAIN " + events, "Native", params=pe),
        "events": lambda: raw.query(events, "Native", params=pe),
        "statement": lambda: raw.query(R.DETAIL_SQL, "Native", params=p),
        "rows": lambda: db.rows(R.DETAIL_SQL, p),
        "shape": lambda: R.run_detail(Given(rows), tenant, rid),
        "render": lambda: RunDetail(**detail).model_dump_json(),
    }
    ms: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(n):
        for k, f in steps.items():
            t = time.perf_counter()
            f()
            ms[k].append((time.perf_counter() - t) * 1000)
    raw.close()
    out = {f"{k}_ms": round(pct(v, 0.5), 2) for k, v in ms.items()}
    out["decode_ms"] = round(out["rows_ms"] - out["statement_ms"], 2)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(ms, 0.5), 1), "p99_ms": round(pct(ms, 0.99), 1),
            "max_ms": round(max(ms), 1), "n": len(ms)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10.0, help="per arm (and for the idle step)")
    ap.add_argument("--rounds", type=int, default=2, help="before/now pairs")
    ap.add_argument("--writers", type=int, default=1)
    ap.add_argument("--every", type=float, default=0.1, help="seconds between a writer's inserts")
    ap.add_argument("--rows", type=int, default=100, help="runs per insert (0: one, server-side)")
    ap.add_argument("--samples", type=int, default=60, help="per breakdown figure")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds the reader rests between its rounds of three reads (0: back to back)")
    a = ap.parse_args()

    from agentstream.api.db import Db
    from agentstream.api.store.read_priority import DefaultPriority
    from agentstream.api.store.runs import run_detail
    from agentstream.sink import apply_migrations, make_client
    from agentstream.sink.writer import INSERT_PRIORITY

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
    rows, rid = run_rows(tenant, 3)
    main_client.insert("events", rows, column_names=ROW_COLUMNS)
    latest = [rid]
    reader = make_client(f"chdb://{path}")
    db = Db(reader)
    parts = breakdown(path, db, tenant, rid, a.samples)
    print("breakdown (ms, p50): " + ", ".join(f"{k} {v}" for k, v in parts.items()), flush=True)

    old = f"run-{(runs // 2) // 20 * 20}"  # tenant-0's runs are those with r % 20 == 0
    incomplete = 0  # a stored run read back without all of its 5 events

    def read_for(seconds: float, reads: Any, into: dict[str, list[float]]) -> None:
        nonlocal incomplete
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for which, r in (("new", latest[-1]), ("old", old), ("missing", f"missing-{uuid.uuid4().hex}")):
                t = time.perf_counter()
                out = run_detail(reads, tenant, r)
                into[which].append((time.perf_counter() - t) * 1000)
                if which == "new" and (out is None or out["run"]["event_count"] != 5):
                    incomplete += 1
            time.sleep(a.pause)

    idle: dict[str, list[float]] = {c: [] for c in CASES}
    read_for(a.seconds, db, idle)

    arm = {"priority": 0}
    stop = threading.Event()
    inserted = [0]

    def write() -> None:
        client = make_client(f"chdb://{path}")
        while not stop.is_set():
            st = {"priority": arm["priority"]} if arm["priority"] else {}
            if a.rows:
                batch, last = run_rows(tenant, a.rows)
                client.insert("events", batch, column_names=ROW_COLUMNS, settings=st)
            else:
                last = f"live-{uuid.uuid4().hex}"
                client.command(INSERT_RUN, parameters={"tenant": tenant, "run_id": last}, settings=st)
            latest.append(last)
            inserted[0] += 1
            stop.wait(a.every)

    writers = [threading.Thread(target=write, daemon=True) for _ in range(a.writers)]
    for w in writers:
        w.start()
    arms: list[dict[str, Any]] = []
    pooled: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CASES} for n in ("before", "now")}
    for _ in range(a.rounds):
        for name in ("before", "now"):
            arm["priority"] = INSERT_PRIORITY if name == "now" else 0
            got: dict[str, list[float]] = {c: [] for c in CASES}
            n0 = inserted[0]
            read_for(a.seconds, db if name == "now" else DefaultPriority(db), got)
            arms.append({"arm": name, "inserts": inserted[0] - n0, **{c: summary(v) for c, v in got.items()}})
            for c in CASES:
                pooled[name][c].extend(got[c])
    stop.set()
    for w in writers:
        w.join()
    nparts = main_client.query("SELECT table, count() FROM system.parts WHERE active AND table IN "
                               "('events', 'runs') GROUP BY table").result_rows

    print(f"{'':8s} {'new p50 / p99 / max':>24s} {'old p50 / p99':>16s} {'404 p50 / p99':>16s}  inserts")
    for row in [{"arm": "idle", "inserts": 0, **{c: summary(v) for c, v in idle.items()}}, *arms]:
        n, o, m = row["new"], row["old"], row["missing"]
        print(f"{row['arm']:8s} {n['p50_ms']:7.1f} / {n['p99_ms']:6.1f} / {n['max_ms']:6.1f} ms "
              f"{o['p50_ms']:6.1f} / {o['p99_ms']:6.1f} {m['p50_ms']:6.1f} / {m['p99_ms']:6.1f}  {row['inserts']}")
    print(f"runs inserted: {len(latest)}; active parts at the end: {dict(nparts)}; "
          f"runs read back incomplete: {incomplete}")
    print(json.dumps({"events": a.events, "writers": a.writers, "every_s": a.every, "rows": a.rows,
                      "pause_s": a.pause,
                      "breakdown": parts, "idle": {c: summary(v) for c, v in idle.items()},
                      "arms": arms, "before": {c: summary(v) for c, v in pooled["before"].items()},
                      "now": {c: summary(v) for c, v in pooled["now"].items()},
                      "incomplete": incomplete}))


if __name__ == "__main__":
    main()
