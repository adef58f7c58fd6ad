"""Against the real broker: sampling keeps failed runs, capture policy, seed-001 records
(feedback, approvals, fallbacks, handoffs), and fork safety."""
from __future__ import annotations

import os

import pytest

from agentstream.producer import Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name

pytestmark = pytest.mark.integration


def _tracer(bootstrap, topic_prefix, tmp_path, unique, **kw):
    return Tracer(f"tenant-{unique}", "capture-agent", "1.0", "test", bootstrap_servers=bootstrap,
                  topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"),
                  commands_enabled=False, **kw)


def _read(bootstrap, topic_prefix, run_ids, **kw):
    return read_events(bootstrap, topic_name("raw", topic_prefix), run_ids, **kw)


def test_sampling_redacted_capture_and_seed_records(bootstrap, topic_prefix, tmp_path, unique):
    t = _tracer(bootstrap, topic_prefix, tmp_path, unique, sample_rate=0.0,
                capture_mode="redacted", policy_version="cap-7", digest_key="s3cret")
    with t.run("kept-because-failed", session_id="s1") as parent:
        with parent.step("respond", "answer") as s:
            s.capture("reply to bob@example.com with key sk-abcdefghijklmnopqrstuvwx")
        digest = parent.approval({"tool": "issue_refund", "amount_minor": 2599,
                                  "currency": "EUR"}, "approved", 18420.0)
        parent.fallback("gpt-4o", "gpt-4o-mini", "primary_unavailable", True)
        parent.feedback("interaction-1", "negative")
        parent.negative_signal("interaction-1", "repeated_question")
        child_id = parent.handoff("billing-agent", role="specialist")
        with t.run("billing", run_id=child_id, parent=parent, sampled=True) as child:
            child.decision("route", "refund", ["refund", "escalate"], "policy_match", 0.9)
        parent.set_status("FAILURE", "escalated")
    with t.run("dropped-because-fine") as fine:
        with fine.step("plan", "p"):
            pass
    assert t.flush(10)
    got = _read(bootstrap, topic_prefix, [parent.run_id, child_id], timeout=30)
    events = got[parent.run_id]
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "STEP", "STEP", "FEEDBACK",
                                           "FEEDBACK", "STEP", "RUN_END"]
    assert all(e["capture_mode"] == "REDACTED" and e["policy_version"] == "cap-7"
               for e in events)
    assert events[0]["payload"]["sampled"] is False
    preview = events[1]["payload"]["content"]["preview"]
    assert "bob@example.com" not in preview and "sk-abc" not in preview and "[EMAIL]" in preview
    approval = events[2]["payload"]["approval"]
    assert approval["action_digest"] == digest and approval["approval_latency_ms"] == 18420.0
    assert events[2]["payload"]["latency_ms"] == 0.0  # the human wait is not agent latency
    assert events[3]["payload"]["fallback"]["preserves_safety_posture"] is True
    assert events[4]["payload"]["value"] == "negative"
    assert events[5]["payload"]["feedback_type"] == "negative_signal"
    assert events[6]["payload"]["handoff"] == {"to_agent_id": "billing-agent",
                                               "to_run_id": child_id, "role": "specialist"}
    assert events[-1]["payload"]["status"] == "FAILURE"
    child_events = got[child_id]
    assert child_events[0]["parent_run_id"] == parent.run_id
    assert child_events[0]["session_id"] == "s1"
    fine_events = _read(bootstrap, topic_prefix, [fine.run_id], timeout=3)[fine.run_id]
    assert fine_events == []
    assert t.stats()["sampled_out"] == 3
    t.close(5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_its_own_transport(bootstrap, topic_prefix, tmp_path, unique):
    t = _tracer(bootstrap, topic_prefix, tmp_path, unique)
    with t.run("parent-before-fork") as before:
        pass
    assert t.flush(10)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's thread and producer do not exist here
        code = 1
        try:
            with t.run("in-child") as run:
                with run.step("tool", "child-step"):
                    pass
            os.write(w, run.run_id.encode())
            code = 0 if t.flush(15) else 2
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    child_run = os.read(r, 100).decode()
    assert os.waitstatus_to_exitcode(status) == 0
    with t.run("parent-after-fork") as after:
        pass
    assert t.flush(10)
    got = _read(bootstrap, topic_prefix, [before.run_id, child_run, after.run_id], timeout=30)
    assert [e["kind"] for e in got[child_run]] == ["RUN_START", "STEP", "RUN_END"]
    assert [e["kind"] for e in got[after.run_id]] == ["RUN_START", "RUN_END"]
    t.close(5)
