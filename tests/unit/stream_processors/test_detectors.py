"""Pure detectors without a broker: loops, run budgets, tenant spend windows, drift statistics."""
from __future__ import annotations

import random

from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import drift, fleet, runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

HOUR = fleet.HOUR_US


def _observe(events, loops=LOOP_DEFAULTS, budgets=BUDGET_DEFAULTS):
    st, found = runs.new_state(), []
    for e in events:
        found += runs.observe(st, e, loops, budgets)
    return st, found


def test_repeated_step_raises_one_loop_with_stop():
    _, f = _observe([syn.step("t", "r", i, name="search", args_digest="a") for i in range(8)])
    assert [(x.alert_type, x.stop) for x in f] == [("loop", True)]


def test_ping_pong_no_progress_and_retry_storm():
    _, f = _observe([syn.step("t", "r", i, name="a" if i % 2 else "b") for i in range(8)])
    assert [x.alert_type for x in f] == ["ping_pong"]
    fp = {runs.PROGRESS_ATTR: "same"}
    _, f = _observe([syn.step("t", "r", i, name=f"s{i}", attributes=fp) for i in range(5)])
    assert [x.alert_type for x in f] == ["no_progress"]
    _, f = _observe([syn.step("t", "r", i, name=f"s{i}", attempt=2) for i in range(6)],
                    loops={**LOOP_DEFAULTS, "stop_on_loop": False})
    assert [(x.alert_type, x.stop) for x in f] == [("retry_storm", False)]


def test_distinct_steps_raise_nothing():
    _, f = _observe([syn.step("t", "r", i, name=f"tool{i % 4}", args_digest=str(i)) for i in range(40)])
    assert f == []


def test_run_budget_warns_then_breaches_once_and_stops_on_hard_limit():
    b = {**BUDGET_DEFAULTS, "run_max_cost_usd": 1.0, "hard_limit": True}
    _, f = _observe([syn.llm_step("t", "r", i, cost_usd=0.3) for i in range(6)], budgets=b)
    assert [(x.alert_type, x.stop) for x in f] == [("budget_warning", False), ("budget_breach", True)]


def test_tenant_day_budget_alerts_once_per_window_and_stops_live_runs():
    st = fleet.new_state()
    b = {**BUDGET_DEFAULTS, "tenant_usd_per_day": 1.0, "hard_limit": True}
    t0 = 1000 * fleet.DAY_US
    out = []
    for i in range(10):
        d = fleet.new_delta("t")
        d["active"].append(f"r{i}")
        fleet.add_spend(d, "a", t0 + i, 0.3)
        out += fleet.apply(st, d, b)
    kinds = [x.alert_type for x in out if "run_id" not in x.evidence]
    assert kinds == ["budget_warning", "budget_breach"]
    assert out[1].stop_runs == ["r0", "r1", "r2", "r3"]
    # runs starting after the breach in the same day are stopped once each
    assert [x.stop_runs for x in out[2:]] == [[f"r{i}"] for i in range(4, 10)]


def _feed(st, version, n, fail_rate, rng, agent="ag", t=0):
    out = []
    for _ in range(0, n, 100):
        d = fleet.new_delta("t")
        for _ in range(100):
            s = fleet.drift_sample(d, agent, version, t)
            drift.add_run(s, rng.random() < fail_rate, rng.lognormvariate(7, 0.3), 0.01, 5)
            drift.add_tool(s, rng.choice(["search", "fetch", "write"]))
        out += fleet.apply(st, d, BUDGET_DEFAULTS)
    return out


def test_failure_rate_2_to_10_percent_is_alerted_once_with_effect_and_p_value():
    rng = random.Random(1)
    st = fleet.new_state()
    assert _feed(st, "1.0", 3000, 0.02, rng) == []
    out = _feed(st, "1.1", 3000, 0.10, rng)
    assert [(x.alert_type, x.evidence["metric"]) for x in out] == [("drift", "failure_rate")]
    assert 0.05 < float(out[0].evidence["effect_size"]) < 0.11 and float(out[0].evidence["p_value"]) < 1e-4
    assert _feed(st, "1.1", 3000, 0.10, rng) == []  # hysteresis: a lasting drift is not re-alerted


def test_two_identical_versions_over_10k_runs_raise_no_alert():
    for seed in range(3):
        rng = random.Random(100 + seed)
        st = fleet.new_state()
        assert _feed(st, "1.0", 5000, 0.05, rng) + _feed(st, "1.1", 5000, 0.05, rng) == []


def test_statistics_are_sane():
    assert drift.two_proportion(20, 1000, 100, 1000)[1] < 1e-9
    assert drift.two_proportion(50, 1000, 50, 1000) == (0.0, 1.0)
    assert 0.04 < drift.chi_square({"a": 50, "b": 50}, {"a": 50, "b": 50})[1] <= 1.0
    assert drift.chi_square({"a": 900, "b": 100}, {"a": 100, "b": 900})[1] < 1e-12
    d, p = drift.ks_hist({"1": 100, "2": 100}, {"1": 100, "2": 100})
    assert d == 0 and p == 1.0
