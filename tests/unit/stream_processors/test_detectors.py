"""Pure detectors without a broker: loops, run budgets, tenant spend windows, drift statistics.
Each boundary is pinned from both sides: the first step over a threshold fires, the step at it
does not."""
from __future__ import annotations

import random

import pytest

from agentstream.schemas.loop_repeats import DIGEST_ATTR, MAX_SIGNATURES
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import drift, fleet, runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

HOUR = fleet.HOUR_US


def _observe(events, loops=LOOP_DEFAULTS, budgets=BUDGET_DEFAULTS):
    st, found = runs.new_state(), []
    for e in events:
        found += [(e["seq"], f) for f in runs.observe(st, e, loops, budgets)]
    return st, found


def _llm(seq, digest, run="r", **kw):
    return syn.step("t", run, seq, name="chat", step_kind="LLM", llm={"request_digest": digest}, **kw)


def test_repeat_fires_on_the_first_call_over_max_repeats_once_with_stop():
    _, f = _observe([syn.step("t", "r", i, name="search", args_digest="a") for i in range(1, 12)])
    assert [(seq, x.alert_type, x.stop, x.evidence["reasons"]) for seq, x in f] == [(6, "loop", True, "repeat")]
    _, f = _observe([syn.step("t", "r", i, name="search", args_digest="a") for i in range(1, 6)])
    assert f == []  # exactly max_repeats (5) identical calls is allowed


def test_identical_llm_requests_are_a_loop_and_distinct_ones_are_not():
    _, f = _observe([_llm(i, "same-prompt") for i in range(1, 8)])
    assert [(seq, x.evidence["reasons"]) for seq, x in f] == [(6, "repeat")]
    _, f = _observe([_llm(i, f"turn-{i}") for i in range(1, 60)])
    assert f == []
    _, f = _observe([_llm(i, None) for i in range(1, 60)])  # v1 data: no request digest
    assert f == []


def test_ping_pong_between_llm_and_tool_counts_the_llm_half():
    evs = [(_llm(i, "p") if i % 2 else syn.step("t", "r", i, name="kb_search", args_digest="q"))
           for i in range(1, 20)]
    _, f = _observe(evs, loops={**LOOP_DEFAULTS, "max_repeats": 100})
    assert [(seq, x.evidence["reasons"]) for seq, x in f] == [(9, "ping_pong")]
    _, f = _observe(evs[:8], loops={**LOOP_DEFAULTS, "max_repeats": 100})
    assert f == []  # 2 * max_ping_pong alternating steps are allowed


def test_one_alert_per_loop_naming_every_reason_that_fired():
    loops = {**LOOP_DEFAULTS, "max_repeats": 4, "max_ping_pong": 2}
    evs = [syn.step("t", "r", i, name="a" if i % 2 else "b", args_digest="x") for i in range(1, 40)]
    _, f = _observe(evs, loops=loops)
    assert len(f) == 1 and f[0][0] == 5 and f[0][1].evidence["reasons"] == "ping_pong"
    # both reasons at the same step are both named (a's second call counts from 1: b was new
    # between its first two, loop_repeats.count_repeat; so b's 4th and the 8th step fire together)
    loops = {**LOOP_DEFAULTS, "max_repeats": 3, "max_ping_pong": 2}
    evs = [syn.step("t", "r", i, name=n, args_digest="x") for i, n in enumerate("abaabababababab", 1)]
    _, f = _observe(evs, loops=loops)
    assert len(f) == 1 and f[0][0] == 8 and f[0][1].evidence["reasons"] == "ping_pong,repeat"
    assert "reason.repeat" in f[0][1].evidence and "reason.ping_pong" in f[0][1].evidence


def test_retry_chain_length_is_judged_not_retries_across_the_run():
    loops = {**LOOP_DEFAULTS, "max_retries": 3}
    # a legal 3-attempt chain, then an unrelated retry 8 steps later, then another legal chain
    evs = [syn.step("t", "r", 1, name="api", args_digest="a"),
           syn.step("t", "r", 2, name="api", args_digest="a", attempt=2),
           syn.step("t", "r", 3, name="api", args_digest="a", attempt=3)]
    evs += [syn.step("t", "r", i, name=f"t{i}", args_digest=str(i)) for i in range(4, 11)]
    evs += [syn.step("t", "r", 11, name="db", args_digest="b"), syn.step("t", "r", 12, name="db", args_digest="b",
                                                                          attempt=2)]
    evs += [syn.step("t", "r", 13, name="x", args_digest="c")] + [
        syn.step("t", "r", 13 + k, name="x", args_digest="c", attempt=k + 1) for k in range(1, 4)]
    _, f = _observe(evs, loops=loops)
    assert f == []  # 3 retries in one chain is the most allowed
    evs.append(syn.step("t", "r", 17, name="x", args_digest="c", attempt=5))
    _, f = _observe(evs, loops=loops)
    assert [(seq, x.evidence["reasons"]) for seq, x in f] == [(17, "retry_chain")]


