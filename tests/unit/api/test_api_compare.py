"""/v1/compare and /v1/drift on synthetic cohorts with a planted difference."""
from __future__ import annotations

import random

from api_fleet import RunBuilder, insert_runs, now_us

HOUR = 3_600_000_000


def cohort(tenant, agent, version, n, fail_every, latency, tools, start_us, rng):
    runs = []
    for i in range(n):
        r = RunBuilder(tenant, agent, version, start_us=start_us + i * 1_000_000)
        r.llm("think", latency * rng.uniform(0.8, 1.2), 100, 10, 0.01)
        for t in tools:
            r.tool(t, 5)
        r.end("FAILURE" if fail_every and i % fail_every == 0 else "SUCCESS")
        runs.append(r)
    return runs


def test_compare_detects_planted_regression(api, ch, tenant, auth):
    rng = random.Random(1)
    t0 = now_us() - 5 * HOUR
    runs = cohort(tenant, "bot", "v1", 80, 20, 100, ["search"], t0, rng)
    runs += cohort(tenant, "bot", "v2", 80, 3, 300, ["search", "calc"], t0, rng)
    insert_runs(ch, runs)
    r = api.get("/v1/compare", params={"agent": "bot", "a": "v1", "b": "v2"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["a"]["runs"] == 80 and body["b"]["runs"] == 80
    assert body["b"]["failure_rate"] > body["a"]["failure_rate"]
    assert body["tests"]["failure_rate"]["significant"]
    assert body["tests"]["latency_mann_whitney"]["significant"]
    assert body["tests"]["latency_ks"]["significant"]
    assert body["tests"]["tool_mix_chi_square"]["significant"]
    mix = {m["tool"]: m for m in body["tool_mix"]}
    assert mix["calc"]["a_calls"] == 0 and mix["calc"]["b_calls"] == 80

    same = api.get("/v1/compare", params={"agent": "bot", "a": "v1", "b": "v1"}, headers=auth).json()
    assert not same["tests"]["latency_ks"]["significant"]
    empty = api.get("/v1/compare", params={"agent": "nobody", "a": "x", "b": "y"}, headers=auth)
    assert empty.status_code == 200 and empty.json()["tests"]["failure_rate"]["p_value"] is None
    missing = api.get("/v1/compare", params={"agent": "bot"}, headers=auth)
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "validation_error"


def test_drift_window_against_baseline(api, ch, tenant, auth):
    rng = random.Random(2)
    now = now_us()
    runs = cohort(tenant, "bot", "v1", 60, 0, 100, ["search"], now - 100 * HOUR, rng)
    runs += cohort(tenant, "bot", "v1", 60, 2, 400, ["search", "calc"], now - 2 * HOUR, rng)
    runs += cohort(tenant, "steady", "v1", 40, 0, 100, ["search"], now - 100 * HOUR, rng)
    runs += cohort(tenant, "steady", "v1", 40, 0, 100, ["search"], now - 2 * HOUR, rng)
    insert_runs(ch, runs)
    body = api.get("/v1/drift", params={"window_hours": 24, "baseline_hours": 168}, headers=auth).json()
    by = {i["agent_id"]: i for i in body["items"]}
    assert by["bot"]["drifted"] and "failure_rate" in by["bot"]["drifted_on"]
    assert by["bot"]["window"]["runs"] == 60 and by["bot"]["baseline"]["runs"] == 60
    assert not by["steady"]["tests"]["failure_rate"]["significant"]
    page = api.get("/v1/drift", params={"limit": 1}, headers=auth).json()
    nxt = api.get("/v1/drift", params={"limit": 1, "cursor": page["next_cursor"]}, headers=auth).json()
    assert [page["items"][0]["agent_id"], nxt["items"][0]["agent_id"]] == ["bot", "steady"]
