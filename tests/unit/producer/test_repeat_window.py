"""The SDK's repeated-call rule (``max_repeated_fingerprints``) is the processors' repeat rule:
a call's signature (kind, name, keyed arguments digest) seen more often than allowed within the
last ``REPEAT_WINDOW`` logical steps that have a signature; a retry of one call (``retry_of``
or ``attempt`` > 1) lengthens its chain and is not a repeat (``schemas/loop_repeats.py``).

Found by a reliability probe: the 4th attempt of a call properly linked with ``retry_of``, and a
lookup used 4 times 25 steps apart in a 100-step run, raised ``LackOfProgress`` into the agent
at ``max_repeated_fingerprints=3``, where the processors (window 24, retries judged by their
chain) saw no loop: the SDK fingerprinted every attempt and counted over the whole run."""
from __future__ import annotations

import random

import pytest
from step_support import drain, expected_refusal, make_tracer, refused_at

from agentstream.producer import Budget, LackOfProgress
from agentstream.schemas import loop_repeats
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import LOOP_DEFAULTS

CORES = pytest.mark.parametrize("speedups", [True, False], ids=["c", "py"])


def _ran(tracer, ops, limit=3) -> list[int]:
    """Runs ``ops`` (callables taking the run) under ``max_repeated_fingerprints=limit``;
    returns the indexes of those that ran (stops at the first LackOfProgress)."""
    done: list[int] = []
    try:
        with tracer.run("r", budget=Budget(max_repeated_fingerprints=limit)) as run:
            for i, op in enumerate(ops):
                op(run)
                done.append(i)
    except LackOfProgress:
        pass
    return done


def _tool(name, args):
    def op(run):
        with run.tool_step(name, args):
            pass
    return op


