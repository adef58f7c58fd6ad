"""Legitimate runs the loop rules stopped, found by a red-team (each confirmed end to end), as
seeded families of many varied runs: none may raise a loop alert; the loops they resemble (and
their disguises) must still fire. docs/processors.md, Loops, says what each rule now is.

- routing DECISIONs (type, selected, reason) read as a progress fingerprint: 4 good decisions
  made a ``no_progress`` loop (only an explicit ``agentstream.progress_fingerprint`` counts now);
- retries reported out of order (attempts 6, 5, 4, 3, 2) counted as 6 retries of 5;
- constant-argument helpers beside new work (``screenshot()`` before each click, a ticket read
  once by each of several handed-off agents, ``wait(10)`` between progressing polls, a schema
  read before each item's query) counted as ``repeat`` (the novelty test,
  ``schemas/loop_repeats.count_repeat``);
- two jobs polled in turn, each status within ``max_repeats`` polls, counted as ``ping_pong``.

The SDK judges repeats by the same rule (``RunBudget.record_call``): the last tests hold it to the
processors on the same families.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any, Callable

import pytest

from agentstream.producer.enforcement import Budget, RunBudget
from agentstream.producer.errors import LackOfProgress
from agentstream.schemas.loop_repeats import RESULT_DIGEST_ATTR
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

T0 = 1_767_600_000_000_000


def _hx(x: Any) -> str:
    return hashlib.sha256(repr(x).encode()).hexdigest()[:32]


class Run:
    """One run's events, in order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.seq, self.t, self.events = rng, 0, T0, []
        self.hist: list[int] = []
        self.ev("RUN_START", {"entrypoint": "main"})

    def ev(self, kind: str, payload: dict[str, Any], attrs: dict[str, str] | None = None) -> str:
        self.seq += 1
        self.t += self.rng.randint(1_000, 9_000_000)
        self.events.append({"run_id": "r", "tenant_id": "t", "seq": self.seq, "ts_us": self.t, "kind": kind,
                            "attributes": attrs or {}, "payload": payload})
        return str(payload.get("step_id"))

    def tool(self, name: str, args: Any, result: Any = None, attempt: int = 1, retry_of: str | None = None) -> str:
        attrs = {RESULT_DIGEST_ATTR: _hx(result)} if result is not None else {}
        p = {"step_id": f"s{self.seq + 1}-{self.rng.getrandbits(32)}", "step_kind": "TOOL", "name": name,
             "status": "OK", "latency_ms": 12.0, "attempt": attempt, "retry_of": retry_of,
             "tool": {"tool_name": name, "args_digest": _hx((name, args))}}
        return self.ev("STEP", p, attrs)

    def llm(self) -> None:
        """A turn of the agent: its history grows, so its request is new every time."""
        self.hist.append(self.rng.getrandbits(32))
        self.ev("STEP", {"step_id": f"l{self.seq + 1}", "step_kind": "LLM", "name": "chat", "status": "OK",
                         "attempt": 1, "llm": {"request_model": "gpt-4o", "request_digest": _hx(self.hist),
                                               "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.0}})

    def noise(self) -> None:
        if self.rng.random() < 0.3:
            self.llm()
        elif self.rng.random() < 0.3:
            self.ev("STEP", {"step_id": f"c{self.seq + 1}", "step_kind": "CUSTOM", "name": "think", "attempt": 1})


def router(r: Run) -> None:
    """docs/sdk.md's example: the router records why it picks a tool, once per question."""
    for q in range(r.rng.randint(4, 20)):
        sel = r.rng.choice(["api", "cache"])
        r.ev("DECISION", {"decision_type": "tool_selection", "selected": sel,
                          "reason_code": "fresh_data_required" if sel == "api" else "cached_ok"})
        r.llm()
        r.tool(sel, q)


def hedged_retries(r: Run) -> None:
    """Each call retried up to max_retries times, the attempts reported in any order."""
    for c in range(r.rng.randint(2, 10)):
        r.llm()
        first = r.tool("http_get", c)
        attempts = list(range(2, 2 + r.rng.randint(0, 5)))
        r.rng.shuffle(attempts)
        for a in attempts:
            r.tool("http_get", c, attempt=a, retry_of=r.rng.choice([first, None]) or first)


def computer_use(r: Run) -> None:
    for _ in range(r.rng.randint(6, 50)):
        r.tool("screenshot", ())
        r.llm()
        r.tool(r.rng.choice(["click", "type", "scroll"]), r.rng.getrandbits(30))


def handoffs(r: Run) -> None:
    ticket = r.rng.getrandbits(30)
    for a in range(r.rng.randint(6, 12)):
        r.ev("STEP", {"step_id": f"h{a}", "step_kind": "HANDOFF", "name": f"agent_{a}", "attempt": 1})
        r.llm()
        r.tool("get_ticket", ticket)
        r.tool(f"act_{a}", r.rng.getrandbits(30))


def poll_with_wait(r: Run) -> None:
    """A job's status moves every 1-3 polls; a constant wait(seconds) between polls."""
    job, s = r.rng.getrandbits(20), r.rng.choice([5, 10, 30])
    for st in range(r.rng.randint(3, 12)):
        for _ in range(r.rng.randint(1, 3)):
            r.tool("get_job_status", job, result=st)
            r.tool("wait", s)


def map_with_context(r: Run) -> None:
    """Each item re-reads shared context before its own query."""
    tbl = r.rng.choice(["orders", "users"])
    for i in range(r.rng.randint(6, 40)):
        r.llm()
        r.tool("get_schema", tbl)
        r.tool("run_query", (tbl, i))


def two_pollers(r: Run) -> None:
    """Two jobs polled in turn, each status lasting 2-5 polls (within max_repeats). The first
    status lasts at most 4: the call that reveals a new status counts with the old one, so the
    first status gets one poll fewer (red-team R2, open: docs/processors.md)."""
    sts, left = [0, 0], [r.rng.randint(2, 4), r.rng.randint(2, 4)]
    for _ in range(r.rng.randint(10, 30)):
        for j in range(2):
            r.tool("get_job_status", j, result=(j, sts[j]))
            left[j] -= 1
            if left[j] == 0:
                sts[j] += 1
                left[j] = r.rng.randint(2, 5)


BENIGN: dict[str, Callable[[Run], None]] = {f.__name__: f for f in (
    router, hedged_retries, computer_use, handoffs, poll_with_wait, map_with_context, two_pollers)}


def _loops(events: list[dict[str, Any]], **loops: Any) -> list[tuple[int, str]]:
    st = runs.new_state()
    lim = runs.Limits({**LOOP_DEFAULTS, **loops}, BUDGET_DEFAULTS)
    return [(e["seq"], f.evidence["reasons"]) for e in events for f in runs.observe_with(st, e, lim)
            if f.alert_type == "loop"]


@pytest.mark.parametrize("family", sorted(BENIGN))
def test_benign_family_never_alerts(family):
    for seed in range(120):
        r = Run(random.Random(seed))
        BENIGN[family](r)
        assert _loops(r.events) == [], (family, seed)


# ---- the loops they resemble must still fire ----------------------------------------------------

def _tp_repeat(r: Run) -> None:
    """search(X) again and again, only the agent re-planning (or nothing) between."""
    x = r.rng.getrandbits(20)
    res = r.rng.choice([None, "same"])
    for _ in range(12):
        r.tool("search", x, result=res)
        r.noise()


def _tp_ping_pong(r: Run) -> None:
    res = r.rng.choice([None, "constant"])
    for _ in range(10):
        r.tool("open", 1, result=res and "A")
        r.tool("back", 0, result=res and "B")


def _tp_retry_chain(r: Run) -> None:
    first = r.tool("http_get", 1)
    attempts = list(range(2, 8))  # 6 retries of 5 allowed, in any order
    r.rng.shuffle(attempts)
    for a in attempts:
        r.tool("http_get", 1, attempt=a, retry_of=first)


def _tp_cycle(r: Run) -> None:
    p = r.rng.randint(3, 8)
    for _ in range(9):
        for j in range(p):
            r.llm() if j == 0 else r.tool(f"t{j}", j)


def _tp_no_progress(r: Run) -> None:
    for i in range(6):
        r.tool("act", i)
        r.ev("DECISION", {"decision_type": "retry", "selected": "act", "reason_code": "x"},
             {runs.PROGRESS_ATTR: "state-7"})
        r.noise()


def _tp_helper_beside_repeats(r: Run) -> None:
    """A constant helper between calls that repeat too is no progress: the loop fires."""
    for _ in range(12):
        r.tool("screenshot", ())
        r.tool("click", (10, 10))


TRUE_LOOPS = {"repeat": _tp_repeat, "ping_pong": _tp_ping_pong, "retry_chain": _tp_retry_chain,
              "cycle": _tp_cycle, "no_progress": _tp_no_progress, "helper": _tp_helper_beside_repeats}


@pytest.mark.parametrize("kind", sorted(TRUE_LOOPS))
def test_true_loops_still_fire(kind):
    for seed in range(60):
        r = Run(random.Random(seed))
        for _ in range(r.rng.randint(0, 8)):  # a run's ordinary start
            r.tool("fetch", r.rng.getrandbits(30))
            r.noise()
        TRUE_LOOPS[kind](r)
        found = _loops(r.events)
        assert found, (kind, seed)
        if kind in ("ping_pong", "retry_chain", "no_progress"):
            assert kind in found[0][1], (kind, seed, found)


def test_out_of_order_retries_count_their_highest_attempt():
    r = Run(random.Random(1))
    first = r.tool("http_get", 1)
    for a in (6, 5, 4, 3, 2):  # 5 retries: the limit
        r.tool("http_get", 1, attempt=a, retry_of=first)
    assert _loops(r.events) == []
    r.tool("http_get", 1, retry_of=first)  # an unnumbered retry adds one: the 6th
    assert [reasons for _, reasons in _loops(r.events)] == ["retry_chain"]


def test_a_decision_is_no_fingerprint_unless_it_names_one():
    r = Run(random.Random(2))
    for _ in range(10):
        r.ev("DECISION", {"decision_type": "tool_selection", "selected": "api", "reason_code": "fresh"})
    assert _loops(r.events) == []


# ---- the SDK judges repeats the same way ----------------------------------------------------------

def _sdk_refuses(events: list[dict[str, Any]], limit: int) -> bool:
    """The events' tool and LLM steps through the SDK's repeat window (as gate.py feeds it)."""
    b = RunBudget(Budget(max_repeated_fingerprints=limit))
    try:
        for e in events:
            p = e["payload"]
            if e["kind"] != "STEP" or p.get("retry_of") or (p.get("attempt") or 1) > 1:
                continue
            tool, llm = p.get("tool"), p.get("llm")
            if tool:
                sig = f"TOOL|{tool['tool_name']}|{tool['args_digest']}"
                b.record_call(sig, lambda s: s)
                b.note_result(sig, e["attributes"].get(RESULT_DIGEST_ATTR))
            elif llm:
                b.record_call(f"LLM|gpt-4o|{llm['request_digest']}")
    except LackOfProgress:
        return True
    return False


@pytest.mark.parametrize("family", ["computer_use", "handoffs", "poll_with_wait", "map_with_context", "two_pollers"])
def test_the_sdk_lets_the_benign_families_run(family):
    for seed in range(60):
        r = Run(random.Random(seed))
        BENIGN[family](r)
        assert not _sdk_refuses(r.events, LOOP_DEFAULTS["max_repeats"]), (family, seed)


@pytest.mark.parametrize("kind", ["repeat", "helper"])
def test_the_sdk_refuses_the_repeats_the_processors_alert_on(kind):
    for seed in range(40):
        r = Run(random.Random(seed))
        TRUE_LOOPS[kind](r)
        assert _loops(r.events) and _sdk_refuses(r.events, LOOP_DEFAULTS["max_repeats"]), (kind, seed)
