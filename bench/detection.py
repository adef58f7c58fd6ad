"""Detection quality: a generated fleet with ground truth (stream_processors/scenarios.py) through
the detectors, scored (stream_processors/scenario_score.py).

    python bench/detection.py [--seed 1] [--hours 10] [--runs-per-hour 300] [--tenants 3] [--agents 3]
                              [--real-runs-per-hour 400] [--no-real]

Two passes in one run:
1. the large fleet (default 3 tenants x 3 agents x 10 h x ~300 runs/h/agent: ~24k runs, ~300k
   events, 6 drift episodes and 3 null-control rollouts) replayed in process through the per-run
   detectors and fleet stage of ``Chain`` (the code the workers run), in event-time order;
2. a smaller fleet (2 tenants x 2 agents x 5 h) through a real worker process on the embedded
   broker, scored the same way, beside the same fleet replayed in process.

Prints each pass's full score, then one line of JSON: loop_recall, loop_precision, budget_recall,
budget_precision, duplicates, stop_precision, drift_found, drift_delay_h_max, null_false_alarms
(of the large pass) and the real-broker pass's figures under ``real``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from agentstream.stream_processors import scenario_score, scenarios


def _print(title: str, s: dict) -> None:
    print(f"== {title}")
    for k in ("loops", "budgets"):
        print(f"  {k}: {json.dumps(s[k])}")
    print(f"  tenant_day: exactly_once={s['tenant_day']['exactly_once']} "
          + json.dumps([{k: w[k] for k in ('tenant', 'used', 'limit', 'got')} for w in s["tenant_day"]["windows"]]))
    d = s["drift"]
    print(f"  drift: found {d['found']}/{d['planted']}, max delay {d['delay_h_max']} h, null controls "
          f"{d['null_controls']} with {d['null_false_alarms']} alarms, other-metric alarms {d['other_metric_alarms']}")
    for e in d["episodes"]:
        print(f"    {e}")
    print(f"  stops: {s['stops']}, precision {s['stop_precision']}, duplicates {s['stop_duplicates']}; "
          f"duplicate alerts {s['duplicates']}")


def _real(args: argparse.Namespace) -> dict:
    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas.topics import create_topics
    from agentstream.stream_processors.scenario_broker import replay_on_broker

    spec = scenarios.FleetSpec(seed=args.seed + 1000, tenants=2, agents_per_tenant=2, hours=5,
                               runs_per_hour=args.real_runs_per_hour, tenant_prefix="real")
    fleet = scenarios.generate(spec)
    a, c = scenario_score.replay_in_process(fleet)
    in_process = scenario_score.summary(scenario_score.score(fleet, a, c))
    with tempfile.TemporaryDirectory() as d:
        broker = EmbeddedBroker(log_path=str(Path(d) / "tansu.log")).start()
        try:
            prefix = f"bench-det-{uuid.uuid4().hex[:6]}."
            create_topics(broker.bootstrap_servers, prefix)
            alerts, commands, timing = replay_on_broker(fleet, broker.bootstrap_servers, prefix, Path(d))
        finally:
            broker.stop()
    s = scenario_score.score(fleet, alerts, commands)
    _print(f"real worker: {len(fleet.runs)} runs, {len(fleet.events)} events, read in {timing['events_read_s']} s", s)
    real = scenario_score.summary(s)
    print(f"  same fleet in process: {json.dumps(in_process)}")
    real["agrees_with_in_process"] = all(real[k] == in_process[k] for k in real if k != "drift_delay_h_max")
    return real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hours", type=int, default=10)
    ap.add_argument("--runs-per-hour", type=int, default=300)
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--real-runs-per-hour", type=int, default=400)
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    fleet = scenarios.generate(scenarios.FleetSpec(seed=args.seed, tenants=args.tenants, agents_per_tenant=args.agents,
                                                   hours=args.hours, runs_per_hour=args.runs_per_hour))
    t1 = time.perf_counter()
    alerts, commands = scenario_score.replay_in_process(fleet)
    t2 = time.perf_counter()
    s = scenario_score.score(fleet, alerts, commands)
    _print(f"in process: {len(fleet.runs)} runs, {len(fleet.events)} events (generated in {t1 - t0:.1f} s, "
           f"detected in {t2 - t1:.1f} s: {len(fleet.events) / (t2 - t1):,.0f} events/s)", s)
    out = scenario_score.summary(s)
    out["seed"] = args.seed
    if not args.no_real:
        out["real"] = _real(args)
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
