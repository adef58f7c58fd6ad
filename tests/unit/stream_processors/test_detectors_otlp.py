"""OTLP spans through the gateway's mapping into the loop detector: ordinary traces, where tools are
called many times with different (or unknown) arguments, raise nothing; a span that says what
its call was about gets a derived digest, so a real repeat is still found; an LLM span's request
digest equals the SDK's for the same request and key."""
from __future__ import annotations

import json
import random

from agentstream.api.gateway.otlp_decode import OtlpSpan
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.span_digest import llm_request_digest, tool_args_digest
from agentstream.producer.capture import CapturePolicy
from agentstream.producer.step import request_canonical
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

KEY = b"gateway-key"
RES = {"service.name": "planner", "service.version": "3.0"}
T = 1_760_000_000_000_000_000


def _span(trace, i, parent, name, **attrs):
    return OtlpSpan(trace, f"{i + 1:016x}", parent, name, T + i * 10**6, T + i * 10**6 + 5 * 10**5, attrs,
                    0, "", [], RES, "scope")


def _loop_alerts(spans):
    mapped = map_spans(spans, MappingContext("t", 1, args_digest_key=KEY))
    out = []
    for run in mapped.runs:
        st = runs.new_state()
        for seq, e in enumerate(run.events):
            e["seq"] = seq
            out += [(run.run_id, f) for f in runs.observe(st, e, LOOP_DEFAULTS, BUDGET_DEFAULTS)]
    return out


def _ordinary_trace(rng, t):
    trace = f"{t:032x}"
    spans = [_span(trace, 0, "", "invoke_agent planner", **{"gen_ai.operation.name": "invoke_agent"})]
    root = spans[0].span_id
    for i in range(1, 50):
        r = rng.random()
        if r < 0.4:  # a tool with no arguments recorded, only identity attributes
            spans.append(_span(trace, i, root, "execute_tool http_get", **{
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": rng.choice(["http_get", "kb_search"]),
                "http.request.method": "GET", "server.address": "api.internal"}))
        elif r < 0.6:  # a tool whose URL varies with its input
            spans.append(_span(trace, i, root, "execute_tool fetch", **{
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch",
                "url.full": f"https://api.internal/items/{rng.randrange(10**6)}"}))
        elif r < 0.85:  # model calls without recorded messages
            spans.append(_span(trace, i, root, "chat gpt-4o", **{
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10, "gen_ai.request.temperature": 0.2}))
        else:  # plain spans
            spans.append(_span(trace, i, root, "GET /health", **{"http.request.method": "GET"}))
    return spans


def test_a_thousand_ordinary_otlp_traces_raise_no_loop():
    rng = random.Random(11)
    spans = [s for t in range(1, 1001) for s in _ordinary_trace(rng, t)]
    assert len(spans) == 50_000
    assert _loop_alerts(spans) == []


def test_a_real_repeat_in_otlp_is_found_through_a_derived_digest():
    trace = f"{7:032x}"
    spans = [_span(trace, 0, "", "invoke_agent planner", **{"gen_ai.operation.name": "invoke_agent"})]
    spans += [_span(trace, i, spans[0].span_id, "execute_tool fetch", **{
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch",
        "url.full": "https://api.internal/items/42"}) for i in range(1, 9)]
    found = _loop_alerts(spans)
    assert [f.evidence["reasons"] for _, f in found] == ["repeat"]
    # the same prompt sent again and again
    spans = [_span(trace, 0, "", "invoke_agent planner", **{"gen_ai.operation.name": "invoke_agent"})]
    spans += [_span(trace, i, spans[0].span_id, "chat gpt-4o", **{
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps([{"role": "user", "content": "same"}])}) for i in range(1, 9)]
    assert [f.evidence["reasons"] for _, f in _loop_alerts(spans)] == ["repeat"]


def test_identity_attributes_alone_are_never_a_digest():
    assert tool_args_digest({"gen_ai.tool.name": "x", "http.request.method": "GET", "server.address": "h",
                             "db.operation.name": "SELECT"}, KEY) is None
    assert tool_args_digest({"url.full": "https://h/a"}, KEY) != tool_args_digest({"url.full": "https://h/b"}, KEY)
    assert tool_args_digest({"url.full": "https://h/a"}, None) is None
    assert tool_args_digest({"gen_ai.tool.call.arguments": '{"b":1, "a":2}'}, KEY) == \
        tool_args_digest({"gen_ai.tool.call.arguments": {"a": 2, "b": 1}}, KEY)
    assert llm_request_digest({"gen_ai.request.model": "m", "gen_ai.request.temperature": 0.1}, "m", KEY) is None


def test_gateway_and_sdk_give_one_request_one_digest():
    messages = [{"role": "user", "parts": [{"type": "text", "content": "héllo"}]}]
    tools = [{"name": "f", "type": "function"}]
    sdk = CapturePolicy("metadata_only", "v", KEY).digest(request_canonical("gpt-4o", messages, tools))
    gw = llm_request_digest({"gen_ai.input.messages": json.dumps(messages),
                             "gen_ai.tool.definitions": json.dumps(tools)}, "gpt-4o", KEY)
    assert sdk == gw


def test_gateway_and_sdk_give_one_tool_call_one_digest_whatever_the_script(tmp_path):
    from agentstream.producer.testing import InMemoryTransport

    values = [{"q": "héllo"}, {"city": "東京", "n": 2}, {"e": "😀\u2028"}, {"x": 1.0, "y": None}, {"s": "\x7f\\\""}]
    for speedups in (True, False):
        t = InMemoryTransport().tracer("t", "a", "1", "test", spool_dir=str(tmp_path / f"s{speedups}"),
                                       digest_key=KEY.decode(), speedups=speedups)
        with t.run() as run:
            for v in values:
                sdk = run.tool_step("f", v).tool["args_digest"]
                for text in (json.dumps(v), json.dumps(v, ensure_ascii=False), json.dumps(v, indent=2)):
                    assert tool_args_digest({"gen_ai.tool.call.arguments": text}, KEY) == sdk, (speedups, v)
        t.close(0)
