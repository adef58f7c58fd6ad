"""Red-team s17: a STEP with latency_ms inf or NaN, written to raw around the gateway, failed the
detectors ("OverflowError at drift.py lat_bucket"): the processors dead-lettered a copy of the
batch's event and passed it on unjudged. What is not a latency is left out of the histograms."""
from __future__ import annotations

import math

import pytest

from agentstream.stream_processors.detectors import drift
from agentstream.stream_processors.detectors.run_budgets import approval_wait


@pytest.mark.parametrize("ms", [math.inf, math.nan])
def test_what_is_not_a_latency_has_no_bucket_and_counts_in_no_histogram(ms):
    assert drift.lat_bucket(ms) is None
    s = drift.new_sample()
    drift.add_run(s, failed=False, duration_ms=ms, cost=0.0, steps=1)
    drift.add_step(s, "search", ms)
    assert s["n"] == 1 and s["lat"] == {} and s["step_lat"] == {"search": {}}


@pytest.mark.parametrize("ms,bucket", [(-1e308, "0"), (-math.inf, "0"), (0.5, "0"), (1e308, "3178")])
def test_finite_and_negative_latencies_still_bucket(ms, bucket):
    assert drift.lat_bucket(ms) == bucket


def test_an_infinite_approval_wait_is_capped_at_the_quiet_time():
    state: dict = {}
    approval_wait(state, {"approval_latency_ms": math.inf}, quiet_us=5_000)
    approval_wait(state, {"approval_latency_ms": math.nan}, quiet_us=5_000)
    assert state == {"wait_us": 5_000}
