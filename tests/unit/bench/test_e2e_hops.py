"""bench/e2e_hops.py: the latency budget's arithmetic (pure; no broker)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from e2e_hops import HOPS, hop_budget, histogram_delta


def test_each_hop_is_the_gap_between_consecutive_stamps():
    # probe i: raw 10 ms after emit, events 50 + i ms after raw, stored 400 ms later, final 10 * i ms later
    stamps = {f"r{i}": {"emit": 100.0, "raw": 100.01, "events": 100.06 + i / 1000,
                        "stored": 100.46 + i / 1000, "final": 100.46 + i / 1000 + i / 100} for i in range(100)}
    out = hop_budget(stamps)
    assert list(out) == [name for name, _, _ in HOPS]
    assert out["sdk_to_raw"] == {"p50_ms": 10.0, "p99_ms": 10.0, "max_ms": 10.0, "n": 100}
    assert out["raw_to_events"]["max_ms"] == 149.0
    assert out["events_to_stored"]["p50_ms"] == 400.0
    # over 100 probes p50 is the 51st smallest and p99 the 100th
    assert out["stored_to_final"]["p50_ms"] == 500.0 and out["stored_to_final"]["p99_ms"] == 990.0


def test_a_probe_missing_a_stamp_counts_only_in_the_hops_it_has():
    stamps = {"a": {"emit": 1.0, "raw": 1.1, "events": 1.2, "stored": 1.5, "final": 2.0},
              "b": {"emit": 1.0, "raw": 1.3}}  # never seen on events: not final either
    out = hop_budget(stamps)
    assert out["sdk_to_raw"]["n"] == 2 and out["raw_to_events"]["n"] == 1
    assert out["sdk_to_raw"]["max_ms"] == 300.0
    empty = hop_budget({})
    assert all(v["n"] == 0 and math.isnan(v["p50_ms"]) for v in empty.values())


def test_histogram_delta_is_the_mean_between_two_scrapes():
    before = {"x_sum": 2.0, "x_count": 4.0}
    after = {"x_sum": 5.0, "x_count": 10.0}
    assert histogram_delta(before, after, "x") == {"n": 6, "mean_ms": 500.0}
    assert histogram_delta({}, {}, "x")["n"] == 0
