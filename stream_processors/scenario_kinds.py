"""One run's events, by kind, for the scenario generator (``scenarios.py``): the planted loops and
budget breaches with the step at which each crosses its threshold, and the near misses that must
stay silent (what each kind is: ``scenarios.py``'s docstring)."""
from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

from agentstream.schemas.loop_repeats import RESULT_DIGEST_ATTR

if TYPE_CHECKING:
    from .scenarios import RunTruth

TOOLS = ("repo_read_file", "kb_search", "http_fetch", "sql_query", "send_email")


class RunBuilder:
    """Builds one run's events; ``t`` advances by each step's latency plus think time."""

    def __init__(self, g: "Gen", tenant: str, agent: str, version: str, run_id: str, t0: int) -> None:
        self.g, self.tenant, self.agent, self.version, self.run_id = g, tenant, agent, version, run_id
        self.t, self.seq, self.cost = t0, 0, 0.0
        self.waited = 0.0  # seconds of approval waits so far (not the run's own time)
        self.events: list[dict[str, Any]] = []
        self.cost_mult = g.cost_mult.get((agent, version), 1.0)
        self.slow = g.slow_step.get((agent, version))
        self._emit("RUN_START", {"entrypoint": "main", "role": None, "sampled": True})

    def _emit(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        e = {"event_id": self.g.uid(), "tenant_id": self.tenant, "agent_id": self.agent,
             "agent_version": self.version, "environment": "prod", "run_id": self.run_id, "seq": self.seq,
             "ts_us": self.t, "emitted_us": self.t, "sdk_version": "scenario", "attributes": {},
             "kind": kind, "payload": payload}
        self.seq += 1
        self.events.append(e)
        return e

    def _step(self, kind: str, name: str, latency_ms: float, attempt: int = 1, llm: Any = None,
              tool: Any = None) -> dict[str, Any]:
        self.t += int(self.g.rng.uniform(200, 1500) * 1000)
        e = self._emit("STEP", {"step_id": f"{self.run_id}-{self.seq}", "step_kind": kind, "name": name,
                                "status": "OK", "started_us": self.t, "latency_ms": latency_ms,
                                "attempt": attempt, "retry_of": None, "llm": llm, "tool": tool})
        self.t += int(latency_ms * 1000)
        return e

    def llm(self, digest: str | None = None, cost: float | None = None) -> dict[str, Any]:
        rng = self.g.rng
        tin, tout = int(rng.lognormvariate(7, 0.5)), int(rng.lognormvariate(5, 0.5))
        usd = cost if cost is not None else round((tin * 2.5 + tout * 10) / 1e6 * self.cost_mult, 8)
        self.cost += usd
        return self._step("LLM", "chat gpt-4o", rng.lognormvariate(6.5, 0.4), llm={
            "provider": "openai", "operation": "chat", "request_model": "gpt-4o", "response_model": "gpt-4o",
            "input_tokens": tin, "output_tokens": tout, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "cost_usd": usd, "finish_reasons": ["stop"], "tool_calls": [],
            "request_digest": self.g.digest() if digest is None else (digest or None)})

    def tool(self, name: str, digest: str | None = "", attempt: int = 1, result: str | None = None) -> dict[str, Any]:
        """``result``: the keyed digest of what the call returned (``Step.record_result``)."""
        lat = self.g.rng.lognormvariate(5, 0.35) * (1.7 if name == self.slow else 1.0)
        e = self._step("TOOL", name, lat, attempt, tool={
            "tool_name": name, "call_id": None, "args_digest": self.g.digest() if digest == "" else digest})
        if result is not None:
            e["attributes"] = {RESULT_DIGEST_ATTR: result}
        return e

    def approval(self, wait_s: float) -> str:
        """A human decides an approval after ``wait_s``: the APPROVAL step at the decision.
        Returns the approved action's digest (the next tool call must carry it)."""
        d = self.g.digest()
        self.t += int(self.g.rng.uniform(200, 1500) * 1000) + int(wait_s * 1e6)
        self._emit("STEP", {"step_id": f"{self.run_id}-{self.seq}", "step_kind": "APPROVAL",
                            "name": "approval issue_refund", "status": "OK", "started_us": self.t, "latency_ms": 0.0,
                            "attempt": 1, "retry_of": None, "llm": None, "tool": None,
                            "approval": {"action_digest": d, "decision": "approved", "approval_latency_ms": wait_s * 1000}})
        self.waited += wait_s
        return d

    def own_s(self) -> float:
        """The run's own time so far: elapsed event time less its approval waits."""
        return (self.t - self.events[0]["ts_us"]) / 1e6 - self.waited

    def any_step(self) -> dict[str, Any]:
        return self.llm() if self.g.rng.random() < 0.45 else self.tool(self.g.rng.choice(TOOLS))

    def end(self, failed: bool) -> list[dict[str, Any]]:
        self.t += 1000
        steps = self.seq - 1
        self._emit("RUN_END", {"status": "FAILURE" if failed else "SUCCESS",
                               "outcome": "error" if failed else "completed", "started_us": self.events[0]["ts_us"],
                               "duration_ms": (self.t - self.events[0]["ts_us"]) / 1000, "step_count": steps,
                               "llm_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": self.cost})
        return self.events


class Gen:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = 0
        self.cost_mult: dict[tuple[str, str], float] = {}
        self.slow_step: dict[tuple[str, str], str] = {}

    def uid(self) -> str:
        self.n += 1
        return hashlib.md5(f"{self.seed}-{self.n}".encode()).hexdigest()

    def digest(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"


def planted(r: RunBuilder, kind: str, pol: dict[str, Any], truth: "RunTruth") -> None:
    g, loops, budgets = r.g, pol["loops"], pol["budgets"]
    rng = g.rng
    for _ in range(rng.randint(1, 4)):
        r.any_step()
    mark = truth.expect_at
    if kind == "loop:repeat":
        name, d = rng.choice(TOOLS), g.digest()
        for i in range(rng.randint(loops["max_repeats"] + 1, loops["max_repeats"] + 7)):
            if i and rng.random() < 0.5:
                r.llm()  # the agent re-plans between attempts: new prompts each time
            e = r.tool(name, d)
            if i == loops["max_repeats"]:
                mark(e)
    elif kind == "loop:llm_repeat":
        d = g.digest()
        for i in range(rng.randint(loops["max_repeats"] + 1, loops["max_repeats"] + 7)):
            e = r.llm(d)
            if i == loops["max_repeats"]:
                mark(e)
    elif kind == "loop:ping_pong":
        a_is_llm = rng.random() < 0.6
        da, db, name_b = g.digest(), g.digest(), rng.choice(TOOLS)
        names = [n for n in TOOLS if n != name_b]
        for i in range(rng.randint(2 * loops["max_ping_pong"] + 1, 2 * loops["max_ping_pong"] + 8)):
            if i % 2:
                e = r.tool(name_b, db)
            else:
                e = r.llm(da) if a_is_llm else r.tool(rng.choice(names[:1]), da)
            if i == 2 * loops["max_ping_pong"]:
                mark(e)
    elif kind == "loop:retry_chain":
        name, d = rng.choice(TOOLS), g.digest()
        for k in range(rng.randint(loops["max_retries"] + 2, loops["max_retries"] + 6)):
            e = r.tool(name, d, attempt=k + 1)
            if k == loops["max_retries"] + 1:
                mark(e)
    elif kind == "loop:cycle3":  # LLM -> tool -> tool, the same three calls over and over
        calls = [(None, g.digest()), (rng.choice(TOOLS), g.digest()), (rng.choice(TOOLS), g.digest())]
        for i in range(3 * loops["max_repeats"] + rng.randint(1, 6)):
            tool, d = calls[i % 3]  # no tool: the LLM call
            e = r.llm(d) if tool is None else r.tool(tool, d)
            if i == 3 * loops["max_repeats"]:
                mark(e)
    elif kind == "loop:cycle":
        block = _cycle_block(g, loops, budgets, novel_at_most_same=False)
        k, first = loops["max_repeats"] + 1, min(i for i, (_, d) in enumerate(block) if d)
        for i in range(k * len(block) + rng.randint(0, len(block))):
            e = _cycle_step(r, block[i % len(block)])
            if i == (k - 1) * len(block) + first:  # the first identical call's lap over the limit
                mark(e)
    elif kind == "loop:poll_stuck":  # the status moves for a while, then stops changing
        d, limit = g.digest(), loops["max_repeats"]
        for _ in range(rng.randint(1, 4)):
            status = g.digest()
            for _ in range(rng.randint(1, limit - 1)):
                r.tool("get_job_status", d, result=status)
                if rng.random() < 0.3:
                    r.any_step()
        stuck = g.digest()
        r.tool("get_job_status", d, result=stuck)  # counts with the calls before: its result came after
        for n in range(1, limit + 2 + rng.randint(0, 3)):
            if rng.random() < 0.3:
                r.any_step()
            e = r.tool("get_job_status", d, result=stuck)
            if n == limit + 1:
                mark(e)
    elif kind == "loop:after_wait":  # the run's state went idle during the wait
        r.tool(rng.choice(TOOLS), r.approval(rng.uniform(70, 180) * 60))
        name, d = rng.choice(TOOLS), g.digest()
        for i in range(rng.randint(loops["max_repeats"] + 1, loops["max_repeats"] + 5)):
            e = r.tool(name, d)
            if i == loops["max_repeats"]:
                mark(e)
    elif kind == "budget:steps":
        limit = budgets["run_max_steps"]
        target = limit + rng.randint(1, 6)
        wait_at = rng.randint(2, limit - 4) if rng.random() < 0.3 else -1  # the count goes on across a wait
        while r.seq - 1 < target:
            e = r.tool(rng.choice(TOOLS), r.approval(rng.uniform(70, 180) * 60)) if r.seq == wait_at \
                else r.tool(rng.choice(TOOLS))
            if e["seq"] == limit + 1:
                mark(e)
    elif kind == "budget:wall_s":  # the run's own time, with approval waits between
        limit, waits = budgets["run_max_wall_s"], rng.randint(0, 2)
        while True:
            if waits and rng.random() < 0.25:
                waits -= 1
                e = r.tool(rng.choice(TOOLS), r.approval(rng.uniform(5, 120) * 60))
            else:
                r.t += int(rng.uniform(25, 70) * 1e6)  # the agent waits on a slow system between steps
                e = r.any_step()
            if (e["ts_us"] - r.events[0]["ts_us"]) / 1e6 - r.waited > limit:
                mark(e)
                break
        for _ in range(rng.randint(0, 3)):
            r.any_step()
    elif kind == "budget:cost_usd":
        limit = budgets["run_max_cost_usd"]
        while True:
            e = r.llm(cost=round(limit / rng.randint(3, 8), 6))
            if r.cost > limit:
                mark(e)
                break
        r.tool(rng.choice(TOOLS))


def _cycle_block(g: Gen, loops: dict[str, Any], budgets: dict[str, Any],
                 novel_at_most_same: bool) -> list[tuple[str | None, str | None]]:
    """A loop body of 5-12 steps (as long as the run's step budget leaves room for the laps):
    (tool or None for an LLM call, a fixed digest or None for new arguments every lap). Planted
    (``novel_at_most_same`` False): more identical calls than new ones; the near miss: at most as
    many. Each identical call has its own digest, so none shows in the repeat window 6 times."""
    rng = g.rng
    laps = loops["max_repeats"] + 2
    p = rng.randint(5, max(5, min(12, (budgets["run_max_steps"] - 12) // laps)))
    n_same = rng.randint(1, (p - 1) // 2) if novel_at_most_same else rng.randint(2, p - 1)
    n_new = rng.randint(n_same, p - n_same) if novel_at_most_same else rng.randint(0, min(n_same - 1, p - n_same))
    kinds = ["same"] * n_same + ["new"] * n_new + ["llm"] * (p - n_same - n_new)
    rng.shuffle(kinds)
    return [(None, None) if k == "llm" else (rng.choice(TOOLS), g.digest() if k == "same" else None) for k in kinds]


def _cycle_step(r: RunBuilder, call: tuple[str | None, str | None]) -> dict[str, Any]:
    tool, digest = call
    if tool is None:
        return r.llm()  # the history grows: a new request every lap
    return r.tool(tool, digest or "")  # "": new arguments


def near(r: RunBuilder, kind: str, pol: dict[str, Any]) -> None:
    g, loops, budgets = r.g, pol["loops"], pol["budgets"]
    rng = g.rng
    if kind == "near:at_step_limit":
        while r.seq - 1 < budgets["run_max_steps"]:
            r.tool(rng.choice(TOOLS)) if rng.random() < 0.7 else r.llm(cost=0.0)
    elif kind == "near:at_cost_limit":
        parts = 8  # binary fractions: the sum is exactly the limit
        for _ in range(parts):
            r.llm(cost=budgets["run_max_cost_usd"] / parts)
            r.tool(rng.choice(TOOLS))
    elif kind == "near:repeats_at_limit":
        name, d = rng.choice(TOOLS), g.digest()
        for _ in range(loops["max_repeats"]):
            r.tool(name, d)
            r.llm()
    elif kind == "near:ping_pong_at_limit":
        da, db = g.digest(), g.digest()
        for i in range(2 * loops["max_ping_pong"]):
            r.llm(da) if i % 2 == 0 else r.tool("kb_search", db)
        r.tool("http_fetch")
    elif kind == "near:legal_chains":
        for _ in range(2):
            name, d = rng.choice(TOOLS), g.digest()
            for k in range(rng.randint(2, loops["max_retries"] + 1)):
                r.tool(name, d, attempt=k + 1)
            for _ in range(rng.randint(2, 8)):
                r.any_step()
        r.tool("http_fetch", g.digest(), attempt=2)  # an unrelated retry later on
    elif kind == "near:long_legal":
        n = min(budgets["run_max_steps"], 110) - rng.randint(1, 10)
        while r.seq - 1 < n:
            r.tool("repo_read_file") if rng.random() < 0.6 else r.llm(cost=0.0005)
    elif kind == "near:alternating_progress":  # LLM <-> the same tool, new arguments each time
        for _ in range(rng.randint(8, 14)):
            r.llm()
            r.tool("kb_search")
    elif kind == "near:polling":  # the same status call, but never max_repeats+1 within the window
        gap = loops["repeat_window"] // (loops["max_repeats"] - 1) + 1
        d = g.digest()
        for i in range(min(budgets["run_max_steps"], 110) - 5):
            r.tool("http_fetch", d) if i % gap == 0 else r.any_step()
    elif kind == "near:cycle_progress":  # plan/act/observe with a fixed shape: new work every lap
        block = _cycle_block(g, loops, budgets, novel_at_most_same=True)
        while r.seq - 1 + len(block) <= min(budgets["run_max_steps"], 110) - 2:
            for call in block:
                _cycle_step(r, call)
    elif kind == "near:poll_until_done":  # the same status call, its result changing every few polls
        d = g.digest()
        for _ in range(rng.randint(2, 8)):
            status = g.digest()
            for _ in range(rng.randint(1, loops["max_repeats"] - 1)):
                r.tool("get_job_status", d, result=status)
                if rng.random() < 0.3:
                    r.any_step()
    elif kind == "near:approval_wait":  # hours of human waits; steps and a repeated lookup near their limits
        name, d = rng.choice(TOOLS), g.digest()
        lookups = 0
        for _ in range(rng.randint(1, 3)):
            for _ in range(rng.randint(1, 4)):
                r.any_step()
            if lookups < loops["max_repeats"]:
                r.tool(name, d)
                lookups += 1
            r.tool(rng.choice(TOOLS), r.approval(rng.uniform(15, 180) * 60))
        cap = min(budgets["run_max_steps"], 60) - rng.randint(0, 3)
        while r.seq - 1 < cap:
            if lookups < loops["max_repeats"] and rng.random() < 0.2:
                r.tool(name, d)
                lookups += 1
            else:
                r.any_step()
    elif kind == "near:crashed":  # the agent dies: no RUN_END (``generate`` leaves it out)
        for _ in range(rng.randint(2, 15)):
            r.any_step()
    elif kind == "near:otlp_style":
        for _ in range(rng.randint(15, 35)):
            x = rng.random()
            if x < 0.5:
                r.tool(rng.choice(TOOLS[:2]), None)
            elif x < 0.8:
                r.llm(digest="", cost=0.0005)
            else:
                r._step("CUSTOM", "GET /internal", rng.lognormvariate(3, 0.5))