def test_retry_chain_followed_through_retry_of_without_attempt_numbers():
    loops = {**LOOP_DEFAULTS, "max_retries": 2}
    evs = [syn.step("t", "r", 1, name="api", args_digest="a")]
    for i in range(2, 6):
        e = syn.step("t", "r", i, name="api", args_digest="a")
        e["payload"]["retry_of"] = f"r-s{i - 1}"
        evs.append(e)
    _, f = _observe(evs, loops=loops)
    assert [(seq, x.evidence["reasons"]) for seq, x in f] == [(4, "retry_chain")]


def test_legal_chains_are_one_logical_call_for_repeats():
    # 5 identical calls, each retried twice: 15 steps, 5 logical calls: allowed
    evs, seq = [], 1
    for _ in range(5):
        for k in range(3):
            evs.append(syn.step("t", "r", seq, name="api", args_digest="a", attempt=k + 1))
            seq += 1
    _, f = _observe(evs)
    assert f == []


def test_steps_without_a_digest_never_count_as_repeats():
    # OTLP-style: a tool called 50 times with unknown arguments, and custom spans
    evs = [syn.step("t", "r", i, name="http_get", args_digest=None) for i in range(1, 51)]
    evs += [syn.step("t", "r", i, name="span", step_kind="CUSTOM") for i in range(51, 80)]
    _, f = _observe(evs)
    assert f == []
    # ... unless the span carried a derived digest
    evs = [syn.step("t", "r", i, name="http_get", args_digest=None, attributes={DIGEST_ATTR: "d"})
           for i in range(1, 10)]
    _, f = _observe(evs)
    assert [seq for seq, _ in f] == [6]


@pytest.mark.parametrize("window", [0, 24, 200])
def test_repeat_window_is_configurable_and_whole_run_is_bounded(window):
    loops = {**LOOP_DEFAULTS, "repeat_window": window}
    # the same call every 30 steps, model calls in between (new requests, which take places in
    # the window and are no progress: new tool calls would be, loop_repeats.count_repeat)
    evs = [syn.step("t", "r", i, name="poll", args_digest="same") if i % 30 == 0
           else syn.step("t", "r", i, name="chat", step_kind="LLM", args_digest=None,
                         llm={"request_digest": str(i)}) for i in range(1, 181)]
    st, f = _observe(evs, loops=loops)
    # a 24-step window never holds two of them; 200 steps or the whole run hold all 6
    assert bool(f) == (window != 24)


def test_whole_run_counting_is_bounded_and_keeps_the_repeated_signatures():
    big = [syn.step("t", "r", i, name="s", args_digest=str(i) if i % 7 else "hot") for i in range(1, 6000)]
    st, f = _observe(big, loops={**LOOP_DEFAULTS, "repeat_window": 0, "max_repeats": 10_000})
    assert f == [] and len(st["cnt"]) <= MAX_SIGNATURES + 1
    assert st["cnt"]["TOOL|s|hot"] == 5999 // 7


def test_progress_fingerprint_over_the_limit_is_a_loop_reason():
    fp = {runs.PROGRESS_ATTR: "same"}
    _, f = _observe([syn.step("t", "r", i, name=f"s{i}", attributes=fp) for i in range(1, 8)])
    assert [(seq, x.evidence["reasons"]) for seq, x in f] == [(4, "no_progress")]


def test_stop_on_loop_off_alerts_without_stop():
    _, f = _observe([syn.step("t", "r", i, args_digest="a") for i in range(1, 9)],
                    loops={**LOOP_DEFAULTS, "stop_on_loop": False})
    assert [(x.alert_type, x.stop) for _, x in f] == [("loop", False)]


