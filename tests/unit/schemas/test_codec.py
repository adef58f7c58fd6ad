import struct

import pytest

from agentstream.schemas import ALERT, COMMAND, EVENT, POLICY, Codec, DecodeError
from agentstream.schemas.codec import KIND_TO_BRANCH


def base_event(kind: str, payload: dict) -> dict:
    return {
        "event_id": "e-1", "tenant_id": "acme", "agent_id": "support", "agent_version": "1.0",
        "environment": "prod", "run_id": "r-1", "seq": 3, "ts_us": 1_700_000_000_000_000,
        "emitted_us": 1_700_000_000_000_001, "sdk_version": "0.1.0", "kind": kind,
        "payload": payload,
    }


def test_every_payload_branch_round_trips():
    codec = Codec()
    payloads = {
        "RUN_START": {"entrypoint": "answer"},
        "RUN_END": {"status": "SUCCESS", "started_us": 1, "duration_ms": 2.5},
        "STEP": {"step_id": "s1", "step_kind": "LLM", "name": "draft", "status": "OK",
                 "started_us": 1, "latency_ms": 4.0,
                 "llm": {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 10}},
        "FAILURE": {"failure_type": "TOOL", "failure_code": "timeout"},
        "DECISION": {"decision_type": "tool_selection", "selected": "api",
                     "candidates": ["api", "cache"], "reason_code": "fresh_data_required",
                     "confidence": 0.85},
        "QUALITY_SIGNAL": {"signal_type": "schema_valid", "signal_code": "full_match", "value": True},
        "FEEDBACK": {"interaction_id": "i1", "feedback_type": "user_rating", "value": "negative"},
        "COMMAND_ACK": {"command_id": "c1", "command_type": "STOP", "status": "applied"},
    }
    assert set(payloads) == set(KIND_TO_BRANCH)
    for kind, payload in payloads.items():
        data = codec.encode(EVENT, base_event(kind, payload))
        assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == codec.catalog.latest(EVENT).id == 5
        name, rec = codec.decode(data)
        assert name == EVENT and rec["kind"] == kind
        for k, v in payload.items():
            if isinstance(v, dict):
                assert {kk: rec["payload"][k][kk] for kk in v} == v
            else:
                assert rec["payload"][k] == v


def test_other_records_round_trip():
    codec = Codec()
    cmd = {"command_id": "c", "tenant_id": "t", "run_id": "r", "command_type": "STOP",
           "reason": "loop", "issued_by": "loops", "issued_us": 5}
    assert codec.decode_as(COMMAND, codec.encode(COMMAND, cmd))["reason"] == "loop"
    alert = {"alert_id": "a", "alert_type": "loop", "severity": "CRITICAL", "tenant_id": "t",
             "title": "x", "detected_us": 1}
    assert codec.decode_as(ALERT, codec.encode(ALERT, alert))["severity"] == "CRITICAL"
    policy = codec.decode_as(POLICY, codec.encode(POLICY, {"tenant_id": "t"}))
    assert policy["loops"]["max_repeats"] == 5 and policy["capture_mode"] == "METADATA_ONLY"


@pytest.mark.parametrize(
    "data, reason",
    [
        (None, "tombstone"),
        (b"\x00\x00", "shorter than the 5-byte header"),
        (b"{\"json\": 1}", "magic byte"),
        (b"\x00\x00\x00\x03\xe7abc", "unknown schema id 999"),
        (b"\x00\x00\x00\x00\x01\xff\xff", "avro body does not match"),
    ],
)
def test_bad_bytes_raise_decode_error_with_reason(data, reason):
    with pytest.raises(DecodeError) as err:
        Codec().decode(data)
    assert reason in err.value.reason


def test_a_registry_that_chose_other_ids_is_refused():
    """Confluent's in-memory mock registry has no IMPORT mode and numbers schemas itself, so its
    ids differ from the built-in ones that records already on the wire carry: registering says
    which, and a service configured with it refuses to start (tests/integration/
    test_schema_registry.py covers a registry with IMPORT mode, where the ids agree)."""
    from confluent_kafka.schema_registry import Schema

    from agentstream.schemas import RegistryResolver, SchemaIdMismatch

    # no retries: the mock answers the mode API (which it lacks) with a transport error
    setup = RegistryResolver("mock://agentstream-test", verify=False, **{"max.retries": 0})
    setup.client.register_schema("other", Schema('{"type": "string"}', "AVRO"))
    with pytest.raises(SchemaIdMismatch) as err:
        setup.register_all()
    assert any(p.startswith("id 1 holds another schema") for p in err.value.problems)
    with pytest.raises(SchemaIdMismatch):
        RegistryResolver("mock://agentstream-test", client=setup.client)


def test_generated_types_are_current():
    from agentstream.schemas import codegen

    assert codegen.target().read_text() == codegen.render(), "run python -m agentstream.schemas.codegen"


def test_a_record_followed_by_more_bytes_is_refused_with_the_reason():
    """Red-team s17: a valid Event followed by junk was stored as if whole (the reader stops
    where the schema ends). The C readers refuse it too (sink/_eventrows.c, _fieldreader.c)."""
    import pytest as _pytest

    from agentstream.schemas import EVENT, Codec, DecodeError

    codec = Codec()
    rec = {"event_id": "e1", "tenant_id": "t", "agent_id": "a", "agent_version": "1", "environment": "d",
           "run_id": "r", "seq": 0, "ts_us": 1, "emitted_us": 1, "sdk_version": "x",
           "capture_mode": "METADATA_ONLY", "policy_version": "", "attributes": {}, "kind": "FEEDBACK",
           "payload": {"interaction_id": "i", "feedback_type": "thumbs", "value": "up", "source": "user"}}
    value = codec.encode(EVENT, rec)
    assert codec.decode_as(EVENT, value)["run_id"] == "r"
    for junk in (b"\x00", b"garbage", value[5:]):
        with _pytest.raises(DecodeError, match=f"{len(junk)} bytes after the record"):
            codec.decode(value + junk)
