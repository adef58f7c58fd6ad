"""One agent host whose clock runs hours ahead must not wipe a tenant's spend windows.

Found by a probe: $8 spent in hour 10, then one cheap event from a host 5 h ahead (under the
processors' one-day future clamp), then another $8 in hour 10. The spend windows and raised
alerts were pruned by the newest event time in a delta, so the skewed event dropped hour 10's
$8: no breach of a $10/h budget at $16.01, no STOP, and the warning raised twice."""
from __future__ import annotations

import pytest

from agentstream.stream_processors.detectors import fleet
from agentstream.stream_processors.policies import BUDGET_DEFAULTS

H = fleet.HOUR_US
T0 = 1000 * fleet.DAY_US + 10 * H


def _delta(ts: int, usd: float, run: str, agent: str = "main") -> dict:
    d = fleet.new_delta("t")
    fleet.add_active(d, run, agent, ts)
    fleet.add_spend(d, agent, ts, usd)
    return d


@pytest.mark.parametrize("skew_h", [0, 1, 3, 5, 20])
def test_a_skewed_host_does_not_hide_a_breach(skew_h):
    b = {**BUDGET_DEFAULTS, "tenant_usd_per_hour": 10.0, "hard_limit": True}
    st, out = fleet.new_state(), []
    for i in range(8):
        out += fleet.apply(st, _delta(T0 + i * 10_000_000, 1.0, "r-main"), b)
    out += fleet.apply(st, _delta(T0 + 120_000_000 + skew_h * H, 0.01, "r-helper", "helper"), b)
    for i in range(8):
        out += fleet.apply(st, _delta(T0 + 200_000_000 + i * 10_000_000, 1.0, "r-main"), b)
    kinds = [f.alert_type for f in out if f.alert_type.startswith("budget") and "|h|" in f.key]
    assert kinds.count("budget_breach") == 1, kinds
    assert kinds.count("budget_warning") == 1, kinds
    assert any(f.stop_runs for f in out if f.alert_type == "budget_breach")


def test_windows_stay_bounded():
    st = fleet.new_state()
    for hour in range(200):
        fleet.apply(st, _delta(T0 + hour * H, 0.01, f"r{hour}"), BUDGET_DEFAULTS)
    hours = {k for k in st["spend"] if "|h|" in k}
    assert len(hours) <= fleet.KEEP_HOURS
    assert len(st["spend"]) <= fleet.KEEP_HOURS + 2 * fleet.KEEP_DAYS
