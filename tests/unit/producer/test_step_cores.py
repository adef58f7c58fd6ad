"""The C step core (producer/_speedups.c) against the pure-Python one (producer/step.py): the
same observable behaviour on every path, plus what only the C core does (GC untracking while
queued). The shared behaviour tests in test_steps.py also run on both cores."""
from __future__ import annotations

import gc
import sys
import time
import weakref

import pytest

from agentstream.producer import Budget, BudgetExceeded
from agentstream.producer.run import FastRun, Run
from agentstream.producer.step import FastStep, PyStep, Step

from step_support import drain, make_tracer


@pytest.fixture(params=[True, False], ids=["c-core", "python-core"])
def tracer(tmp_path, request):
    return make_tracer(tmp_path, request.param)


def test_the_c_core_is_built_and_used_by_default(tmp_path):
    # `pip install` builds it wherever there is a compiler (setup.py); CI and make have one.
    assert FastStep is not None, "producer/_speedups.c was not built"
    fast, slow = make_tracer(tmp_path, True), make_tracer(tmp_path, False)
    with fast.run("r") as run:
        assert type(run) is FastRun and isinstance(run, Run)
        s = run.step("tool", "x")
        assert type(s) is FastStep and isinstance(s, Step)
    with slow.run("r") as run:
        assert type(run) is Run
        assert type(run.step("tool", "x")) is PyStep


def test_times_are_perf_counter_ns_on_both_cores(tracer):
    with tracer.run("r") as run:
        wall_before = time.time_ns() // 1000
        before = time.perf_counter_ns()
        with run.step("tool", "t") as s:
            opened_us = s.started_us
            time.sleep(0.002)
        after = time.perf_counter_ns()
        wall_after = time.time_ns() // 1000
    step = next(e for e in drain(tracer) if e["kind"] == "STEP")["payload"]
    # a nanosecond clock: the latency is at least the sleep, at most the time around the step
    assert 2.0 <= step["latency_ms"] <= (after - before) / 1e6
    # the start is on the wall clock (one anchor per run), taken as the step opened; the run's
    # anchor plus a perf_counter delta may sit up to a slew's worth off time.time() (seen: 118 µs
    # past it on CI's VM), so the window gets a millisecond either side
    assert wall_before - 1000 <= opened_us <= wall_after + 1000
    assert s.closed and s.started_us == opened_us == step["started_us"]


def test_unusual_calls_take_the_python_path_with_the_same_result(tracer):
    class Attrs(dict):
        pass

    with tracer.run("r") as run:
        with run.step("no-such-kind", "custom"):
            pass
        with run.step(["unhashable"], "unhashable"):
            pass
        with run.step("TOOL", "mapping", Attrs(a=1), b=2):
            pass
        first = run.tool_call("search", {"q": 1}, latency_ms=1.0, status="error")
        with run.step("tool", "retry", retry_of=first, k="v") as retry:
            pass
        with run.step("tool", "third", attempt=3):
            pass
        with run.step("llm", "empty", {}):
            pass
    steps = {e["payload"]["name"]: e for e in drain(tracer) if e["kind"] == "STEP"}
    assert steps["custom"]["payload"]["step_kind"] == "CUSTOM"
    assert steps["unhashable"]["payload"]["step_kind"] == "CUSTOM"
    assert steps["mapping"]["attributes"] == {"a": "1", "b": "2"}
    assert retry.attempt == 2 and steps["retry"]["payload"]["retry_of"] == first
    assert steps["retry"]["attributes"] == {"k": "v"}
    assert steps["third"]["payload"]["attempt"] == 3
    assert steps["empty"]["attributes"] in ({}, None)
    assert run.llm_calls == 1 and run.step_count == 7


def test_retry_of_and_attempt_given_as_none_mean_not_given_on_both_cores(tracer):
    # the wrappers (tool_call, tool_step, llm_step) always pass retry_of, None when not a retry:
    # the C core keeps such calls, and a None never becomes an attribute
    with tracer.run("r") as run:
        with run.step("tool", "plain", retry_of=None, attempt=None, k="v") as plain:
            pass
        with run.step("llm", "mapped", {"m": 1}, retry_of=None) as mapped:
            pass
        with run.step("tool", "bare", retry_of=None):
            pass
        run.tool_call("search", {"q": 1}, latency_ms=1.0)
        with run.llm_step("openai", "gpt-4o") as st:
            st.record_llm("openai", "gpt-4o", input_tokens=1, output_tokens=1)
    if tracer.settings.speedups:
        assert type(plain) is FastStep and type(mapped) is FastStep
    steps = {e["payload"]["name"]: e for e in drain(tracer) if e["kind"] == "STEP"}
    assert steps["plain"]["attributes"] == {"k": "v"}
    assert steps["mapped"]["attributes"] == {"m": "1"}
    assert steps["bare"]["attributes"] in ({}, None)
    assert plain.attempt == 1 and steps["plain"]["payload"]["retry_of"] is None
    assert steps["search"]["payload"]["retry_of"] is None
    assert "retry_of" not in (steps["chat gpt-4o"]["attributes"] or {})
    assert run.step_count == 5


