"""The SDK's local enforcement and the processors' run-budget detector follow one rule: a limit is
the amount allowed and a breach is going over it. Whatever the SDK admits, the processors do not
call a breach; the first operation over the limit is both refused by the SDK and, were it sent
anyway (enforcement off), a breach for the processors."""
from __future__ import annotations

import random

import pytest

from agentstream.producer.enforcement import Budget, BudgetExceeded, RunBudget
from agentstream.producer.enforcement import exceeds as sdk_exceeds
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS


def test_the_two_rules_are_one_function():
    rng = random.Random(3)
    cases = [(x, x) for x in (0, 1, 40, 0.5, 1e9)] + [(rng.uniform(0, 10), rng.uniform(0, 10)) for _ in range(2000)]
    cases += [(rng.randint(0, 50), rng.randint(1, 50)) for _ in range(2000)]
    for used, limit in cases:
        assert sdk_exceeds(used, limit) == runs.exceeds(used, limit) == (used > limit)


def _breaches(events, budgets):
    st, out = runs.new_state(), []
    for e in events:
        out += [f for f in runs.observe(st, e, {}, budgets) if f.alert_type == "budget_breach"]
    return out


@pytest.mark.parametrize("limit", [1, 2, 7, 40])
def test_steps_the_sdk_admits_are_never_a_breach_and_the_next_one_is(limit):
    sdk = RunBudget(Budget(max_steps=limit))
    admitted = 0
    while True:
        try:
            sdk.before_step()
        except BudgetExceeded:
            break
        sdk.add_step()
        admitted += 1
    assert admitted == limit
    b = {**BUDGET_DEFAULTS, "run_max_steps": limit}
    evs = [syn.step("t", "r", i, name=f"s{i}", args_digest=str(i)) for i in range(1, admitted + 2)]
    assert _breaches(evs[:admitted], b) == []
    assert len(_breaches(evs, b)) == 1


@pytest.mark.parametrize("seed", range(6))
def test_token_and_cost_usage_the_sdk_admits_is_never_a_breach(seed):
    rng = random.Random(seed)
    max_tokens, max_cost = rng.randint(2000, 20000), round(rng.uniform(0.1, 2.0), 2)
    sdk = RunBudget(Budget(max_tokens=max_tokens, max_cost_usd=max_cost))
    evs, refused = [], None
    for i in range(1, 500):
        tokens = rng.randint(50, 800)
        cost = round(tokens * 1e-4, 6)
        try:
            sdk.before_model_call(tokens, cost)  # estimate = actual usage: the SDK knows the size
        except BudgetExceeded as exc:
            refused = (i, tokens, cost, exc.budget_type)
            break
        sdk.add_usage(tokens, cost)
        evs.append(syn.llm_step("t", "r", i, cost_usd=cost, tokens=tokens))
    assert refused is not None
    b = {**BUDGET_DEFAULTS, "run_max_tokens": max_tokens, "run_max_cost_usd": max_cost}
    assert _breaches(evs, b) == []
    i, tokens, cost, _ = refused
    assert _breaches(evs + [syn.llm_step("t", "r", i, cost_usd=cost, tokens=tokens)], b) != []


def test_exactly_at_the_limit_admits_nothing_more_but_is_no_breach():
    sdk = RunBudget(Budget(max_tokens=1000, max_cost_usd=1.0))
    sdk.add_usage(1000, 1.0)
    with pytest.raises(BudgetExceeded):
        sdk.before_model_call()
    b = {**BUDGET_DEFAULTS, "run_max_tokens": 1000, "run_max_cost_usd": 1.0}
    assert _breaches([syn.llm_step("t", "r", 1, cost_usd=1.0, tokens=1000)], b) == []
