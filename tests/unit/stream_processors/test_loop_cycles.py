"""Cycles: a run going round the same block of p steps, for periods the repeat window cannot hold
(6 laps of a 5-step loop are 30 steps; the window is 24). Planted loops must alert as reason
``cycle``; healthy runs with a fixed shape (fan-out, pagination, research, plan/act/observe,
retries, polling) must stay silent. The healthy runs are generated from seeds in several shapes."""
from __future__ import annotations

import random

import orjson
import pytest

from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import cycles, runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

ALERT_ONLY = {**LOOP_DEFAULTS, "stop_on_loop": False}


class Run:
    """A run's STEP events; ``seq`` counts from 1."""

    def __init__(self, run_id: str = "r") -> None:
        self.run_id, self.seq, self.events = run_id, 0, []

    def tool(self, name: str, digest: str | None, **kw) -> "Run":
        self.seq += 1
        self.events.append(syn.step("t", self.run_id, self.seq, name=name, args_digest=digest, **kw))
        return self

    def llm(self, digest: str | None) -> "Run":
        self.seq += 1
        self.events.append(syn.step("t", self.run_id, self.seq, name="chat", step_kind="LLM",
                                    llm={"request_digest": digest}))
        return self


def _loops(events, loops=LOOP_DEFAULTS):
    st, found = runs.new_state(), []
    for e in events:
        found += [(e["seq"], f) for f in runs.observe(st, e, loops, BUDGET_DEFAULTS) if f.alert_type == "loop"]
    return st, found


