"""What an LLM call's usage numbers may be: token counts and a cost every part judges alike.

A token count is a whole number ≥ 0; a cost is a finite number ≥ 0 (USD). Anything else (NaN,
infinity, a negative number, a value that is not a number) is not a usage figure. It matters
beyond tidiness: one NaN cost made a run's running total NaN, and ``NaN > limit`` is false, so
the budget it counted against could never be breached again (in the SDK and in the processors);
a negative one paid a run's spend back; and a NaN stored in ``events.cost_usd`` turned every
sum over the tenant's costs into NaN. So the SDK coerces what it is handed (``usage_count``,
``usage_cost``), the gateway refuses such a field, the processors leave it out of a budget, and
the sink dead-letters a record carrying one (``is_cost``).

Token counts and durations have upper bounds too (``TOKENS_MAX``, ``DURATION_MS_MAX``): the
events table sums tokens in UInt64, so three calls of 2^63-1 tokens wrapped a tenant's total;
and a latency of -1e308 ms or infinity overflowed every reader converting it to microseconds
(the timeline answered 500, an OTLP export stopped mid-body). The gateway refuses such a field
(``out_of_range``), the sink dead-letters it, and readers of rows stored before show
``shown_ms`` of it.
"""
from __future__ import annotations

import math
from typing import Any


# One call's tokens: ~10^12, a thousand times the largest context window, and 2^24 such calls
# still sum inside UInt64 (events.input_tokens and the sums over it).
TOKENS_MAX = 2**40
# A step's latency, a run's duration, a human approval's wait: 30 days. Past it a figure is a
# clock error or an attack, and x1000 (to µs) stays far inside Int64.
DURATION_MS_MAX = 30 * 24 * 3600 * 1000.0


def is_token_count(n: int) -> bool:
    return 0 <= n <= TOKENS_MAX


def is_duration_ms(ms: float) -> bool:
    """A finite duration 0 <= ms <= DURATION_MS_MAX (NaN compares false with everything)."""
    return 0.0 <= ms <= DURATION_MS_MAX


def shown_ms(v: Any) -> float:
    """A stored duration as readers show and compute with it: NaN and what is not a number are
    0.0, the rest clamped into 0..DURATION_MS_MAX. For rows stored before the sink refused
    them (or written around it): one such row must not fail a read or cut off an export."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0.0
    ms = float(v)
    if ms != ms:  # NaN
        return 0.0
    return min(max(ms, 0.0), DURATION_MS_MAX)


def usage_count(v: Any) -> int | None:
    """``v`` as a token count, or None when it is not one (0 for None or empty)."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        return None
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):  # int(nan), int(inf), int({}), int("x")
        return None
    return n if is_token_count(n) else None  # 12.7 rounds down, as int() does


def is_cost(c: float) -> bool:
    """A finite cost ≥ 0 (NaN compares false with everything)."""
    return 0.0 <= c < math.inf


def counted_cost(v: Any) -> float:
    """``v`` as a budget or a spend counts it: a cost, or 0.0 for what is not one."""
    if v.__class__ is float:  # what a decoded Avro double always is: no conversion
        return v if is_cost(v) else 0.0
    return usage_cost(v) or 0.0


def usage_cost(v: Any) -> float | None:
    """``v`` as a cost in USD, or None when it is not one."""
    if v is None or isinstance(v, bool):
        return None
    try:
        c = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return c if is_cost(c) else None


# Money is decimal prices summed in binary floats: 3 x 0.1 is 0.30000000000000004, 10 x 0.1 is
# 0.9999999999999999. The error of a float sum of n positive terms stays below n x 1.1e-16 of
# the sum, so a tolerance of a billionth of the limit absorbs it up to millions of calls, while
# a cent over any limit under $10M still counts. The SDK's budgets and the processors' run and
# tenant budgets compare money with these two, so three $0.10 calls fit a $0.30 budget on both.
USD_RTOL = 1e-9


def exceeds_usd(used: float, limit: float) -> bool:
    """``used > limit`` for amounts of money: spending exactly the limit (in decimal) is allowed."""
    return used - limit > USD_RTOL * abs(limit)


def reaches_usd(used: float, limit: float) -> bool:
    """``used >= limit`` for amounts of money, with ``exceeds_usd``'s tolerance."""
    return limit - used <= USD_RTOL * abs(limit)
