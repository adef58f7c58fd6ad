"""Runs, run detail and stats against rows in the contract tables (session chDB)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from agentstream.api.auth import add_key

from api_fleet import RunBuilder, insert_runs

MIN = 60_000_000
# Recent: rows older than the table TTL (retention_days) are dropped on insert.
T0 = (int(time.time() * 1e6) // MIN - 24 * 60) * MIN


def make_run(tenant, i, agent="agent-a", version="v1", status="SUCCESS", env="prod"):
    r = RunBuilder(tenant, agent, version, env, start_us=T0 + i * MIN, run_id=f"r{i:03d}-{tenant}")
    plan = r.step("PLAN", "plan", 5.0)
    r.llm("think", 100.0 + i, input_tokens=100, output_tokens=20, cost=0.01, parent_step_id=plan)
    first = r.tool("search", 30.0, status="TIMEOUT")
    r.tool("search", 25.0, attempt=2, retry_of=first)
    r.decision("tool_selection", "search", ["search", "cache"], "fresh_data_required", 0.8)
    r.signal("tool_success", "ok", True, 1.0)
    if status == "FAILURE":
        r.failure("TOOL", "timeout", step_id=first)
    if status != "RUNNING":
        r.end(status)
    return r


def test_health_and_auth_required(api):
    assert api.get("/healthz").json()["status"] == "ok"
    h = api.get("/health").json()
    assert h["clickhouse"] == "ok" and {"events", "runs", "alerts"} <= set(h["tables"])
    r = api.get("/v1/runs")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    r = api.get("/v1/runs", headers={"Authorization": "Bearer ask_not-a-real-key-at-all-000000"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"


def test_list_runs_filters_and_cursor(api, ch, tenant, auth):
    runs = [make_run(tenant, i, version="v1" if i % 2 else "v2",
                     status="FAILURE" if i % 3 == 0 else "SUCCESS") for i in range(7)]
    runs.append(make_run(tenant, 7, status="RUNNING"))
    insert_runs(ch, runs)

    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = api.get("/v1/runs", params=params, headers=auth).json()
        seen += [r["run_id"] for r in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [r.run_id for r in reversed(runs)]  # newest first, no gaps, no repeats

    only = api.get("/v1/runs", params={"status": "FAILURE"}, headers=auth).json()["items"]
    assert sorted(r["run_id"] for r in only) == sorted(runs[i].run_id for i in (0, 3, 6))
    assert all(r["status"] == "FAILURE" and r["failure_count"] == 1 for r in only)

    live = api.get("/v1/runs", params={"status": "RUNNING"}, headers=auth).json()["items"]
    assert [r["run_id"] for r in live] == [runs[7].run_id] and live[0]["duration_ms"] is None

    v2 = api.get("/v1/runs", params={"version": "v2", "agent": "agent-a", "environment": "prod"},
                 headers=auth).json()["items"]
    assert {r["agent_version"] for r in v2} == {"v2"} and len(v2) == 4

    since = datetime.fromtimestamp((T0 + 3 * MIN) / 1e6, timezone.utc).isoformat()
    until = datetime.fromtimestamp((T0 + 5 * MIN) / 1e6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ranged = api.get("/v1/runs", params={"since": since, "until": until},
                     headers=auth).json()["items"]
    assert [r["run_id"] for r in ranged] == [runs[4].run_id, runs[3].run_id]

    bad = api.get("/v1/runs", params={"cursor": "garbage!"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    bad = api.get("/v1/runs", params={"status": "NOPE"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


def test_run_detail_steps_in_order_and_totals(api, ch, tenant, auth):
    run = make_run(tenant, 0, status="FAILURE")
    insert_runs(ch, [run])
    r = api.get(f"/v1/runs/{run.run_id}", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run"]["status"] == "FAILURE"
    assert body["run"]["input_tokens"] == 100 and body["run"]["output_tokens"] == 20
    assert body["run"]["cost_usd"] == pytest.approx(0.01)
    assert body["run"]["retry_count"] == 1 and body["run"]["tool_calls"] == 2
    assert [s["step_kind"] for s in body["steps"]] == ["PLAN", "LLM", "TOOL", "TOOL"]
    assert [s["seq"] for s in body["steps"]] == sorted(s["seq"] for s in body["steps"])
    llm = body["steps"][1]
    assert llm["llm"]["input_tokens"] == 100 and llm["parent_step_id"] == body["steps"][0]["step_id"]
    assert body["steps"][3]["retry_of"] == body["steps"][2]["step_id"]
    assert body["failures"][0]["failure_code"] == "timeout"
    assert body["failures"][0]["step_id"] == body["steps"][2]["step_id"]
    assert body["decisions"][0]["candidates"] == ["search", "cache"]
    assert body["decisions"][0]["confidence"] == pytest.approx(0.8)
    assert body["signals"][0]["value"] is True and body["signals"][0]["weight"] == 1.0
    assert {e["kind"] for e in body["other_events"]} == {"RUN_START", "RUN_END"}

    missing = api.get("/v1/runs/does-not-exist", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_run_detail_header_equals_the_runs_row(api, ch, tenant, auth):
    """run detail counts its totals from the run's events (one statement, api/store/runs.py);
    they must be the ``runs`` row's, for finished, failed and live runs alike."""
    runs = [make_run(tenant, 0), make_run(tenant, 1, status="FAILURE"),
            make_run(tenant, 2, status="RUNNING", agent="agent-b", version="v9", env="stage")]
    insert_runs(ch, runs)
    listed = {r["run_id"]: r for r in api.get("/v1/runs", params={"limit": 10},
                                             headers=auth).json()["items"]}
    for run in runs:
        detail = api.get(f"/v1/runs/{run.run_id}", headers=auth).json()["run"]
        row = listed[run.run_id]
        assert list(detail) == list(row)
        assert detail == pytest.approx(row), run.run_id
    live = api.get(f"/v1/runs/{runs[2].run_id}", headers=auth).json()["run"]
    assert live["status"] == "RUNNING" and live["duration_ms"] is None
    assert (live["agent_id"], live["agent_version"], live["environment"]) == ("agent-b", "v9", "stage")


