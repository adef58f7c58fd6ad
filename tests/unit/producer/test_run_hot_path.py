"""The agent thread's cheaper run path (issue #18, SDK CPU) must keep what the plain one gave.

- event ids: a run whose id the SDK drew seeds its event ids with it; a run whose id the caller
  gave (it may come again: a run resumed in another process) gets a fresh seed, so two such
  runs never share an event id (the sink deduplicates on it and would lose one);
- the step numbers ``tool_call``/``llm_call`` draw without a lock stay unique when the run's
  steps come from several threads, and the id they return is the id the event carries;
- a run's lazily made state (its command list, its retry attempts) takes commands from other
  threads as before: every command is acknowledged exactly once and a STOP stops the run;
- RUN_START and RUN_END take their wall times from the run's clock anchor, as its steps do:
  in order, and RUN_END's totals and duration agree with the steps.
"""
from __future__ import annotations

import threading

import pytest

from agentstream.producer.errors import RunStopped
from agentstream.producer.testing import InMemoryTransport


@pytest.fixture(params=[True, False], ids=["c-core", "py-core"])
def tracer(request, tmp_path):
    memory = InMemoryTransport()
    tr = memory.tracer("acme", "bot", "1.0.0", "test", spool_dir=str(tmp_path / "spool"),
                       speedups=request.param)
    tr.memory = memory  # type: ignore[attr-defined]
    yield tr
    tr.close(5)


def test_a_reused_caller_run_id_never_repeats_an_event_id(tracer):
    for _ in range(3):  # the same run resumed three times
        with tracer.run("resume", run_id="order-7") as run:
            run.tool_call("search", {"q": "x"})
    drawn = []
    for _ in range(200):
        with tracer.run("fresh") as run:
            run.tool_call("search", {"q": "x"})
        drawn.append(run.run_id)
    assert tracer.flush(10)
    events = tracer.memory.events()
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) == 3 * 3 + 200 * 3
    resumed = [e["event_id"] for e in events if e["run_id"] == "order-7"]
    assert len({i[:24] for i in resumed}) == 3  # one fresh seed per resumption
    for e in events:
        if e["run_id"] != "order-7":
            assert e["event_id"][:24] == e["run_id"][:24]


def test_step_ids_are_unique_across_threads_and_match_the_events(tracer):
    returned: list[str] = []
    lock = threading.Lock()
    with tracer.run("fanout") as run:
        def work(k: int) -> None:
            mine = []
            for i in range(150):
                if i % 3 == 0:
                    mine.append(run.tool_call("search", {"q": f"{k}-{i}"}, latency_ms=1.0))
                elif i % 3 == 1:
                    mine.append(run.llm_call("openai", "gpt-4o", 10, 2, latency_ms=2.0))
                else:
                    with run.step("plan", f"p{k}-{i}") as st:
                        mine.append(st.step_id if i % 2 else None)
            with lock:
                returned.extend(s for s in mine if s is not None)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert tracer.flush(10)
    steps = tracer.memory.events(run.run_id, kind="STEP")
    ids = [s["payload"]["step_id"] for s in steps]
    assert len(steps) == 4 * 150 and len(set(ids)) == len(ids)
    assert set(returned) <= set(ids) and len(set(returned)) == len(returned)
    assert all(i.startswith(run.run_id[:8] + ".") for i in ids)


def test_commands_from_other_threads_are_each_acknowledged_once(tracer):
    with tracer.run("commands") as run:
        run.tool_call("search", {"q": "x"})

        def send(k: int) -> None:
            for i in range(25):
                run.apply_command({"command_id": f"c{k}-{i}", "command_type": "NOOP"})

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run.check()
        run.apply_command({"command_id": "stop-1", "command_type": "STOP", "reason": "ops"})
        with pytest.raises(RunStopped):
            with run.step("tool", "after"):
                pass
    assert tracer.flush(10)
    acks = [e["payload"] for e in tracer.memory.events(run.run_id, kind="COMMAND_ACK")]
    assert sorted(a["command_id"] for a in acks) == sorted(
        [f"c{k}-{i}" for k in range(4) for i in range(25)] + ["stop-1"])
    assert {a["status"] for a in acks if a["command_id"] != "stop-1"} == {"ignored"}
    end = tracer.memory.events(run.run_id, kind="RUN_END")[0]["payload"]
    assert end["status"] == "PARTIAL"


def test_retries_still_count_attempts(tracer):
    with tracer.run("retries") as run:
        with run.step("tool", "fetch") as first:
            pass
        with run.step("tool", "fetch", retry_of=first) as second:
            pass
        with run.step("tool", "fetch", retry_of=second):
            pass
    assert tracer.flush(10)
    steps = [e["payload"] for e in tracer.memory.events(run.run_id, kind="STEP")]
    assert [s["attempt"] for s in steps] == [1, 2, 3]
    assert [s["retry_of"] for s in steps] == [None, steps[0]["step_id"], steps[1]["step_id"]]


def test_run_start_and_end_times_follow_the_runs_clock(tracer):
    with tracer.run("timed", ticket="T-1") as run:
        for i in range(3):
            run.llm_call("openai", "gpt-4o", 100, 10, latency_ms=0.5, finish_reasons=("stop",),
                         tool_calls=["search"] if i else ())
            run.tool_call("search", {"q": str(i)}, latency_ms=0.25)
    assert tracer.flush(10)
    events = tracer.memory.events(run.run_id)
    start, end = events[0], events[-1]
    assert start["kind"] == "RUN_START" and end["kind"] == "RUN_END"
    assert start["ts_us"] == run.started_us == end["payload"]["started_us"]
    assert start["attributes"] == {"ticket": "T-1"}
    # (a one-shot record is back-dated by its latency, so its end, not its start, follows)
    assert all(start["ts_us"] <= e["ts_us"] <= end["ts_us"] for e in events)
    assert abs(end["ts_us"] - start["ts_us"] - end["payload"]["duration_ms"] * 1000) <= 1
    assert end["payload"]["step_count"] == 6 and end["payload"]["llm_calls"] == 3
    assert end["payload"]["input_tokens"] == 300 and end["payload"]["output_tokens"] == 30
    llm = [e["payload"]["llm"] for e in events if e["kind"] == "STEP" and e["payload"]["llm"]]
    assert [x["finish_reasons"] for x in llm] == [["stop"]] * 3
    assert [x["tool_calls"] for x in llm] == [[], ["search"], ["search"]]
