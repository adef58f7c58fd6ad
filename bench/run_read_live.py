"""GET /v1/runs/{id}'s read on a live table: where its time goes, and what inserts beside it cost.

    python bench/run_read_live.py [--events 1000000] [--seconds 10] [--rounds 2] [--rows 100]

Loads ``--events`` synthetic events (bench/queries.py's generator) into its own chDB and merges
them, then compares two reads of a run side by side: ``before``, the read up to issue #18's
reads half (its header from ``runs`` FINAL and its 35 event columns from ``events`` FINAL in
one statement, kept here verbatim as ``BEFORE_SQL``), and ``now``, the API's ``run_detail``
(one column of ``run_events``, 0010_run_events.sql). Both are shaped by the same code and both
go ahead of the inserts (``read_priority``), so only the read differs:

0. **view cost** (``--view-rounds``): what ``run_events_mv`` adds to an insert into ``events``,
   100k generated events with the view attached and detached, alternating (CPU per row);
1. **breakdown**, nothing else running: each read taken apart (p50 of ``--samples``): planning
   alone (``EXPLAIN``), the statement on a raw chDB handle (engine + transport, raw bytes), the
   same decoded into rows (``Db.rows``: clickhouse-connect's Native decoding), the rows decoded
   into events (``now``: the JSON of ``detail``, copies folded, ordered), shaping them into the
   run detail (pure Python) and rendering the response (``RunDetail`` + JSON);
2. **idle**: each read in turn on the newest stored run, an old merged run and an unknown run
   (a 404);
3. **live**: ``--writers`` threads, each on its own handle as the sink's insert threads are,
   insert ``--rows`` runs of 5 events (Python rows through clickhouse-connect, as the sink's
   mapper path does; 0 = one run through a server-side ``INSERT … SELECT``) every ``--every`` s,
   at the sink's insert priority, while the reader repeats step 2 (back to back, or resting
   ``--pause`` s between rounds, as a user opening runs would). The arms alternate ``before`` /
   ``now``, ``--rounds`` times each, ``--seconds`` each.

A just-stored run read back without all of its events counts as ``incomplete`` (must be 0), and
the two reads must give the same run detail on every run compared (``differ``, must be 0).
Last line: JSON of the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
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
ARMS = ("before", "now")

# The read before run_events (issue #18): the run's header and time bounds from ``runs`` FINAL,
# its events FINAL within them, 35 columns; kept verbatim for the side-by-side comparison.
BEFORE_SQL = """
WITH (SELECT (started_ts, last_ts, agent_id, agent_version, environment, session_id, parent_run_id,
              entrypoint, status, outcome, duration_ms) FROM runs FINAL
      WHERE tenant_id = {tenant:String} AND run_id = {run_id:String}) AS run
SELECT run, kind, seq, event_id, toUnixTimestamp64Micro(ts) AS ts_us,
    step_id, step_kind, name, status, parent_step_id, toUnixTimestamp64Micro(started_ts) AS started_us,
    latency_ms, attempt, retry_of, provider, request_model, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, cost_usd, tool_name, args_digest, failure_type,
    failure_code, decision_type, selected, candidates, reason_code, confidence, signal_type,
    signal_code, signal_value, payload, attributes
FROM events FINAL
WHERE tenant_id = {tenant:String} AND run_id = {run_id:String} AND ts BETWEEN run.1 AND run.2
ORDER BY seq, ts_us
"""


def before_detail(db: Any, tenant: str, run_id: str) -> dict[str, Any] | None:
    """The run detail as it was read before (``BEFORE_SQL``), shaped by today's code."""
    from agentstream.api.store.read_priority import read_first
    from agentstream.api.store.runs import HEADER, detail_of

    rows = read_first(db, BEFORE_SQL, {"tenant": tenant, "run_id": run_id})
    if not rows:
        return None
    return detail_of(run_id, rows, dict(zip(HEADER, rows[0]["run"][2:])))


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


