"""End to end: the real SDK → raw → processors → events → sink → ClickHouse → query API.

    python bench/e2e.py [--events 300000] [--tenants 3] [--agents 4] [--loads 0,2000,10000]

Starts the embedded stack as ``agentstream up`` does (``cli.stack.Stack``: the Tansu broker,
the processors worker, the sink+API process; the gateway only with --gateway) on free loopback
ports and a private data dir. The SDK always runs in separate processes (bench/e2e_sdk.py).

1. Latency, under stepped background loads (``--loads``, events/s offered by a paced SDK
   process; 0 = idle): a probe run (RUN_START, 3 steps, RUN_END) every 200 ms from this process's
   own Tracer; each probe's clock starts when its ``with tracer.run()`` block exits (RUN_END
   queued, no flush: the SDK's linger counts) and stops at the first ``GET /v1/runs/{id}`` that
   answers with the run final (SUCCESS, all 5 events). Two poller threads (``--pollers``) poll
   the pending probes (each at most every 50 ms, oldest first, one request in flight per thread), so a figure may run up to one poll round long; ``requests``
   counts the GETs. The GET's own latency is reported too, and each probe's time hop by hop
   (``hops``: SDK → raw → processors → events → sink insert → GET, bench/e2e_hops.py) with the
   sink's inserts meanwhile (``sink_inserts``: count and mean time), and per stage the cores it
   used and how many of its threads waited for a CPU on average (``cpu_waits``, from
   /proc/<pid>/task/*/schedstat: where the machine, not the code, set the latency).
2. Throughput: ``--events`` events from ``--tenants`` tenants × ``--agents`` agents, emitted as
   fast as ``--emitters`` SDK processes can, from the first emit until every event is queryable
   (``uniqExact(event_id)`` per tenant through ``POST /v1/sql`` equals what the SDK emitted).
3. Accounting over every event of the run (probes, background loads, throughput): emitted by
   the SDK vs stored in ClickHouse, the processors' and sink's own counters (events, DLQ,
   quarantine), and ``lost`` = emitted − stored − DLQ − quarantine.

CPU: utime+stime of each stage's process tree from /proc, before and after the throughput
phase, reported as CPU-seconds and µs per event per stage (robust to a busy machine, unlike
ev/s). The machine's load average is printed with the figures.
Last line: JSON with e2e_ev_s, latency_p50_ms_idle, latency_p99_ms_idle, latency_p99_ms_10k,
lost, cpu_by_stage (and more).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from agentstream.api.auth import add_key
from agentstream.cli.embedded_broker import free_port
from agentstream.cli.stack import Stack, StackConfig
from agentstream.producer import Tracer

from e2e_hops import hop_budget, histogram_delta, pct, probe_stamps
from e2e_otlp import OTLP_TENANT, otlp_traces
from proc_cpu import cpu_probe_ms, tree_cpu, tree_sched

HERE = Path(__file__).resolve().parent
POLL_S = 0.05  # a pending probe is polled at most this often: the figures' resolution
POLLERS = 2  # GET requests in flight at once (--pollers)


# ---- the stack and its clients ----------------------------------------------------------------

class Bench:
    def __init__(self, data_dir: Path, tenants: list[str], partitions: int, gateway: bool) -> None:
        self.data = data_dir
        self.tenants = tenants
        self.keys = {t: add_key(data_dir / "api_keys.json", t, scopes=["read"], name="e2e")
                     for t in tenants}
        self.write_key = add_key(data_dir / "api_keys.json", OTLP_TENANT, scopes=["read", "write"],
                                 name="e2e-otlp")
        self.keys[OTLP_TENANT] = self.write_key
        # uncommon, free ports: other engineers run stacks on this machine too
        self.stack = Stack(StackConfig(data_dir=data_dir, partitions=partitions,
                                       broker_port=free_port(), api_port=free_port(),
                                       gateway_port=free_port(), processors_port=free_port(),
                                       with_gateway=gateway))
        self.http = httpx.Client(timeout=30.0)
        self.sdk_procs: list[dict] = []

    def start(self) -> None:
        self.stack.start()
        self.stack.wait_ready(180)
        self.bootstrap = self.stack.broker.bootstrap_servers
        self.prefix = self.stack.config.topic_prefix

    def stop(self) -> None:
        self.http.close()
        self.stack.stop()

    def pids(self) -> dict[str, int]:
        out = {"broker": self.stack.broker.proc.pid}
        out.update({p.name: p.proc.pid for p in self.stack.parts})
        return out

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def sql(self, tenant: str, sql: str) -> list[list]:
        r = self.http.post(f"{self.stack.api_url}/v1/sql", json={"sql": sql}, headers=self.auth(tenant))
        r.raise_for_status()
        return r.json()["rows"]

    def stored(self) -> dict[str, int]:
        return {t: int(self.sql(t, "SELECT uniqExact(event_id) FROM events")[0][0]) for t in self.tenants}

    def counted(self) -> int:
        return sum(int(self.sql(t, "SELECT count() FROM events")[0][0]) for t in self.tenants)

    def insert_histogram(self) -> dict[str, float]:
        """The sink's insert-time histograms for the events table (sum and count): wall time, and
        the inserting thread's CPU and wait for a CPU."""
        out: dict[str, float] = {}
        for line in self.http.get(f"{self.stack.api_url}/metrics").text.splitlines():
            m = re.match(r'^(agentstream_sink_insert_(?:seconds|thread_cpu_seconds|cpu_wait_seconds)_(?:sum|count))'
                         r'\{table="events"\} (\S+)$', line)
            if m:
                out[m.group(1)] = float(m.group(2))
            elif line.startswith("agentstream_api_run_misses_answered_total "):
                out["misses_answered"] = float(line.split()[1])
        return out

    def sink_rows(self) -> float:
        """Rows the sink has stored in ``events``, by its own counter (a /metrics scrape costs the
        sink+API process ~1 ms; a /v1/sql query ~10 ms)."""
        return sum(float(m.group(1)) for m in re.finditer(
            r'^agentstream_sink_rows_total\{[^}]*table="events"[^}]*\} (\S+)$',
            self.http.get(f"{self.stack.api_url}/metrics").text, re.M))

    def metrics(self) -> dict[str, float]:
        """The processors' and the sink's own counters, summed per series name and label."""
        out: dict[str, float] = {}
        urls = [f"http://127.0.0.1:{self.stack.config.processors_port}/metrics", f"{self.stack.api_url}/metrics"]
        if self.stack.config.with_gateway:
            urls.append(f"{self.stack.gateway_url}/metrics")
        for url in urls:
            for line in self.http.get(url).text.splitlines():
                m = re.match(r"^(agentstream_(?:processors|sink|gateway)_\w+_total)(\{[^}]*\})? (\S+)$", line)
                if m:
                    key = m.group(1) + (m.group(2) or "").replace(self.prefix, "")
                    out[key] = out.get(key, 0.0) + float(m.group(3))
        return out

    # ---- SDK processes ----
    def sdk(self, *, events: int = 0, rate: float = 0, duration_s: float = 1e9,
            tenants: list[str] | None = None, agents: int = 2, steps: int = 6) -> subprocess.Popen:
        sdk_tenants = tenants or [t for t in self.tenants if t != OTLP_TENANT]
        cfg = {"bootstrap": self.bootstrap, "prefix": self.prefix, "tenants": sdk_tenants,
               "agents": agents, "steps": steps, "events": events, "rate": rate,
               "duration_s": duration_s, "spool": str(self.data / "sdk-spool" / str(len(self.sdk_procs)))}
        return subprocess.Popen([sys.executable, str(HERE / "e2e_sdk.py"), json.dumps(cfg)],
                                stdout=subprocess.PIPE, text=True)

    def sdk_result(self, proc: subprocess.Popen) -> dict:
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"SDK process exited with {proc.returncode}")
        res = json.loads(out.strip().splitlines()[-1])
        self.sdk_procs.append(res)
        return res


