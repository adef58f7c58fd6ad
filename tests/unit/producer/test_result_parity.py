"""The SDK's repeated-call rule with results (``step.record_result``) is the processors' loop
rule: random agents polling a few calls whose results take a few values (or none), with retries,
steps without arguments and tool steps whose arguments come inside the step, are refused by the
SDK at the step at which the processors' detector, reading the same run unenforced, fires
``repeat`` (``schemas/loop_repeats.py``; test_poll_results_sdk.py, test_poll_results.py)."""
from __future__ import annotations

import random

import pytest
from step_support import drain, expected_refusal, make_tracer, refused_at

from agentstream.schemas import loop_repeats
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import LOOP_DEFAULTS

CORES = pytest.mark.parametrize("speedups", [True, False], ids=["c", "py"])


def _play(run, rng, op, last):
    kind, name, arg, result = op
    if kind == "retry" and last[0] is not None:
        with run.tool_step(last[0].name, {"n": last[1]}, retry_of=last[0]) as s:
            if result is not None:
                s.record_result(result)
        return
    if kind == "late":  # arguments known only inside the step
        with run.step("tool", name) as s:
            s.record_tool(name, {"n": arg})
            if result is not None:
                s.record_result(result)
    elif kind == "plain":
        with run.step("custom", "think"):
            pass
        return
    else:
        with run.tool_step(name, {"n": arg}) as s:
            if result is not None:
                s.record_result(result)
    last[0], last[1] = s, arg


def _first_repeat(events, limit):
    loops = {**LOOP_DEFAULTS, "max_repeats": limit, "max_ping_pong": 10_000,
             "repeat_window": loop_repeats.REPEAT_WINDOW}
    state = runs.new_state()
    for i, e in enumerate(events):
        state["raised"] = []
        state.pop("lsub", None)
        if any("repeat" in f.title for f in runs.observe(state, e, loops, {})):
            return i
    return None


@CORES
def test_the_sdk_stops_where_the_processors_see_the_repeat(tmp_path, speedups):
    """Random agents polling a few calls with results from a few values (or none), with
    retries, steps without arguments and tool steps whose arguments come inside the step: the
    SDK refuses the step at which the processors, reading the same run unenforced, fire
    ``repeat`` (one whose arguments come inside it: at the next step)."""
    tracer = make_tracer(tmp_path, speedups)
    rng = random.Random(29)
    for trial in range(80):
        values = rng.choice([1, 2, 3, 6])
        plan = [(rng.choices(["tool", "retry", "plain", "late"], [8, 1, 2, 1])[0], rng.choice(["a", "b"]),
                 rng.randrange(rng.choice([2, 4])),
                 None if rng.random() < 0.15 else f"v{rng.randrange(values)}")
                for _ in range(rng.randint(10, 90))]
        limit = rng.randint(1, 4)
        last: list = [None, None]
        with tracer.run("free") as run:
            for op in plan:
                _play(run, rng, op, last)
        events = sorted((e for e in drain(tracer) if e["kind"] == "STEP"), key=lambda e: e["seq"])
        assert len(events) == len(plan)
        seen = _first_repeat(events, limit)
        refused = refused_at(tracer, limit, plan, lambda run, i, op, last: _play(run, rng, op, last))
        assert refused == expected_refusal(seen, plan), (trial, limit, plan)