def test_a_state_from_the_previous_version_is_upgraded():
    st = {"sigs": ["x"], "fp": {}, "retries": [], "steps": 3, "tokens": 0, "cost": 0.0, "first_us": 1,
          "raised": [], "_o": 7}
    runs.observe(st, syn.step("t", "r", 4, args_digest="a"), LOOP_DEFAULTS, BUDGET_DEFAULTS)
    assert st["steps"] == 4 and st["_o"] == 7 and st["v"] == 2


# ---- run budgets ----------------------------------------------------------------------------

def test_a_run_using_exactly_its_step_budget_is_not_a_breach():
    b = {**BUDGET_DEFAULTS, "run_max_steps": 40, "hard_limit": True}
    evs = [syn.step("t", "r", i, name=f"s{i}", args_digest=str(i)) for i in range(1, 41)]
    _, f = _observe(evs, budgets=b)
    assert [(seq, x.alert_type) for seq, x in f] == [(32, "budget_warning")]
    _, f = _observe(evs + [syn.step("t", "r", 41, name="s41", args_digest="41")], budgets=b)
    assert [(seq, x.alert_type, x.stop) for seq, x in f] == [(32, "budget_warning", False),
                                                            (41, "budget_breach", True)]


def test_cost_budget_warns_at_the_fraction_and_breaches_over_the_limit_once():
    b = {**BUDGET_DEFAULTS, "run_max_cost_usd": 1.0, "hard_limit": True, "warn_fraction": 0.5}
    _, f = _observe([syn.llm_step("t", "r", i, cost_usd=0.25) for i in range(1, 9)], budgets=b)
    assert [(seq, x.alert_type, x.stop) for seq, x in f] == [(2, "budget_warning", False),
                                                            (5, "budget_breach", True)]


def test_warnings_off_and_a_jump_past_both_levels():
    b = {**BUDGET_DEFAULTS, "run_max_tokens": 1000, "warn_fraction": 0}
    _, f = _observe([syn.llm_step("t", "r", i, cost_usd=0, tokens=600) for i in range(1, 4)], budgets=b)
    assert [(seq, x.alert_type) for seq, x in f] == [(2, "budget_breach")]
    b = {**BUDGET_DEFAULTS, "run_max_tokens": 1000}
    _, f = _observe([syn.llm_step("t", "r", 1, cost_usd=0, tokens=5000)], budgets=b)
    assert [x.alert_type for _, x in f] == ["budget_warning", "budget_breach"]


# ---- tenant spend windows -------------------------------------------------------------------

def _spend(st, budgets, t0, n, usd, first=0):
    out = []
    for i in range(first, first + n):
        d = fleet.new_delta("t")
        fleet.add_active(d, f"r{i}", "a", t0 + i)
        fleet.add_spend(d, "a", t0 + i, usd)
        out += fleet.apply(st, d, budgets)
    return out


def test_tenant_day_warns_and_breaches_exactly_once_and_stops_live_and_later_runs():
    st = fleet.new_state()
    b = {**BUDGET_DEFAULTS, "tenant_usd_per_day": 1.0, "hard_limit": True}
    t0 = 1000 * fleet.DAY_US
    out = _spend(st, b, t0, 10, 0.25)
    alerts = [x for x in out if x.alert]
    assert [(x.alert_type, x.evidence["used_usd"]) for x in alerts] == [("budget_warning", "1.0000"),
                                                                       ("budget_breach", "1.2500")]
    assert alerts[1].stop_runs == ["r0", "r1", "r2", "r3", "r4"]
    later = [x for x in out if not x.alert]
    assert [x.stop_runs for x in later] == [[f"r{i}"] for i in range(5, 10)]
    assert {x.key for x in later} == {alerts[1].key}  # commands cite the one breach alert
    # exactly at the limit is not a breach
    st = fleet.new_state()
    assert [x.alert_type for x in _spend(st, b, t0, 4, 0.25)] == ["budget_warning"]
    # the next day is a new window
    out = _spend(st, b, t0 + fleet.DAY_US, 5, 0.25, first=100)
    assert [x.alert_type for x in out if x.alert] == ["budget_warning", "budget_breach"]


def test_agent_day_breach_stops_only_that_agents_runs():
    st = fleet.new_state()
    b = {**BUDGET_DEFAULTS, "agent_usd_per_day": 1.0, "hard_limit": True}
    d = fleet.new_delta("t")
    fleet.add_active(d, "other-run", "b", 5)
    fleet.add_active(d, "mine", "a", 5)
    fleet.add_spend(d, "a", 5, 2.0)
    out = fleet.apply(st, d, b)
    breach = [x for x in out if x.alert_type == "budget_breach"]
    assert breach[0].stop_runs == ["mine"] and breach[0].agent_id == "a"


