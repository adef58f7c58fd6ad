"""Content stays out under metadata_only at every edge, before anything durable: the SDK (what it
puts on the raw topic of the real broker) and /v1/ingest's validation; ids are checked by format."""
from __future__ import annotations

import pytest

from agentstream.api.gateway.validation import EventValidator
from agentstream.producer import Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name

pytestmark = pytest.mark.integration

PROMPT = "Write to Jane Roe about the merger; her phone is in the CRM"


def test_sdk_drops_content_keys_and_long_free_values_under_metadata_only(bootstrap, topic_prefix, tmp_path,
                                                                         unique):
    t = Tracer(f"tenant-{unique}", "privacy-agent", "1.0", "test", bootstrap_servers=bootstrap,
               topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"), commands_enabled=False)
    with t.run("r") as run:
        with run.step("llm", "chat", {"gen_ai.input.messages": PROMPT, "llm.input_messages.0.message.content":
                                      PROMPT, "my_app.prompt": PROMPT, "notes": PROMPT * 10,
                                      "gen_ai.request.model": "gpt-4o", "http.route": "/v1/chat"}):
            pass
    assert t.flush(10)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id], timeout=30)[run.run_id]
    (step,) = [e for e in events if e["kind"] == "STEP"]
    assert step["attributes"] == {"gen_ai.request.model": "gpt-4o", "http.route": "/v1/chat",
                                  "agentstream.attributes_dropped": "4"}
    assert not any("Jane" in str(e) for e in events)


def test_sdk_redacted_mode_keeps_content_keys_for_the_processors_to_redact(bootstrap, topic_prefix, tmp_path,
                                                                          unique):
    t = Tracer(f"tenant-{unique}", "privacy-agent", "1.0", "test", bootstrap_servers=bootstrap,
               topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"), commands_enabled=False,
               capture_mode="redacted", digest_key="k")
    with t.run("r") as run:
        with run.step("llm", "chat", {"input.value": "hello"}):
            pass
    assert t.flush(10)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id], timeout=30)[run.run_id]
    (step,) = [e for e in events if e["kind"] == "STEP"]
    assert step["attributes"]["input.value"] == "hello"


def _ev(**over):
    base = {"agent_id": "a", "agent_version": "1", "environment": "dev", "run_id": "run_7a52225967589722",
            "seq": 0, "ts_us": 1, "kind": "DECISION",
            "payload": {"decision_type": "t", "selected": "api", "candidates": ["api"], "reason_code": "r",
                        "confidence": 0.5}}
    base.update(over)
    return base


def test_ingest_validation_filters_attributes_and_counts_them():
    rec, issues = EventValidator().validate(_ev(attributes={
        "gen_ai.output.messages": PROMPT, "traceloop.entity.input": PROMPT, "note": "short", "blob": "y" * 400}), "t")
    assert issues == [] and rec["attributes"] == {"note": "short"}
    assert rec["redaction"]["rule_counts"] == {"dropped_attribute:content_key": 2,
                                               "dropped_attribute:free_value_too_long": 1}
    rec, _ = EventValidator().validate(_ev(capture_mode="REDACTED", attributes={"input.value": "hi"}), "t")
    assert rec["attributes"] == {"input.value": "hi"} and rec.get("redaction") is None


@pytest.mark.parametrize("field,value", [("run_id", "bob@example.com"), ("session_id", "two words"),
                                         ("parent_run_id", "x" * 300), ("event_id", "-leading-dash")])
def test_ingest_rejects_ids_that_are_not_id_shaped(field, value):
    rec, issues = EventValidator().validate(_ev(**{field: value}), "t")
    assert rec is None and [(i["field"], i["reason"]) for i in issues] == [(field, "invalid_id")]
    assert value not in str(issues)
