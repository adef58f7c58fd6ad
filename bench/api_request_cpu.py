"""The query API's own CPU per request, two builds of ``api/`` side by side on the same chDB data.

    python bench/api_request_cpu.py [--before 782c09f] [--runs 300] [--concurrency 8]
                                    [--seconds 6] [--rounds 3] [--reads run,miss,list,timeline]
                                    [--http-before h11] [--http-now httptools] [--run-misses-now]

Two API servers run at once, each a uvicorn process of its own (chDB: one process per data
directory) on loopback: ``before``, ``api/`` as it was at ``--before`` (extracted with ``git
archive`` and imported in place of the checkout's), and ``now``, the checkout. Both load the same
``--runs`` runs (generated here once, seeded: 3 to 200 steps each, LLM and tool steps with
payloads and attributes, decisions, signals, failures) into their own chDB, with the same
migrations, and answer with the same key. Only the API's Python differs (and uvicorn's HTTP
parser, when ``--http-before`` / ``--http-now`` differ: h11 is pure Python, httptools C).

The driver keeps ``--concurrency`` requests in flight (a thread each, keep-alive) on one server
for ``--seconds``, then on the other, ``--rounds`` times each, for each read: ``GET
/v1/runs/{id}`` (the runs in a fixed shuffled order), the same for ids not stored (``miss``, the
404s bench/e2e.py's pollers mostly get), ``GET /v1/runs?limit=50`` and ``GET
/v1/runs/{id}/timeline``. For each: the server process's CPU per request (utime + stime from
/proc, so chDB's work in it is counted too: what it adds is the same in both), and p50 / p99 of
the latency seen by the client. The idle server costs nothing meanwhile.

Then both answer the same requests (every run's detail, list pages, timelines, an unknown run, no
key, a bad key) and the bodies and statuses are compared: ``differ`` must be 0.
Last line: JSON of the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench-tenant"
KEY = "ask_bench-api-request-cpu-0123456789abcdef"
COLUMNS = ["tenant_id", "ts", "event_id", "agent_id", "agent_version", "environment", "run_id",
           "seq", "kind", "step_id", "step_kind", "name", "status", "started_ts", "latency_ms",
           "attempt", "retry_of", "provider", "request_model", "input_tokens", "output_tokens",
           "cost_usd", "tool_name", "args_digest", "failure_type", "failure_code",
           "decision_type", "selected", "candidates", "reason_code", "confidence", "signal_type",
           "signal_code", "signal_value", "run_status", "outcome", "duration_ms", "payload",
           "attributes"]
READS = ("run", "miss", "list", "timeline")
# What each read answers when right: a miss is a run id the tenant does not have (a 404), as
# bench/e2e.py's pollers mostly ask for runs not stored yet.
EXPECT = {"miss": 404}


def make_rows(runs: int, seed: int = 7) -> tuple[list[list[Any]], list[str]]:
    """``runs`` runs of the bench tenant as ``events`` rows, deterministic for a seed."""
    rnd = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2)
    rows: list[list[Any]] = []
    ids: list[str] = []

    def ev(run: str, agent: str, seq: int, ts: dt.datetime, kind: str, **cols: Any) -> None:
        row = dict.fromkeys(COLUMNS)
        row.update(tenant_id=TENANT, ts=ts, event_id=f"{run}-e{seq}", agent_id=agent, agent_version="v1",
                   environment="prod", run_id=run, seq=seq, kind=kind, step_id="", step_kind="", name="",
                   status="", started_ts=ts, latency_ms=0.0, attempt=0, retry_of="", provider="",
                   request_model="", input_tokens=0, output_tokens=0, cost_usd=0.0, tool_name="",
                   args_digest="", failure_type="", failure_code="", decision_type="", selected="",
                   candidates=[], reason_code="", confidence=None, signal_type="", signal_code="",
                   signal_value=None, run_status="", outcome="", duration_ms=0.0, payload="{}",
                   attributes={})
        row.update(cols)
        rows.append([row[c] for c in COLUMNS])

    for i in range(runs):
        run, agent = f"run-{i:05d}", f"agent-{i % 7}"
        ids.append(run)
        t = now - dt.timedelta(seconds=i * 11)
        start, seq = t, 0
        ev(run, agent, seq, t, "RUN_START", name="main", payload=json.dumps({"entrypoint": "main"}))
        for s in range(rnd.choice((3, 8, 20, 40, 80, 200))):
            seq += 1
            lat = round(rnd.uniform(2, 900), 3)
            llm = s % 2 == 0
            cols: dict[str, Any] = {
                "step_id": f"s{s}", "step_kind": "LLM" if llm else "TOOL", "name": "chat" if llm else f"tool-{s % 5}",
                "status": "ERROR" if rnd.random() < 0.03 else "OK", "started_ts": t, "latency_ms": lat,
                "attempt": 1, "attributes": {"customer.tier": rnd.choice(("gold", "free")), "region": f"r{s % 9}"},
                "payload": json.dumps({"message_count": rnd.randint(1, 30), "note": "x" * rnd.randint(0, 120)}),
            }
            if llm:
                cols.update(provider="openai", request_model="gpt-4o", input_tokens=rnd.randint(50, 4000),
                            output_tokens=rnd.randint(5, 800), cost_usd=round(rnd.random() / 100, 6))
            else:
                cols.update(tool_name=f"tool-{s % 5}", args_digest=f"{rnd.getrandbits(64):016x}")
            t += dt.timedelta(milliseconds=lat)
            ev(run, agent, seq, t, "STEP", **cols)
            if s % 10 == 3:
                seq += 1
                ev(run, agent, seq, t, "DECISION", decision_type="tool_selection", selected="search",
                   candidates=["search", "cache", "ask"], reason_code="fresh_data", confidence=0.8, step_id=f"s{s}")
            if s % 10 == 6:
                seq += 1
                ev(run, agent, seq, t, "QUALITY_SIGNAL", signal_type="tool_success", signal_code="ok",
                   signal_value=True, payload=json.dumps({"weight": 0.5}))
        failed = i % 9 == 0
        if failed:
            seq += 1
            ev(run, agent, seq, t, "FAILURE", failure_type="TOOL", failure_code="timeout",
               payload=json.dumps({"message": None, "retryable": True}))
        seq += 1
        ev(run, agent, seq, t + dt.timedelta(milliseconds=1), "RUN_END",
           run_status="FAILURE" if failed else "SUCCESS", outcome="completed",
           duration_ms=(t - start).total_seconds() * 1000, payload=json.dumps({"started_us": 0}))
    return rows, ids


# --- the server side (a subprocess per arm) ------------------------------------------------

class _ApiFrom:
    """Imports ``agentstream.api`` (and its submodules) from ``path`` instead of the checkout."""

    def __init__(self, path: str) -> None:
        self.path = path

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname == "agentstream.api":
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(self.path, "__init__.py"), submodule_search_locations=[self.path])
        if fullname.startswith("agentstream.api.") and fullname.count(".") == 2:
            return PathFinder.find_spec(fullname, [self.path])
        return None


def serve(a: argparse.Namespace) -> None:
    if a.api_dir:
        sys.meta_path.insert(0, _ApiFrom(a.api_dir))
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.settings import ApiSettings
    from agentstream.sink import apply_migrations, make_client

    want = a.api_dir or str(ROOT / "api")
    strays = [m.__file__ for name, m in list(sys.modules.items())
              if name.startswith("agentstream.api") and getattr(m, "__file__", None)
              and not m.__file__.startswith(want + os.sep)]
    assert not strays, f"modules of the {a.api_dir and 'before' or 'now'} arm from elsewhere: {strays}"
    dsn = f"chdb://{a.data}/chdb"
    client = make_client(dsn)
    apply_migrations(client)
    with open(a.rows, "rb") as f:
        rows = pickle.load(f)
    for i in range(0, len(rows), 20_000):
        client.insert("events", rows[i:i + 20_000], column_names=COLUMNS)
    keys = f"{a.data}/keys.json"
    add_key(keys, TENANT, KEY, scopes=["read"])
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers="", dashboard_session_secret="bench")
    misses = None
    if a.run_misses:  # as the embedded process builds it; every row is in before the app starts
        from agentstream.api.store.run_misses import RunMisses
        misses = RunMisses()
    app = create_app(settings, client=make_client(dsn), **({"run_misses": misses} if misses is not None else {}))
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", http=a.http)


# --- the driver ------------------------------------------------------------------------------

def cpu_s(pid: int, thread: int | None = None) -> float:
    """utime + stime of a process (or of one of its threads), seconds."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def paths_for(read: str, ids: list[str]) -> list[str]:
    if read == "run":
        return [f"/v1/runs/{r}" for r in ids]
    if read == "miss":
        return [f"/v1/runs/{r}-not-stored" for r in ids]
    if read == "timeline":
        return [f"/v1/runs/{r}/timeline" for r in ids]
    return ["/v1/runs?limit=50", "/v1/runs?limit=50&agent=agent-3", "/v1/runs?limit=50&status=FAILURE"]


