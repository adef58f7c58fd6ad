"""/v1/runs/{id}/timeline: nesting, retries, waits, child runs."""
from __future__ import annotations

from api_fleet import RunBuilder, insert_runs


def test_timeline_waterfall(api, ch, tenant, auth):
    r = RunBuilder(tenant)
    plan = r.step("PLAN", "plan", 10)
    r.t -= 10_000  # the llm call runs inside the plan step
    r.llm("think", 5, 10, 2, 0.001, parent_step_id=plan)
    first = r.tool("search", 20, status="TIMEOUT")
    r.failure("TOOL", "timeout", step_id=first)
    second = r.tool("search", 20, status="TIMEOUT", attempt=2, retry_of=first)
    r.tool("search", 15, attempt=3, retry_of=second)
    r.step("APPROVAL", "refund", 5000, payload={"approval": {"action_digest": "x", "decision": "approved",
                                                           "approval_latency_ms": 4990.0}})
    r.step("HANDOFF", "to-billing", 1, payload={"handoff": {"to_agent_id": "billing", "to_run_id": "child-" + r.run_id}})
    r.end()
    child = RunBuilder(tenant, agent="billing", run_id="child-" + r.run_id, parent_run_id=r.run_id,
                       start_us=r.t)
    child.step("TOOL", "charge", 3)
    child.end()
    insert_runs(ch, [r, child])

    resp = api.get(f"/v1/runs/{r.run_id}/timeline", headers=auth)
    assert resp.status_code == 200, resp.text
    t = resp.json()
    spans = {s["name"] + str(s["attempt"]): s for s in t["spans"]}
    assert spans["think1"]["depth"] == 1 and spans["think1"]["parent_span_id"] == plan
    assert spans["plan1"]["depth"] == 0 and spans["plan1"]["start_ms"] == 0
    assert spans["search3"]["retry_of"] == second and spans["search3"]["retry_root"] == first
    assert spans["search1"]["retried"] and not spans["search3"]["retried"]
    assert spans["refund1"]["is_wait"] and spans["refund1"]["wait_ms"] == 4990.0
    assert spans["refund1"]["approval_decision"] == "approved"
    assert spans["to-billing1"]["handoff_to_run_id"] == child.run_id
    assert t["wait_ms"] == 4990.0
    assert [c["run_id"] for c in t["child_runs"]] == [child.run_id]
    assert t["markers"][0]["kind"] == "FAILURE" and t["markers"][0]["span_id"] == first
    starts = [s["start_ms"] for s in t["spans"]]
    assert starts == sorted(starts)

    assert api.get("/v1/runs/nope/timeline", headers=auth).status_code == 404