# ---- drift ----------------------------------------------------------------------------------

def _traffic(st, hours, per_hour, share_new, fail_old, fail_new, rng, cost_new=0.01, lat_new=1.0, t0=0):
    out = []
    for h in range(hours):
        for _ in range(per_hour // 50):
            d = fleet.new_delta("t")
            ts = t0 + h * HOUR + 1
            for _ in range(50):
                new = rng.random() < share_new
                v, fr = ("2.0", fail_new) if new else ("1.0", fail_old)
                s = fleet.drift_sample(d, "ag", v, ts)
                drift.add_run(s, rng.random() < fr, rng.lognormvariate(7, 0.3) * (lat_new if new else 1),
                              rng.lognormvariate(-4.6, 0.4) * (cost_new / 0.01 if new else 1), 5)
                for _ in range(3):
                    drift.add_step(s, "search", rng.lognormvariate(5, 0.4) * (lat_new if new else 1))
            d["ts_us"] = ts
            out += [(h, f) for f in fleet.apply(st, d, BUDGET_DEFAULTS)]
    return out


def test_failure_rate_2_to_10_percent_found_within_2_hours_at_400_runs_per_hour():
    st = fleet.new_state()
    assert _traffic(st, 3, 300, 0.0, 0.02, 0.02, random.Random(1)) == []
    out = _traffic(st, 2, 400, 0.5, 0.02, 0.10, random.Random(2), t0=3 * HOUR)
    metrics = [f.evidence["metric"] for _, f in out]
    assert metrics == ["failure_rate"], metrics
    ev = out[0][1].evidence
    assert ev["baseline"] == "concurrent" and ev["old_version"] == "1.0" and out[0][1].agent_version == "2.0"
    assert float(ev["p_value"]) <= float(ev["alpha"])
    # one alert per metric per rollout
    assert _traffic(st, 2, 300, 0.5, 0.02, 0.10, random.Random(3), t0=5 * HOUR) == []


def test_cost_and_step_latency_drift_are_found():
    st = fleet.new_state()
    _traffic(st, 2, 300, 0.0, 0.02, 0.02, random.Random(4))
    out = _traffic(st, 2, 300, 0.5, 0.02, 0.02, random.Random(5), cost_new=0.015, lat_new=1.6, t0=2 * HOUR)
    metrics = {f.evidence["metric"] for _, f in out}
    assert {"cost_per_run", "step_latency_p95:search", "run_latency_p95"} <= metrics, metrics


@pytest.mark.parametrize("seed", range(4))
def test_null_rollouts_raise_nothing(seed):
    st = fleet.new_state()
    rng = random.Random(100 + seed)
    assert _traffic(st, 2, 400, 0.0, 0.05, 0.05, rng) + _traffic(st, 8, 400, 0.5, 0.05, 0.05, rng,
                                                                  t0=2 * HOUR) == []


def test_msprt_is_valid_and_powerful():
    assert drift.msprt_p(0.0, 0.001, 0.04) == 1.0
    assert drift.msprt_p(0.08, 0.0003, 0.04) < 1e-3
    d, p = drift.proportions(50, 1000, 50, 1000, 0.04)
    assert d == 0 and p == 1.0
    # always valid: under the null, looking after every 20 observations up to 5000, the running
    # minimum stays above alpha in nearly every replicate
    rng, alarms = random.Random(7), 0
    for _ in range(200):
        x1 = x2 = n = 0
        for _ in range(250):
            for _ in range(20):
                x1 += rng.random() < 0.05
                x2 += rng.random() < 0.05
            n += 20
            if drift.proportions(x1, n, x2, n, 0.04)[1] <= 0.05:
                alarms += 1
                break
    assert alarms <= 10  # <= alpha (5 %) of 200


def test_retry_chain_linked_to_its_first_attempt_is_one_chain():
    loops = {**LOOP_DEFAULTS, "max_retries": 2}
    evs = [syn.step("t", "r", 1, name="api", args_digest="a")]
    for i in range(2, 6):
        e = syn.step("t", "r", i, name="api", args_digest="a")
        e["payload"]["retry_of"] = "r-s1"  # every retry names the first attempt
        evs.append(e)
    _, f = _observe(evs, loops=loops)
    assert [(seq, x.evidence["reasons"]) for seq, x in f] == [(4, "retry_chain")]


def test_a_hard_cut_over_is_judged_against_the_hours_before_it():
    st = fleet.new_state()
    assert _traffic(st, 3, 300, 0.0, 0.02, 0.02, random.Random(8)) == []
    out = _traffic(st, 2, 300, 1.0, 0.02, 0.10, random.Random(9), t0=3 * HOUR)  # 100 % new from hour 3
    assert [f.evidence["metric"] for _, f in out] == ["failure_rate"]
    assert out[0][1].evidence["baseline"] == "concurrent+pre_rollout" and out[0][0] <= 1
    st = fleet.new_state()  # and a null cut-over stays silent
    rng = random.Random(10)
    assert _traffic(st, 3, 300, 0.0, 0.03, 0.03, rng) + _traffic(st, 6, 300, 1.0, 0.03, 0.03, rng, t0=3 * HOUR) == []


def test_late_spend_for_an_alerted_day_does_not_alert_it_again():
    st = fleet.new_state()
    b = {**BUDGET_DEFAULTS, "tenant_usd_per_day": 1.0}
    t0 = 1000 * fleet.DAY_US
    assert [x.alert_type for x in _spend(st, b, t0, 5, 0.25)] == ["budget_warning", "budget_breach"]
    # the next day is under way (1 h, 10 h, 30 h in) when late events of the first day arrive
    for later in (25, 34, 54):
        out = _spend(st, b, t0 + later * HOUR, 1, 0.01, first=200 + later)
        d = fleet.new_delta("t")
        fleet.add_spend(d, "a", t0 + HOUR, 0.5)  # late: first day's event time
        d["ts_us"] = t0 + later * HOUR
        out += fleet.apply(st, d, b)
        assert [x for x in out if x.alert] == [], later


def test_a_run_gets_one_stop_however_many_windows_breach():
    st = fleet.new_state()
    b = {**BUDGET_DEFAULTS, "tenant_usd_per_hour": 1.0, "tenant_usd_per_day": 1.5, "hard_limit": True}
    t0 = 1000 * fleet.DAY_US
    out = _spend(st, b, t0, 8, 0.25)  # the hour breaches at run 4, the day at run 6
    stops = [r for x in out for r in x.stop_runs]
    assert sorted(stops) == sorted(set(stops)) == [f"r{i}" for i in range(8)]
    assert [x.evidence["limit_name"] for x in out if x.alert and x.alert_type == "budget_breach"] == [
        "tenant_usd_per_hour", "tenant_usd_per_day"]


def test_a_nan_or_negative_cost_disarms_neither_the_run_nor_the_tenant_day_budget():
    """A NaN cost made the run's total NaN (``NaN > limit`` is false: never breached again), a
    negative one paid the spend back; in the fleet stage the same for the tenant's day total."""
    import math

    b = {**BUDGET_DEFAULTS, "run_max_cost_usd": 1.0, "hard_limit": True, "warn_fraction": 0}
    evs = [syn.llm_step("t", "r", 1, cost_usd=math.nan), syn.llm_step("t", "r", 2, cost_usd=-100.0),
           syn.llm_step("t", "r", 3, cost_usd=math.inf)] + \
        [syn.llm_step("t", "r", i, cost_usd=0.3, tokens=-500) for i in range(4, 9)]
    st, f = _observe(evs, budgets=b)
    assert [(seq, x.alert_type, x.stop) for seq, x in f] == [(7, "budget_breach", True)]
    assert st["cost"] == pytest.approx(1.5) and st["tokens"] == 3000  # the negatives added nothing
    day = {**BUDGET_DEFAULTS, "tenant_usd_per_day": 1.0, "hard_limit": True, "warn_fraction": 0}
    fst = fleet.new_state()
    t0 = 1000 * fleet.DAY_US
    odd = fleet.DeltaBuilder("t")
    for i, c in enumerate((math.nan, -100.0, math.inf)):
        odd.add(syn.llm_step("t", f"x{i}", 1, cost_usd=c, ts_us=t0 + i), "raw", 0, i)
    fleet.apply(fst, odd.finish(), day)
    assert [x.alert_type for x in _spend(fst, day, t0 + 10, 5, 0.25) if x.alert] == ["budget_breach"]
