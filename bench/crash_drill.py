"""Crash drill on the embedded stack: kill -9 the sink+API process while a fleet emits, restart it,
and count every event afterwards.

    python bench/crash_drill.py [--kills 6] [--tracers 6] [--seed 7]

Starts the stack as ``agentstream up`` does (``cli.stack.Stack``: broker, processors, sink+API;
no gateway) on free loopback ports and a private data dir. ``--tracers`` SDK tracers (3 tenants)
emit runs of 6 events (RUN_START, 4 tool steps, RUN_END) from threads of this process for the
whole drill; meanwhile the sink+API process is killed with SIGKILL ``--kills`` times at random
points (3-8 s apart: mid-flush, mid-insert, mid-commit) and started again 0.5-2 s later, as a
supervisor (systemd, Kubernetes) would. When the fleet has stopped and everything is stored,
each tenant's rows are counted through ``POST /v1/sql``: raw ``count()`` of events (no FINAL: a
row stored twice shows), distinct event ids, and the ``runs`` table's event totals and runs.

``exact`` is true when every one of those equals what the SDK emitted. Last line: JSON with
emitted, per-tenant counts, exact. (tests/integration/test_sink_exactly_once.py kills the sink
alone 20 times in the suite; this drives the whole embedded stack under a fleet's load.)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from agentstream.api.auth import add_key
from agentstream.cli.embedded_broker import free_port
from agentstream.cli.stack import Stack, StackConfig
from agentstream.producer import Tracer

TENANTS = ("drill-0", "drill-1", "drill-2")
COUNTS = ("SELECT (SELECT count() FROM events) AS rows, (SELECT uniqExact(event_id) FROM events) AS ids, "
          "(SELECT sum(event_count) FROM runs FINAL) AS run_events, (SELECT count() FROM runs FINAL) AS runs")


def emit(bootstrap: str, spool: Path, i: int, stop: threading.Event, emitted: dict[int, int]) -> None:
    t = Tracer(TENANTS[i % len(TENANTS)], f"agent-{i}", "1.0", "prod", bootstrap_servers=bootstrap,
               commands_enabled=False, spool_dir=str(spool / f"spool-{i}"))
    n = 0
    while not stop.is_set():
        with t.run("task") as run:
            for s in range(4):
                run.tool_call(f"tool.{s}", {"q": s}, latency_ms=3)
        n += 6
    t.flush(60)
    t.close(10)
    emitted[i] = n


def sql(api: str, key: str, query: str) -> list:
    req = urllib.request.Request(api + "/v1/sql", data=json.dumps({"sql": query}).encode(),
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["rows"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--tracers", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="crash-drill-"))
    keys = {t: add_key(root / "api_keys.json", t, scopes=["read"], name=t) for t in TENANTS}
    cfg = StackConfig(data_dir=root, broker_port=free_port(), api_port=free_port(), processors_port=free_port(),
                      with_gateway=False, explicit=frozenset({"broker", "api", "processors"}))
    stack = Stack(cfg)
    stack.start()
    try:
        print("stack:", stack.wait_ready(180), flush=True)
        sink = stack.part("sink+api")
        assert sink is not None and stack.broker is not None
        env = stack.env()
        stop, emitted = threading.Event(), {}
        threads = [threading.Thread(target=emit, args=(stack.broker.bootstrap_servers, root, i, stop, emitted))
                   for i in range(a.tracers)]
        for th in threads:
            th.start()
        rng = random.Random(a.seed)
        for k in range(a.kills):
            time.sleep(rng.uniform(3, 8))
            os.killpg(sink.proc.pid, signal.SIGKILL)
            sink.proc.wait()
            print(f"kill {k + 1}/{a.kills}: sink+API killed", flush=True)
            time.sleep(rng.uniform(0.5, 2))
            sink.proc = subprocess.Popen(sink.args, env=env, stdout=open(sink.log, "ab"), stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        stop.set()
        for th in threads:
            th.join()
        total = sum(emitted.values())
        per_tenant = {t: sum(n for i, n in emitted.items() if TENANTS[i % len(TENANTS)] == t) for t in TENANTS}
        print(f"emitted {total:,} events; waiting until they are stored", flush=True)
        deadline = time.monotonic() + 300
        got: dict[str, list] = {}
        while time.monotonic() < deadline:
            try:
                got = {t: sql(stack.api_url, keys[t], COUNTS)[0] for t in TENANTS}
                if all(int(got[t][0]) >= per_tenant[t] for t in TENANTS):
                    time.sleep(3)  # anything stored twice would show now too
                    got = {t: sql(stack.api_url, keys[t], COUNTS)[0] for t in TENANTS}
                    break
            except OSError:
                pass  # the API is still starting after the last kill
            time.sleep(2)
        exact = bool(got) and all([int(x) for x in got[t][:3]] == [per_tenant[t]] * 3
                                  and int(got[t][3]) == per_tenant[t] // 6 for t in TENANTS)
        for t in TENANTS:
            print(f"{t}: emitted {per_tenant[t]:,}; rows, distinct ids, runs' events, runs = {got.get(t)}")
        print(json.dumps({"kills": a.kills, "emitted": total, "per_tenant_emitted": per_tenant,
                          "counts": got, "exact": exact}))
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
