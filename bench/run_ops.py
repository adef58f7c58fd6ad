"""Run operations: export memory and rate, diff alignment cost. Side-by-side ratios, one JSON line.

1. Export is bounded in memory: the peak Python heap (tracemalloc) while streaming every run of
   a tenant, for N runs and for 10 N runs in the same chDB; the ratio should stay near 1. The
   export rate (one events read per page of 200 runs) is compared with a point read per run.
2. Diff: aligning two runs of S steps (Needleman-Wunsch, pure Python) against difflib's
   matching blocks on the same keys, the bounded fallback.

    .venv/bin/python bench/run_ops.py [--runs 150] [--steps 20]

Rows are written to the contract tables the way the sink writes them (the API's test helper
``tests/unit/api/api_fleet.py``), in a throw-away chDB directory.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "api"))


def _fleet(client, tenant: str, runs: int, steps: int, rng: random.Random) -> None:
    from api_fleet import RunBuilder, insert_runs

    batch = []
    for i in range(runs):
        r = RunBuilder(tenant, agent=f"agent-{i % 5}", start_us=int(time.time() * 1e6) - 3_600_000_000 + i * 1000)
        for k in range(steps):
            if k % 3 == 0:
                r.llm("think", rng.uniform(50, 900), rng.randint(100, 3000), rng.randint(10, 500), rng.random() / 100)
            else:
                r.step("TOOL", rng.choice(["search", "lookup", "refund"]), rng.uniform(5, 400),
                       tool_name="t", args_digest=f"{rng.getrandbits(32):08x}")
        r.end("SUCCESS" if rng.random() < 0.8 else "FAILURE")
        batch.append(r)
        if len(batch) == 200:
            insert_runs(client, batch)
            batch = []
    insert_runs(client, batch)


def _export(db, tenant: str, fmt: str) -> tuple[int, int, float, int]:
    from agentstream.api.store.export import ExportRequest, stream_export
    from agentstream.api.store.runs import RunFilters

    tracemalloc.start()
    t0 = time.perf_counter()
    n = size = 0
    for chunk in stream_export(db, tenant, ExportRequest(filters=RunFilters(), fmt=fmt)):
        n += 1
        size += len(chunk)
    took = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return n, size, took, peak


def _per_run_reads(db, tenant: str) -> float:
    """The same runs, one run_detail point read each (what the export did before it read pages)."""
    from agentstream.api.store.export import ExportRequest, select_runs
    from agentstream.api.store.runs import RunFilters, run_detail

    t0 = time.perf_counter()
    for page in select_runs(db, tenant, ExportRequest(filters=RunFilters())):
        for r in page:
            run_detail(db, tenant, r["run_id"])
    return time.perf_counter() - t0


def _align_bench(steps: int, rng: random.Random) -> dict:
    from agentstream.api.store.diff import _blocks, _nw

    names = ["plan", "search", "lookup", "refund", "think", "reply"]
    a = [("TOOL", rng.choice(names), rng.choice("xyz")) for _ in range(steps)]
    b = list(a)
    for _ in range(steps // 10):  # edits: a tenth of the steps inserted, removed or changed
        i = rng.randrange(len(b))
        op = rng.choice("irc")
        if op == "i":
            b.insert(i, ("TOOL", rng.choice(names), "new"))
        elif op == "r":
            b.pop(i)
        else:
            b[i] = (b[i][0], b[i][1], "changed")
    t0 = time.perf_counter()
    nw = _nw(a, b)
    t_nw = time.perf_counter() - t0
    t0 = time.perf_counter()
    bl = _blocks(a, b)
    t_bl = time.perf_counter() - t0
    paired = lambda ps: sum(1 for i, j in ps if i is not None and j is not None)  # noqa: E731
    return {"steps": steps, "nw_ms": round(t_nw * 1000, 1), "difflib_ms": round(t_bl * 1000, 1),
            "nw_vs_difflib_time": round(t_nw / t_bl, 1), "nw_pairs": paired(nw), "difflib_pairs": paired(bl)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=150)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    import clickhouse_connect

    from agentstream.api.db import Db
    from agentstream.sink import apply_migrations

    rng = random.Random(19)
    with tempfile.TemporaryDirectory() as d:
        client = clickhouse_connect.get_client(dsn=f"chdb://{d}/data")
        apply_migrations(client)
        small, big = "bench-small", "bench-big"
        _fleet(client, small, args.runs, args.steps, rng)
        _fleet(client, big, args.runs * 10, args.steps, rng)
        db = Db(client)
        n_s, size_s, t_s, peak_s = _export(db, small, "jsonl")
        n_b, size_b, t_b, peak_b = _export(db, big, "jsonl")
        _, _, t_otlp, peak_otlp = _export(db, big, "otlp")
        t_read = _per_run_reads(db, small)
    align = _align_bench(600, rng)
    figures = {
        "runs_small": n_s, "runs_big": n_b, "steps_per_run": args.steps,
        "export_peak_kib_small": round(peak_s / 1024), "export_peak_kib_big": round(peak_b / 1024),
        "export_peak_ratio_10x_runs": round(peak_b / peak_s, 2),
        "export_mib_big": round(size_b / 2**20, 1),
        "export_runs_s": round(n_b / t_b), "per_run_reads_runs_s": round(n_s / t_read),
        "export_vs_per_run_reads": round((n_b / t_b) / (n_s / t_read), 2),
        "otlp_runs_s": round(n_b / t_otlp), "otlp_peak_kib": round(peak_otlp / 1024),
        "align": align,
    }
    print(f"export of {n_s} vs {n_b} runs: peak heap {peak_s / 1024:.0f} KiB vs {peak_b / 1024:.0f} KiB "
          f"(x{peak_b / peak_s:.2f} for 10x the runs; {size_b / 2**20:.1f} MiB written)")
    print(f"export {n_b / t_b:.0f} runs/s vs a point read per run {n_s / t_read:.0f} runs/s "
          f"(x{(n_b / t_b) / (n_s / t_read):.1f}); OTLP {n_b / t_otlp:.0f} runs/s")
    print(f"align {align['steps']}-step runs: Needleman-Wunsch {align['nw_ms']} ms vs difflib "
          f"{align['difflib_ms']} ms; pairs {align['nw_pairs']} vs {align['difflib_pairs']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
