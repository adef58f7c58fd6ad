"""What an agent hands ``record_llm`` as usage never raises into it and never disarms a budget.

The attack: a NaN cost (a provider's odd response, or a price computed from one) made the run's
running total NaN; ``NaN > limit`` is false, so the cost budget could never stop the run again.
A negative cost paid the spend back. Both were also carried to the pipeline as they came."""
from __future__ import annotations

import math

import pytest

from agentstream.producer import Budget, BudgetExceeded
from agentstream.producer.testing import InMemoryTransport


@pytest.fixture
def mem_tracer(tmp_path):
    mem = InMemoryTransport()
    t = mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path))
    yield mem, t
    t.close(5)


@pytest.mark.parametrize("usage", [
    {"input_tokens": math.nan}, {"input_tokens": math.inf}, {"output_tokens": -3}, {"input_tokens": {"n": 1}},
    {"cost_usd": math.nan}, {"cost_usd": math.inf}, {"cost_usd": -5.0}, {"cost_usd": "0.5"}, {"cost_usd": object()},
])
def test_odd_usage_never_raises_and_travels_as_a_usage_figure(mem_tracer, usage):
    mem, t = mem_tracer
    with t.run("r") as run:
        with run.llm_step("openai", "gpt-4o") as s:
            s.record_llm("openai", "gpt-4o", **usage)
    assert t.flush(10)
    [step] = mem.events(kind="STEP")
    llm = step["payload"]["llm"]
    assert all(llm[k] >= 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))
    assert 0.0 <= llm["cost_usd"] < math.inf
    assert llm["cost_usd"] == (0.5 if usage.get("cost_usd") == "0.5" else 0.0)  # no tokens: priced at 0


def test_a_nan_or_negative_cost_cannot_disarm_the_cost_budget(mem_tracer):
    _, t = mem_tracer
    with pytest.raises(BudgetExceeded):
        with t.run("r", budget=Budget(max_cost_usd=1.0)) as run:
            for cost in (math.nan, -100.0, 0.6, 0.6):
                with run.llm_step("openai", "gpt-4o", estimated_cost_usd=math.nan) as s:
                    s.record_llm("openai", "gpt-4o", 10, 10, cost_usd=cost)
            with run.llm_step("openai", "gpt-4o"):  # 1.2 spent of 1.0: refused before the call
                pass
