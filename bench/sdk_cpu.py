"""The producer SDK's CPU per emitted event, this checkout against an earlier commit, side by side.

    python bench/sdk_cpu.py [--baseline REF] [--events N] [--rounds R] [--tracers 12,1]

Why: in bench/e2e.py the SDK runs on the same 2 cores as the whole stack, and every µs it
spends per event is a µs the pipeline cannot have. The workload is bench/e2e_sdk.py's (the
emitter bench/e2e.py starts): one Tracer per (tenant, agent), runs of RUN_START, 6 steps (LLM
steps with usage and tool calls with digested arguments, alternating) and RUN_END.

Two measurements, each alternating baseline and current in separate processes, ``--rounds``
times (the machine is shared and noisy: medians, and the ratio of the medians):

1. **e2e_sdk**: the real SDK against the embedded broker (one broker for all runs, its CPU not
   counted), ``N`` events with 12 tracers (3 tenants x 4 agents) and with 1; CPU = the emitting
   process's user+sys (getrusage, every thread: the agent's, the transport threads',
   librdkafka's) from the first Tracer to the last flush and close, per event; and apart, per
   thread from /proc (the agent's main thread from the first Tracer on, the transport threads,
   librdkafka's ``rdk:*``; read at the first close, so the close itself is in the total only)
   and the cyclic GC's time (``gc.callbacks``, on whichever thread it ran). That part is ~1 µs/event, except in runs
   where its broker threads spin (over ``SPIN_US``: counted as ``spun``). They did in about
   half the 12-tracer runs before ``max_in_flight`` (docs/sdk.md, "The Kafka producer"): the
   idempotent producer polls in a loop from a batch's linger expiry to the broker's answer,
   and the loaded broker's answers came later than linger.ms.
2. **threads**: the same runs in one process without a broker, one tracer with
   ``worker_thread=False`` and a producer that discards records: thread CPU of the agent's calls
   per event, then of the transport's work (encoding and handing records to the producer) per
   event, measured apart. Python's share of the SDK, without the noise of GIL hand-offs and
   librdkafka.

The baseline is ``git archive REF producer`` with the other parts taken from this checkout, and
REF's C extensions compiled next to it. The last line is a JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline_tree import mixed_tree

ROOT = Path(__file__).resolve().parent.parent
# The SDK before issue #18's CPU work (the default baseline).
DEFAULT_BASELINE = "5c857c4"
# librdkafka's threads above this many µs per event: its broker threads spun (~1 otherwise)
SPIN_US = 5.0


# ---- the child: one measurement in this process ---------------------------------------------
def _rdk_cpu_s() -> float:
    """CPU seconds of this process's librdkafka threads (named rdk:*) alive now."""
    return _threads_cpu_s()["rdk"]


def _threads_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's threads alive now: librdkafka's (named rdk:*), the main
    thread's (the agent's, here) and the others' (the SDK's transport threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"rdk": 0.0, "main": 0.0, "other": 0.0}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm = (task / "comm").read_text()
            f = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        part = "rdk" if comm.startswith("rdk:") else "main" if task.name == str(os.getpid()) else "other"
        out[part] += (int(f[11]) + int(f[12])) / tick
    return out


def _gc_timer() -> list[float]:
    """Wall seconds the cyclic GC has run since this call (in [0]; it holds the GIL: ~CPU)."""
    import gc

    spent = [0.0, 0.0]

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(timer)
    return spent


def _child_e2e(cfg: dict) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    import e2e_sdk

    from agentstream.producer import Tracer

    # Per thread, read when the first tracer closes (after every flush; librdkafka's and the
    # transport's threads end with the close). Every tracer's threads are new in this
    # process, so they started at 0; the main thread's CPU before the run is subtracted.
    threads: list[dict[str, float]] = []
    close = Tracer.close

    def close_and_read(self, timeout=None):
        if not threads:
            threads.append(_threads_cpu_s())
        return close(self, timeout)

    Tracer.close = close_and_read
    main0 = _threads_cpu_s()["main"]
    gc_s = _gc_timer()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    res = e2e_sdk.main(cfg)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    stats = res["sdk_stats"]
    n = res["total"]
    th = threads[0]
    return {"us": cpu / n * 1e6, "rdk_us": th["rdk"] / n * 1e6, "python_us": (cpu - th["rdk"]) / n * 1e6,
            "agent_us": (th["main"] - main0) / n * 1e6, "transport_us": th["other"] / n * 1e6,
            "gc_us": gc_s[0] / n * 1e6,
            "events": n, "sent": stats.get("sent"), "dropped": stats.get("dropped"),
            "failed": stats.get("failed"), "flushed": res["flushed"]}