def load(url: str, pid: int, paths: list[str], concurrency: int, seconds: float,
         expect: int = 200) -> dict[str, Any]:
    """``concurrency`` clients on ``paths`` for ``seconds``: server CPU per request, latencies."""
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0]
    stop = threading.Event()
    go = threading.Barrier(concurrency + 1)

    def client(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as c:
            c.get(paths[0])  # connection open before the clock starts
            go.wait()
            i = n * 7919
            while not stop.is_set():
                p = paths[i % len(paths)]
                i += 1
                t = time.perf_counter()
                r = c.get(p)
                lat[n].append((time.perf_counter() - t) * 1000)
                if r.status_code != expect:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    go.wait()
    # the main thread is uvicorn's event loop: routing, dependencies, middleware, responses; the
    # route's own work (ClickHouse, shaping the rows) runs on worker threads and chDB's
    c0, l0, t0 = cpu_s(pid), cpu_s(pid, pid), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    c1, l1 = cpu_s(pid), cpu_s(pid, pid)
    wall = time.perf_counter() - t0
    for t in threads:
        t.join()
    ms = [x for xs in lat for x in xs]
    n = max(1, len(ms))
    return {"n": len(ms), "cpu_us_per_req": (c1 - c0) / n * 1e6, "loop_cpu_us_per_req": (l1 - l0) / n * 1e6,
            "req_per_s": len(ms) / wall,
            "p50_ms": pct(ms, 0.5), "p99_ms": pct(ms, 0.99), "errors": errors[0], "ms": ms}


def compare(urls: dict[str, str], ids: list[str]) -> tuple[int, int]:
    """Same requests to both arms: (compared, differ) on status and body."""
    reqs: list[tuple[str, dict[str, str]]] = [(p, {"X-API-Key": KEY}) for read in READS for p in paths_for(read, ids)]
    reqs += [("/v1/runs/no-such-run", {"X-API-Key": KEY}), ("/v1/runs/run-00000", {}),
             ("/v1/runs/run-00000", {"Authorization": "Bearer ask_not-a-real-key-at-all-000000"}),
             ("/v1/runs?limit=0", {"X-API-Key": KEY}), ("/v1/runs?cursor=zzz", {"X-API-Key": KEY})]
    differ = 0
    with httpx.Client(timeout=30) as c:
        for p, h in reqs:
            got = [c.get(urls[arm] + p, headers=h) for arm in ("before", "now")]
            same = (got[0].status_code == got[1].status_code and got[0].content == got[1].content
                    and got[0].headers.get("content-type") == got[1].headers.get("content-type"))
            if not same:
                differ += 1
                if differ <= 3:
                    print(f"differ: {p} {[g.status_code for g in got]} {[g.content[:200] for g in got]}")
    return len(reqs), differ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="782c09f", help="git revision of api/ for the 'before' arm")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0, help="per arm, per read, per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reads", default=",".join(READS))
    ap.add_argument("--base-port", type=int, default=18841)
    ap.add_argument("--http-before", default="auto", choices=("auto", "h11", "httptools"),
                    help="uvicorn's HTTP parser in the before arm (auto: httptools when installed)")
    ap.add_argument("--http-now", default="auto", choices=("auto", "h11", "httptools"))
    ap.add_argument("--run-misses-now", action="store_true",
                    help="the 'now' arm remembers 404s of run reads, as the embedded process does "
                         "(api/store/run_misses.py); the 'miss' read then measures a remembered 404")
    ap.add_argument("--run-misses", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--api-dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--http", default="auto", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a)
        return

    work = tempfile.mkdtemp(prefix="apicpubench-")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        rows, ids = make_rows(a.runs)
        with open(f"{work}/rows.pkl", "wb") as f:
            pickle.dump(rows, f)
        old_api = f"{work}/before"
        os.makedirs(old_api)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.before, "api"], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(old_api)
        urls: dict[str, str] = {}
        for n, arm in enumerate(("before", "now")):
            port = a.base_port + n
            urls[arm] = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--data", f"{work}/{arm}",
                   "--rows", f"{work}/rows.pkl", "--http", getattr(a, f"http_{arm}")] + (["--api-dir", f"{old_api}/api"] if arm == "before" else [])
            if arm == "now" and a.run_misses_now:
                cmd.append("--run-misses")
            procs[arm] = subprocess.Popen(cmd, cwd=str(ROOT))
        for arm, url in urls.items():
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if procs[arm].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {arm} server did not start")
                time.sleep(0.3)
        print(f"{len(rows)} events in {a.runs} runs; before = api/ at {a.before} (http {a.http_before}), "
              f"now http {a.http_now}; "
              f"concurrency {a.concurrency}, {a.seconds:g} s per arm per round, {a.rounds} rounds", flush=True)

        reads = [r for r in a.reads.split(",") if r]
        got: dict[str, dict[str, list[dict[str, Any]]]] = {r: {"before": [], "now": []} for r in reads}
        for read in reads:
            paths = paths_for(read, random.Random(3).sample(ids, len(ids)))
            for arm in ("before", "now"):  # warm-up: first requests, caches, lazily built routes
                load(urls[arm], procs[arm].pid, paths, a.concurrency, 1.0, EXPECT.get(read, 200))
            for rnd in range(a.rounds):
                for arm in (("before", "now") if rnd % 2 == 0 else ("now", "before")):
                    r = load(urls[arm], procs[arm].pid, paths, a.concurrency, a.seconds, EXPECT.get(read, 200))
                    got[read][arm].append(r)
                    print(f"  {read:8s} {arm:6s} cpu {r['cpu_us_per_req']:7.0f} us/req (loop {r['loop_cpu_us_per_req']:5.0f})"
                          f"  {r['req_per_s']:6.0f} req/s"
                          f"  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}", flush=True)
        compared, differ = compare(urls, ids)

        out: dict[str, Any] = {"before_rev": a.before, "http_before": a.http_before, "http_now": a.http_now,
                               "run_misses_now": a.run_misses_now,
                               "runs": a.runs, "events": len(rows),
                               "concurrency": a.concurrency, "seconds": a.seconds, "rounds": a.rounds}
        print(f"\n{'read':10s} {'arm':7s} {'CPU us/req':>11s} {'loop us/r':>10s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s}")
        for read in reads:
            fig: dict[str, Any] = {}
            for arm in ("before", "now"):
                rs = got[read][arm]
                ms = [x for r in rs for x in r["ms"]]
                fig[arm] = {k: round(sorted(r[k] for r in rs)[len(rs) // 2])  # the median round
                            for k in ("cpu_us_per_req", "loop_cpu_us_per_req")}
                fig[arm].update({"req_per_s": round(sum(r["n"] for r in rs) / (a.seconds * len(rs))),
                            "p50_ms": round(pct(ms, 0.5), 1), "p99_ms": round(pct(ms, 0.99), 1),
                                 "errors": sum(r["errors"] for r in rs)})
                print(f"{read:10s} {arm:7s} {fig[arm]['cpu_us_per_req']:11d} {fig[arm]['loop_cpu_us_per_req']:10d} "
                      f"{fig[arm]['req_per_s']:7d} "
                      f"{fig[arm]['p50_ms']:7.1f} {fig[arm]['p99_ms']:7.1f}")
            for k in ("cpu_us_per_req", "loop_cpu_us_per_req", "p50_ms", "p99_ms"):
                fig[f"{k.removesuffix('_per_req').removesuffix('_ms')}_ratio"] = round(
                    fig["now"][k] / max(fig["before"][k], 1e-9), 3)
            out[read] = fig
        out.update(compared=compared, differ=differ)
        print(f"responses compared: {compared}, differ: {differ}")
        print(json.dumps(out))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
