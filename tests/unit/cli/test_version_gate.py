"""The verdict of `agentstream compare` on /v1/compare answers: generated cohorts of every shape
(each metric worse or better by more or less than its limit, significant or not), and answers a
CI gate must not pass on (too little data, tests not run, malformed figures)."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from agentstream.cli.version_gate import (
    CHANGED, IMPROVED, INSUFFICIENT, NO_DATA, PASS, REGRESSED, REGRESSION, UNCHANGED, GateLimits, judge,
)

TESTS = ("failure_rate", "latency_mann_whitney", "latency_ks", "cost_mann_whitney", "tool_mix_chi_square")


def summary(version, runs=200, failure_rate=0.05, p50=1000.0, p95=3000.0, cost=0.02):
    return {"version": version, "runs": runs, "finished_runs": runs, "failures": round(runs * failure_rate),
            "failure_rate": failure_rate, "latency_p50_ms": p50, "latency_p95_ms": p95,
            "latency_p99_ms": p95 * 1.5, "cost_usd": cost * runs, "cost_per_run_usd": cost, "tokens_per_run": 900.0}


def comparison(a=None, b=None, significant=(), p=0.001, mix=None):
    tests = {t: {"test": t, "statistic": 1.0, "p_value": p if t in significant else 0.4,
                 "significant": t in significant} for t in TESTS}
    return {"agent": "bot", "a": a or summary("v1"), "b": b or summary("v2"), "tests": tests, "alpha": 0.05,
            "tool_mix": mix or [{"tool": "search", "a_calls": 100, "b_calls": 100, "a_share": 1.0, "b_share": 1.0}]}


def by_metric(verdict):
    return {c.metric: c for c in verdict.checks}


def test_the_same_figures_pass():
    v = judge(comparison())
    assert v.outcome == PASS and v.exit_code == 0 and v.reasons == []
    assert all(c.status == UNCHANGED for c in v.checks)


# metric -> (test that judges it, how to make the candidate worse by `x` units of its limit)
WORSE = {
    "failure rate": ("failure_rate", lambda x: {"failure_rate": 0.05 + x * 0.02}),
    "latency p50": ("latency_mann_whitney", lambda x: {"p50": 1000.0 * (1 + x * 0.10)}),
    "latency p95": ("latency_ks", lambda x: {"p95": 3000.0 * (1 + x * 0.10)}),
    "cost per run": ("cost_mann_whitney", lambda x: {"cost": 0.02 * (1 + x * 0.10)}),
}


@pytest.mark.parametrize("metric", sorted(WORSE))
@pytest.mark.parametrize("times_limit", [-3.0, -0.5, 0.5, 1.5, 4.0])
@pytest.mark.parametrize("significant", [True, False])
def test_a_metric_regresses_only_beyond_its_limit_and_significant(metric, times_limit, significant):
    test, worse = WORSE[metric]
    v = judge(comparison(b=summary("v2", **worse(times_limit)), significant={test} if significant else ()))
    c = by_metric(v)[metric]
    if significant and times_limit > 1:
        assert (v.outcome, c.status, v.exit_code) == (REGRESSION, REGRESSED, 1)
        assert len(v.reasons) == 1 and v.reasons[0].startswith(metric + ":")
    else:
        assert v.outcome == PASS and v.exit_code == 0
        assert c.status == (IMPROVED if significant and times_limit < -1 else UNCHANGED)
    others = [x for x in v.checks if x.metric not in (metric, "tool mix")]
    assert all(x.status == UNCHANGED for x in others)


def test_generated_cohorts_fail_exactly_when_some_metric_is_worse_beyond_its_limit_and_significant():
    rng = random.Random(7)
    for _ in range(400):
        changes = {m: rng.choice([-2.0, -0.3, 0.0, 0.7, 1.2, 3.0]) for m in WORSE}
        sig = {WORSE[m][0] for m in WORSE if rng.random() < 0.5}
        b = summary("v2")
        for m, x in changes.items():
            kw = WORSE[m][1](x)
            key = {"failure_rate": "failure_rate", "p50": "latency_p50_ms", "p95": "latency_p95_ms",
                   "cost": "cost_per_run_usd"}[next(iter(kw))]
            b[key] = next(iter(kw.values()))
        v = judge(comparison(b=b, significant=sig))
        expected = {m for m, x in changes.items() if x > 1 and WORSE[m][0] in sig}
        assert {c.metric for c in v.checks if c.status == REGRESSED} == expected
        assert v.outcome == (REGRESSION if expected else PASS)


def test_limits_are_the_teams():
    b = summary("v2", failure_rate=0.09, p50=1300.0)
    c = comparison(b=b, significant={"failure_rate", "latency_mann_whitney"})
    assert judge(c).outcome == REGRESSION
    loose = GateLimits(max_failure_rate_increase_pts=5.0, max_latency_increase_pct=50.0)
    assert judge(c, loose).outcome == PASS


def test_a_tail_regression_fails_while_the_median_holds():
    v = judge(comparison(b=summary("v2", p95=6000.0), significant={"latency_ks"}))
    assert v.outcome == REGRESSION
    assert by_metric(v)["latency p95"].status == REGRESSED and by_metric(v)["latency p50"].status == UNCHANGED
    assert "latency p95: 3000 ms -> 6000 ms (+100.0%, limit 10%" in v.reasons[0]


def test_a_cost_from_zero_is_a_regression_when_significant():
    v = judge(comparison(a=summary("v1", cost=0.0), b=summary("v2", cost=0.01), significant={"cost_mann_whitney"}))
    c = by_metric(v)["cost per run"]
    assert v.outcome == REGRESSION and c.status == REGRESSED and c.change is None and "from zero" in c.note


def test_a_changed_tool_mix_is_reported_and_fails_only_when_asked():
    mix = [{"tool": "search", "a_calls": 100, "b_calls": 50, "a_share": 1.0, "b_share": 0.5},
           {"tool": "calc", "a_calls": 0, "b_calls": 50, "a_share": 0.0, "b_share": 0.5}]
    c = comparison(significant={"tool_mix_chi_square"}, mix=mix)
    v = judge(c)
    assert v.outcome == PASS
    assert by_metric(v)["tool mix"].status == CHANGED
    assert by_metric(v)["tool mix"].note == "calc 0% -> 50%, search 100% -> 50%"
    strict = judge(c, GateLimits(fail_on_tool_mix=True))
    assert strict.outcome == REGRESSION and strict.reasons[0].startswith("tool mix changed")


@pytest.mark.parametrize("runs_a, runs_b", [(10, 200), (200, 29), (0, 0)])
def test_too_few_runs_is_not_a_pass(runs_a, runs_b):
    c = comparison(a=summary("v1", runs=runs_a), b=summary("v2", runs=runs_b))
    v = judge(c)
    assert (v.outcome, v.exit_code) == (INSUFFICIENT, 3)
    assert any("finished runs (at least 30 needed)" in r for r in v.reasons)
    allowed = judge(c, GateLimits(allow_insufficient=True))
    assert allowed.outcome == PASS and allowed.reasons  # still says why the figures are thin


def test_a_regression_found_in_thin_data_still_fails():
    c = comparison(a=summary("v1", runs=20), b=summary("v2", runs=20, failure_rate=0.5), significant={"failure_rate"})
    assert judge(c).outcome == REGRESSION


def test_tests_the_api_could_not_run_are_not_a_pass():
    c = comparison()
    c["tests"]["latency_mann_whitney"].update(p_value=None, significant=False)
    v = judge(c)
    assert v.outcome == INSUFFICIENT and by_metric(v)["latency p50"].status == NO_DATA
    assert "not tested: latency p50" in v.reasons


def test_the_apis_answer_for_an_unknown_agent_is_insufficient():
    empty = {"runs": 0, "finished_runs": 0, "failures": 0, "failure_rate": None, "latency_p50_ms": None,
             "latency_p95_ms": None, "latency_p99_ms": None, "cost_usd": 0.0, "cost_per_run_usd": None,
             "tokens_per_run": None}
    tests = {t: {"test": t, "statistic": None, "p_value": None, "significant": False} for t in TESTS}
    v = judge({"agent": "nobody", "a": {"version": "x", **empty}, "b": {"version": "y", **empty},
               "tests": tests, "alpha": 0.05, "tool_mix": []})
    assert v.outcome == INSUFFICIENT and all(c.status == NO_DATA for c in v.checks)


@pytest.mark.parametrize("bad", [None, "NaN", "abc", True, math.nan, math.inf, [], {}])
def test_malformed_figures_never_raise_and_never_pass(bad):
    for field in ("failure_rate", "latency_p50_ms", "latency_p95_ms", "cost_per_run_usd", "finished_runs"):
        b = summary("v2")
        b[field] = bad
        v = judge(comparison(b=b, significant=set(TESTS)))
        assert v.outcome in (INSUFFICIENT, REGRESSION, PASS)
        if field != "finished_runs":
            assert {c.metric: c.status for c in v.checks}[
                {"failure_rate": "failure rate", "latency_p50_ms": "latency p50", "latency_p95_ms": "latency p95",
                 "cost_per_run_usd": "cost per run"}[field]] == NO_DATA
            assert v.outcome == INSUFFICIENT
    for missing in itertools.chain([{}], [{"a": None, "b": None, "tests": None}]):
        assert judge(missing).outcome == INSUFFICIENT


def test_the_verdict_as_json_says_everything_the_terminal_does():
    v = judge(comparison(b=summary("v2", failure_rate=0.2), significant={"failure_rate"}))
    d = v.as_dict()
    assert d["outcome"] == REGRESSION and d["exit_code"] == 1 and d["reasons"] == v.reasons
    fr = next(c for c in d["checks"] if c["metric"] == "failure rate")
    assert fr == {"metric": "failure rate", "status": REGRESSED, "baseline": 0.05, "candidate": 0.2, "change": 15.0,
                  "unit": "pts", "limit": 2.0, "test": "two-proportion z", "p_value": 0.001, "note": ""}
