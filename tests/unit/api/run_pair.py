"""A fixed pair of runs of one agent (v1 worked, v2 failed), for explain/diff golden files.

Everything but the tenant and the start time is fixed; the goldens hold no absolute times.
"""
from __future__ import annotations

from api_fleet import RunBuilder, now_us

RUN_A, RUN_B = "run-golden-a", "run-golden-b"


def build_pair(tenant: str, start_us: int | None = None) -> tuple[RunBuilder, RunBuilder]:
    start = (start_us or now_us() - 7_200_000_000) // 1_000_000 * 1_000_000
    a = RunBuilder(tenant, agent="support-bot", version="v1", run_id=RUN_A, start_us=start,
                   session_id="sess-1")
    a.step("PLAN", "plan", 120, step_id="a-plan")
    a.step("RETRIEVAL", "search_docs", 340, step_id="a-search")
    a.llm("draft", 900, 1200, 300, 0.0120, model="gpt-x", step_id="a-draft")
    a.step("TOOL", "lookup_order", 210, step_id="a-lookup", tool_name="lookup_order",
           args_digest="1111aaaa2222bbbb")
    a.step("APPROVAL", "refund_approval", 30_500, step_id="a-approve",
           payload={"approval": {"action_digest": "ad1", "decision": "approved",
                                 "approval_latency_ms": 30_000.0}})
    a.llm("answer", 700, 800, 250, 0.0080, model="gpt-x", step_id="a-answer")
    a.step("RESPOND", "reply", 15, step_id="a-reply")
    a.end("SUCCESS", "completed")

    b = RunBuilder(tenant, agent="support-bot", version="v2", run_id=RUN_B, start_us=start + 60_000_000,
                   session_id="sess-2")
    b.step("PLAN", "plan", 150, step_id="b-plan")
    b.llm("draft", 1400, 2000, 500, 0.0300, model="gpt-y", step_id="b-draft")
    b.decision("tool_selection", "lookup_order", ["lookup_order", "search_docs"], "needs_order_data", 0.82)
    handle = "b-handle"
    # the tool attempts run inside a 'handle_order' step; the handler fails because they did
    b.step("TOOL", "lookup_order", 5000, status="TIMEOUT", step_id="b-lookup-1",
           tool_name="lookup_order", args_digest="3333cccc4444dddd", parent_step_id=handle)
    b.failure("TOOL", "timeout", step_id="b-lookup-1")
    b.step("TOOL", "lookup_order", 5000, status="TIMEOUT", attempt=2, retry_of="b-lookup-1",
           step_id="b-lookup-2", tool_name="lookup_order", args_digest="3333cccc4444dddd",
           parent_step_id=handle)
    b.failure("TOOL", "timeout", step_id="b-lookup-2")
    b.step("TOOL", "refund", 400, step_id="b-refund", tool_name="refund",
           args_digest="5555eeee6666ffff", parent_step_id=handle)
    b.add("STEP", step_id=handle, step_kind="CUSTOM", name="handle_order", status="ERROR",
          started_ts=b.rows()[4]["started_ts"], latency_ms=10_400, attempt=1, retry_of="",
          parent_step_id="")
    b.failure("ORCHESTRATION", "dependency_failed", step_id=handle)
    b.add("COMMAND_ACK", advance_ms=50, payload={"command_id": "cmd-1", "command_type": "THROTTLE",
                                                 "status": "applied", "detail": "throttle 200 ms per step"})
    b.llm("answer", 650, 900, 200, 0.0090, model="gpt-x", step_id="b-answer")
    b.end("FAILURE", "error")
    return a, b


def pair_alerts(b: RunBuilder) -> list[dict]:
    return [{"alert_id": "al-golden-1", "alert_type": "retry_storm", "severity": "WARNING",
             "agent_id": "support-bot", "agent_version": "v2", "run_id": RUN_B,
             "title": "retry storm on lookup_order", "detected_us": b.start_us + 11_000_000,
             "evidence": {"retries": "2"}},
            {"alert_id": "al-golden-2", "alert_type": "manual_throttle", "severity": "WARNING",
             "agent_id": "support-bot", "agent_version": "v2", "run_id": RUN_B,
             "title": "Throttled (200 ms/step) by hand by ops (key ops-key)",
             "detected_us": b.start_us + 11_500_000,
             "evidence": {"actor": "ops", "reason": "slow down while we look", "command_id": "cmd-1"}}]