def breakdown(path: str, db: Any, tenant: str, rid: str, n: int) -> dict[str, float]:
    """p50 of each step, the steps taken in turn ``n`` times (so the machine's noise is shared)."""
    import chdb

    from agentstream.api.models import RunDetail
    from agentstream.api.store import runs as R

    raw = chdb.connect(path)  # a handle of its own on the same engine: engine time, no decoding
    p = {"tenant": tenant, "run_id": rid}
    old_rows = db.rows(BEFORE_SQL, p)
    new_rows = db.rows(R.RUN_EVENTS_SQL, p)
    events = R.run_events(db, tenant, rid)
    detail = R.run_detail(db, tenant, rid)
    steps: dict[str, Callable[[], Any]] = {
        "select_1": lambda: raw.query("SELECT 1", "Native"),
        "before_plan": lambda: raw.query("EXPLAIN " + BEFORE_SQL, "Native", params=p),
        "before_statement": lambda: raw.query(BEFORE_SQL, "Native", params=p),
        "before_rows": lambda: db.rows(BEFORE_SQL, p),
        "before_shape": lambda: R.detail_of(rid, old_rows, dict(zip(R.HEADER, old_rows[0]["run"][2:]))),
        "now_plan": lambda: raw.query("EXPLAIN " + R.RUN_EVENTS_SQL, "Native", params=p),
        "now_statement": lambda: raw.query(R.RUN_EVENTS_SQL, "Native", params=p),
        "now_rows": lambda: db.rows(R.RUN_EVENTS_SQL, p),
        "now_events": lambda: R.run_event_rows(r["detail"] for r in new_rows),
        "now_shape": lambda: R.detail_of(rid, events, R.header_of(events)),
        "render": lambda: RunDetail(**detail).model_dump_json(),
        # the whole read as the route runs it; its CPU too (chDB runs in this process), which
        # a busy machine inflates far less than the wall time
        "before_read": lambda: before_detail(db, tenant, rid),
        "now_read": lambda: R.run_detail(db, tenant, rid),
    }
    ms: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(n):
        for k, f in steps.items():
            c, t = time.process_time(), time.perf_counter()
            f()
            ms[k].append((time.perf_counter() - t) * 1000)
            cpu[k].append((time.process_time() - c) * 1000)
    raw.close()
    out = {f"{k}_ms": round(pct(v, 0.5), 2) for k, v in ms.items()}
    out.update({f"{k}_cpu_ms": round(pct(cpu[k], 0.5), 2) for k in ("before_read", "now_read")})
    for arm in ARMS:
        out[f"{arm}_decode_ms"] = round(out[f"{arm}_rows_ms"] - out[f"{arm}_statement_ms"], 2)
    return out


