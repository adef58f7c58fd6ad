"""Per-event validation against the Event contract, and the batch envelope."""
from __future__ import annotations

import pytest

from agentstream.api.gateway.batch import parse_events, prepare
from agentstream.api.gateway.errors import GatewayError
from agentstream.api.gateway.validation import EventValidator
from agentstream.schemas import EVENT, Codec

V = EventValidator()


def ev(**over):
    base = {"event_id": "e1", "agent_id": "a", "agent_version": "1", "environment": "dev",
            "run_id": "r", "seq": 0, "ts_us": 1, "kind": "DECISION",
            "payload": {"decision_type": "tool_selection", "selected": "api",
                        "candidates": ["api", "cache"], "reason_code": "fresh_data_required",
                        "confidence": 0.85}}
    base.update(over)
    return base


def test_valid_event_is_normalized_for_the_codec():
    rec, issues = V.validate(ev(), "t", now_us=99)
    assert issues == []
    assert rec["tenant_id"] == "t" and rec["emitted_us"] == 99
    assert rec["sdk_version"] == "gateway-http" and rec["attributes"] == {}
    assert rec["payload"]["step_id"] is None  # default filled
    name, back = Codec().decode(Codec().encode(EVENT, rec))
    assert back["payload"]["selected"] == "api"


def test_integers_widen_to_doubles_but_not_the_reverse():
    rec, _ = V.validate(ev(payload={**ev()["payload"], "confidence": 1}), "t")
    assert rec["payload"]["confidence"] == 1.0 and type(rec["payload"]["confidence"]) is float
    _, issues = V.validate(ev(seq=1.0), "t")
    assert issues[0]["reason"] == "wrong_type"


@pytest.mark.parametrize("over,field,reason", [
    ({"seq": True}, "seq", "wrong_type"),
    ({"seq": 2**63}, "seq", "out_of_range"),
    ({"seq": -1}, "seq", "out_of_range"),
    ({"run_id": " "}, "run_id", "empty_value"),
    ({"attributes": {"k": 1}}, "attributes.k", "wrong_type"),
    ({"capture_mode": "EVERYTHING"}, "capture_mode", "invalid_enum"),
    ({"session_id": 5}, "session_id", "wrong_type"),
    ({"kind": "STEP"}, "payload.step_id", "missing_field"),
    ({"payload": {"decision_type": "x", "selected": "y", "reason_code": "z",
                  "candidates": "api"}}, "payload.candidates", "wrong_type"),
    ({"payload": {"decision_type": "x", "selected": "y", "reason_code": "z", "extra": 1}},
     "payload.extra", "unknown_field"),
    ({"tenant_id": "other"}, "tenant_id", "tenant_mismatch"),
])
def test_reasons(over, field, reason):
    rec, issues = V.validate(ev(**over), "t")
    assert rec is None
    assert (issues[0]["field"], issues[0]["reason"]) == (field, reason), issues


def test_missing_payload_and_all_issues_reported():
    e = ev(seq="x", ts_us="y")
    del e["payload"]
    _, issues = V.validate(e, "t")
    assert {(i["field"], i["reason"]) for i in issues} == {
        ("seq", "wrong_type"), ("ts_us", "wrong_type"), ("payload", "missing_field")}


def test_own_tenant_in_payload_is_fine():
    assert V.validate(ev(tenant_id="t"), "t")[1] == []


def test_parse_events_envelopes():
    assert parse_events(b'[{"a":1}]', 10) == [{"a": 1}]
    assert parse_events(b'{"events":[1,2]}', 10) == [1, 2]
    for body, code in [(b"{", "malformed_json"), (b'{"x":1}', "invalid_batch"),
                       (b"[]", "empty_batch"), (b"[1,2,3]", "batch_too_large")]:
        with pytest.raises(GatewayError) as e:
            parse_events(body, 2)
        assert e.value.code == code and e.value.status == 400


