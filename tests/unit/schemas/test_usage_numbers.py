"""The one rule every part applies to an LLM call's usage figures (schemas/usage_numbers.py)."""
from __future__ import annotations

import math

import pytest

from agentstream.schemas.usage_numbers import is_cost, usage_cost, usage_count


@pytest.mark.parametrize("v,want", [
    (None, 0), ("", 0), (0, 0), (12, 12), (12.7, 12), ("12", 12), (2**40, 2**40), (2**40 + 1, None), (2**63, None),
    (-1, None), (-0.5, 0), (math.nan, None), (math.inf, None), ("x", None), ({}, None), ([1], None),
    (True, None), (b"\xff", None),
])
def test_a_token_count_is_a_whole_number_not_below_zero(v, want):
    assert usage_count(v) == want


@pytest.mark.parametrize("v,want", [
    (None, None), (0.0, 0.0), (-0.0, -0.0), (0.25, 0.25), (3, 3.0), ("0.5", 0.5), (1e308, 1e308),
    (-0.01, None), (math.nan, None), (math.inf, None), (-math.inf, None), ("nan", None), (10**400, None),
    ({}, None), (True, None),
])
def test_a_cost_is_finite_and_not_below_zero(v, want):
    got = usage_cost(v)
    assert got == want and (got is None or is_cost(got))


@pytest.mark.parametrize("v,want", [(0.25, 0.25), (math.nan, 0.0), (-1.0, 0.0), (math.inf, 0.0), (None, 0.0),
                                    (2, 2.0), ("0.5", 0.5), ("x", 0.0)])
def test_a_budget_counts_what_is_not_a_cost_as_nothing(v, want):
    from agentstream.schemas.usage_numbers import counted_cost

    assert counted_cost(v) == want