def view_cost(client: Any, rounds: int, n: int = 100_000) -> dict[str, float]:
    """What run_events_mv adds to an insert into ``events``: the same ``n`` generated events
    inserted with the view attached and detached, alternating, ``rounds`` times each; CPU of
    this process (chDB runs in it) per row, and wall time, medians."""
    got: dict[str, dict[str, list[float]]] = {arm: {"cpu_us_per_row": [], "wall_ms": []}
                                              for arm in ("with_view", "without_view")}
    for i in range(rounds):
        for arm in ("without_view", "with_view"):
            client.command(("ATTACH" if arm == "with_view" else "DETACH") + " TABLE run_events_mv")
            c0, t0 = time.process_time(), time.perf_counter()
            off = 10**9 + (2 * i + (arm == "with_view")) * n  # runs of their own, a week old
            client.command(LOAD, parameters={"offset": off, "n": n, "runs": (off + n) // 20})
            got[arm]["cpu_us_per_row"].append((time.process_time() - c0) / n * 1e6)
            got[arm]["wall_ms"].append((time.perf_counter() - t0) * 1000)
    out = {f"{arm}_{k}": round(pct(v, 0.5), 2) for arm, d in got.items() for k, v in d.items()}
    out["cpu_ratio"] = round(out["with_view_cpu_us_per_row"] / out["without_view_cpu_us_per_row"], 3)
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
    ap.add_argument("--view-rounds", type=int, default=3,
                    help="alternating inserts of 100k events with and without run_events_mv (0: skip)")
    a = ap.parse_args()

    from agentstream.api.db import Db
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
    cost = view_cost(main_client, a.view_rounds) if a.view_rounds else {}
    if cost:
        print("run_events_mv on inserts (medians): " + ", ".join(f"{k} {v}" for k, v in cost.items()), flush=True)
    for table in ("events", "runs", "run_events"):
        main_client.command(f"OPTIMIZE TABLE {table} FINAL")
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
    reads: dict[str, Callable[..., Any]] = {"before": before_detail, "now": run_detail}
    incomplete = 0  # a stored run read back without all of its 5 events

    def read_for(seconds: float, read: Callable[..., Any], into: dict[str, list[float]]) -> None:
        nonlocal incomplete
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for which, r in (("new", latest[-1]), ("old", old), ("missing", f"missing-{uuid.uuid4().hex}")):
                t = time.perf_counter()
                out = read(db, tenant, r)
                into[which].append((time.perf_counter() - t) * 1000)
                if which == "new" and (out is None or out["run"]["event_count"] != 5):
                    incomplete += 1
            time.sleep(a.pause)

    idle: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CASES} for n in ARMS}
    for name in ARMS:
        read_for(a.seconds / 2, reads[name], idle[name])

    stop = threading.Event()
    inserted = [0]

    def write() -> None:
        client = make_client(f"chdb://{path}")
        st = {"priority": INSERT_PRIORITY} if INSERT_PRIORITY else {}  # as the sink inserts
        while not stop.is_set():
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
    pooled: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CASES} for n in ARMS}
    for _ in range(a.rounds):
        for name in ARMS:
            got: dict[str, list[float]] = {c: [] for c in CASES}
            n0 = inserted[0]
            read_for(a.seconds, reads[name], got)
            arms.append({"arm": name, "inserts": inserted[0] - n0, **{c: summary(v) for c, v in got.items()}})
            for c in CASES:
                pooled[name][c].extend(got[c])
    stop.set()
    for w in writers:
        w.join()
    # the two reads agree on what they read: the old run, the last runs stored, a 404
    compared = [old, *latest[-20:], "missing-run"]
    differ = sum(before_detail(db, tenant, r) != run_detail(db, tenant, r) for r in compared)
    nparts = main_client.query("SELECT table, count() FROM system.parts WHERE active AND table IN "
                               "('events', 'runs', 'run_events') GROUP BY table").result_rows

    print(f"{'':12s} {'new p50 / p99 / max':>24s} {'old p50 / p99':>16s} {'404 p50 / p99':>16s}  inserts")
    table = [{"arm": f"idle {n}", "inserts": 0, **{c: summary(v) for c, v in idle[n].items()}} for n in ARMS]
    for row in [*table, *arms]:
        n, o, m = row["new"], row["old"], row["missing"]
        print(f"{row['arm']:12s} {n['p50_ms']:7.1f} / {n['p99_ms']:6.1f} / {n['max_ms']:6.1f} ms "
              f"{o['p50_ms']:6.1f} / {o['p99_ms']:6.1f} {m['p50_ms']:6.1f} / {m['p99_ms']:6.1f}  {row['inserts']}")
    print(f"runs inserted: {len(latest)}; active parts at the end: {dict(nparts)}; "
          f"runs read back incomplete: {incomplete}; details that differ between the reads: "
          f"{differ} of {len(compared)}")
    print(json.dumps({"events": a.events, "writers": a.writers, "every_s": a.every, "rows": a.rows,
                      "pause_s": a.pause, "breakdown": parts, "view_cost": cost,
                      "idle": {n: {c: summary(v) for c, v in idle[n].items()} for n in ARMS},
                      "arms": arms, **{n: {c: summary(v) for c, v in pooled[n].items()} for n in ARMS},
                      "incomplete": incomplete, "differ": differ}))
    shutil.rmtree(path, ignore_errors=True)  # ~0.5 GB of chDB per run


if __name__ == "__main__":
    main()
