"""Explain, diff, export/sample and the manual stop/throttle routes, on the session chDB.

Explain and diff are compared with golden files for a fixed pair of runs (run_pair.py);
regenerate them with AGENTSTREAM_UPDATE_GOLDEN=1 after a deliberate change, and read the diff.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentstream.api.auth import add_key
from agentstream.api.store import export as export_store

from api_fleet import RunBuilder, insert_alerts, insert_runs
from run_pair import RUN_A, RUN_B, build_pair, pair_alerts

GOLDEN = Path(__file__).parent / "golden"


def _golden(name: str, doc) -> None:
    path = GOLDEN / name
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if os.environ.get("AGENTSTREAM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.fixture
def pair(ch, tenant):
    a, b = build_pair(tenant)
    insert_runs(ch, [a, b])
    insert_alerts(ch, tenant, pair_alerts(b))
    return a, b


def _lines(resp) -> list[dict]:
    return [json.loads(line) for line in resp.text.splitlines() if line]


# ---- explain and diff: goldens ----------------------------------------------------------------

def test_explain_golden_failed_run(api, auth, pair):
    r = api.get(f"/v1/runs/{RUN_B}/explain", headers=auth)
    assert r.status_code == 200, r.text
    doc = r.json()
    _golden("explain_b.json", doc)
    # the facts the account must state, whatever its wording
    assert doc["failure"]["root"]["step_id"] == "b-lookup-1"
    assert [c["step_id"] for c in doc["failure"]["chain"]] == ["b-lookup-1", "b-handle"]
    retry = doc["retries"][0]
    assert retry["attempts"] == 2 and not retry["recovered"] and retry["failure_codes"] == ["TOOL:timeout"]
    assert {e["what"] for e in doc["enforcement"]} >= {"throttle", "retry_storm", "manual_throttle"}
    assert any("by ops" in e["detail"] and "slow down" in e["detail"] for e in doc["enforcement"])


def test_explain_golden_human_wait_is_not_agent_time(api, auth, pair):
    doc = api.get(f"/v1/runs/{RUN_A}/explain", headers=auth).json()
    _golden("explain_a.json", doc)
    t = doc["time"]
    assert t["human_wait_ms"] == 30_000
    approval = next(k for k in t["by_kind"] if k["step_kind"] == "APPROVAL")
    assert approval["ms"] == 500  # 30.5 s step, 30 s of it a human
    assert t["agent_ms"] == pytest.approx(120 + 340 + 900 + 210 + 500 + 700 + 15)


def test_diff_golden(api, auth, pair):
    r = api.get(f"/v1/runs/{RUN_A}/diff/{RUN_B}", headers=auth)
    assert r.status_code == 200, r.text
    doc = r.json()
    _golden("diff_a_b.json", doc)
    ops = [(o["op"], (o["a"] or o["b"])["name"]) for o in doc["ops"]]
    assert ops[0] == ("same", "plan")
    assert ("removed", "search_docs") in ops and ("inserted", "refund") in ops
    assert doc["ops"][doc["first_divergence"]]["a"]["name"] == "search_docs"
    draft = next(o for o in doc["ops"] if (o["a"] or {}).get("name") == "draft")
    assert draft["op"] == "changed" and draft["changes"] == ["model"]
    assert draft["delta"]["tokens"] == 1000 and draft["delta"]["cost_usd"] == pytest.approx(0.018)
    assert doc["total_delta"]["status_changed"] is True


def test_diff_of_a_run_with_itself_is_identical(api, auth, pair):
    doc = api.get(f"/v1/runs/{RUN_B}/diff/{RUN_B}", headers=auth).json()
    assert doc["identical"] and doc["first_divergence"] is None
    assert doc["counts"]["same"] == len(doc["ops"]) == 7


def test_explain_and_diff_are_tenant_scoped(api, pair, keys_file, unique):
    other = {"Authorization": "Bearer " + add_key(keys_file, "other-" + unique, scopes=["read", "write"])}
    assert api.get(f"/v1/runs/{RUN_B}/explain", headers=other).status_code == 404
    assert api.get(f"/v1/runs/{RUN_A}/diff/{RUN_B}", headers=other).status_code == 404
    assert api.get(f"/v1/runs/{RUN_B}/explain").status_code == 401


def test_diff_with_an_unknown_run_is_404(api, auth, pair):
    r = api.get(f"/v1/runs/{RUN_A}/diff/no-such-run", headers=auth)
    assert r.status_code == 404 and "no-such-run" in r.json()["error"]["message"]


# ---- stop and throttle: the boundaries (the live path is tests/integration) ---------------------

@pytest.fixture
def running(ch, tenant):
    run = RunBuilder(tenant, agent="live-agent")
    run.step("PLAN", "plan", 5)
    insert_runs(ch, [run])  # no RUN_END: RUNNING
    return run


def test_stop_needs_the_write_scope(api, running, keys_file, tenant):
    read_only = {"Authorization": "Bearer " + add_key(keys_file, tenant, scopes=["read"])}
    r = api.post(f"/v1/runs/{running.run_id}/stop", json={"reason": "x"}, headers=read_only)
    assert r.status_code == 403


def test_stop_of_another_tenants_run_is_404(api, running, keys_file, unique):
    other = {"Authorization": "Bearer " + add_key(keys_file, "other-" + unique, scopes=["read", "write"])}
    for verb, body in (("stop", {"reason": "x"}), ("throttle", {"reason": "x", "throttle_ms": 10})):
        r = api.post(f"/v1/runs/{running.run_id}/{verb}", json=body, headers=other)
        assert r.status_code == 404, r.text


def test_stop_of_a_finished_run_is_409(api, auth, pair):
    r = api.post(f"/v1/runs/{RUN_A}/stop", json={"reason": "too late"}, headers=auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "run_finished"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": " \n\t "}, {"reason": "x" * 501},
                                  {"reason": "ok", "extra": 1}, {"reason": "ok", "actor": "bad\nname"}])
def test_stop_rejects_bad_bodies(api, auth, running, body):
    r = api.post(f"/v1/runs/{running.run_id}/stop", json=body, headers=auth)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("ms", [0, -5, 600_001, "soon"])
def test_throttle_rejects_bad_delays(api, auth, running, ms):
    r = api.post(f"/v1/runs/{running.run_id}/throttle", json={"reason": "x", "throttle_ms": ms}, headers=auth)
    assert r.status_code == 422


def test_stop_without_a_broker_is_503_not_a_silent_success(api, auth, running):
    r = api.post(f"/v1/runs/{running.run_id}/stop", json={"reason": "x"}, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["code"] == "kafka_not_configured"


# ---- export and sample ----------------------------------------------------------------------------

@pytest.fixture
def fleet(ch, tenant):
    runs = []
    for i in range(7):
        r = RunBuilder(tenant, agent="exp-a" if i % 2 == 0 else "exp-b", version="v1",
                       start_us=1_000_000 * (int(__import__("time").time()) - 3600 + i))
        r.llm("think", 100 * (i + 1), 10 * i, 5 * i, 0.001 * i, step_id=f"s{i}")
        for _ in range(i % 3):
            r.failure("TOOL", "timeout", step_id=f"s{i}")
        r.end("FAILURE" if i % 3 else "SUCCESS")
        runs.append(r)
    insert_runs(ch, runs)
    return runs


def test_export_streams_every_matching_run_across_pages(api, auth, fleet, monkeypatch):
    monkeypatch.setattr(export_store, "PAGE", 2)  # 7 runs: four keyset pages
    r = api.get("/v1/export", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    got = [d["run"]["run_id"] for d in _lines(r)]
    assert got == [x.run_id for x in reversed(fleet)]  # newest first, each once
    one = _lines(r)[0]
    assert set(one) == {"run", "steps", "failures", "decisions", "signals", "other_events"}


def test_an_exported_run_is_the_run_detail(api, auth, pair):
    exported = {d["run"]["run_id"]: d for d in _lines(api.get("/v1/export", headers=auth))}
    for run_id in (RUN_A, RUN_B):
        assert exported[run_id] == api.get(f"/v1/runs/{run_id}", headers=auth).json()


def test_export_filters_match_the_runs_listing(api, auth, fleet):
    listed = {x["run_id"] for x in api.get("/v1/runs", params={"agent": "exp-b", "status": "FAILURE"},
                                           headers=auth).json()["items"]}
    exported = {d["run"]["run_id"] for d in _lines(api.get(
        "/v1/export", params={"agent": "exp-b", "status": "FAILURE"}, headers=auth))}
    assert exported == listed and len(listed) == 2
    assert len(_lines(api.get("/v1/export", params={"limit": 3}, headers=auth))) == 3


@pytest.mark.parametrize("by,col", [("cost", "cost_usd"), ("failures", "failure_count"),
                                    ("latency", "duration_ms")])
def test_sample_gives_the_worst_runs(api, auth, fleet, by, col):
    got = [d["run"] for d in _lines(api.get("/v1/export", params={"worst": 3, "by": by}, headers=auth))]
    assert len(got) == 3
    values = [g[col] for g in got]
    assert values == sorted(values, reverse=True)
    everything = [d["run"][col] for d in _lines(api.get("/v1/export", headers=auth))]
    assert values == sorted(everything, reverse=True)[:3]


def test_export_otlp_is_one_trace_request_per_run(api, auth, pair):
    lines = _lines(api.get("/v1/export", params={"format": "otlp"}, headers=auth))
    assert len(lines) == 2
    spans = lines[0]["resourceSpans"][0]["scopeSpans"][0]["spans"]  # newest first: run b
    root = spans[0]
    assert root["parentSpanId"] == "" and len(root["traceId"]) == 32
    by_name = {s["name"]: s for s in spans}
    lookup2 = [s for s in spans if s["name"] == "tool lookup_order"][1]
    assert lookup2["parentSpanId"] == by_name["custom handle_order"]["spanId"]
    assert lookup2["links"][0]["spanId"] == [s for s in spans if s["name"] == "tool lookup_order"][0]["spanId"]
    assert lookup2["status"]["code"] == 2 and lookup2["events"][0]["name"] == "agentstream.failure"


def test_export_anonymize_needs_a_key(api, auth, pair):
    r = api.get("/v1/export", params={"anonymize": "true"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "pseudonym_key_required"
    r = api.get("/v1/export", params={"anonymize": "true"}, headers={**auth, "X-Pseudonym-Key": "short"})
    assert r.status_code == 422


def test_export_anonymized_hides_ids_and_names_with_stable_pseudonyms(api, auth, pair, tenant):
    key = {**auth, "X-Pseudonym-Key": "k" * 32}
    first = api.get("/v1/export", params={"anonymize": "true"}, headers=key).text
    again = api.get("/v1/export", params={"anonymize": "true"}, headers=key).text
    other = api.get("/v1/export", params={"anonymize": "true"},
                    headers={**auth, "X-Pseudonym-Key": "z" * 32}).text
    assert first == again and first != other
    for secret in (RUN_A, RUN_B, "support-bot", "lookup_order", "refund", "sess-1", "b-lookup-1",
                   "handle_order", "3333cccc4444dddd", tenant, "cmd-1"):
        assert secret not in first, secret
    docs = [json.loads(x) for x in first.splitlines()]
    b = docs[0]
    steps = {s["step_id"]: s for s in b["steps"]}
    retry = next(s for s in b["steps"] if s["attempt"] == 2)
    assert retry["retry_of"] in steps  # links survive pseudonymisation
    assert b["run"]["agent_version"] == "v2" and retry["status"] == "TIMEOUT"
    assert b["decisions"][0]["reason_code"] == "needs_order_data"


def test_export_rejects_bad_parameters(api, auth):
    for params in ({"format": "csv"}, {"worst": 0}, {"by": "vibes", "worst": 3}, {"worst": 3, "limit": 2},
                   {"since": "yesterday"}):
        assert api.get("/v1/export", params=params, headers=auth).status_code in (400, 422), params
