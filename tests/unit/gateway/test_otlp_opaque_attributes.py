"""Attacks through OTLP attribute types (written before the defence): a ``bytesValue`` reached
the raw topic as base64, which no rule reads inside (a bearer header, a PEM key), and a kvlist or
an array became compact JSON, which never holds four words in a row, so a tool call's arguments
under a free key were stored. Bytes are dropped wherever they stand, maps under a free key are
dropped whole, and a list is judged by its items read as one text."""
from __future__ import annotations

import base64

from agentstream.api.gateway.otlp_decode import OtlpBytes, decode_json, decode_protobuf
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.pricing import PriceTable
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

T = 1_760_000_000_000_000_000
BEARER = b"Authorization: Bearer sk_live_" + b"a1B2c3D4" * 3
PEM = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"


def _request(attrs: list[dict]) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
                               "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
                                   "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                                   "name": "call", "startTimeUnixNano": str(T), "endTimeUnixNano": str(T + 10**7),
                                   "attributes": attrs}]}]}]}


def _event(spans) -> dict:
    events = map_spans(spans, MappingContext("tenant-1", 123, PriceTable().cost)).runs[0].events
    return next(e for e in events if e["attributes"].get("otel.span_id"))


ATTRS = [
    {"key": "http.raw_headers", "value": {"bytesValue": base64.b64encode(BEARER).decode()}},
    {"key": "app.blob", "value": {"bytesValue": base64.b64encode(PEM).decode()}},
    {"key": "app.parts", "value": {"arrayValue": {"values": [{"stringValue": "x"},
                                                             {"bytesValue": base64.b64encode(PEM).decode()}]}}},
    {"key": "tool.call", "value": {"kvlistValue": {"values": [
        {"key": "patient", "value": {"stringValue": "Maria Gonzalez"}},
        {"key": "dx", "value": {"stringValue": "HIV positive"}}]}}},
    {"key": "ehr.request_args_v2", "value": {"arrayValue": {"values": [
        {"stringValue": "Maria Gonzalez"}, {"stringValue": "HIV positive"}]}}},
    {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
    {"key": "app.retries", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}}},
]


def _check(ev: dict) -> None:
    attrs = ev["attributes"]
    text = repr(ev)
    for secret in (BEARER, PEM):
        assert base64.b64encode(secret).decode()[:24] not in text
    assert "Maria" not in text and "HIV" not in text
    assert "gen_ai.response.finish_reasons" in attrs and attrs["app.retries"] == "[1,2]"
    counts = ev["redaction"]["rule_counts"]
    assert counts["dropped_attribute:bytes_value"] == 3
    assert counts["dropped_attribute:structured_value"] == 1
    assert counts["dropped_attribute:free_value_prose"] == 1


def test_opaque_and_structured_values_never_leave_the_gateway_json():
    spans = decode_json(_request(ATTRS))
    assert isinstance(spans[0].attributes["app.blob"], OtlpBytes)
    _check(_event(spans))


def test_opaque_and_structured_values_never_leave_the_gateway_protobuf():
    from google.protobuf import json_format

    doc = _request(ATTRS)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for k in ("traceId", "spanId"):  # protobuf's JSON form spells ids in base64
        span[k] = base64.b64encode(bytes.fromhex(span[k])).decode()
    req = json_format.ParseDict(doc, ExportTraceServiceRequest())
    spans = decode_protobuf(req.SerializeToString())
    assert spans[0].attributes["http.raw_headers"] == base64.b64encode(BEARER).decode()  # still readable as text
    _check(_event(spans))