class _Discard:
    """A producer that takes records and drops them (threads mode: no broker, no librdkafka).

    Like librdkafka it reports each record from ``poll``/``flush`` (a success, unless configured
    with ``delivery.report.only.error``): the transport counts a record in flight until its
    report, and a flush waits for none left in flight."""

    def __init__(self, conf: dict) -> None:
        self.n = 0
        self._cb = conf.get("on_delivery")
        self._only_errors = str(conf.get("delivery.report.only.error", False)).lower() == "true"
        self._pending: list = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None, on_delivery=None,
                **kw: object) -> None:
        self.n += 1
        self._pending.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        pending, self._pending = self._pending, []
        if not self._only_errors:
            for cb in pending:
                if (cb or self._cb) is not None:
                    (cb or self._cb)(None, _Reported)
        return len(pending)

    def flush(self, timeout: float = 0) -> int:
        self.poll(0)
        return 0

    def purge(self, **kw: object) -> None:
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)


class _Reported:
    """What a delivery callback reads of a delivered record (never read on success)."""

    @staticmethod
    def error() -> None:
        return None


def _runs(tracer, runs: int, steps: int) -> None:
    """bench/e2e_sdk.py's runs, on one tracer."""
    sys.path.insert(0, str(ROOT / "bench"))
    from e2e_sdk import emit_run

    for i in range(runs):
        emit_run(tracer, i, steps)


def _child_threads(cfg: dict) -> dict:
    from agentstream.producer import Tracer

    tracer = Tracer("t0", "agent-0", "1.0.0", "bench", bootstrap_servers="127.0.0.1:9",
                    spool_dir=cfg["spool"], commands_enabled=False, worker_thread=False,
                    producer_factory=_Discard, queue_size=10_000_000)
    steps = cfg["steps"]
    per_run = steps + 2
    runs = max(1, cfg["events"] // per_run // 5)
    _runs(tracer, 200, steps)  # warm up: imports, caches, the first run's wire
    tracer.flush(60)
    emit, encode = [], []
    for _ in range(5):  # best of 5 batches
        t0 = time.thread_time()
        _runs(tracer, runs, steps)
        t1 = time.thread_time()
        assert tracer.flush(60)
        t2 = time.thread_time()
        emit.append((t1 - t0) / (runs * per_run) * 1e6)
        encode.append((t2 - t1) / (runs * per_run) * 1e6)
    s = tracer.stats()
    tracer.close(5)
    return {"emit_us": min(emit), "encode_us": min(encode), "us": min(emit) + min(encode),
            "failed": s["failed"], "dropped": s["dropped"]}


# ---- the parent: baseline tree, broker, alternation -----------------------------------------
def _measure(mode: str, cfg: dict, pythonpath: str | None, extra_env: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra_env)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(cfg)], env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(label: str, runs: list[tuple[dict, dict]], key: str = "us") -> dict:
    base = [b[key] for b, _ in runs]
    cur = [c[key] for _, c in runs]
    mb, mc = statistics.median(base), statistics.median(cur)
    # librdkafka's share can be 0.0 (under one clock tick): no ratio then
    ratio = mc / mb if mb else float("nan")
    pair = statistics.median(c / b if b else float("nan") for b, c in zip(base, cur))
    print(f"{label:<34}{mb:>10.2f}{mc:>10.2f}{ratio:>9.2f}{pair:>10.2f}   "
          f"base {' '.join(f'{v:.1f}' for v in base)} | now {' '.join(f'{v:.1f}' for v in cur)}")
    return {"baseline_us": round(mb, 2), "current_us": round(mc, 2),
            "ratio": round(ratio, 3) if mb else None, "paired_ratio": round(pair, 3) if mb else None}