# ---- 1. latency under load --------------------------------------------------------------------

def probe_latency(b: Bench, tracer: Tracer, tenant: str, seconds: float, every: float = 0.2,
                  pollers: int = POLLERS, watch: dict[str, int] | None = None) -> dict:
    """Probe runs every ``every`` s; ``pollers`` threads poll the pending ones, oldest poll first,
    each keeping one request in flight (as a couple of dashboard users would). A thread per
    probe polling every 50 ms had ~15 requests in flight and saturated the API it measured.
    A pending probe is polled at most every POLL_S.
    ``watch``: processes (stage -> pid) whose cores and CPU waits are taken over the probes'
    emission (``cpu_waits``)."""
    lat_ms: list[float] = []
    get_ms: list[float] = []
    pending: dict[str, list[float]] = {}  # run id -> [emitted at, last polled at]
    emitted_wall: dict[str, float] = {}
    final_wall: dict[str, float] = {}
    lock = threading.Lock()
    emitting = threading.Event()
    emitting.set()

    def poll() -> None:
        client = httpx.Client(timeout=30.0)
        try:
            while emitting.is_set() or pending:
                with lock:
                    now = time.monotonic()
                    due = [(last, rid) for rid, (_, last) in pending.items() if now - last >= POLL_S]
                    rid = min(due)[1] if due else None
                    if rid is not None:
                        pending[rid][1] = time.monotonic()
                if rid is None:
                    time.sleep(0.005)
                    continue
                t = time.monotonic()
                r = client.get(f"{b.stack.api_url}/v1/runs/{rid}", headers=b.auth(tenant))
                done = time.monotonic()
                with lock:
                    requests[0] += 1
                    if r.status_code == 200:
                        get_ms.append((done - t) * 1000)
                        timing = r.headers.get("server-timing", "")  # the API's own time to the headers
                        if timing.startswith("app;dur="):
                            get_server_ms.append(float(timing[8:]))
                        run = r.json()["run"]
                        if run["status"] == "SUCCESS" and run["event_count"] == 5 and rid in pending:
                            lat_ms.append((done - pending.pop(rid)[0]) * 1000)
                            final_wall[rid] = time.time()
                    if rid in pending and done - pending[rid][0] > 60.0:
                        missing.append(pending.pop(rid))
        finally:
            client.close()

    missing: list = []
    requests = [0]
    get_server_ms: list[float] = []
    inserts_before = b.insert_histogram()
    threads = [threading.Thread(target=poll, daemon=True) for _ in range(pollers)]
    for th in threads:
        th.start()
    sched0, t0 = {k: tree_sched(p) for k, p in (watch or {}).items()}, time.monotonic()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        with tracer.run("probe") as run:
            for s in range(3):
                with run.step("tool", f"probe-{s}"):
                    pass
        with lock:
            pending[run.run_id] = [time.monotonic(), 0.0]
            emitted_wall[run.run_id] = time.time()
        time.sleep(max(0.0, every - (time.monotonic() - t)))
    waits = cpu_waits(sched0, {k: tree_sched(p) for k, p in (watch or {}).items()}, time.monotonic() - t0)
    emitting.clear()
    for th in threads:
        th.join(120)
    r = lambda x: round(x, 1)  # noqa: E731
    # Where the time went: the sink stamps inserted_at on each row, so emit → stored in
    # ClickHouse (SDK linger, raw, processors, events, sink batching) splits from stored →
    # answered final (the insert's commit, the GET's polling and its own time).
    rows = b.sql(tenant, "SELECT run_id, toUnixTimestamp64Milli(inserted_at) FROM events "
                         "WHERE agent_id = 'probe-agent' AND kind = 'RUN_END' "
                         f"AND ts >= fromUnixTimestamp64Milli({int(min(emitted_wall.values(), default=0) * 1000) - 1000})")
    inserted = {rid: ms / 1000 for rid, ms in rows}
    to_store = [(inserted[k] - emitted_wall[k]) * 1000 for k in final_wall if k in inserted]
    to_answer = [(final_wall[k] - inserted[k]) * 1000 for k in final_wall if k in inserted]
    inserts_after = b.insert_histogram()
    inserts = histogram_delta(inserts_before, inserts_after, "agentstream_sink_insert_seconds")
    # the same inserts' CPU and wait for a CPU (sink/thread_sched.py; absent where not Linux)
    for key, name in (("cpu_mean_ms", "thread_cpu_seconds"), ("cpu_wait_mean_ms", "cpu_wait_seconds")):
        inserts[key] = histogram_delta(inserts_before, inserts_after, f"agentstream_sink_insert_{name}")["mean_ms"]
    stamps = probe_stamps(b.bootstrap, b.prefix, emitted_wall, final_wall, inserted, 5)
    split = {"emit_to_stored_p50_ms": r(pct(to_store, 0.5)), "emit_to_stored_p99_ms": r(pct(to_store, 0.99)),
             "stored_to_answer_p50_ms": r(pct(to_answer, 0.5)), "stored_to_answer_p99_ms": r(pct(to_answer, 0.99))}
    return {**split, "n": len(lat_ms), "missing": len(missing), "p50_ms": r(pct(lat_ms, 0.5)),
            "p99_ms": r(pct(lat_ms, 0.99)), "max_ms": r(max(lat_ms, default=float("nan"))),
            "get_p50_ms": r(pct(get_ms, 0.5)), "get_p99_ms": r(pct(get_ms, 0.99)), "gets": len(get_ms), "requests": requests[0],
            # the same GETs as the API timed them (Server-Timing): the rest is the loopback and
            # the bench's own threads waiting for a core
            "get_server_p50_ms": r(pct(get_server_ms, 0.5)), "get_server_p99_ms": r(pct(get_server_ms, 0.99)),
            "hops": hop_budget(stamps), "sink_inserts": inserts, "cpu_waits": waits,
            # 404s the API answered without a query (api/store/run_misses.py)
            "misses_answered": int(inserts_after.get("misses_answered", 0) - inserts_before.get("misses_answered", 0))}


