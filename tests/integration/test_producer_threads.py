"""Several tracers, threads and processes write correctly: every event arrives decodable.

The encoder keeps process-wide caches (timestamp groups, strings) that every Tracer's
transport thread uses at once. The scenario runs in fresh interpreters so those caches start
empty, as in an agent process that just imported the SDK: that first fill is where a shared
cache goes wrong. Two processes run at once, 8 tracers x 4 agent threads each, with the
interpreter switching threads as often as it can.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name

pytestmark = pytest.mark.integration

TRACERS, THREADS, RUNS, STEPS = 8, 4, 3, 6

_SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from agentstream.producer import Tracer

    bootstrap, prefix, spool, tag = sys.argv[1:5]
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show, not hide
    TRACERS, THREADS, RUNS, STEPS = (int(a) for a in sys.argv[5:9])
    tracers = [Tracer(f"tenant-{tag}-{i % 3}", f"agent-{i}", "1.0.0", "test",
                      bootstrap_servers=bootstrap, topic_prefix=prefix,
                      spool_dir=f"{spool}/{i}", commands_enabled=False)
               for i in range(TRACERS)]
    run_ids, lock, go = [], threading.Lock(), threading.Barrier(TRACERS * THREADS)

    def agent(tracer, t):
        go.wait()  # every transport thread encodes its first events at the same moment
        for r in range(RUNS):
            with tracer.run("threads", thread=t, r=r) as run:
                for s in range(STEPS):
                    with run.llm_step("openai", "gpt-4o") as st:
                        st.record_llm("openai", "gpt-4o", input_tokens=10 + s, output_tokens=s)
                    run.tool_call("search", {"q": s}, latency_ms=1.5)
            with lock:
                run_ids.append(run.run_id)

    threads = [threading.Thread(target=agent, args=(tr, t)) for tr in tracers
               for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = all(tr.flush(30) for tr in tracers)
    stats = [tr.stats() for tr in tracers]
    for tr in tracers:
        tr.close(5)
    print(json.dumps({"ok": ok, "run_ids": run_ids, "stats": stats}))
""")


def test_eight_tracers_times_four_threads_every_event_decodable(bootstrap, topic_prefix,
                                                                   tmp_path, unique):
    procs = [subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, bootstrap, topic_prefix, str(tmp_path / f"spool{p}"),
         f"{unique}{p}", str(TRACERS), str(THREADS), str(RUNS), str(STEPS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        assert "could not encode" not in err, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    run_ids = []
    for res in results:
        assert res["ok"]
        for st in res["stats"]:
            assert st["failed"] == 0 and st["dropped"] == 0, st
        run_ids += res["run_ids"]
    per_run = 1 + 2 * STEPS + 1  # RUN_START, an llm step and a tool step per round, RUN_END
    assert len(run_ids) == len(set(run_ids)) == 2 * TRACERS * THREADS * RUNS
    got = read_events(bootstrap, topic_name("raw", topic_prefix), run_ids, timeout=60)
    for rid, events in got.items():  # read_events decodes each record: decodable or it raises
        assert [e["seq"] for e in events] == list(range(per_run)), rid
        assert [e["kind"] for e in events] == ["RUN_START"] + ["STEP"] * 2 * STEPS + ["RUN_END"]
        steps = [e["payload"] for e in events[1:-1]]
        assert [s["step_kind"] for s in steps] == ["LLM", "TOOL"] * STEPS
        assert [s["llm"]["input_tokens"] for s in steps[::2]] == [10 + s for s in range(STEPS)]
        assert all(e["run_id"] == rid for e in events)
        assert all(1_600_000_000_000_000 < e["ts_us"] < 4_000_000_000_000_000 for e in events)