def _spun(label: str, runs: list[tuple[dict, dict]]) -> dict:
    base = sum(b["rdk_us"] > SPIN_US for b, _ in runs)
    cur = sum(c["rdk_us"] > SPIN_US for _, c in runs)
    print(f"{label:<34}{base:>10}{cur:>10}   of {len(runs)} runs each")
    return {"baseline": base, "current": cur, "runs": len(runs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of the SDK to compare with")
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tracers", default="12,1", help="tracers per e2e_sdk run (12 = 3 tenants x 4 agents)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for both sides' SDK (e.g. AGENTSTREAM_PRODUCER_LINGER_MS=50)")
    ap.add_argument("--no-threads", action="store_true", help="skip the in-process measurement")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    extra_env = dict(kv.split("=", 1) for kv in args.set)
    if args.child:
        mode, cfg = args.child[0], json.loads(args.child[1])
        print(json.dumps(_child_e2e(cfg) if mode == "e2e" else _child_threads(cfg)), flush=True)
        return

    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas.topics import create_topics

    work = Path(tempfile.mkdtemp(prefix="agentstream-sdk-cpu-"))
    ref = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                         check=True, capture_output=True, text=True).stdout.strip()
    base_path = str(mixed_tree(ref, "producer", work / "baseline"))
    result: dict = {"events": args.events, "rounds": args.rounds, "baseline": ref,
                    "env": extra_env}
    print(f"SDK CPU per event, baseline {ref} vs this checkout; {args.events} events, "
          f"{args.rounds} rounds alternating (medians; ratio = now / baseline)")
    print(f"{'':<34}{'baseline':>10}{'now':>10}{'ratio':>9}{'paired':>10}")
    broker = EmbeddedBroker().start()
    try:
        prefix = f"sdkcpu{os.getpid()}."
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=4)
        for n_tracers in [int(t) for t in args.tracers.split(",") if t]:
            tenants = 3 if n_tracers % 3 == 0 else 1
            runs = []
            for r in range(args.rounds):
                pair = {}
                for variant in (("base", "now") if r % 2 == 0 else ("now", "base")):
                    cfg = {"bootstrap": broker.bootstrap_servers, "prefix": prefix,
                           "spool": str(work / f"spool-{variant}-{n_tracers}-{r}"),
                           "tenants": [f"t{i}" for i in range(tenants)],
                           "agents": n_tracers // tenants, "steps": 6, "events": args.events}
                    pair[variant] = _measure("e2e", cfg, base_path if variant == "base" else None,
                                             extra_env)
                    assert pair[variant]["flushed"] and not pair[variant]["dropped"], pair[variant]
                runs.append((pair["base"], pair["now"]))
            result[f"e2e_{n_tracers}_tracers"] = _compare(
                f"e2e_sdk, {n_tracers} tracer(s), µs/event", runs)
            result[f"e2e_{n_tracers}_tracers"]["without_librdkafka"] = _compare(
                "  of it not in librdkafka threads", runs, "python_us")
            result[f"e2e_{n_tracers}_tracers"]["librdkafka"] = _compare(
                "  of it in librdkafka threads", runs, "rdk_us")
            result[f"e2e_{n_tracers}_tracers"]["agent_thread"] = _compare(
                "  of it in the agent's thread", runs, "agent_us")
            result[f"e2e_{n_tracers}_tracers"]["transport_threads"] = _compare(
                "  of it in the transport threads", runs, "transport_us")
            result[f"e2e_{n_tracers}_tracers"]["gc"] = _compare(
                "  of it in the cyclic GC (any thread)", runs, "gc_us")
            result[f"e2e_{n_tracers}_tracers"]["spun"] = _spun(
                f"  runs where they spun (>{SPIN_US:g})", runs)
    finally:
        broker.stop()
    runs = []
    for r in range(0 if args.no_threads else args.rounds):
        pair = {}
        for variant in (("base", "now") if r % 2 == 0 else ("now", "base")):
            cfg = {"spool": str(work / f"spool-threads-{variant}-{r}"), "steps": 6,
                   "events": args.events}
            pair[variant] = _measure("threads", cfg, base_path if variant == "base" else None,
                                     extra_env)
        runs.append((pair["base"], pair["now"]))
    if runs:
        result["threads"] = {
            "agent_thread": _compare("agent thread, µs/event", runs, "emit_us"),
            "transport_encode": _compare("transport encode+produce, µs/event", runs, "encode_us"),
            "both": _compare("both", runs),
        }
    shutil.rmtree(work, ignore_errors=True)
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
