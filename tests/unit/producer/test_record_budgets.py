"""Record-only calls (``run.llm_call``, ``run.tool_call``: what callback-style integrations use)
count against a run's budgets exactly as a ``with`` step of the same kind does: a step, a model
call, its tokens and its cost, each once. A record reports an operation that already happened,
so it never raises; a recorded call the gate would have refused stops the run there (FAILURE
and RUN_END say so) and the next gated operation raises (docs/sdk.md, Enforcement settings).

Found by a reliability probe: 60 recorded steps, 30 of them model calls, on a budget of 20 steps
and 5 model calls raised nothing, not even at the next ``with`` step."""
from __future__ import annotations

import math
import random

import pytest
from step_support import drain, make_tracer

from agentstream.producer import Budget, BudgetExceeded, LackOfProgress

CORES = pytest.mark.parametrize("speedups", [True, False], ids=["c", "py"])


def _kinds(events):
    return [e["kind"] for e in events]


def _end(events):
    (end,) = [e for e in events if e["kind"] == "RUN_END"]
    return end["payload"]["status"], end["payload"]["outcome"]


@CORES
def test_recorded_calls_over_the_budget_stop_the_run_at_the_next_step(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    for final in ("llm", "tool", "check"):
        with pytest.raises(BudgetExceeded) as info:
            with tracer.run("cb", budget=Budget(max_steps=20, max_model_calls=5)) as run:
                for i in range(30):  # none of these raises: they report what already happened
                    assert run.llm_call("openai", "gpt-4o", 1000, 100, cost_usd=0.01) is not None
                    assert run.tool_call("search", {"q": f"q{i}"}, 100) is not None
                if final == "llm":
                    with run.llm_step("openai", "gpt-4o"):
                        pass
                elif final == "tool":
                    with run.step("tool", "search"):
                        pass
                else:
                    run.check()  # a callback-only agent's checkpoint between iterations
        # the 6th model call is the first a gated step would have refused
        assert (info.value.budget_type, info.value.limit, info.value.used) == ("model_calls", 5, 5)
        events = drain(tracer)
        failures = [e for e in events if e["kind"] == "FAILURE"]
        assert len(failures) == 1 and failures[0]["payload"]["failure_type"] == "BUDGET"
        assert failures[0]["payload"]["failure_code"] == "model_calls_budget_exceeded"
        steps = [e for e in events if e["kind"] == "STEP"]
        assert len(steps) == 60  # every recorded call is recorded, before and after the stop
        sixth_llm = [s for s in steps if s["payload"]["step_kind"] == "LLM"][5]
        assert failures[0]["payload"]["step_id"] == sixth_llm["payload"]["step_id"]
        assert _end(events) == ("PARTIAL", "budget_stopped")
        assert tracer.stats()["failed"] == 0  # nothing was swallowed inside a record call


@CORES
def test_records_and_with_steps_share_one_step_count(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("mixed", budget=Budget(max_steps=4)) as run:
            run.tool_call("a", {"n": 1})
            with run.step("tool", "b"):
                pass
            run.llm_call("openai", "gpt-4o", 1, 1)
            run.tool_call("c", {"n": 2})  # the 4th step: at the limit, not over it
            run.check()                   # not a step, and the run is not over
            with run.step("tool", "d"):   # the 5th would go over
                pass
    assert (info.value.budget_type, info.value.used) == ("steps", 4)
    events = drain(tracer)
    assert _kinds(events).count("STEP") == 4 and _kinds(events).count("FAILURE") == 1


@CORES
def test_a_recorded_step_over_max_steps_is_the_breach(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with tracer.run("r", budget=Budget(max_steps=2)) as run:
        for i in range(3):
            run.tool_call("search", {"q": i})
        # the run was stopped by the 3rd record; the agent never reached a gated operation
    events = drain(tracer)
    (failure,) = [e for e in events if e["kind"] == "FAILURE"]
    assert failure["payload"]["failure_code"] == "steps_budget_exceeded"
    assert failure["payload"]["step_id"] == [e for e in events if e["kind"] == "STEP"][2][
        "payload"]["step_id"]
    assert _end(events) == ("PARTIAL", "budget_stopped")


@CORES
def test_model_calls_at_the_limit_refuse_only_the_next_model_call(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("r", budget=Budget(max_model_calls=2)) as run:
            run.llm_call("openai", "gpt-4o", 10, 10)
            run.llm_call("openai", "gpt-4o", 10, 10)
            with run.step("tool", "search"):  # nothing is over: tools go on
                pass
            run.check_llm_budget()  # a third model call would go over
    assert (info.value.budget_type, info.value.used) == ("model_calls", 2)


@CORES
def test_recorded_tokens_and_cost_are_counted_once(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("tokens", budget=Budget(max_tokens=1000)) as run:
            run.llm_call("openai", "gpt-4o", 500, 100)  # 600 tokens
            # 600 + 400 is the limit, not over it: admitted only if the record counted once
            with run.llm_step("openai", "gpt-4o", estimated_tokens=400) as s:
                s.record_llm("openai", "gpt-4o", 300, 100)
            run.check_llm_budget()  # 1000 of 1000 used: no model call fits
    assert (info.value.budget_type, info.value.used) == ("tokens", 1000)

    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("cost", budget=Budget(max_cost_usd=0.30)) as run:
            for _ in range(3):  # three $0.10 calls pay for a $0.30 budget exactly (in decimal)
                run.llm_call("openai", "gpt-4o", 1, 1, cost_usd=0.10)
            with run.step("tool", "t"):
                pass
            run.llm_call("openai", "gpt-4o", 1, 1, cost_usd=0.10)  # the budget admitted none
            with run.step("tool", "t"):
                pass
    assert info.value.budget_type == "cost_usd"
    events = drain(tracer)
    assert [e["payload"]["failure_code"] for e in events if e["kind"] == "FAILURE"] == [
        "tokens_budget_exceeded", "cost_usd_budget_exceeded"]


@CORES
def test_a_record_never_raises_even_on_a_stopped_run(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with tracer.run("r", budget=Budget(max_steps=1, max_repeated_fingerprints=1)) as run:
        with run.step("tool", "a"):
            pass
        with pytest.raises(BudgetExceeded):
            with run.step("tool", "b"):
                pass
        # stopped: the records still report what happened, and raise nothing
        assert run.tool_call("search", {"q": 1}) is not None
        assert run.tool_call("search", {"q": 1}) is not None
        assert run.llm_call("openai", "gpt-4o", 10, 10) is not None
        assert run.fallback("gpt-4o", "gpt-4o-mini", "down", True) is not None
    events = drain(tracer)
    assert _kinds(events).count("STEP") == 5
    assert _kinds(events).count("FAILURE") == 1  # the stop is recorded once
    assert tracer.stats()["failed"] == 0


@CORES
def test_a_recorded_repeat_stops_the_run_at_the_next_step(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with pytest.raises(LackOfProgress) as info:
        with tracer.run("r", budget=Budget(max_repeated_fingerprints=2)) as run:
            with run.tool_step("lookup", {"sku": "A-1"}):
                pass
            run.tool_call("lookup", {"sku": "A-1"})  # the same call, recorded: a repeat
            run.tool_call("lookup", {"sku": "A-1"})  # the 3rd within the window: over
            with run.step("tool", "other"):
                pass
    assert info.value.repeats == 3
    events = drain(tracer)
    assert _kinds(events).count("STEP") == 3
    assert _end(events) == ("PARTIAL", "no_progress_stopped")


@CORES
def test_recorded_approvals_fallbacks_and_handoffs_are_steps_too(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with pytest.raises(BudgetExceeded):
        with tracer.run("r", budget=Budget(max_steps=3)) as run:
            run.approval({"tool": "refund"}, "approved", 12.0)
            run.fallback("gpt-4o", "gpt-4o-mini", "down", True)
            run.handoff("billing")
            with run.step("tool", "a"):
                pass
    assert tracer.stats()["failed"] == 0


@CORES
def test_records_without_a_budget_record_no_enforcement(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    with tracer.run("r") as run:
        for _ in range(50):
            run.llm_call("openai", "gpt-4o", 1000, 100, cost_usd=1.0)
            run.tool_call("search", {"q": "same"})
        with run.step("tool", "a"):
            pass
    events = drain(tracer)
    assert "FAILURE" not in _kinds(events)
    assert _end(events) == ("SUCCESS", "completed")


JUNK = [None, 0, -1, 2**70, math.nan, math.inf, "", "x", "\ud800", [], {}, {"k": object()}, {1: 2},
        object(), ("t",), True, 1.5, {1}, 70000, "2", 2, {"agentstream.args_digest": "d"}]


@CORES
def test_records_with_odd_arguments_under_a_budget_never_raise(tmp_path, speedups):
    """Under every limit at once, with arguments the SDK cannot use, a record call raises
    nothing, not even an enforcement error."""
    tracer = make_tracer(tmp_path, speedups)
    rng = random.Random(7)

    def j():
        return rng.choice(JUNK)

    calls = [
        lambda run: run.llm_call(j(), j(), j(), j(), j(), j(), j(), cost_usd=j(), retry_of=j()),
        lambda run: run.tool_call(j(), j(), j(), call_id=j(), status=j(), retry_of=j()),
        lambda run: run.tool_call("lookup", {"sku": "A-1"}, **{"agentstream.args_digest": j()}),
        lambda run: run.approval(j(), j(), j()),
        lambda run: run.fallback(j(), j(), j(), j()),
        lambda run: run.handoff(j()),
    ]
    budget = Budget(max_steps=4, max_model_calls=1, max_tokens=50, max_cost_usd=0.001,
                    max_wall_time_s=60, max_repeated_fingerprints=1)
    for _ in range(150):
        with tracer.run("fuzz", budget=budget) as run:
            for _ in range(8):
                rng.choice(calls)(run)
    drain(tracer)
