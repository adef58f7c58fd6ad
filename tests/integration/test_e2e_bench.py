"""bench/e2e.py at small scale: the embedded stack as ``agentstream up`` starts it, the real SDK in
separate processes, and every event accounted for (lost == 0).

Runs the bench itself (its own broker, processors and sink+API processes, a private data dir),
so what the headline bench reports is what this test checks.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"


def test_small_e2e_run_loses_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--events", "4000", "--tenants", "2", "--agents", "2",
         "--emitters", "2", "--loads", "0", "--probe-s", "1.0",
         "--data-dir", str(tmp_path / "stack")],
        capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    acc = figures["accounting"]
    assert figures["lost"] == 0, figures
    assert acc["emitted"] == acc["stored"] >= 4000
    assert acc["dlq"] == acc["quarantine"] == acc["sdk_failed_or_dropped"] == 0
    assert all(emitted == stored for emitted, stored in acc["per_tenant"].values())
    lat = figures["latency"]["0"]
    assert lat["n"] >= 3 and lat["missing"] == 0, lat
    # the latency budget: every probe that became final left a stamp at every hop (its RUN_END
    # on raw and on events, its row's inserted_at), and the sink's inserts meanwhile are counted
    hops = lat["hops"]
    assert list(hops) == ["sdk_to_raw", "raw_to_events", "events_to_stored", "stored_to_final"]
    assert all(h["n"] == lat["n"] for h in hops.values()), hops
    assert lat["sink_inserts"]["n"] >= 1, lat
    # the parts' own counters account for the same events: read from raw, written to events,
    # and stored by the sink
    counters = json.loads(next(ln for ln in lines if ln.startswith("accounting: "))[12:])["counters"]
    assert counters["agentstream_processors_records_in_total"] == acc["emitted"]
    assert counters['agentstream_processors_records_out_total{topic="events"}'] == acc["emitted"]
    assert sum(v for k, v in counters.items()
               if k.startswith("agentstream_sink_rows_total") and 'table="events"' in k) >= acc["emitted"]
    assert set(figures["cpu_by_stage"]) == {"broker", "processors", "sink+api", "sdk"}
    # a fetch that skipped offsets was read again, never read past (schemas/offset_gaps.py); the
    # guards' counters are on /metrics, so the bench sees them
    assert not any('outcome="accepted"' in k for k in acc["offset_gaps"]), acc["offset_gaps"]
    assert "agentstream_processors_offset_gap_records_total" in counters
    assert "agentstream_sink_offset_gap_records_total" in counters
