"""The SDK's local budget: spending exactly the cost limit is allowed (the call the budget pays
for runs), a cent more is refused; and ``run.check()`` is not a step."""
from __future__ import annotations

import pytest

from agentstream.producer import Budget, BudgetExceeded
from agentstream.producer.enforcement import RunBudget
from agentstream.producer.testing import InMemoryTransport

# (price of one call, calls the limit pays for, limit): each sums to a float above the limit
EXACT = [(0.1, 3, 0.3), (0.01, 50, 0.5), (0.05, 20, 1.0), (0.07, 10, 0.7), (1.1, 3, 3.3),
         (0.000125, 400, 0.05)]


def _admitted(price, limit, tries):
    b = RunBudget(Budget(max_cost_usd=limit))
    for i in range(tries):
        try:
            b.before_model_call(10, price)
        except BudgetExceeded:
            return i
        b.add_usage(10, price)
    return tries


@pytest.mark.parametrize("price,n,limit", EXACT)
def test_every_call_the_budget_pays_for_runs_and_the_next_is_refused(price, n, limit):
    assert _admitted(price, limit, n + 5) == n


def test_a_cent_over_the_limit_is_refused():
    b = RunBudget(Budget(max_cost_usd=0.3))
    b.add_usage(10, 0.1 + 0.1)
    with pytest.raises(BudgetExceeded):
        b.before_model_call(10, 0.11)


def test_at_the_limit_in_decimal_a_call_of_unknown_cost_is_refused():
    # 10 x $0.10 sums to 0.9999999999999999: the run is at its $1.00 limit all the same
    b = RunBudget(Budget(max_cost_usd=1.0))
    for _ in range(10):
        b.add_usage(10, 0.1)
    with pytest.raises(BudgetExceeded):
        b.before_model_call()


@pytest.fixture
def tracer(tmp_path):
    memory = InMemoryTransport()
    t = memory.tracer("acme", "bot", "1", "test", worker_thread=False, spool_dir=str(tmp_path / "spool"))
    yield t
    t.close(0)


@pytest.mark.parametrize("price,n,limit", EXACT[:3])
def test_the_run_lets_every_paid_call_run(tracer, price, n, limit):
    calls = 0
    with pytest.raises(BudgetExceeded):
        with tracer.run("r", budget=Budget(max_cost_usd=limit)) as run:
            for _ in range(n + 1):
                with run.llm_step("openai", "gpt-4o", estimated_cost_usd=price) as s:
                    s.record_llm("openai", "gpt-4o", 10, 10, cost_usd=price)
                calls += 1
    assert calls == n


def test_check_is_not_a_step(tracer):
    with tracer.run("r", budget=Budget(max_steps=20)) as run:
        for i in range(20):
            with run.tool_step("lookup", {"i": i}):
                pass
            run.check()
        with pytest.raises(BudgetExceeded):
            with run.tool_step("lookup", {"i": 21}):
                pass


def test_check_still_stops_a_run_over_its_wall_time(tracer):
    with tracer.run("r", budget=Budget(max_steps=5, max_wall_time_s=0.0001)) as run:
        import time
        time.sleep(0.01)
        with pytest.raises(BudgetExceeded):
            run.check()