def _fresh(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


# ---- loops that must alert --------------------------------------------------------------------

@pytest.mark.parametrize("period", [5, 6, 7, 9, 12])
def test_a_pure_cycle_of_5_to_12_calls_alerts_at_the_first_step_over_max_repeats_laps(period):
    r = Run()
    for i in range(200 * period):
        r.tool(f"tool{i % period}", f"same-args-{i % period}")
    _, found = _loops(r.events)
    # the first call's 6th time (max_repeats 5 allowed) is step 5 * period + 1
    assert [(seq, f.evidence["reasons"], f.stop) for seq, f in found] == [(5 * period + 1, "cycle", True)]
    ev = found[0][1].evidence
    assert ev["cycle_period"] == str(period) and ev["cycle_laps"] == "6"
    assert ev["cycle_steps"].split(" > ") == [f"tool{(i + 1) % period}=" for i in range(period)]


def test_a_cycle_exactly_max_repeats_laps_long_is_allowed():
    r = Run()
    for i in range(5 * 7):
        r.tool(f"tool{i % 7}", f"d{i % 7}")
    assert _loops(r.events)[1] == []


def test_the_realistic_research_loop_alerts():
    # plan (LLM, the history grows: a new request digest every lap) -> search(X) -> reflect (LLM,
    # new digest) -> fetch(url) -> write_note(new text): only the two tool calls are the same in
    # every lap, and they are most of what the agent does to the world
    rng, r = random.Random(5), Run()
    for _ in range(200):
        r.llm(_fresh(rng)).tool("search", "q-X").llm(_fresh(rng)).tool("fetch", "url-1")
        r.tool("write_note", _fresh(rng))
    _, found = _loops(r.events)
    assert [(seq, f.evidence["reasons"]) for seq, f in found] == [(5 * 5 + 2, "cycle")]  # 6th search
    ev = found[0][1].evidence
    assert ev["cycle_period"] == "5" and ev["cycle_laps"] == "6"
    assert ev["cycle_steps"] == "llm:gpt-4o > fetch= > write_note > llm:gpt-4o > search="


def test_the_sdk_research_loop_alerts(tmp_path):
    """The same loop written with the SDK (InMemoryTransport): its request digests, step ids, order."""
    from agentstream.producer.testing import InMemoryTransport

    mem = InMemoryTransport()
    tr = mem.tracer("t", "a", "1.0", "prod", spool_dir=str(tmp_path))
    msgs = [{"role": "user", "content": "research X"}]
    with tr.run("p5") as run:
        for i in range(40):
            for tag in ("plan", "reflect"):
                with run.llm_step("openai", "gpt-4o") as s:
                    s.record_request("gpt-4o", msgs + [{"role": "system", "content": tag}])
                    s.record_llm("openai", "gpt-4o", 3000, 100, cost_usd=0.01)
                msgs = msgs + [{"role": "assistant", "content": f"{tag} {i}"}]
                run.tool_call("search" if tag == "plan" else "fetch",
                              {"q": "X"} if tag == "plan" else {"url": "https://x/1"}, 100)
            run.tool_call("write_note", {"text": f"note {i}: still nothing"}, 5)
    tr.flush()
    events = sorted((e for e in mem.events() if e["run_id"]), key=lambda e: e["seq"])
    _, found = _loops(events)
    assert [f.evidence["reasons"] for _, f in found] == ["cycle"]
    assert found[0][1].stop


def test_three_workers_in_lock_step_each_in_a_two_step_loop_alert_as_one_period_6_cycle():
    # (workers scheduled at random are not found: that takes a lane per parent step, cycles.py)
    r = Run()
    for i in range(400):
        w = i % 3
        r.tool(f"w{w}_{'check' if (i // 3) % 2 else 'act'}", f"w{w}-{(i // 3) % 2}")
    _, found = _loops(r.events)
    assert [(f.evidence["reasons"], f.evidence["cycle_period"]) for _, f in found] == [("cycle", "6")]


def test_lap_threshold_follows_max_repeats():
    r = Run()
    for i in range(100):
        r.tool(f"tool{i % 8}", f"d{i % 8}")
    _, found = _loops(r.events, {**LOOP_DEFAULTS, "max_repeats": 3})
    assert [(seq, f.evidence["reasons"]) for seq, f in found] == [(3 * 8 + 1, "cycle")]


def test_evidence_names_the_calls_never_their_digests():
    rng, r = random.Random(1), Run()
    digests = [_fresh(rng) for _ in range(6)]
    for i in range(100):
        r.tool(f"tool{i % 6}", digests[i % 6])
    _, found = _loops(r.events)
    text = " ".join(found[0][1].evidence.values()) + found[0][1].title
    assert not any(d[:8] in text for d in digests)


def test_stop_on_loop_off_one_alert_per_cycle_and_a_new_cycle_alerts_again():
    r = Run()
    for i in range(300):
        r.tool(f"a{i % 5}", f"a{i % 5}")
    r.llm("x")
    for i in range(300):
        r.tool(f"b{i % 7}", f"b{i % 7}")
    _, found = _loops(r.events, ALERT_ONLY)
    assert [(seq, f.evidence["reasons"], f.stop, f.key) for seq, f in found] == [
        (26, "cycle", False, "loop"), (301 + 5 * 7 + 1, "cycle", False, "loop#2")]


def test_a_cycle_the_repeat_window_holds_stays_a_repeat():
    r = Run()
    for i in range(100):
        r.tool(f"tool{i % 3}", f"d{i % 3}")
    _, found = _loops(r.events)
    # the first lap's calls were new, so the repeat rule counts tool0 from its second call
    # (loop_repeats.count_repeat); the cycle rule finds the loop at the step the repeat did
    assert [(seq, f.evidence["reasons"]) for seq, f in found] == [(16, "cycle")]


@pytest.mark.parametrize("window", [0, 61, 100])
def test_a_window_that_holds_the_laps_finds_the_cycle_as_repeats_at_the_same_step(window):
    r = Run()
    for i in range(100):
        r.tool(f"tool{i % 7}", f"d{i % 7}")
    st, found = _loops(r.events, {**LOOP_DEFAULTS, "repeat_window": window})
    # three steps later than the laps alone say: the first lap's calls were new, so tool0-2
    # count from their second call (loop_repeats.count_repeat); tool3's first return had as
    # many identical calls (tool0-2) as new ones (tool4-6) before it, so it counts from its first
    assert [(seq, f.evidence["reasons"]) for seq, f in found] == [(5 * 7 + 4, "repeat")]
    assert st["cyc"] == ""  # the cycle rule keeps nothing then


def test_state_stays_compact_and_bounded():
    rng, r = random.Random(9), Run()
    for _ in range(20_000):
        r.llm(_fresh(rng)) if rng.random() < 0.5 else r.tool(f"tool{rng.randrange(100)}", _fresh(rng))
    st, found = _loops(r.events)
    assert found == []
    assert cycles.history(5) <= len(st["cyc"]) <= cycles.history(5) + 16
    assert len(orjson.dumps(st["cyc"])) < 100  # one byte a step


def test_a_state_without_cycle_memory_is_upgraded():
    st = runs.new_state()
    st.pop("cyc", None)
    r = Run()
    for i in range(60):
        r.tool(f"tool{i % 5}", f"d{i % 5}")
    found = [f for e in r.events for f in runs.observe(st, e, LOOP_DEFAULTS, BUDGET_DEFAULTS)]
    assert [f.evidence["reasons"] for f in found] == ["cycle"]


# ---- healthy runs that must stay silent -------------------------------------------------------

def _fan_out(rng, r):
    shape = rng.choice([("tool",), ("llm", "tool"), ("llm", "tool", "tool2"), ("tool", "llm", "tool2", "llm", "tool3")])
    for _ in range(rng.randint(30, 150)):
        for s in shape:
            r.llm(_fresh(rng)) if s == "llm" else r.tool(s, _fresh(rng))


def _pagination(rng, r):
    per_page = rng.choice([("parse",), ("llm", "parse"), ("parse", "store", "llm"), ("llm", "parse", "store", "index", "llm")])
    for page in range(rng.randint(20, 120)):
        r.tool("list_items", f"cursor-{page}")
        for s in per_page:  # each page's items: new arguments
            r.llm(_fresh(rng)) if s == "llm" else r.tool(s, _fresh(rng))


def _research(rng, r):
    note = rng.random() < 0.5
    for _ in range(rng.randint(20, 100)):
        r.llm(_fresh(rng)).tool("search", _fresh(rng)).llm(_fresh(rng)).tool("fetch", _fresh(rng))
        if note:
            r.tool("write_note", _fresh(rng))


def _plan_act_observe(rng, r):
    # the act's arguments change every lap; the observation is an LLM turn, a tool reading the new
    # state, or one constant call (look at the screen) in a loop too long for the repeat window
    observe = rng.choice(["llm", "tool", "constant"])
    for _ in range(rng.randint(20, 100)):
        r.llm(_fresh(rng)).tool("act", _fresh(rng))
        if observe == "llm":
            r.llm(_fresh(rng))
        elif observe == "tool":
            r.tool("observe", _fresh(rng))
        else:
            r.llm(_fresh(rng)).tool("verify", _fresh(rng)).tool("get_screen", "no-args")


def _retries(rng, r):
    for _ in range(rng.randint(20, 80)):
        r.llm(_fresh(rng))
        d = _fresh(rng)
        r.tool("http_fetch", d)
        first = r.events[-1]["payload"]["step_id"]
        for k in range(rng.randint(0, LOOP_DEFAULTS["max_retries"])):  # each retry linked by retry_of
            r.tool("http_fetch", d, attempt=k + 2)
            r.events[-1]["payload"]["retry_of"] = first
        r.tool("parse", _fresh(rng))


def _polling(rng, r):
    kind = rng.choice(["sparse", "fixed_shape", "at_limit"])
    if kind == "sparse":  # the repeat window's near miss: never max_repeats + 1 polls in 24 steps
        for i in range(rng.randint(60, 150)):
            if i % 7 == 0:
                r.tool("get_job_status", "job-42")
            elif rng.random() < 0.45:
                r.llm(_fresh(rng))
            else:
                r.tool(rng.choice(["a", "b", "c", "d"]), _fresh(rng))
    elif kind == "fixed_shape":  # a status poll in every lap of real work
        for _ in range(rng.randint(20, 80)):
            r.tool("get_job_status", "job-42").llm(_fresh(rng)).tool("process", _fresh(rng))
            r.llm(_fresh(rng)).tool("upload", _fresh(rng))
    else:  # exactly max_repeats polls with a backoff between, then the job is done
        for i in range(LOOP_DEFAULTS["max_repeats"]):
            r.tool("get_job_status", "job-42").tool("sleep", f"backoff-{i}")
        r.llm(_fresh(rng)).tool("download", _fresh(rng))


HEALTHY = {"fan_out": _fan_out, "pagination": _pagination, "research": _research,
           "plan_act_observe": _plan_act_observe, "retries": _retries, "polling": _polling}


@pytest.mark.parametrize("kind", sorted(HEALTHY))
def test_healthy_runs_with_a_fixed_shape_stay_silent(kind):
    for seed in range(40):
        rng = random.Random(f"{kind}-{seed}")
        r = Run(f"{kind}-{seed}")
        for _ in range(rng.randint(0, 4)):  # a few steps before the work
            r.llm(_fresh(rng))
        HEALTHY[kind](rng, r)
        for loops in (LOOP_DEFAULTS, ALERT_ONLY):
            _, found = _loops(r.events, loops)
            assert found == [], (kind, seed, [(s, f.evidence) for s, f in found])


def test_healthy_parallel_workers_stay_silent():
    for seed in range(20):
        rng = random.Random(seed)
        workers = []
        for w in range(4):
            sub = Run()
            (_research if w % 2 else _fan_out)(random.Random(rng.random()), sub)
            workers.append([w, sub.events])
        r = Run()
        while workers:
            w, evs = rng.choice(workers)
            n = rng.randint(1, 6)
            for e in evs[:n]:
                r.seq += 1
                e["seq"], e["parent_step_id"] = r.seq, f"worker-{w}"
                r.events.append(e)
            del evs[:n]
            workers = [x for x in workers if x[1]]
        assert _loops(r.events)[1] == []
