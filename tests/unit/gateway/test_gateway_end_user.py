"""The gateway never forwards an end user's raw id: /v1/ingest's end_user_id and OTLP's
enduser.id / user.id become Event v2's end_user_id as the keyed digest, or nothing."""
from __future__ import annotations

import pytest

from agentstream.api.gateway.otlp_decode import OtlpSpan
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.pricing import PriceTable
from agentstream.api.gateway.settings import GatewaySettings
from agentstream.api.gateway.validation import EventValidator
from agentstream.schemas import EVENT, Codec
from agentstream.schemas.digests import end_user_digest

KEY = b"gateway-key-0123456789abcdef"
NOW = 1_760_000_000_000_000
RAW = "alice@example.com"


def _event(**extra):
    return {"agent_id": "a", "agent_version": "1", "environment": "prod", "run_id": "r1", "seq": 0,
            "ts_us": NOW, "kind": "RUN_START", "payload": {"entrypoint": "main"}, **extra}


@pytest.mark.parametrize("raw", [RAW, "Zoë \"q\" \\ \u2028", "x" * 300, " "])
def test_ingest_end_user_id_is_stored_as_the_keyed_digest(raw):
    record, issues = EventValidator(end_user_key=KEY).validate(_event(end_user_id=raw), "t", NOW)
    assert issues == []
    assert record["end_user_id"] == end_user_digest(KEY, raw)
    value = Codec().encode(EVENT, record)
    assert raw.encode() not in value
    assert Codec().decode_as(EVENT, value)["end_user_id"] == end_user_digest(KEY, raw)


def test_without_a_key_the_id_is_dropped_not_forwarded():
    record, issues = EventValidator().validate(_event(end_user_id=RAW), "t", NOW)
    assert issues == [] and record["end_user_id"] is None
    assert RAW.encode() not in Codec().encode(EVENT, record)


def test_absent_null_and_empty_ids_stay_null():
    v = EventValidator(end_user_key=KEY)
    for ev in (_event(), _event(end_user_id=None), _event(end_user_id="")):
        record, issues = v.validate(ev, "t", NOW)
        assert issues == [] and record["end_user_id"] is None


def test_a_non_string_id_is_a_clear_field_error():
    record, issues = EventValidator(end_user_key=KEY).validate(_event(end_user_id={"id": 1}), "t", NOW)
    assert record is None and issues[0]["field"] == "end_user_id"


def test_v2_request_digest_is_accepted_on_llm_steps():
    step = {"step_id": "s", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": NOW,
            "latency_ms": 1.0, "llm": {"provider": "openai", "request_model": "gpt-4o",
                                       "request_digest": "ab" * 32}}
    record, issues = EventValidator().validate(_event(kind="STEP", payload=step), "t", NOW)
    assert issues == [] and record["payload"]["llm"]["request_digest"] == "ab" * 32


@pytest.mark.parametrize("bad", ["summarise the contract for alice@example.com", "ab" * 100, "xyz" * 10, "abc"])
def test_a_request_digest_that_is_not_a_hex_digest_is_refused(bad):
    """The field is a keyed digest; free text there (a prompt, say) would carry content past the
    metadata allow-list, so its format is checked rather than its text scanned."""
    step = {"step_id": "s", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": NOW,
            "latency_ms": 1.0, "llm": {"provider": "openai", "request_model": "gpt-4o", "request_digest": bad}}
    record, issues = EventValidator().validate(_event(kind="STEP", payload=step), "t", NOW)
    assert record is None
    assert [(i["field"], i["reason"]) for i in issues] == [("payload.llm.request_digest", "invalid_digest")]


def test_the_settings_key_reaches_the_validator_and_matches_the_sdk_construction():
    s = GatewaySettings(args_digest_key="k" * 32)
    assert s.digest_key_bytes() == b"k" * 32
    assert GatewaySettings().digest_key_bytes() is None
    # the SDK's CapturePolicy.digest: HMAC-SHA256 over the canonical JSON of the value
    import hashlib
    import hmac
    import json
    want = hmac.new(b"k" * 32, json.dumps(RAW, sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False).encode(), hashlib.sha256).hexdigest()
    assert end_user_digest(b"k" * 32, RAW) == want


TRACE = "0af7651916cd43dd8448eb211c80319c"
RES = {"service.name": "planner", "service.version": "3.0"}
T = NOW * 1000


def _span(sid, parent="", resource=RES, **attrs):
    return OtlpSpan(TRACE, sid * 16, parent * 16 if parent else "", "s", T, T + 10_000_000, attrs, 0, "",
                    [], resource, "scope")


@pytest.mark.parametrize("key", ["enduser.id", "user.id", "enduser.pseudo.id"])
def test_otlp_end_user_attribute_becomes_the_digest_and_leaves_the_attributes(key):
    spans = [_span("a", **{"gen_ai.operation.name": "invoke_agent", key: RAW, "user.email": RAW}),
             _span("b", "a", **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})]
    ctx = MappingContext("tenant-1", NOW, PriceTable().cost, KEY)
    events = map_spans(spans, ctx).runs[0].events
    by_span = {e["attributes"].get("otel.span_id"): e for e in events if e["kind"] == "STEP"}
    assert events[0]["end_user_id"] == end_user_digest(KEY, RAW)  # the root's events
    assert by_span["b" * 16]["end_user_id"] is None  # a child span without the attribute
    for e in events:
        assert RAW not in repr(e)
        assert not any(k.startswith(("enduser.", "user.")) for k in e["attributes"])
        value = Codec().encode(EVENT, e)
        assert RAW.encode() not in value


def test_otlp_resource_end_user_applies_to_every_span_and_span_beats_resource():
    res = {**RES, "enduser.id": "resource-user"}
    spans = [_span("a", resource=res), _span("b", "a", resource=res, **{"user.id": "span-user"})]
    events = map_spans(spans, MappingContext("t", NOW, PriceTable().cost, KEY)).runs[0].events
    ids = {e["end_user_id"] for e in events}
    assert ids == {end_user_digest(KEY, "resource-user"), end_user_digest(KEY, "span-user")}


def test_otlp_without_a_key_drops_the_end_user():
    spans = [_span("a", **{"enduser.id": RAW})]
    events = map_spans(spans, MappingContext("t", NOW, PriceTable().cost)).runs[0].events
    assert all(e["end_user_id"] is None and RAW not in repr(e) for e in events)