@CORES
def test_attempts_of_one_call_linked_by_retry_of_are_not_repeats(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    attempts = []
    with tracer.run("r", budget=Budget(max_repeated_fingerprints=3)) as run:
        first = None
        for attempt in range(1, 7):
            try:
                with run.tool_step("http_get", {"url": "https://api/x"}, retry_of=first) as s:
                    first = first or s  # each retry links to the first attempt
                    attempts.append(attempt)
                    if attempt < 6:
                        raise ConnectionError("503")
            except ConnectionError:
                continue
    assert attempts == [1, 2, 3, 4, 5, 6]
    # an explicit attempt number marks a retry too; a recorded retry is not counted either
    with tracer.run("r2", budget=Budget(max_repeated_fingerprints=1)) as run:
        with run.tool_step("get", {"id": 1}):
            pass
        s = run.step("tool", "get", attempt=2)
        s.record_tool("get", {"id": 1})
        with s:
            pass
        first = run.tool_call("get", {"id": 2})
        run.tool_call("get", {"id": 2}, retry_of=first)
        with run.step("tool", "next"):
            pass
    assert "FAILURE" not in [e["kind"] for e in drain(tracer)]


def _ask(i):  # an LLM call with its request digest has a signature: it takes a place
    def op(run):
        with run.llm_step("openai", "gpt-4o") as s:
            s.record_request("gpt-4o", [{"role": "user", "content": f"question {i}"}])
            s.record_llm("openai", "gpt-4o", 10, 10)
    return op


@CORES
def test_a_call_repeated_beyond_the_window_is_not_a_repeat(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    # between the lookups only the agent's model calls (new requests: no progress either way)
    ops = [_tool("inventory_lookup", {"sku": "A-1"}) if i % 25 == 0 else _ask(i) for i in range(100)]
    assert len(_ran(tracer, ops)) == 100
    # every 8th: never 4 in a window of 24 signed steps; every 7th: the 4th is (step 21)
    ops = [_tool("inventory_lookup", {"sku": "A-1"}) if i % 8 == 0 else _ask(i) for i in range(100)]
    assert len(_ran(tracer, ops)) == 100
    ops = [_tool("inventory_lookup", {"sku": "A-1"}) if i % 7 == 0 else _ask(i) for i in range(100)]
    assert _ran(tracer, ops) == list(range(21))


@CORES
def test_a_constant_lookup_beside_new_calls_is_not_a_repeat(tmp_path, speedups):
    """The novelty test (loop_repeats.count_repeat): new calls between two lookups are progress."""
    tracer = make_tracer(tmp_path, speedups)
    ops = [_tool("inventory_lookup", {"sku": "A-1"} if i % 7 == 0 else {"sku": f"B-{i}"})
           for i in range(100)]
    assert len(_ran(tracer, ops)) == 100


@CORES
def test_polling_the_same_call_is_still_a_repeat(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    assert _ran(tracer, [_tool("get_job_status", {"job_id": "job-42"})] * 8) == [0, 1, 2]


@CORES
def test_the_window_counts_steps_that_have_a_signature(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)

    def plain(run):  # arguments unknown: no signature, no place in the window
        with run.step("custom", "think"):
            pass

    lookup = _tool("lookup", {"sku": "A-1"})
    assert _ran(tracer, [lookup] + [plain] * 30 + [lookup] * 3) == list(range(33))

    # the first lookup is 26 signed steps back at the 4th (an LLM call with its request digest
    # takes a place): out of the window, not a repeat
    ops = [lookup] + [_ask(i) for i in range(23)] + [lookup] * 3
    assert len(_ran(tracer, ops)) == len(ops)


def test_the_rule_is_the_processors_definition():
    """One definition (schemas/loop_repeats.py): the processors' detector calls it."""
    assert loop_repeats.REPEAT_WINDOW == runs.DEFAULT_WINDOW == LOOP_DEFAULTS["repeat_window"]
    assert runs.count_repeat is loop_repeats.count_repeat
    assert runs.step_signature is loop_repeats.step_signature
    p = {"step_kind": "TOOL", "name": "s", "tool": {"tool_name": "search", "args_digest": "d1"}}
    assert runs.signature(p, None) == "TOOL|search|d1"
    assert runs.signature({"step_kind": "CUSTOM", "name": "c"}, {loop_repeats.DIGEST_ATTR: "a1"}) == "CUSTOM|c|a1"


def _event(i, p):
    return {"kind": "STEP", "ts_us": 1_000_000 + i, "seq": i + 1, "attributes": {}, "payload": p}


def _first_repeat(events, max_repeats, window, states=None):
    """Index of the first event at which the processors fire ``repeat`` (None: never). The
    run's raised alerts are forgotten before each event, so a loop alerted earlier for another
    reason does not hide it (an alert's title names every reason firing at its step)."""
    loops = {**LOOP_DEFAULTS, "max_repeats": max_repeats, "repeat_window": window}
    state = runs.new_state()
    for i, e in enumerate(events):
        state["raised"] = []
        state.pop("lsub", None)
        findings = runs.observe(state, e, loops, {})
        if states is not None:
            states.append((list(state["win"]), dict(state["cnt"])))
        if any("repeat" in f.title for f in findings):
            return i
    return None


@pytest.mark.parametrize("window", [0, 1, 3, 24])
def test_counting_in_the_window_is_the_processors_count(window):
    """``count_repeat`` and ``is_retry`` over the processors' state layout fire where the
    processors' detector does: the processors can adopt them unchanged."""
    rnd = random.Random(window)
    for trial in range(60):
        distinct = 3000 if trial == 0 and window == 0 else rnd.choice([2, 4, 12])
        events, prev = [], None
        for i in range(3100 if trial == 0 and window == 0 else rnd.randint(5, 120)):
            sid = f"r.{i}"
            retry = prev is not None and rnd.random() < 0.15
            p = {"step_id": sid, "step_kind": "TOOL", "name": "t", "attempt": 1,
                 "retry_of": prev if retry else None,
                 "tool": {"tool_name": "t", "args_digest": f"d{rnd.randrange(distinct)}"}}
            if trial == 0 and window == 0:
                p["tool"]["args_digest"] = f"d{i % distinct}"
            if rnd.random() < 0.05:
                p["attempt"], p["retry_of"] = 2, None
            events.append(_event(i, p))
            prev = sid
        limit = rnd.randint(1, 4)
        win: list[str] = []
        cnt: dict[str, int] = {}
        nov: dict = {}
        expected, ours = None, []
        for i, e in enumerate(events):
            p = e["payload"]
            if not loop_repeats.is_retry(p["attempt"], p["retry_of"]):
                sig = loop_repeats.step_signature("TOOL", "t", p["tool"], None, None)
                if loop_repeats.count_repeat(win, cnt, nov, sig, window, False)[1] > limit:
                    expected = i
            ours.append((list(win), dict(cnt)))
            if expected is not None:
                break
        theirs: list = []
        assert _first_repeat(events, limit, window, theirs) == expected, (trial, limit)
        assert theirs == ours  # the same window and counts after every step


def _play(run, tag, op, last):
    """One step of a random agent; ``last``: the last first attempt and its argument."""
    kind, name, arg = op
    if kind == "tool" or (kind == "retry" and last[0] is None):
        with run.tool_step(name, {"n": arg}) as s:
            last[0] = s
    elif kind == "retry":
        with run.tool_step(last[0].name, {"n": last[1]}, retry_of=last[0]):
            pass
        return
    elif kind == "llm":
        with run.llm_step("openai", "gpt-4o") as s:
            s.record_request("gpt-4o", [{"role": "user", "content": tag}])
            s.record_llm("openai", "gpt-4o", 10, 10)
        return
    elif kind == "plain":
        with run.step("custom", "think"):
            pass
        return
    else:
        with run.step("tool", name) as s:
            s.record_tool(name, {"n": arg})
            last[0] = s
    last[1] = arg


@CORES
def test_the_sdk_stops_where_the_processors_see_the_repeat(tmp_path, speedups):
    """Random agents (tool calls, retries, model calls, steps without arguments, tool steps
    whose arguments are known only inside the step): the SDK refuses the step at which the
    processors, reading the same run unenforced, fire ``repeat``; a repeat it can see only
    once the step has run (arguments recorded inside it) is refused at the next step."""
    tracer = make_tracer(tmp_path, speedups)
    rnd = random.Random(13)
    for trial in range(80):
        plan = []
        for _ in range(rnd.randint(10, 90)):
            plan.append((rnd.choices(["tool", "retry", "llm", "plain", "late"],
                                     [6, 1, 4, 2, 1])[0], rnd.choice(["a", "b"]),
                         rnd.randrange(rnd.choice([3, 8, 20]))))
        limit = rnd.randint(1, 4)
        last: list = [None, None]
        with tracer.run("free") as run:
            for i, op in enumerate(plan):
                _play(run, f"{trial}/{i}", op, last)
        events = sorted((e for e in drain(tracer) if e["kind"] == "STEP"), key=lambda e: e["seq"])
        assert len(events) == len(plan)
        seen = _first_repeat(events, limit, loop_repeats.REPEAT_WINDOW)

        refused = refused_at(tracer, limit, plan,
                             lambda run, i, op, last, trial=trial: _play(run, f"{trial}/{i}", op, last))
        assert refused == expected_refusal(seen, plan), (trial, limit, plan)