def cpu_waits(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
              seconds: float) -> dict[str, dict[str, float]]:
    """Per stage: cores used, and how many of its threads were, on average, runnable but waiting
    for a CPU (0: a CPU was free whenever one was wanted). A thread that wakes often for little
    work (librdkafka's timers) waits a scheduling latency per wake-up, so compare a stage with
    itself across loads and arms rather than with another stage."""
    out = {}
    for k, (on1, wait1) in after.items():
        on, wait = on1 - before.get(k, (0.0, 0.0))[0], wait1 - before.get(k, (0.0, 0.0))[1]
        out[k] = {"cores": round(on / max(1e-9, seconds), 2), "waiting": round(wait / max(1e-9, seconds), 2)}
    return out


def latency_steps(b: Bench, loads: list[float], probe_s: float, warm_s: float,
                  pollers: int = POLLERS) -> dict[float, dict]:
    probe_tenant = b.tenants[0]
    tracer = Tracer(probe_tenant, "probe-agent", "1.0.0", "bench", bootstrap_servers=b.bootstrap,
                    topic_prefix=b.prefix, spool_dir=str(b.data / "probe-spool"), commands_enabled=False)
    out = {}
    try:
        # The parts report ready before their consumer groups have joined and the sink has read
        # its ledger: measure from the moment one run goes all the way through.
        t = time.monotonic()
        with tracer.run("warm-up") as run:
            pass
        while b.http.get(f"{b.stack.api_url}/v1/runs/{run.run_id}", headers=b.auth(probe_tenant)).status_code != 200:
            if time.monotonic() - t > 180:
                raise RuntimeError("the pipeline did not store a run within 180 s of starting")
            time.sleep(0.1)
        print(f"pipeline flowing {time.monotonic() - t:.1f}s after the parts were ready", flush=True)
        for load in loads:
            bg = b.sdk(rate=load, duration_s=warm_s + probe_s + 1) if load else None
            if bg is not None:
                time.sleep(warm_s)
            watch = {**b.pids(), **({"sdk": bg.pid} if bg is not None else {})}
            out[load] = probe_latency(b, tracer, probe_tenant, probe_s, pollers=pollers, watch=watch)
            if bg is not None:
                res = b.sdk_result(bg)
                out[load]["offered_ev_s"] = round(res["total"] / max(1e-9, res["last_emit"] - res["first_emit"]))
            print(f"latency at {load:>6.0f} ev/s offered: {json.dumps(out[load])}", flush=True)
        tracer.flush(30)
        out["probe_stats"] = tracer.stats()
    finally:
        tracer.close(5)
    out["probe_emitted"] = {probe_tenant: 2 + sum(v["n"] + v["missing"] for k, v in out.items()
                                                  if isinstance(k, float)) * 5}  # + the warm-up run
    return out


