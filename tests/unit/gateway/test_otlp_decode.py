"""OTLP protobuf and JSON decode into the same spans."""
from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from agentstream.api.gateway.otlp_decode import (
    OtlpDecodeError,
    decode_json,
    decode_protobuf,
    encode_response,
)

TID, SID, PID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"


def pb_request() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    s = ss.spans.add()
    s.trace_id, s.span_id, s.parent_span_id = bytes.fromhex(TID), bytes.fromhex(SID), bytes.fromhex(PID)
    s.name, s.kind, s.start_time_unix_nano, s.end_time_unix_nano = "chat", 3, 10, 20
    s.attributes.extend([
        KeyValue(key="i", value=AnyValue(int_value=7)),
        KeyValue(key="d", value=AnyValue(double_value=0.5)),
        KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="a", value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="x")]))),
    ])
    s.status.code, s.status.message = 2, "bad"
    e = s.events.add()
    e.name = "exception"
    e.attributes.append(KeyValue(key="exception.type", value=AnyValue(string_value="E")))
    return req.SerializeToString()


def json_request() -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": [{
            "traceId": TID, "spanId": SID, "parentSpanId": PID, "name": "chat", "kind": 3,
            "startTimeUnixNano": "10", "endTimeUnixNano": 20,
            "attributes": [{"key": "i", "value": {"intValue": "7"}},
                           {"key": "d", "value": {"doubleValue": 0.5}},
                           {"key": "b", "value": {"boolValue": True}},
                           {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}}],
            "status": {"code": 2, "message": "bad"},
            "events": [{"name": "exception", "attributes": [
                {"key": "exception.type", "value": {"stringValue": "E"}}]}]}]}]}]}


def test_protobuf_and_json_agree():
    a, = decode_protobuf(pb_request())
    b, = decode_json(json_request())
    assert a == b
    assert (a.trace_id, a.span_id, a.parent_span_id) == (TID, SID, PID)
    assert a.attributes == {"i": 7, "d": 0.5, "b": True, "a": ["x"]}
    assert a.resource == {"service.name": "svc"} and a.scope == "lib"
    assert a.status_code == 2 and a.events == [("exception", {"exception.type": "E"})]


def test_json_accepts_snake_case_and_base64_ids():
    import base64
    doc = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": base64.b64encode(bytes.fromhex(TID)).decode(), "span_id": SID,
        "start_time_unix_nano": 1, "end_time_unix_nano": 2,
        "status": {"code": "STATUS_CODE_ERROR"}}]}]}]}
    s, = decode_json(doc)
    assert s.trace_id == TID and s.status_code == 2 and s.parent_span_id == ""


@pytest.mark.parametrize("doc", [[], {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "not-hex!"}]}]}]}, {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TID, "attributes": [{"key": "x", "value": {"weird": 1}}]}]}]}]}])
def test_bad_json_is_a_decode_error(doc):
    with pytest.raises(OtlpDecodeError):
        decode_json(doc)


def test_bad_protobuf_is_a_decode_error():
    with pytest.raises(OtlpDecodeError):
        decode_protobuf(b"\xff\xff\xff\xff")


def test_responses():
    assert encode_response(0, "", True) == (b"{}", "application/json")
    body, media = encode_response(2, "x", False)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    r = ExportTraceServiceResponse.FromString(body)
    assert media == "application/x-protobuf" and r.partial_success.rejected_spans == 2
