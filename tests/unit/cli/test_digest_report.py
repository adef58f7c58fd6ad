"""`agentstream digest`'s rules on generated fleets: each "needs attention" rule fires exactly when
its condition holds, totals add up, and stored names cannot break the Markdown a chat channel
shows (line breaks, pipes), nor malformed figures the digest."""
from __future__ import annotations

import json
import random
import re

import pytest

from agentstream.cli.digest_report import (
    COST_RISE_MIN_USD, COST_RISE_PCT, FAILURE_RISE_PTS, MIN_RUNS, Period, build, markdown, totals,
)

PERIOD = Period("2026-12-06T00:00:00Z", "2026-12-07T00:00:00Z", 24.0)


def stat(agent, version, finished=100, failures=2, cost=1.0, runs=None, p95=900.0, tokens=1000):
    return {"agent_id": agent, "agent_version": version, "runs": finished if runs is None else runs,
            "finished_runs": finished, "failures": failures, "failure_rate": failures / finished if finished else None,
            "latency_p50_ms": 300.0, "latency_p95_ms": p95, "latency_p99_ms": p95 * 1.4, "input_tokens": tokens,
            "output_tokens": 0, "total_tokens": tokens, "cost_usd": cost, "llm_calls": 1, "tool_calls": 1}


def digest(now, before=(), alerts=(), drift=(), models=(), complete=True, top=10):
    return build("acme", PERIOD, list(now), list(before), list(alerts), complete, list(drift), list(models), top)


def kinds(d):
    return sorted((a["kind"], a["agent_id"], a["agent_version"]) for a in d["attention"])


def test_a_quiet_fleet_needs_nothing():
    fleet = [stat("bot", "v1"), stat("helper", "v2", cost=3.0)]
    d = digest(fleet, fleet)
    assert d["attention"] == []
    assert d["totals"] == {"runs": 200, "finished_runs": 200, "failures": 4, "failure_rate": 0.02, "cost_usd": 4.0,
                           "total_tokens": 2000}
    assert d["changes"] == {"runs_pct": 0.0, "cost_pct": 0.0}
    assert [v["agent_id"] for v in d["versions"]] == ["helper", "bot"]  # by spend
    text = markdown(d)
    assert "**200 runs** (+0%), 2.0% of the finished ones failed (2.0% the period before)" in text
    assert "- nothing: no version failed" in text and "- no alerts" in text


@pytest.mark.parametrize("rise_pts", [FAILURE_RISE_PTS - 1, FAILURE_RISE_PTS + 1, 40.0])
@pytest.mark.parametrize("finished", [MIN_RUNS - 1, MIN_RUNS, 500])
def test_a_failure_rate_rise_needs_attention_beyond_its_rule(rise_pts, finished):
    before = [stat("bot", "v1", finished=finished, failures=round(finished * 0.02))]
    fails_now = round(finished * (0.02 + rise_pts / 100))
    d = digest([stat("bot", "v1", finished=finished, failures=fails_now)], before)
    actual_pts = (fails_now - round(finished * 0.02)) / finished * 100
    fires = finished >= MIN_RUNS and actual_pts > FAILURE_RISE_PTS
    assert kinds(d) == ([("failures", "bot", "v1")] if fires else [])


def test_a_new_version_that_fails_far_more_than_the_rest_needs_attention():
    rest = [stat("bot", "v1", finished=400, failures=8)]
    bad = stat("bot", "v2", finished=60, failures=15)  # 25% against the rest's 2%
    d = digest(rest + [bad], rest)
    assert kinds(d) == [("failures", "bot", "v2")]
    assert "bot v2 is new and fails 25.0% of its runs (the rest of the fleet 2.0%)" in d["attention"][0]["text"]
    fine = stat("bot", "v2", finished=60, failures=2)
    assert digest(rest + [fine], rest)["attention"] == []
    thin = stat("bot", "v2", finished=MIN_RUNS - 1, failures=10)
    assert digest(rest + [thin], rest)["attention"] == []
    assert next(v for v in digest(rest + [bad], rest)["versions"] if v["agent_version"] == "v2")["new"]


@pytest.mark.parametrize("before_usd, now_usd", [(10.0, 12.0), (10.0, 13.0), (0.1, 0.5), (2.0, 3.5), (0.0, 50.0)])
def test_a_spend_rise_needs_attention_when_large_in_percent_and_in_dollars(before_usd, now_usd):
    d = digest([stat("bot", "v1", cost=now_usd)], [stat("bot", "v1", cost=before_usd)])
    pct = None if before_usd == 0 else (now_usd / before_usd - 1) * 100
    fires = pct is not None and pct > COST_RISE_PCT and now_usd - before_usd >= COST_RISE_MIN_USD
    assert kinds(d) == ([("cost", "bot", "v1")] if fires else [])


