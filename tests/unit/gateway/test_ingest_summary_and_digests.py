"""What /v1/ingest accepts in the fields the product itself writes: a redaction summary names only
the rules the processors have and ``dropped_attribute:<reason>`` forms (a client's key there would
be stored in the events table's redaction_counts map as sent), and every digest field holds a
digest (a keyed hex HMAC), never text."""
from __future__ import annotations

import pytest

from agentstream.api.gateway.validation import EventValidator

V = EventValidator()
CARD_AND_KEY = "4111 1111 1111 1111 sk-proj-Zq8xT2mN5vL0pK7sW3yH9aB4cD6eF1gH"
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def step(**payload):
    base = {"step_id": "s1", "step_kind": "TOOL", "name": "search", "status": "OK", "started_us": 1,
            "latency_ms": 1.0, "attempt": 1}
    base.update(payload)
    return {"event_id": "e1", "agent_id": "a", "agent_version": "1", "environment": "dev",
            "run_id": "r", "seq": 1, "ts_us": 1, "kind": "STEP", "payload": base}


def reasons(issues):
    return {(i["field"], i["reason"]) for i in issues}


@pytest.mark.parametrize("name", [CARD_AND_KEY, "dropped_attribute:" + CARD_AND_KEY, "my_rule", ""])
def test_a_summary_naming_a_rule_the_product_does_not_have_is_refused(name):
    rec, issues = V.validate({**step(), "redaction": {"policy_version": "x", "rule_counts": {name: 1}}}, "t")
    assert rec is None and ("redaction.rule_counts", "unknown_rule") in reasons(issues)
    assert CARD_AND_KEY not in repr(issues)  # the message never quotes the name


def test_the_product_s_own_names_are_accepted():
    counts = {"email": 2, "sensitive_assignment": 1, "dropped_attribute:content_key": 3, "capture_policy": 1}
    rec, issues = V.validate({**step(), "redaction": {"policy_version": "x", "rule_counts": counts}}, "t")
    assert issues == [] and rec["redaction"]["rule_counts"] == counts


@pytest.mark.parametrize("payload,field", [
    ({"tool": {"tool_name": "t", "args_digest": '{"q":"I was diagnosed with HIV last year"}'}},
     "payload.tool.args_digest"),
    ({"step_kind": "APPROVAL", "approval": {"action_digest": "refund the customer 400 EUR to their card",
                                            "decision": "approved", "approval_latency_ms": 1.0}},
     "payload.approval.action_digest"),
    ({"step_kind": "LLM", "llm": {"provider": "openai", "request_model": "m", "request_digest": "hello there"}},
     "payload.llm.request_digest"),
])
def test_every_digest_field_is_checked_by_format(payload, field):
    rec, issues = V.validate(step(**payload), "t")
    assert rec is None and (field, "invalid_digest") in reasons(issues)
    sub = next(iter(payload.values())) if "tool" in payload else payload.get("approval") or payload.get("llm")
    good = {k: (HEX if k.endswith("digest") else v) for k, v in sub.items()}
    key = "tool" if "tool" in payload else "approval" if "approval" in payload else "llm"
    rec, issues = V.validate(step(**{**payload, key: good}), "t")
    assert issues == [], issues
