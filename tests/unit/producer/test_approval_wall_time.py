"""A run's wall-time budget (``max_wall_time_s``) counts the run's own time, not the time it
spends waiting for a human to decide an approval (docs/sdk.md, Enforcement settings).

Found by an adversarial probe: a run with a 10-minute wall budget that asked for a refund
approval and got the decision 20 minutes later was stopped (``BudgetExceeded("wall_time_s")``)
at its next step, though it had worked for two minutes; an agent that called ``run.check()``
while it waited (to take a STOP) was stopped during the wait. The rule: an approval's wait is
taken off the run's elapsed time - ``run.approval_request``'s own timed wait while it lasts and
once decided; a wait given to ``run.approval(..., approval_latency_ms=...)`` only as far back as
the run has been quiet (since its last step ended, or since the open step began), so a claimed
wait cannot hide work the gate saw.

Scenarios are generated from seeds (limits, work, number, kind and length of waits), on both
step cores, with a fake clock driving the budget, the approval timer and (pure-Python core)
the steps' own clock.
"""
from __future__ import annotations

import random
import time
import types

import pytest
from step_support import drain, make_tracer

from agentstream.producer import Budget, BudgetExceeded
from agentstream.producer import enforcement, records
from agentstream.producer import step as step_module

CORES = pytest.mark.parametrize("speedups", [True, False], ids=["c", "py"])


class Clock:
    """The budget's ``time.monotonic``, the approval timer's and the Python step core's
    ``perf_counter_ns``, advanced only by ``advance``."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def monotonic(self) -> float:
        return self.t

    def perf_ns(self) -> int:
        return int(self.t * 1e9)


def _clock(monkeypatch, speedups: bool) -> Clock:
    c = Clock()
    monkeypatch.setattr(enforcement, "time", types.SimpleNamespace(monotonic=c.monotonic))
    monkeypatch.setattr(records, "time", types.SimpleNamespace(perf_counter_ns=c.perf_ns))
    if not speedups:  # the C core times its steps in C: there a step's own duration is real
        monkeypatch.setattr(step_module, "time", types.SimpleNamespace(perf_counter_ns=c.perf_ns, sleep=time.sleep))
    return c


def _plan(rng: random.Random, limit: float, work_share: float, claims: bool) -> list[tuple[str, float]]:
    """("work", s): a step working s seconds; ("wait", s): ``run.approval_request`` decided
    after s seconds, the agent calling ``run.check()`` while it waits; ("claim", s): the agent
    waited s seconds elsewhere and records it with ``run.approval``. Work adds up to
    ``work_share`` x ``limit``, waits to several times the limit."""
    n = rng.randint(3, 30)
    cuts = sorted(rng.random() for _ in range(n - 1))
    plan: list[tuple[str, float]] = [("work", (b - a) * work_share * limit)
                                     for a, b in zip([0.0] + cuts, cuts + [1.0])]
    for _ in range(rng.randint(1, 3)):
        wait = rng.uniform(0.5, 5.0) * limit  # e.g. 20 minutes against a 10-minute budget
        plan.insert(rng.randint(0, len(plan)), (rng.choice(["wait", "claim"] if claims else ["wait"]), wait))
    return plan


def _play(run, clock: Clock, plan: list[tuple[str, float]], refund: dict) -> None:
    for i, (kind, seconds) in enumerate(plan):
        if kind == "work":
            with run.step("tool", f"work{i}"):
                clock.advance(seconds)
        elif kind == "wait":
            with run.approval_request(refund) as req:
                for _ in range(10):  # polls the approval service, and takes a STOP if one came
                    clock.advance(seconds / 10)
                    run.check()
                req.decide("approved")
        else:
            clock.advance(seconds)
            run.approval(refund, "approved", approval_latency_ms=seconds * 1000)


@CORES
@pytest.mark.parametrize("seed", range(12))
def test_approval_waits_do_not_count_toward_the_wall_time_budget(tmp_path, monkeypatch, speedups, seed):
    clock = _clock(monkeypatch, speedups)
    rng = random.Random(seed)
    tracer = make_tracer(tmp_path, speedups)
    limit = rng.choice([60.0, 600.0, 3600.0])
    plan = _plan(rng, limit, rng.uniform(0.2, 0.95), claims=True)
    refund = {"tool": "issue_refund", "amount_minor": rng.randint(100, 99_999)}
    with tracer.run("refund", budget=Budget(max_wall_time_s=limit)) as run:
        _play(run, clock, plan, refund)
    events = drain(tracer)
    assert [e["payload"] for e in events if e["kind"] == "FAILURE"] == []
    (end,) = [e for e in events if e["kind"] == "RUN_END"]
    assert end["payload"]["status"] == "SUCCESS"
    assert sum(1 for e in events if e["kind"] == "STEP") == len(plan)


@CORES
@pytest.mark.parametrize("seed", range(12))
def test_work_over_the_budget_is_still_stopped_at_the_first_step_past_it(tmp_path, monkeypatch, speedups, seed):
    """The true positive: the run's own time goes over the limit; the first step that starts
    after that is refused, whatever approvals waited in between."""
    clock = _clock(monkeypatch, speedups)
    rng = random.Random(1000 + seed)
    tracer = make_tracer(tmp_path, speedups)
    limit = rng.choice([60.0, 600.0, 3600.0])
    plan = _plan(rng, limit, rng.uniform(1.3, 3.0), claims=not speedups)
    work, expected = 0.0, None
    for i, (kind, seconds) in enumerate(plan):
        if kind == "work":
            if work > limit:
                expected = sum(1 for k, _ in plan[:i] if k == "work")
                break
            work += seconds
    assert expected is not None
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("refund", budget=Budget(max_wall_time_s=limit)) as run:
            _play(run, clock, plan, {"tool": "issue_refund", "amount_minor": 2599})
    assert info.value.budget_type == "wall_time_s"
    events = drain(tracer)
    assert sum(1 for e in events if e["kind"] == "STEP" and e["payload"]["name"].startswith("work")) == expected


@CORES
def test_a_claimed_wait_cannot_hide_the_work_the_gate_saw(tmp_path, speedups):
    """``run.approval(..., approval_latency_ms=...)`` is the caller's figure: a claim recorded
    right after a step takes off nothing of that step (real clock: 0.15 s steps, 0.5 s limit,
    a 10-hour claim after each)."""
    tracer = make_tracer(tmp_path, speedups)
    done = 0
    with pytest.raises(BudgetExceeded):
        with tracer.run("r", budget=Budget(max_wall_time_s=0.5)) as run:
            for _ in range(6):
                with run.step("tool", "work"):
                    time.sleep(0.15)
                done += 1
                run.approval({"tool": "x"}, "approved", approval_latency_ms=10 * 3600 * 1000)
    # 0.6 s of work behind the 5th step: refused (the 4th already, on a machine so loaded that
    # three 0.15 s sleeps took over 0.5 s); hidden, the claims would have let all six run
    assert done in (3, 4)
