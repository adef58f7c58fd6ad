"""A generated fleet (planted loops, ping-pong, retry chains, run-budget breaches, a tenant-day
overrun, drift episodes; near misses and null-control rollouts that must stay silent) through the
real processors worker on the embedded broker, scored against its ground truth. The same fleet
replayed in process (the code path bench/detection.py runs at scale) must agree."""
from __future__ import annotations

import pytest

from agentstream.stream_processors import scenario_score, scenarios
from agentstream.stream_processors.scenario_broker import replay_on_broker

pytestmark = pytest.mark.integration


def _check(s: dict, where: str) -> None:
    loops, budgets, drift = s["loops"], s["budgets"], s["drift"]
    assert loops["planted"] >= 100 and budgets["planted"] >= 50, where
    assert loops["recall"] >= 0.98 and loops["precision"] >= 0.98, (where, loops)
    assert budgets["recall"] >= 0.98 and budgets["precision"] >= 0.98, (where, budgets)
    assert loops["within_1_step"] == 1.0 and budgets["within_1_step"] == 1.0, where
    assert s["duplicates"] == 0 and s["stop_precision"] >= 0.99, (where, s["duplicates"], s["stop_precision"])
    assert s["tenant_day"]["exactly_once"], (where, s["tenant_day"])
    assert drift["null_controls"] == 2 and drift["null_false_alarms"] == 0, (where, drift)
    assert drift["found"] == drift["planted"] == 2, (where, drift)


def test_a_generated_fleet_through_the_real_worker(bootstrap, topic_prefix, tmp_path, unique):
    # 2 tenants x 2 agents: a failure-rate drift, a cost drift and two null-control rollouts
    fleet = scenarios.generate(scenarios.FleetSpec(
        seed=7, tenants=2, agents_per_tenant=2, hours=4, start_hour=11, runs_per_hour=300, loop_share=0.06,
        budget_share=0.025, near_share=0.08, tenant_prefix=f"scn{unique}"))
    alerts, commands = scenario_score.replay_in_process(fleet)
    _check(scenario_score.score(fleet, alerts, commands), "in process")
    alerts, commands, _ = replay_on_broker(fleet, bootstrap, topic_prefix, tmp_path)
    real = scenario_score.score(fleet, alerts, commands)
    _check(real, "real worker")
    print(scenario_score.summary(real))
