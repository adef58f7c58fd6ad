"""Red-team s17: a step latency of -1e308 (accepted by the gateway then) made the run's timeline
answer 500 (``int(inf)``) and cut an OTLP export off mid-body; NaN and infinities, stored by the
sink from raw Kafka, fail JSON itself. Rows stored before the gateway and sink refused these stay:
every read route answers, showing such a duration clamped to 0..30 days (NaN as 0)."""
from __future__ import annotations

import json
import math

import pytest

from api_fleet import RunBuilder, dt, insert_runs, now_us

BAD = {"neg": -1e308, "big": 1e308, "nan": math.nan, "inf": math.inf, "ninf": -math.inf}


def _run(tenant: str, name: str, ms: float) -> RunBuilder:
    r = RunBuilder(tenant, "agent-nf", "v1", run_id=f"nf-{name}-{tenant}", start_us=now_us() - 60_000_000)
    r.add("STEP", step_id="s-1", step_kind="TOOL", name="search", status="OK", started_ts=dt(r.t),
          latency_ms=ms, attempt=1, tool_name="search")
    r.add("STEP", step_id="s-2", step_kind="APPROVAL", name="ok?", status="OK", started_ts=dt(r.t),
          latency_ms=5.0, attempt=1,
          payload={"approval": {"action_digest": "ab" * 16, "decision": "approved", "approval_latency_ms": ms}})
    r.add("RUN_END", run_status="SUCCESS", outcome="ok", duration_ms=ms, payload={"started_us": r.start_us})
    return r


@pytest.fixture
def bad_runs(ch, tenant):
    runs = [_run(tenant, name, ms) for name, ms in BAD.items()]
    insert_runs(ch, runs)
    return runs


def test_read_routes_answer_on_non_finite_and_extreme_durations(api, auth, bad_runs):
    for run in bad_runs:
        for path in (f"/v1/runs/{run.run_id}", f"/v1/runs/{run.run_id}/timeline",
                     f"/v1/runs/{run.run_id}/explain"):
            r = api.get(path, headers=auth)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            assert "Infinity" not in r.text and "NaN" not in r.text
    tl = api.get(f"/v1/runs/{bad_runs[0].run_id}/timeline", headers=auth).json()  # -1e308
    assert [s["duration_ms"] for s in tl["spans"]] == [0.0, 5.0] and tl["wait_ms"] == 0.0
    tl = api.get(f"/v1/runs/{bad_runs[1].run_id}/timeline", headers=auth).json()  # 1e308: 30 days
    assert tl["spans"][0]["duration_ms"] == 2_592_000_000.0


def test_an_otlp_export_is_whole_whatever_a_run_s_durations(api, auth, bad_runs):
    r = api.get("/v1/export?agent=agent-nf&format=otlp&limit=50", headers=auth)
    assert r.status_code == 200, r.text[:300]
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]  # each line whole JSON
    text = r.text
    for run in bad_runs:  # every run is in it: none cut the body off
        assert run.run_id in text, run.run_id
    assert lines
