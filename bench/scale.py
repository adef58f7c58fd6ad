"""Processors scale-out: 1, 2 and 3 chain workers in one consumer group on the same data.

    python bench/scale.py [--events 40000] [--partitions 8] [--workers 1,2,3] [--rounds 2]

Each round starts the workers on a fresh raw topic (``--partitions``), lets them all join, then
produces the same generated records and measures from the first to the last record read
(bench/processors.py ``scaled``: group join and state restore are outside the clock). The order
of worker counts alternates between rounds (1,2,3 then 3,2,1) so a machine getting busier or
quieter does not favour one count.

Two figures per count: ev/s, which on a shared 2-core machine stops growing once the workers,
the broker and the producer fill the cores, and CPU microseconds per event summed over the
workers, which is what carries to a bigger machine: a worker with a core of its own processes
1e6 / cpu_us_per_event events/s. The prediction for more cores is that per-core rate times the
workers, corrected by how much the per-event CPU grew from 1 to the most workers measured
(coordination cost: more fetches, smaller batches). Partitions bound the workers.
Last line: JSON with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from processors import make_events, scaled  # bench/ is the script's directory

from agentstream.cli.embedded_broker import EmbeddedBroker


def predict(per_core_ev_s: float, growth_per_worker: float, workers: int, partitions: int) -> float:
    """Throughput of ``workers`` workers with a core each: per-core rate x workers, each worker's
    per-event CPU grown by ``growth_per_worker`` per added worker (measured), bounded by partitions."""
    k = min(workers, partitions)
    return k * per_core_ev_s / (1 + growth_per_worker * (k - 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    if not counts or min(counts) < 1 or max(counts) > args.partitions:
        ap.error("--workers: counts from 1 to --partitions")
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    broker = EmbeddedBroker(log_path=str(tmp / "tansu.log")).start()
    results: dict[int, list[dict]] = {k: [] for k in counts}
    try:
        data = make_events(args.events)
        print(f"{args.events} events, {sum(len(v) for _, v in data) / len(data):.0f} B/event, "
              f"{args.partitions} partitions, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        for rnd in range(args.rounds):
            for k in (counts if rnd % 2 == 0 else counts[::-1]):
                r = scaled(broker.bootstrap_servers, data, args.partitions, k, tmp)
                results[k].append(r)
                print(f"round {rnd + 1}: {k} worker(s): {r['ev_s']:,} ev/s, {r['cpu_us_per_event']} us CPU/event "
                      f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    finally:
        broker.stop()

    ev_s = {k: statistics.median(r["ev_s"] for r in rs) for k, rs in results.items()}
    cpu_us = {k: statistics.median(r["cpu_us_per_event"] for r in rs) for k, rs in results.items()}
    base, top = min(counts), max(counts)
    print(f"\n{'workers':>7} {'ev/s':>9} {'x 1':>6} {'us CPU/event':>13} {'ev/s per core':>14}")
    for k in counts:
        print(f"{k:>7} {ev_s[k]:>9,.0f} {ev_s[k] / ev_s[base]:>6.2f} {cpu_us[k]:>13.1f} {1e6 / cpu_us[k]:>14,.0f}")
    per_core = 1e6 / cpu_us[base]
    growth = max(0.0, (cpu_us[top] / cpu_us[base] - 1) / (top - base)) if top > base else 0.0
    cores = os.cpu_count() or 1
    print(f"\nOn {cores} cores shared with the broker and the producer, ev/s stops growing near the cores; "
          f"the CPU per event carries over: a worker with its own core does {per_core:,.0f} ev/s, and each added "
          f"worker raised the per-event CPU by {growth:.1%} here.")
    predictions = {w: round(predict(per_core, growth, w, max(w, args.partitions))) for w in (4, 8, 16, 48)}
    print("predicted with a core per worker (and partitions >= workers): "
          + ", ".join(f"{w} workers {v:,} ev/s" for w, v in predictions.items()))
    print(json.dumps({"events": args.events, "partitions": args.partitions, "cores": cores, "rounds": args.rounds,
                      "ev_s": {str(k): round(v) for k, v in ev_s.items()},
                      "ratio_to_1": {str(k): round(ev_s[k] / ev_s[base], 3) for k in counts},
                      "cpu_us_per_event": {str(k): v for k, v in cpu_us.items()},
                      "per_core_ev_s": round(per_core), "cpu_growth_per_worker": round(growth, 4),
                      "predicted_ev_s": {str(k): v for k, v in predictions.items()}}))


if __name__ == "__main__":
    main()
