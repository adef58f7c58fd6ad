"""The agent side of bench/e2e.py: the real SDK, in its own process, emitting runs.

    python bench/e2e_sdk.py '<json config>'

One ``Tracer`` per (tenant, agent), round robin. A run is RUN_START, ``steps`` steps (LLM and
tool steps alternating, each with a few attributes) and RUN_END. With ``rate`` > 0 the runs are
paced to that many events per second for ``duration_s``; otherwise ``events`` are emitted as
fast as the process can. At the end every tracer is flushed (acked by Kafka or spooled) and one
JSON line reports what was emitted per tenant, the tracers' own counters and the CPU used.
"""
from __future__ import annotations

import json
import sys
import time

from agentstream.producer import Tracer


def emit_run(tr: Tracer, i: int, steps: int) -> None:
    """Run ``i``: RUN_START, ``steps`` steps (LLM and tool alternating) and RUN_END."""
    with tr.run("bench", ticket=f"T-{i}", lane=str(i % 7)) as run:
        for s in range(steps):
            if s % 2 == 0:
                with run.llm_step("openai", "gpt-4o", temperature=0.2) as st:
                    st.record_llm("openai", "gpt-4o", input_tokens=900 + s, output_tokens=120,
                                  finish_reasons=["stop"])
            else:
                run.tool_call("search", {"q": f"order {i}"}, latency_ms=3.5)


def main(cfg: dict) -> dict:
    tracers = [Tracer(t, f"agent-{a}", f"1.{a % 2}.0", "bench", bootstrap_servers=cfg["bootstrap"],
                      topic_prefix=cfg["prefix"], spool_dir=f"{cfg['spool']}/{t}-{a}",
                      commands_enabled=False)
               for t in cfg["tenants"] for a in range(cfg["agents"])]
    steps, rate = cfg["steps"], float(cfg.get("rate") or 0)
    per_run = steps + 2
    limit = cfg.get("events") or 0
    stop_at = time.monotonic() + cfg.get("duration_s", 1e9)
    emitted = {t: 0 for t in cfg["tenants"]}
    total = i = 0
    t0 = time.monotonic()
    first_wall = time.time()
    while (not limit or total + per_run <= limit) and time.monotonic() < stop_at:
        ahead = total / rate - (time.monotonic() - t0) if rate else 0.0
        if ahead > 0:
            time.sleep(min(0.01, ahead))
            continue
        tr = tracers[i % len(tracers)]
        emit_run(tr, i, steps)
        emitted[tr.tenant_id] += per_run
        total += per_run
        i += 1
    last_wall = time.time()
    flushed = all(tr.flush(120) for tr in tracers)
    stats: dict[str, int] = {}
    for tr in tracers:
        for k, v in tr.stats().items():
            if isinstance(v, int) and not isinstance(v, bool):
                stats[k] = stats.get(k, 0) + v
    for tr in tracers:
        tr.close(5)
    return {"first_emit": first_wall, "last_emit": last_wall, "emitted": emitted, "total": total,
            "runs": i, "flushed": flushed, "sdk_stats": stats, "cpu_s": time.process_time()}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
