"""A seeded generator of agent fleets with planted findings and ground truth, for the detector
scenario tests and ``bench/detection.py`` (``scenario_score.py`` scores what the detectors said).

A fleet is tenants x agents over some hours of event time, a few hundred runs per hour per agent
(with a time-of-day swing, so a comparison that is not concurrent would be confounded). Every run
is ordinary, a planted finding or a near miss that must stay silent:

- loops (``repeat`` of one tool call, ``llm_repeat`` of one prompt, ``ping_pong`` between an LLM
  request and a tool call or two tool calls, ``retry_chain`` longer than allowed, ``cycle3`` of
  the same three calls, ``cycle`` of 5-12 steps whose LLM requests change every lap while most
  tool calls do not), each with the step (``seq``) at which its threshold is first exceeded;
- run budget breaches (steps, cost), with the step that goes over;
- near misses: exactly ``run_max_steps`` steps, cost exactly at ``run_max_cost_usd``, a call
  repeated exactly ``max_repeats`` times, ``2 * max_ping_pong`` alternating steps, legal
  chains (at most ``max_retries`` retries each) plus unrelated retries, long legal runs calling a
  tool with different arguments, LLM <-> tool alternation with new arguments each time, a status
  call polled too sparsely to exceed the repeat window, a loop of 5-12 steps whose new calls are
  at least as many as its identical ones (``cycle_progress``), OTLP-style runs (no digests);
- per agent one rollout (a new version taking half the traffic): a drift (failure rate 2 % ->
  10 %, cost per run x1.5, one step's latency x1.7) or a null control (nothing changes);
- one tenant whose daily spend goes over its ``tenant_usd_per_day``.

Everything derives from ``FleetSpec.seed``: the same spec gives the same events.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

HOUR_US = 3_600_000_000
START_US = 1_767_571_200_000_000  # 2026-01-05 00:00 UTC
LOOPS = {"max_repeats": 5, "max_ping_pong": 4, "max_no_progress": 3, "max_retries": 3, "stop_on_loop": True,
         "repeat_window": 24}
TOOLS = ("repo_read_file", "kb_search", "http_fetch", "sql_query", "send_email")
DRIFT_KINDS = ("failure_rate", "null", "cost_per_run", "null", "step_latency", "failure_rate", "null",
               "cost_per_run", "step_latency")
LOOP_KINDS = ("repeat", "llm_repeat", "ping_pong", "retry_chain", "cycle3", "cycle")
NEAR_KINDS = ("at_step_limit", "at_cost_limit", "repeats_at_limit", "ping_pong_at_limit", "legal_chains",
              "long_legal", "otlp_style", "alternating_progress", "polling", "cycle_progress")


@dataclass(frozen=True)
class FleetSpec:
    seed: int = 1
    tenants: int = 3
    agents_per_tenant: int = 2
    hours: int = 8
    runs_per_hour: int = 300       # per agent, at the daily mean
    loop_share: float = 0.02
    budget_share: float = 0.01
    near_share: float = 0.04
    drift: bool = True
    tenant_prefix: str = "tenant"  # unique per test when several share a broker
    start_hour: int = 8            # hour of day (UTC) the fleet's event time starts at


@dataclass
class RunTruth:
    run_id: str
    tenant: str
    kind: str                      # ordinary | loop:<k> | budget:<metric> | near:<k>
    expect_seq: int | None = None  # the step at which the threshold is first exceeded
    expect_us: int | None = None

    def expect_at(self, event: dict[str, Any]) -> None:
        """The planted behaviour crosses its threshold at ``event``."""
        self.expect_seq, self.expect_us = event["seq"], event["ts_us"]


@dataclass
class Fleet:
    spec: FleetSpec
    events: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, RunTruth] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    tenant_day_limit: dict[str, float] = field(default_factory=dict)


def tenant_policy(i: int, daily_limit: float | None) -> dict[str, Any]:
    """Tenant 0 allows 40 steps and $0.50 a run; the others 120 steps and $1.00."""
    steps, cost = (40, 0.5) if i == 0 else (120, 1.0)
    return {"loops": dict(LOOPS), "budgets": {"run_max_steps": steps, "run_max_cost_usd": cost,
                                              "run_max_tokens": None, "run_max_wall_s": None,
                                              "tenant_usd_per_hour": None, "tenant_usd_per_day": daily_limit,
                                              "agent_usd_per_day": None, "hard_limit": True,
                                              "warn_fraction": 0.8}}


class _Run:
    """Builds one run's events; ``t`` advances by each step's latency plus think time."""

    def __init__(self, g: "_Gen", tenant: str, agent: str, version: str, run_id: str, t0: int) -> None:
        self.g, self.tenant, self.agent, self.version, self.run_id = g, tenant, agent, version, run_id
        self.t, self.seq, self.cost = t0, 0, 0.0
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

    def tool(self, name: str, digest: str | None = "", attempt: int = 1) -> dict[str, Any]:
        lat = self.g.rng.lognormvariate(5, 0.35) * (1.7 if name == self.slow else 1.0)
        return self._step("TOOL", name, lat, attempt, tool={
            "tool_name": name, "call_id": None, "args_digest": self.g.digest() if digest == "" else digest})

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


class _Gen:
    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.n = 0
        self.cost_mult: dict[tuple[str, str], float] = {}
        self.slow_step: dict[tuple[str, str], str] = {}

    def uid(self) -> str:
        self.n += 1
        return hashlib.md5(f"{self.spec.seed}-{self.n}".encode()).hexdigest()

    def digest(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"


def _planted(r: _Run, kind: str, pol: dict[str, Any], truth: RunTruth) -> None:
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
    elif kind == "budget:steps":
        limit = budgets["run_max_steps"]
        target = limit + rng.randint(1, 6)
        while r.seq - 1 < target:
            e = r.tool(rng.choice(TOOLS))
            if e["seq"] == limit + 1:
                mark(e)
    elif kind == "budget:cost_usd":
        limit = budgets["run_max_cost_usd"]
        while True:
            e = r.llm(cost=round(limit / rng.randint(3, 8), 6))
            if r.cost > limit:
                mark(e)
                break
        r.tool(rng.choice(TOOLS))


def _cycle_block(g: _Gen, loops: dict[str, Any], budgets: dict[str, Any],
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


def _cycle_step(r: _Run, call: tuple[str | None, str | None]) -> dict[str, Any]:
    tool, digest = call
    if tool is None:
        return r.llm()  # the history grows: a new request every lap
    return r.tool(tool, digest or "")  # "": new arguments


def _near(r: _Run, kind: str, pol: dict[str, Any]) -> None:
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
    elif kind == "near:otlp_style":
        for _ in range(rng.randint(15, 35)):
            x = rng.random()
            if x < 0.5:
                r.tool(rng.choice(TOOLS[:2]), None)
            elif x < 0.8:
                r.llm(digest="", cost=0.0005)
            else:
                r._step("CUSTOM", "GET /internal", rng.lognormvariate(3, 0.5))


def _rollouts(spec: FleetSpec, agents: list[tuple[str, str]], g: _Gen) -> dict[str, dict[str, Any]]:
    out = {}
    for k, (tenant, agent) in enumerate(agents):
        kind = DRIFT_KINDS[k % len(DRIFT_KINDS)] if spec.drift else "none"
        hour = g.rng.randint(max(2, spec.hours // 3), max(2, spec.hours - 3)) if spec.drift else 10**9
        old, new = "1.0", "1.1"
        if kind == "cost_per_run":
            g.cost_mult[(agent, new)] = 1.5
        elif kind == "step_latency":
            g.slow_step[(agent, new)] = "kb_search"
        out[agent] = {"tenant": tenant, "agent": agent, "kind": kind, "old": old, "new": new,
                      "rollout_us": _start(spec) + hour * HOUR_US + g.rng.randint(0, HOUR_US // 2)}
    return out


def _start(spec: FleetSpec) -> int:
    return START_US + spec.start_hour * HOUR_US


def generate(spec: FleetSpec) -> Fleet:
    g = _Gen(spec)
    fleet = Fleet(spec)
    tenants = [f"{spec.tenant_prefix}-{i}" for i in range(spec.tenants)]
    agents = [(t, f"{t}-agent-{j}") for t in tenants for j in range(spec.agents_per_tenant)]
    rollouts = _rollouts(spec, agents, g)
    fleet.rollouts = [r for r in rollouts.values() if r["kind"] != "none"]
    for i, t in enumerate(tenants):
        fleet.policies[t] = tenant_policy(i, None)
    kinds = ([("loop:" + k, spec.loop_share / len(LOOP_KINDS)) for k in LOOP_KINDS]
             + [("budget:steps", spec.budget_share / 2), ("budget:cost_usd", spec.budget_share / 2)]
             + [("near:" + k, spec.near_share / len(NEAR_KINDS)) for k in NEAR_KINDS])
    for tenant, agent in agents:
        pol = fleet.policies[tenant]
        ro = rollouts[agent]
        for h in range(spec.hours):
            hod = h + spec.start_hour
            swing = 1 + 0.35 * math.sin(2 * math.pi * (hod - 9) / 24)  # busiest mid-afternoon
            for _ in range(int(spec.runs_per_hour * swing)):
                t0 = _start(spec) + h * HOUR_US + g.rng.randrange(HOUR_US)
                new = t0 >= ro["rollout_us"] and g.rng.random() < 0.5
                version = ro["new"] if new else ro["old"]
                run_id = f"run-{g.uid()[:16]}"
                r = _Run(g, tenant, agent, version, run_id, t0)
                kind, x = "ordinary", g.rng.random()
                for k, share in kinds:
                    if x < share:
                        kind = k
                        break
                    x -= share
                truth = RunTruth(run_id, tenant, kind)
                if kind.startswith(("loop:", "budget:")):
                    _planted(r, kind, pol, truth)
                elif kind.startswith("near:"):
                    _near(r, kind, pol)
                else:
                    for _ in range(g.rng.randint(3, 14)):
                        r.any_step()
                base_fail = 0.02 * (1 + 0.4 * math.sin(2 * math.pi * hod / 24))  # time of day matters
                fail = 0.10 if (new and ro["kind"] == "failure_rate") else base_fail
                fleet.events += r.end(g.rng.random() < fail)
                fleet.runs[run_id] = truth
    _tenant_day_limits(fleet)
    fleet.events.sort(key=lambda e: (e["ts_us"], e["run_id"], e["seq"]))
    return fleet


def _tenant_day_limits(fleet: Fleet) -> None:
    """Tenant 0 overruns its day at about 70 % of the way; the others stay far below."""
    spend: dict[str, float] = {}
    for e in fleet.events:
        llm = e["payload"].get("llm") if e["kind"] == "STEP" else None
        if llm:
            spend[e["tenant_id"]] = spend.get(e["tenant_id"], 0.0) + llm["cost_usd"]
    for i, (tenant, pol) in enumerate(fleet.policies.items()):
        limit = round(spend.get(tenant, 0.0) * (0.7 if i == 0 else 3.0), 2)
        pol["budgets"]["tenant_usd_per_day"] = limit
        fleet.tenant_day_limit[tenant] = limit