def test_a_budget_is_enforced_before_the_step_on_both_cores(tracer):
    with pytest.raises(BudgetExceeded):
        with tracer.run("r", budget=Budget(max_steps=2)) as run:
            for i in range(5):
                with run.step("tool", f"s{i}"):
                    pass
    assert run.step_count == 2
    events = drain(tracer)
    assert [e["payload"]["name"] for e in events if e["kind"] == "STEP"] == ["s0", "s1"]
    assert events[-1]["kind"] == "RUN_END" and events[-1]["payload"]["outcome"] == "budget_stopped"


def test_a_full_queue_drops_the_oldest_and_counts_on_both_cores(tmp_path):
    for speedups in (True, False):
        t = make_tracer(tmp_path, speedups, queue_size=16)
        with t.run("r") as run:
            for i in range(40):
                with run.step("tool", f"s{i}"):
                    pass
        stats = t.stats()
        assert stats["queued"] == 16
        assert stats["dropped"] == 1 + 40 + 1 - 16  # RUN_START, 40 steps, RUN_END; 16 fit
        assert run.step_count == 40
        events = drain(t)  # the newest 16 are kept: the last 15 steps and the RUN_END
        assert [e["payload"].get("name") for e in events[:-1]] == [f"s{i}" for i in range(25, 40)]
        assert events[-1]["kind"] == "RUN_END" and t.stats()["queued"] == 0


def test_a_step_closed_in_another_context_resets_the_current_step(tracer):
    def gen(run):
        with run.step("tool", "gen"):
            yield 1
            yield 2

    with tracer.run("r") as run:
        g = gen(run)
        next(g)
        import contextvars

        contextvars.copy_context().run(g.close)  # closes the step in a different context
        assert tracer.current_step() is not None  # this context still sees the open step ...
    steps = [e for e in drain(tracer) if e["kind"] == "STEP"]
    assert [s["payload"]["name"] for s in steps] == ["gen"]


def test_steps_are_freed_and_cycles_through_them_collected(tracer):
    with tracer.run("r") as run:
        with run.step("tool", "plain") as plain:
            pass
        with run.step("tool", "cycle") as cyc:
            cyc.set_attribute("me", cyc)  # a cycle through the step's own attrs
    refs = [weakref.ref(plain), weakref.ref(cyc)]
    drain(tracer)
    del plain, cyc
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_queued_steps_are_not_scanned_by_the_gc_until_taken(tmp_path):
    t = make_tracer(tmp_path, True)
    with t.run("r") as run:
        with run.step("tool", "queued") as s:
            pass
        assert t.stats()["queued"] == 2 and not gc.is_tracked(s)  # RUN_START and the step
        assert [e["kind"] for e in drain(t)] == ["RUN_START", "STEP"]
        assert gc.is_tracked(s)  # taken by the transport: tracked again


def test_the_c_core_does_not_leak_references(tmp_path):
    t = make_tracer(tmp_path, True)
    attrs = {"k": "v"}
    with t.run("r") as run:
        for _ in range(100):  # warm up
            with run.step("tool", "x", attrs, a=1):
                pass
        drain(t)
        name = "x"
        before = (sys.getrefcount(run), sys.getrefcount(attrs), sys.getrefcount(name))
        for _ in range(1000):
            with run.step("tool", name, attrs, a=1):
                pass
            with run.step("tool", name, k=2):
                pass
        drain(t)
        after = (sys.getrefcount(run), sys.getrefcount(attrs), sys.getrefcount(name))
    assert after == before


def test_the_core_constructor_checks_its_arguments(tmp_path):
    t = make_tracer(tmp_path, True)
    with t.run("r") as run:
        with pytest.raises(TypeError):
            FastStep(run, 1, "x")
        with pytest.raises(TypeError):
            FastStep(run, 1, "x", None, extra=1)
        s = FastStep(run, 1, "x", None)
        assert s.attrs is None and s.started_us is None and s.parent_step_id is None
        assert not s.closed
        assert s.__exit__(None, None, None) is False  # never opened: nothing queued
        assert run.step_count == 0
        with run.step("tool", "outer") as outer:
            s.begin()  # the Python side writes the core's slots: start time and parent
            assert s.started_us is not None and not s.closed
            assert s.parent_step_id == outer.step_id
            s.end()
        assert s.closed and run.step_count == 2
