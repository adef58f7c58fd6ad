"""Row mappers: pure, every payload branch, and clear reasons for records that do not fit."""
from __future__ import annotations

import json

import pytest

from agentstream.schemas import ALERT, EVENT, Codec
from agentstream.sink.rows import ALERT_COLUMNS, EVENT_COLUMNS, RowError, alert_row, event_row, payload_json

NOW = 1_750_000_000_000_000
BASE = dict(event_id="e1", tenant_id="t1", agent_id="a", agent_version="1.0", environment="prod",
            run_id="r1", seq=3, ts_us=NOW, emitted_us=NOW, sdk_version="0.1", attributes={"k": "v"})


def row(kind: str, payload: dict, **over) -> dict:
    ev = Codec().decode_as(EVENT, Codec().encode(EVENT, dict(BASE, kind=kind, payload=payload, **over)))
    return dict(zip(EVENT_COLUMNS, event_row(ev, retention_days=14)))


def test_llm_step_fills_token_and_cost_columns_and_keeps_the_rest_in_payload():
    r = row("STEP", {"step_id": "s1", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": NOW - 5,
                     "latency_ms": 12.5, "attempt": 2, "retry_of": "s0",
                     "llm": {"provider": "openai", "request_model": "gpt", "input_tokens": 7, "output_tokens": 3,
                             "cost_usd": 0.5, "finish_reasons": ["stop"]}})
    assert (r["step_kind"], r["provider"], r["request_model"], r["input_tokens"], r["output_tokens"]) == \
        ("LLM", "openai", "gpt", 7, 3)
    assert (r["cost_usd"], r["latency_ms"], r["attempt"], r["retry_of"], r["started_ts"]) == (0.5, 12.5, 2, "s0", NOW - 5)
    assert json.loads(r["payload"]) == {"llm": {"operation": "chat", "finish_reasons": ["stop"]}}
    assert r["ts"] == NOW and r["retention_days"] == 14 and r["attributes"] == {"k": "v"}


def test_run_start_and_run_end_totals_stay_out_of_the_token_columns():
    assert row("RUN_START", {"entrypoint": "main"})["name"] == "main"
    r = row("RUN_END", {"status": "FAILURE", "outcome": "error", "started_us": NOW - 9, "duration_ms": 9.0,
                        "input_tokens": 100, "cost_usd": 2.0})
    assert (r["run_status"], r["outcome"], r["duration_ms"], r["input_tokens"], r["cost_usd"]) == \
        ("FAILURE", "error", 9.0, 0, 0.0)
    assert json.loads(r["payload"])["input_tokens"] == 100


@pytest.mark.parametrize("kind,payload,expect", [
    ("FAILURE", {"failure_type": "TOOL", "failure_code": "timeout", "step_id": "s1"},
     {"failure_type": "TOOL", "failure_code": "timeout", "step_id": "s1"}),
    ("DECISION", {"decision_type": "tool_selection", "selected": "x", "candidates": ["x", "y"],
                  "reason_code": "rc", "confidence": 0.5},
     {"decision_type": "tool_selection", "selected": "x", "candidates": ["x", "y"], "confidence": 0.5}),
    ("QUALITY_SIGNAL", {"signal_type": "schema", "signal_code": "ok", "value": False},
     {"signal_type": "schema", "signal_code": "ok", "signal_value": False}),
    ("TOOL_STEP", None, {"tool_name": "search", "args_digest": "d", "status": "ERROR"}),
])
def test_each_branch_maps_its_columns(kind, payload, expect):
    if kind == "TOOL_STEP":
        r = row("STEP", {"step_id": "s", "step_kind": "TOOL", "name": "search", "status": "ERROR",
                         "started_us": NOW, "latency_ms": 1.0, "tool": {"tool_name": "search", "args_digest": "d"}})
    else:
        r = row(kind, payload)
    assert {k: r[k] for k in expect} == expect


def test_feedback_and_command_ack_keep_their_fields_in_payload():
    r = row("FEEDBACK", {"interaction_id": "i1", "feedback_type": "user_rating", "value": "positive"})
    assert json.loads(r["payload"]) == {"interaction_id": "i1", "feedback_type": "user_rating",
                                        "value": "positive", "source": "sdk"}


def test_redaction_counts_and_optional_envelope_fields():
    r = row("RUN_START", {"entrypoint": "m"}, session_id="sess",
            redaction={"policy_version": "p1", "rule_counts": {"email": 2}})
    assert r["session_id"] == "sess" and r["redaction_counts"] == {"email": 2} and r["parent_run_id"] == ""


@pytest.mark.parametrize("over,reason", [
    ({"seq": 2**40}, "seq"),
    ({"tenant_id": ""}, "non-empty"),
    ({"kind": "NOPE"}, "unknown event kind"),
])
def test_records_that_do_not_fit_raise_row_error_with_a_reason(over, reason):
    ev = {**BASE, "kind": "RUN_START", "payload": {"entrypoint": "m"}, **over}
    with pytest.raises(RowError) as err:
        event_row(ev)
    assert reason in err.value.reason


def test_missing_fields_are_a_row_error_not_a_crash():
    with pytest.raises(RowError, match="KeyError"):
        event_row({"kind": "STEP", "payload": {}, "seq": 1, "tenant_id": "t", "run_id": "r", "event_id": "e"})


def test_payload_json_escapes_the_line_separators_as_clickhouse_does():
    # The Avro fast path's view writes strings with toJSONString, which escapes U+2028/U+2029;
    # both texts must be identical (the contract test checks it against the real view).
    text = payload_json({"b": "x\u2028y\u2029", "a": "é/\u2028"})
    assert text == '{"a":"é/\\u2028","b":"x\\u2028y\\u2029"}'
    assert json.loads(text) == {"a": "é/\u2028", "b": "x\u2028y\u2029"}
    assert payload_json({"m": "plain ✓"}) == '{"m":"plain ✓"}'


def test_alert_row():
    al = Codec().decode_as(ALERT, Codec().encode(ALERT, {
        "alert_id": "a1", "alert_type": "loop", "severity": "CRITICAL", "tenant_id": "t1", "title": "loop",
        "evidence": {"n": "5"}, "detected_us": NOW,
        "source_offsets": [{"topic": "ev", "partition": 2, "offset": 9}]}))
    r = dict(zip(ALERT_COLUMNS, alert_row(al, 90)))
    assert (r["severity"], r["detected_ts"], r["agent_id"], r["evidence"], r["retention_days"]) == \
        ("CRITICAL", NOW, "", {"n": "5"}, 90)
    assert json.loads(r["source_offsets"]) == [{"topic": "ev", "partition": 2, "offset": 9}]
    with pytest.raises(RowError):
        alert_row(dict(al, alert_id=""))