def test_run_detail_shows_a_redelivered_event_once(api, ch, tenant, auth):
    """The same event stored twice (a redelivery under another insert) is one step in detail."""
    run = make_run(tenant, 0)
    # A background merge between the inserts and the count would fold the copies before the
    # read, and the test would prove nothing: merges of events wait until the read is done.
    ch.command("SYSTEM STOP MERGES events")
    ch.command("SYSTEM STOP MERGES run_events")  # run detail's own copy (0010)
    try:
        insert_runs(ch, [run])
        # Same event ids again, in a block that differs (one event more), so insert deduplication
        # does not drop it: the table holds the events twice until a merge, and FINAL folds them.
        run.tool("late", 1.0)
        insert_runs(ch, [run])
        stored = ch.query("SELECT count() FROM events WHERE tenant_id = {t:String} AND run_id = {r:String}",
                          parameters={"t": tenant, "r": run.run_id}).result_rows[0][0]
        assert stored > len(run.rows())  # the duplicates really are stored
        copies = ch.query("SELECT count() FROM run_events WHERE tenant_id = {t:String} AND run_id = {r:String}",
                          parameters={"t": tenant, "r": run.run_id}).result_rows[0][0]
        assert copies > len(run.rows())  # and in what run detail reads
        body = api.get(f"/v1/runs/{run.run_id}", headers=auth).json()
    finally:
        ch.command("SYSTEM START MERGES events")
        ch.command("SYSTEM START MERGES run_events")
    assert [s["step_kind"] for s in body["steps"]] == ["PLAN", "LLM", "TOOL", "TOOL", "TOOL"]
    assert body["run"]["step_count"] == 5 and body["run"]["input_tokens"] == 100
    assert body["run"]["event_count"] == len(run.rows())


def test_other_tenant_gets_404_never_data(api, ch, tenant, auth, keys_file, unique):
    run = make_run(tenant, 0)
    insert_runs(ch, [run])
    other_key = add_key(keys_file, "other-" + unique, scopes=["read"])
    other = {"X-API-Key": other_key}
    r = api.get(f"/v1/runs/{run.run_id}", headers=other)
    assert r.status_code == 404
    assert run.run_id not in r.text or r.json()["error"]["code"] == "not_found"
    assert api.get("/v1/runs", headers=other).json()["items"] == []
    assert api.get("/v1/stats", headers=other).json()["items"] == []
    assert api.get(f"/v1/runs/{run.run_id}", headers=auth).status_code == 200


def test_write_only_key_cannot_read(api, keys_file, tenant):
    k = add_key(keys_file, tenant, scopes=["write"])
    r = api.get("/v1/runs", headers={"Authorization": f"Bearer {k}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_stats_per_agent_version(api, ch, tenant, auth):
    runs = [make_run(tenant, i, agent="a1", version="v1", status="FAILURE" if i < 2 else "SUCCESS")
            for i in range(10)]
    runs += [make_run(tenant, 20 + i, agent="a1", version="v2") for i in range(4)]
    runs += [make_run(tenant, 40, agent="a2", version="v1"), make_run(tenant, 41, agent="a2", version="v1", status="RUNNING")]
    insert_runs(ch, runs)
    items = api.get("/v1/stats", headers=auth).json()["items"]
    by = {(i["agent_id"], i["agent_version"]): i for i in items}
    assert set(by) == {("a1", "v1"), ("a1", "v2"), ("a2", "v1")}
    a1v1 = by[("a1", "v1")]
    assert a1v1["runs"] == 10 and a1v1["failures"] == 2 and a1v1["failure_rate"] == pytest.approx(0.2)
    assert a1v1["input_tokens"] == 1000 and a1v1["total_tokens"] == 1200
    assert a1v1["cost_usd"] == pytest.approx(0.1)
    assert a1v1["latency_p50_ms"] <= a1v1["latency_p95_ms"] <= a1v1["latency_p99_ms"]
    assert by[("a2", "v1")]["runs"] == 2 and by[("a2", "v1")]["finished_runs"] == 1

    page1 = api.get("/v1/stats", params={"limit": 2}, headers=auth).json()
    page2 = api.get("/v1/stats", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=auth).json()
    keys = [(i["agent_id"], i["agent_version"]) for i in page1["items"] + page2["items"]]
    assert keys == sorted(by) and page2["next_cursor"] is None
    only = api.get("/v1/stats", params={"agent": "a2"}, headers=auth).json()["items"]
    assert [(i["agent_id"], i["agent_version"]) for i in only] == [("a2", "v1")]


def test_error_model_for_unknown_route_and_method(api, auth):
    r = api.get("/v1/nope", headers=auth)
    assert r.status_code == 404 and set(r.json()["error"]) == {"code", "message", "details"}
    r = api.delete("/v1/runs", headers=auth)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_metrics_exposed(api, auth):
    api.get("/v1/runs", headers=auth)
    text = api.get("/metrics").text
    assert 'agentstream_api_requests_total{method="GET",route="/v1/runs",status="200"}' in text
