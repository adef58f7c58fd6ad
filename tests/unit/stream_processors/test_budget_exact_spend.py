"""Spending exactly a money budget is allowed; going over it by a cent is a breach.

Prices are decimal amounts summed in binary floats (0.1 + 0.1 + 0.1 == 0.30000000000000004), so
a run or a tenant that spends exactly its limit in decimal must not read as over it, and a
breach title must show two different numbers."""
from __future__ import annotations

import random
import re

import pytest

from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import fleet, runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS

# (price of one call, calls the limit pays for, limit): each sums to a float above the limit
EXACT = [(0.1, 3, 0.3), (0.01, 50, 0.5), (0.05, 20, 1.0), (0.1, 10, 1.0), (0.07, 10, 0.7),
         (0.003, 100, 0.3), (0.15, 7, 1.05), (1.1, 3, 3.3), (0.000125, 400, 0.05)]


def _findings(costs, limit, **budgets):
    b = {**BUDGET_DEFAULTS, "run_max_cost_usd": limit, "hard_limit": True, **budgets}
    st, out = runs.new_state(), []
    for i, c in enumerate(costs, 1):
        out += runs.observe(st, syn.llm_step("t", "r", i, cost_usd=c), {}, b)
    return out


@pytest.mark.parametrize("price,n,limit", EXACT)
def test_a_run_spending_exactly_its_budget_is_not_stopped_and_a_cent_more_is(price, n, limit):
    assert [f.alert_type for f in _findings([price] * n, limit) if f.alert_type == "budget_breach"] == []
    over = [f for f in _findings([price] * n + [0.01], limit) if f.alert_type == "budget_breach"]
    assert len(over) == 1 and over[0].stop


def test_the_warning_fires_at_its_fraction_in_decimal():
    # 8 x $0.10 is 80% of $1.00 exactly (0.7999999999999999 in floats)
    found = _findings([0.1] * 8, 1.0, warn_fraction=0.8)
    assert [f.alert_type for f in found] == ["budget_warning"]


def test_a_breach_title_shows_two_different_numbers():
    (f,) = [f for f in _findings([0.1, 0.1, 0.1, 0.000001], 0.3) if f.alert_type == "budget_breach"]
    used, limit = re.search(r"\(([^ ]+) > ([^ ]+)\)", f.title).groups()
    assert used != limit and float(used) > float(limit), f.title
    assert f.evidence["used"] != f.evidence["limit"]


def test_random_decimal_prices_summing_to_the_limit_never_breach():
    rng = random.Random(7)
    for _ in range(300):
        cents = [rng.randint(1, 500) for _ in range(rng.randint(1, 60))]
        costs = [c / 1000 for c in cents]  # prices of a tenth of a cent
        limit = sum(cents) / 1000
        assert not [f for f in _findings(costs, limit) if f.alert_type == "budget_breach"], (costs, limit)
        assert [f for f in _findings(costs + [0.01], limit) if f.alert_type == "budget_breach"]


def test_the_sdk_and_the_processors_compare_money_with_one_rule():
    from agentstream.producer import enforcement
    from agentstream.schemas import usage_numbers
    from agentstream.stream_processors.detectors import run_budgets  # the run budgets' judge

    assert enforcement.exceeds_usd is run_budgets.exceeds_usd is usage_numbers.exceeds_usd
    assert enforcement.reaches_usd is run_budgets.reaches_usd is usage_numbers.reaches_usd
    assert not run_budgets.exceeds_usd(0.1 + 0.1 + 0.1, 0.3) and run_budgets.exceeds_usd(0.31, 0.3)
    assert run_budgets.reaches_usd(sum([0.1] * 10), 1.0) and not run_budgets.reaches_usd(0.99, 1.0)
    assert not run_budgets.exceeds_usd(0.0, 0.0) and run_budgets.exceeds_usd(1e-12, 0.0)


def _tenant(spends, limit):
    st = fleet.new_state()
    b = {**BUDGET_DEFAULTS, "tenant_usd_per_day": limit, "hard_limit": True, "warn_fraction": 0}
    out = []
    for i, usd in enumerate(spends):
        d = fleet.new_delta("t")
        fleet.add_spend(d, "a", 5 * fleet.HOUR_US + i, usd)
        out += fleet.apply(st, d, b)
    return [f for f in out if f.alert_type == "budget_breach"]


def test_a_tenant_spending_exactly_its_day_budget_is_not_over_it():
    assert _tenant([0.1, 0.1, 0.1], 0.3) == []
    (f,) = _tenant([0.1, 0.1, 0.1, 0.01], 0.3)
    assert "0.3100 > 0.3000" in f.title
    (f,) = _tenant([0.1, 0.1, 0.1, 0.00001], 0.3)
    used, limit = re.search(r"\(([^ ]+) > ([^ ]+) USD\)", f.title).groups()
    assert used != limit, f.title