# ---- 2. throughput ----------------------------------------------------------------------------

def throughput(b: Bench, events: int, emitters: int, agents: int, expect: dict[str, int],
               otlp: tuple[int, int] = (0, 0)) -> dict:
    pids = b.pids()
    rows0 = b.sink_rows()
    inserts0 = b.insert_histogram()
    cpu0 = {k: tree_cpu(p) for k, p in pids.items()}
    per = events // emitters
    first = time.time()
    procs = [b.sdk(events=per, agents=agents) for _ in range(emitters)]
    otlp_res: dict = {}
    sender = threading.Thread(target=lambda: otlp_res.update(otlp_traces(b, *otlp)), daemon=True)
    if otlp[0]:
        sender.start()
    results = [b.sdk_result(p) for p in procs]
    if otlp[0]:
        sender.join()
    first = min([r["first_emit"] for r in results] + ([first] if otlp[0] else []))
    last_emit = max(r["last_emit"] for r in results)
    total = sum(r["total"] for r in results) + otlp_res.get("events_expected", 0)
    for r in results:
        for t, n in r["emitted"].items():
            expect[t] = expect.get(t, 0) + n
    if otlp_res:
        expect[OTLP_TENANT] = expect.get(OTLP_TENANT, 0) + otlp_res["events_expected"]
        print(f"otlp: {json.dumps(otlp_res)}", flush=True)
    deadline = time.time() + max(120.0, total / 2000)
    want = sum(expect.values())
    stored: dict[str, int] = {}
    confirmed_at = 0.0
    while time.time() < deadline:
        # The sink's own row counter says when everything may be there; only then the exact
        # per-tenant check runs through /v1/sql (count(), then uniqExact, a scan), and at most
        # once a second after one that fell short (a replay counts its rows again). Each /v1/sql
        # costs the API ~10 ms of CPU: polling count() for 3 tenants every 200 ms took ~0.1 of a
        # core from the pipeline it measured, and uniqExact every 250 ms ~half a core.
        if b.sink_rows() - rows0 >= total and time.time() - confirmed_at >= 1.0:
            confirmed_at = time.time()
            if b.counted() >= want:
                stored = b.stored()
                if all(stored[t] >= expect.get(t, 0) for t in b.tenants):
                    break
        time.sleep(0.1)
    done = time.time()
    cpu1 = {k: tree_cpu(p) for k, p in pids.items()}
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in pids}
    cpu["sdk"] = round(sum(r["cpu_s"] for r in results), 2)
    # the sink's inserts into events meanwhile: ClickHouse pays a fixed cost per insert (the
    # staging view's planning) besides its cost per row, so their count is a share of sink+api
    inserts1 = b.insert_histogram()
    inserts = histogram_delta(inserts0, inserts1, "agentstream_sink_insert_seconds")
    inserts["cpu_mean_ms"] = histogram_delta(inserts0, inserts1, "agentstream_sink_insert_thread_cpu_seconds")["mean_ms"]
    return {"sink_inserts": inserts,"events": total, "emit_ev_s": round(total / max(1e-9, last_emit - first)),
            "e2e_s": round(done - first, 2), "e2e_ev_s": round(total / (done - first)),
            "complete": all(stored.get(t, 0) >= expect.get(t, 0) for t in b.tenants),
            "cpu_s": cpu, "cpu_us_per_event": {k: round(v / total * 1e6, 1) for k, v in cpu.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--agents", type=int, default=4, help="agents per tenant per SDK process")
    ap.add_argument("--emitters", type=int, default=2, help="SDK processes in the throughput phase")
    ap.add_argument("--loads", default="0,2000,10000", help="background ev/s for the latency steps")
    ap.add_argument("--probe-s", type=float, default=10.0)
    ap.add_argument("--warm-s", type=float, default=3.0)
    ap.add_argument("--pollers", type=int, default=POLLERS, help="GET requests in flight polling the probes")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--gateway", action="store_true")
    ap.add_argument("--otlp-traces", type=int, default=0,
                    help="also post this many OTLP traces (--otlp-spans spans each) to the gateway "
                         "during the throughput phase, tenant e2e-otlp (implies --gateway)")
    ap.add_argument("--otlp-spans", type=int, default=50)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="ENV=VALUE",
                    help="a setting for the stack's parts, e.g. AGENTSTREAM_SINK_FLUSH_IDLE_SECONDS=1")
    a = ap.parse_args()
    tenants = [f"e2e-{i}" for i in range(a.tenants)]
    tmp = tempfile.TemporaryDirectory(prefix="agentstream-e2e-")
    data = Path(a.data_dir or tmp.name)
    loadavg = os.getloadavg()
    probe_before = cpu_probe_ms()
    for kv in a.set:
        k, _, v = kv.partition("=")
        os.environ[k] = v  # the stack's parts inherit this process's environment
    if a.otlp_traces:
        tenants.append(OTLP_TENANT)
    b = Bench(data, tenants, a.partitions, a.gateway or a.otlp_traces > 0)
    t_start = time.monotonic()
    b.start()
    print(f"stack ready in {time.monotonic() - t_start:.1f}s; load average before: "
          f"{', '.join(f'{x:.2f}' for x in loadavg)} on {os.cpu_count()} cores; CPU probe {probe_before} ms",
          flush=True)
    try:
        lat = latency_steps(b, [float(x) for x in a.loads.split(",") if x != ""], a.probe_s, a.warm_s,
                            pollers=a.pollers)
        expect: dict[str, int] = dict(lat["probe_emitted"])
        for r in b.sdk_procs:
            for t, n in r["emitted"].items():
                expect[t] = expect.get(t, 0) + n
        tp = throughput(b, a.events, a.emitters, a.agents, expect,
                        (a.otlp_traces, a.otlp_spans)) if a.events else {}
        print(f"throughput: {json.dumps(tp)}", flush=True)
        time.sleep(2.0)  # let the sink's last flush land before the final count
        stored, metrics = b.stored(), b.metrics()
        dlq = sum(v for k, v in metrics.items() if "dlq" in k)
        quarantine = sum(v for k, v in metrics.items() if "quarantine" in k)
        sdk_lost = sum(r["sdk_stats"].get(k, 0) for r in b.sdk_procs for k in ("failed", "dropped"))
        sdk_lost += sum(lat["probe_stats"].get(k, 0) for k in ("failed", "dropped"))
        emitted = sum(expect.values())
        lost = emitted - sum(stored.values()) - int(dlq) - int(quarantine)
        accounting = {"emitted": emitted, "stored": sum(stored.values()), "dlq": int(dlq),
                      "quarantine": int(quarantine), "sdk_failed_or_dropped": sdk_lost,
                      "per_tenant": {t: [expect.get(t, 0), stored[t]] for t in tenants},
                      # fetches that skipped offsets, read again (schemas/offset_gaps.py)
                      "offset_gaps": {k: v for k, v in metrics.items() if "offset_gap" in k and v},
                      "counters": {k: v for k, v in metrics.items() if "records" in k or "rows" in k or "gateway_events" in k
                                   or "dlq" in k}}
        print(f"accounting: {json.dumps(accounting)}", flush=True)
    finally:
        b.stop()
        tmp.cleanup()
    idle = lat.get(0.0, {})
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps({
        "e2e_ev_s": tp.get("e2e_ev_s"), "emit_ev_s": tp.get("emit_ev_s"),
        "latency_p50_ms_idle": idle.get("p50_ms"), "latency_p99_ms_idle": idle.get("p99_ms"),
        "latency_max_ms_idle": idle.get("max_ms"),
        "latency_p99_ms_10k": lat.get(10000.0, {}).get("p99_ms"),  # None unless 10000 was a load
        "latency_hops_idle": idle.get("hops"),  # the budget per hop, p50/p99/max (bench/e2e_hops.py)
        "latency": {str(int(k)): v for k, v in lat.items() if isinstance(k, float)},
        "lost": lost, "cpu_by_stage": tp.get("cpu_us_per_event"), "cpu_s": tp.get("cpu_s"),
        "accounting": {k: v for k, v in accounting.items() if k != "counters"},
        "loadavg_before": [round(x, 2) for x in loadavg],
        # the machine's speed before and after (bench/proc_cpu.py): a slower core costs every stage
        "cpu_probe_ms": [probe_before, cpu_probe_ms()],
    }))


if __name__ == "__main__":
    main()
