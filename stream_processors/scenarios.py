"""A seeded generator of agent fleets with planted findings and ground truth, for the detector
scenario tests and ``bench/detection.py`` (``scenario_score.py`` scores what the detectors said).

A fleet is tenants x agents over some hours of event time, a few hundred runs per hour per agent
(with a time-of-day swing, so a comparison that is not concurrent would be confounded). Every run
is ordinary, a planted finding or a near miss that must stay silent:

- loops (``repeat`` of one tool call, ``llm_repeat`` of one prompt, ``ping_pong`` between an LLM
  request and a tool call or two tool calls, ``retry_chain`` longer than allowed, ``cycle3`` of
  the same three calls, ``cycle`` of 5-12 steps whose LLM requests change every lap while most
  tool calls do not, ``poll_stuck``: a status poll whose result moves, then stops changing,
  ``after_wait``: a repeat after hours waiting for an approval, so after the run's state went
  idle), each with the step (``seq``) at which its threshold is first exceeded;
- run budget breaches (steps, cost, wall time: the run's own time, approval waits between),
  with the step that goes over;
- near misses: exactly ``run_max_steps`` steps, cost exactly at ``run_max_cost_usd``, a call
  repeated exactly ``max_repeats`` times, ``2 * max_ping_pong`` alternating steps, legal
  chains (at most ``max_retries`` retries each) plus unrelated retries, long legal runs calling a
  tool with different arguments, LLM <-> tool alternation with new arguments each time, a status
  call polled too sparsely to exceed the repeat window, a loop of 5-12 steps whose new calls are
  at least as many as its identical ones (``cycle_progress``), OTLP-style runs (no digests),
  a status poll whose result changes every few polls (``poll_until_done``), runs that wait
  15 minutes to 3 hours for approvals (``approval_wait``: far over the wall-time budget in
  elapsed time, their state idle meanwhile, steps and repeats near their limits across the
  wait), runs that crash (``crashed``: no RUN_END);
- per agent one rollout (a new version taking half the traffic): a drift (failure rate 2 % ->
  10 %, cost per run x1.5, one step's latency x1.7) or a null control (nothing changes);
- one tenant whose daily spend goes over its ``tenant_usd_per_day``.

Everything derives from ``FleetSpec.seed``: the same spec gives the same events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .scenario_kinds import Gen, RunBuilder, near, planted

HOUR_US = 3_600_000_000
START_US = 1_767_571_200_000_000  # 2026-01-05 00:00 UTC
LOOPS = {"max_repeats": 5, "max_ping_pong": 4, "max_no_progress": 3, "max_retries": 3, "stop_on_loop": True,
         "repeat_window": 24}
DRIFT_KINDS = ("failure_rate", "null", "cost_per_run", "null", "step_latency", "failure_rate", "null",
               "cost_per_run", "step_latency")
LOOP_KINDS = ("repeat", "llm_repeat", "ping_pong", "retry_chain", "cycle3", "cycle", "poll_stuck", "after_wait")
BUDGET_KINDS = ("steps", "cost_usd", "wall_s")
NEAR_KINDS = ("at_step_limit", "at_cost_limit", "repeats_at_limit", "ping_pong_at_limit", "legal_chains",
              "long_legal", "otlp_style", "alternating_progress", "polling", "cycle_progress", "poll_until_done",
              "approval_wait", "crashed")
WALL_S = 600.0  # every tenant's run wall-time budget (the run's own time)


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
                                              "run_max_tokens": None, "run_max_wall_s": WALL_S,
                                              "tenant_usd_per_hour": None, "tenant_usd_per_day": daily_limit,
                                              "agent_usd_per_day": None, "hard_limit": True,
                                              "warn_fraction": 0.8}}


def _rollouts(spec: FleetSpec, agents: list[tuple[str, str]], g: Gen) -> dict[str, dict[str, Any]]:
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
    g = Gen(spec.seed)
    fleet = Fleet(spec)
    tenants = [f"{spec.tenant_prefix}-{i}" for i in range(spec.tenants)]
    agents = [(t, f"{t}-agent-{j}") for t in tenants for j in range(spec.agents_per_tenant)]
    rollouts = _rollouts(spec, agents, g)
    fleet.rollouts = [r for r in rollouts.values() if r["kind"] != "none"]
    for i, t in enumerate(tenants):
        fleet.policies[t] = tenant_policy(i, None)
    kinds = ([("loop:" + k, spec.loop_share / len(LOOP_KINDS)) for k in LOOP_KINDS]
             + [("budget:" + k, spec.budget_share / len(BUDGET_KINDS)) for k in BUDGET_KINDS]
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
                r = RunBuilder(g, tenant, agent, version, run_id, t0)
                kind, x = "ordinary", g.rng.random()
                for k, share in kinds:
                    if x < share:
                        kind = k
                        break
                    x -= share
                truth = RunTruth(run_id, tenant, kind)
                if kind.startswith(("loop:", "budget:")):
                    planted(r, kind, pol, truth)
                elif kind.startswith("near:"):
                    near(r, kind, pol)
                else:
                    for _ in range(g.rng.randint(3, 14)):
                        r.any_step()
                base_fail = 0.02 * (1 + 0.4 * math.sin(2 * math.pi * hod / 24))  # time of day matters
                fail = 0.10 if (new and ro["kind"] == "failure_rate") else base_fail
                fleet.events += r.events if kind == "near:crashed" else r.end(g.rng.random() < fail)
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