def test_drift_and_open_critical_alerts_need_attention_silenced_or_handled_ones_do_not():
    alerts = [{"alert_type": "loop", "severity": "CRITICAL", "title": "loop: repeat", "state": "open"},
              {"alert_type": "budget", "severity": "CRITICAL", "title": "budget", "state": "acknowledged"},
              {"alert_type": "loop", "severity": "CRITICAL", "title": "silenced", "state": "open",
               "silenced_by": "s-1"},
              {"alert_type": "drift", "severity": "WARNING", "title": "drift"}]
    drift = [{"agent_id": "bot", "agent_version": "v1", "drifted": True, "drifted_on": ["latency_ks"]},
             {"agent_id": "bot", "agent_version": "v0", "drifted": False, "drifted_on": []}]
    d = digest([stat("bot", "v1")], [stat("bot", "v1")], alerts, drift)
    assert kinds(d) == [("alerts", "", ""), ("drift", "bot", "v1")]
    assert "1 critical alert(s) still open (loop); newest: loop: repeat" in markdown(d)
    assert d["alerts"]["by_type"] == {"budget": {"CRITICAL": 1, "WARNING": 0, "INFO": 0},
                                      "drift": {"CRITICAL": 0, "WARNING": 1, "INFO": 0},
                                      "loop": {"CRITICAL": 2, "WARNING": 0, "INFO": 0}}
    assert "**4 alerts**: budget 1 (1 critical), drift 1, loop 2 (2 critical)" in markdown(d)
    assert "**4+ alerts**" in markdown(digest([stat("bot", "v1")], alerts=alerts, complete=False))


def test_generated_fleets_total_up_and_render():
    rng = random.Random(5)
    for _ in range(200):
        fleet = [stat(f"a{rng.randrange(4)}", f"v{i}", finished=rng.randrange(0, 300), failures=0,
                      cost=rng.choice([0.0, 0.5, 30.0]), runs=rng.randrange(300, 400)) for i in range(rng.randrange(0, 8))]
        for s in fleet:
            s["failures"] = rng.randrange(0, s["finished_runs"] + 1)
        before = [s for s in fleet if rng.random() < 0.5]
        d = digest(fleet, before, top=3)
        assert d["totals"]["runs"] == sum(s["runs"] for s in fleet)
        assert d["totals"]["failures"] == sum(s["failures"] for s in fleet)
        assert len(d["versions"]) == min(3, len(fleet)) and d["versions_total"] == len(fleet)
        json.dumps(d)  # --json
        text = markdown(d)
        assert text.count("\n## ") == 0 and text.startswith("## agentstream digest: acme")


def test_stored_names_cannot_break_the_markdown():
    evil = "bot\n- nothing needs attention\n| x | y |"
    d = digest([stat(evil, "v|2", finished=60, failures=30), stat("bot", "v1", finished=400, failures=4)],
               [stat("bot", "v1", finished=400, failures=4)],
               alerts=[{"alert_type": "loop\nx", "severity": "CRITICAL", "title": "t\n- fake line"}],
               models=[{"group": {"model": "gpt|4\nx"}, "calls": 3, "total_tokens": 10, "cost_usd": 0.5}])
    text = markdown(d)
    lines = text.splitlines()
    assert "- nothing needs attention" not in [ln.strip() for ln in lines]
    assert not any(ln.startswith("- fake line") for ln in lines)
    version_row = next(ln for ln in lines if "v\\|2" in ln)
    model_row = next(ln for ln in lines if "gpt" in ln)
    cells = lambda ln: len(re.split(r"(?<!\\)\|", ln)) - 2  # noqa: E731 - unescaped pipes
    assert (cells(version_row), cells(model_row)) == (8, 4)  # the cells each table has, no more


@pytest.mark.parametrize("bad", [None, "x", float("nan"), float("inf"), True, [], {}])
def test_malformed_figures_count_as_nothing(bad):
    s = stat("bot", "v1")
    for field in ("runs", "finished_runs", "failures", "cost_usd", "total_tokens", "latency_p95_ms"):
        broken = {**s, field: bad}
        d = digest([broken], [s])
        markdown(d)
        json.dumps(d)
    assert totals([{"runs": bad}])["runs"] == 0


def test_an_empty_period():
    d = digest([])
    assert d["totals"]["runs"] == 0 and d["totals"]["failure_rate"] is None and d["versions"] == []
    assert "**0 runs**, - of the finished ones failed" in markdown(d)