def test_prepare_keys_by_run_and_keeps_order():
    out = prepare([ev(run_id="r1"), ev(seq="bad"), ev(run_id="r2", event_id="e2")], "t",
                  V, Codec())
    assert [k for k, _ in out.records] == [b"r1", b"r2"]
    assert out.indexes == [0, 2] and out.event_ids == ["e1", "e2"]
    assert out.rejected == [{"index": 1, "event_id": "e1", "reason": "wrong_type",
                             "errors": [{"field": "seq", "reason": "wrong_type",
                                         "message": "expected integer (long), got string"}]}]


def test_array_and_map_issues_name_the_index_and_key():
    _, issues = V.validate(ev(attributes={"ok": "x", "bad": 2},
                              payload={**ev()["payload"], "candidates": ["a", 3]}), "t")
    assert {(i["field"], i["reason"]) for i in issues} == {
        ("attributes.bad", "wrong_type"), ("payload.candidates[1]", "wrong_type")}


def test_defaults_are_not_shared_between_events():
    a, _ = V.validate(ev(), "t")
    b, _ = V.validate(ev(), "t")
    a["attributes"]["x"] = "1"
    assert b["attributes"] == {}


def test_an_integer_past_a_double_is_out_of_range_not_a_crash():
    # orjson reads such a number as a double (or refuses it); a caller handing the validator a
    # Python int must get the same clear issue
    for big in (10**400, -(10**5000)):
        rec, issues = V.validate(ev(payload={**ev()["payload"], "confidence": big}), "t")
        assert rec is None and [i["reason"] for i in issues] == ["out_of_range"], issues


def test_negative_token_counts_and_a_negative_cost_are_refused():
    llm = {"provider": "p", "operation": "chat", "request_model": "m", "input_tokens": -5,
           "output_tokens": 3, "cost_usd": -0.5}
    step = ev(kind="STEP", payload={"step_id": "s", "step_kind": "LLM", "name": "chat", "status": "OK",
                                    "started_us": 1, "latency_ms": 1.0, "attempt": 1, "llm": llm})
    rec, issues = V.validate(step, "t")
    assert rec is None
    assert sorted((i["field"], i["reason"]) for i in issues) == [
        ("payload.llm.cost_usd", "out_of_range"), ("payload.llm.input_tokens", "out_of_range")]
    llm.update(input_tokens=5, cost_usd=0.5)
    assert V.validate(step, "t")[1] == []


@pytest.mark.parametrize("seq,attempt,bad", [
    (2**32 - 1, 65_535, []), (0, 0, []),
    (2**32, 1, [("seq", "out_of_range")]), (2**40, 1, [("seq", "out_of_range")]),
    (1, 65_536, [("payload.attempt", "out_of_range")]), (1, -1, [("payload.attempt", "out_of_range")]),
])
def test_integers_the_events_table_cannot_store_are_refused(seq, attempt, bad):
    """Longs in the contract, UInt32 and UInt16 in the table (schemas/stored_ranges.py): the
    gateway accepted them and the sink then dead-lettered the record (found by a fuzz of the
    ingest route, tests/unit/gateway/test_ingest_fuzz.py)."""
    step = ev(kind="STEP", seq=seq, payload={"step_id": "s", "step_kind": "TOOL", "name": "x", "status": "OK",
                                             "started_us": 1, "latency_ms": 1.0, "attempt": attempt})
    rec, issues = V.validate(step, "t")
    assert sorted((i["field"], i["reason"]) for i in issues) == bad
    if not bad:
        from agentstream.sink.rows import event_row
        event_row(rec)


@pytest.mark.parametrize("feedback_type,value,ok", [
    ("user_rating", "positive", True), ("negative_signal", "response_copied", True),
    ("user_rating", "The agent told me my diagnosis was wrong, call me at 555-0100", False),
    ("negative_signal", "positive", False), ("comment", "x", False),
])
def test_feedback_is_a_bounded_label(feedback_type, value, ok):
    """A free-text "value" is a user's comment stored where the contract promises a label (the
    SDK never sends one; the gateway took it: found by a privacy probe)."""
    rec, issues = V.validate(ev(kind="FEEDBACK", payload={"interaction_id": "i1", "feedback_type": feedback_type,
                                                          "value": value}), "t")
    assert (rec is not None) == ok
    if not ok:
        assert [(i["field"], i["reason"]) for i in issues] == [("payload.value", "invalid_feedback")]
        assert value not in issues[0]["message"]
