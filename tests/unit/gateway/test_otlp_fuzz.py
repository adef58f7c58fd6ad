"""Hostile OTLP bodies: whatever a client sends, decoding and mapping either work or raise
``OtlpDecodeError`` (the route's 400 ``malformed_otlp``), never anything the route would turn
into a 500. Mutations of a valid request (any field replaced by any JSON value, at any depth)
and random protobuf bytes; the two classes this found are pinned below."""
from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from agentstream.api.gateway.otlp_decode import OtlpDecodeError, decode_json, decode_protobuf
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.otlp_route import json_shape_problem

CTX = MappingContext(tenant_id="t", now_us=1_700_000_000_000_000, args_digest_key=b"k")


def _attr(k: str, v: dict[str, Any]) -> dict[str, Any]:
    return {"key": k, "value": v}


BASE = {"resourceSpans": [{
    "resource": {"attributes": [_attr("service.name", {"stringValue": "svc"})]},
    "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
        "attributes": [_attr("gen_ai.operation.name", {"stringValue": "chat"}),
                       _attr("gen_ai.usage.input_tokens", {"intValue": "5"}),
                       _attr("gen_ai.tool.call.arguments", {"stringValue": "{\"q\": 1}"}),
                       _attr("gen_ai.response.finish_reasons", {"arrayValue": {"values": [{"stringValue": "stop"}]}})],
        "status": {"code": 2, "message": "x"},
        "events": [{"name": "exception", "attributes": [_attr("exception.message", {"stringValue": "boom"})]}]}]}]}]}
JUNK: list[Any] = [None, 0, -1, 1.5, 1e308, 10**400, "", "x", "9" * 400, [], {}, [1], {"a": 1}, True, "\ud800",
                   {"stringValue": None}, {"intValue": "abc"}, {"intValue": 2**80}, {"doubleValue": "inf"},
                   {"bytesValue": "!!"}, {"arrayValue": {"values": [{"kvlistValue": {}}]}},
                   {"kvlistValue": {"values": [{"key": 1}]}}]


def _mutate(rng: random.Random, d: Any) -> Any:
    """Every field visited: replaced by a junk value now and then, else mutated within."""
    if rng.random() < 0.04:
        return rng.choice(JUNK)
    if isinstance(d, dict):
        return {k: _mutate(rng, v) for k, v in d.items()}
    if isinstance(d, list):
        out = [_mutate(rng, x) for x in d]
        if rng.random() < 0.05:
            out.append(rng.choice(JUNK))
        return out
    return d


def _decodes_or_refuses(decode: Any, body: Any) -> None:
    try:
        map_spans(decode(body), CTX)
    except OtlpDecodeError:
        pass


def test_mutated_json_requests_decode_or_are_refused():
    rng = random.Random(3)
    for _ in range(5000):
        doc = _mutate(rng, copy.deepcopy(BASE))
        if json_shape_problem(doc) is None:
            _decodes_or_refuses(decode_json, doc)


def test_random_protobuf_bytes_decode_or_are_refused():
    rng = random.Random(4)
    for _ in range(4000):
        _decodes_or_refuses(decode_protobuf, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 160))))


def _span(**over: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(over)
    return doc


@pytest.mark.parametrize("end", ["9" * 400, str(1 << 64), "-1"])
def test_a_span_time_outside_fixed64_is_refused(end):
    with pytest.raises(OtlpDecodeError, match="unsigned 64 bits"):
        decode_json(_span(endTimeUnixNano=end))


@pytest.mark.parametrize("value", [{"kvlistValue": {"values": []}}, {"arrayValue": {"values": [{"stringValue": "chat"}]}},
                                   {"intValue": "7"}, {"doubleValue": 1e308}])
def test_an_operation_name_of_any_value_type_maps(value):
    attrs = [_attr("gen_ai.operation.name", value), _attr("gen_ai.usage.input_tokens", {"doubleValue": 1e308})]
    [run] = map_spans(decode_json(_span(attributes=attrs)), CTX).runs
    assert [e["kind"] for e in run.events][0] == "RUN_START"


@pytest.mark.parametrize("cost", [{"stringValue": "NaN"}, {"doubleValue": -3.0}, {"stringValue": "inf"}])
def test_a_span_cost_that_is_no_cost_is_priced_instead(cost):
    attrs = [_attr("gen_ai.operation.name", {"stringValue": "chat"}), _attr("gen_ai.usage.cost", cost),
             _attr("gen_ai.request.model", {"stringValue": "gpt-4o"})]
    [run] = map_spans(decode_json(_span(attributes=attrs)), CTX).runs
    [step] = [e for e in run.events if e["kind"] == "STEP"]
    assert step["payload"]["llm"]["cost_usd"] == 0.0  # the context prices nothing here
