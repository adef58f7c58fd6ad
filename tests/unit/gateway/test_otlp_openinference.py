"""OpenInference spans keep their meaning: span kinds -> step kinds, model/tokens/cost/tool, typed
failures, one-span traces, and none of their content attributes survive the mapping."""
from __future__ import annotations

import json

import pytest

from agentstream.api.gateway.otlp_decode import STATUS_ERROR
from agentstream.api.gateway.otlp_mapping import map_spans

from test_otlp_mapping import ctx, kinds, span  # same folder (rootdir-relative import mode)

PROMPT = "Plan a trip for Jane Roe, passport 123456789"
COMPLETION = "Here is the itinerary for Jane"
OI_CONTENT = {
    "input.value": json.dumps({"messages": [{"role": "user", "content": PROMPT}]}),
    "input.mime_type": "application/json",
    "output.value": COMPLETION,
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": PROMPT,
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": COMPLETION,
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "book",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": json.dumps({"who": PROMPT}),
    "llm.tools.0.tool.json_schema": json.dumps({"name": "book", "description": PROMPT}),
    "llm.invocation_parameters": json.dumps({"model": "gpt-4o-mini", "temperature": 0.2, "user": PROMPT}),
    "llm.prompt_template.template": PROMPT,
}


def oi_llm(sid: str, parent: str = "", start: int = 0, **extra):
    return span(sid, parent, "ChatCompletion", start, 20, **{
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.provider": "openai", "llm.system": "openai", "llm.token_count.prompt": 120,
        "llm.token_count.completion": 30, "llm.token_count.total": 150, **OI_CONTENT, **extra})


def test_llm_spans_become_llm_steps_with_model_tokens_and_cost():
    spans = [span("a", name="agent", dur_ms=200, **{"openinference.span.kind": "AGENT"}),
             oi_llm("b", "a", 1000), oi_llm("c", "a", 2000), oi_llm("d", "a", 3000)]
    ev = map_spans(spans, ctx()).runs[0].events
    assert kinds(ev) == [("RUN_START", None)] + [("STEP", "LLM")] * 3 + [("RUN_END", None)]
    llm = ev[1]["payload"]["llm"]
    assert (llm["provider"], llm["response_model"], llm["input_tokens"], llm["output_tokens"]) == \
        ("openai", "gpt-4o-mini-2024-07-18", 120, 30)
    assert llm["cost_usd"] > 0
    end = ev[-1]["payload"]
    assert (end["llm_calls"], end["input_tokens"], end["output_tokens"], end["step_count"]) == (3, 360, 90, 3)
    assert end["cost_usd"] == pytest.approx(3 * llm["cost_usd"])


def test_a_one_span_chat_trace_is_a_run_with_one_step():
    ev = map_spans([oi_llm("a")], ctx()).runs[0].events
    assert kinds(ev) == [("RUN_START", None), ("STEP", "LLM"), ("RUN_END", None)]
    assert ev[-1]["payload"]["step_count"] == 1 and ev[-1]["payload"]["llm_calls"] == 1


@pytest.mark.parametrize("oi_kind,step_kind", [
    ("LLM", "LLM"), ("EMBEDDING", "LLM"), ("TOOL", "TOOL"), ("RETRIEVER", "RETRIEVAL"),
    ("RERANKER", "RETRIEVAL"), ("CHAIN", "CUSTOM"), ("AGENT", "HANDOFF"), ("GUARDRAIL", "GUARDRAIL"),
    ("chain", "CUSTOM"),
])
def test_span_kinds_map_to_step_kinds(oi_kind, step_kind):
    spans = [span("a", name="root", dur_ms=100, **{"openinference.span.kind": "CHAIN"}),
             span("b", "a", "child", 10, **{"openinference.span.kind": oi_kind, "tool.name": "search"})]
    (step,) = [e for e in map_spans(spans, ctx()).runs[0].events if e["kind"] == "STEP"]
    assert step["payload"]["step_kind"] == step_kind
    if step_kind == "TOOL":
        assert step["payload"]["tool"]["tool_name"] == "search"
    if oi_kind == "EMBEDDING":
        assert step["payload"]["llm"]["operation"] == "embeddings"


def test_an_http_500_on_an_llm_span_is_a_model_failure():
    err = oi_llm("b", "a", 1000, **{"http.status_code": 500})
    err.status_code, err.status_message = STATUS_ERROR, "Error code: 500"
    err.events = [("exception", {"exception.type": "openai.InternalServerError",
                                 "exception.message": "Error code: 500"})]
    spans = [span("a", name="agent", dur_ms=100, **{"openinference.span.kind": "AGENT"}), err]
    (f,) = [e["payload"] for e in map_spans(spans, ctx()).runs[0].events if e["kind"] == "FAILURE"]
    assert (f["failure_type"], f["failure_code"]) == ("MODEL", "openai.InternalServerError")
    tool = span("c", "a", "tool", 10, status=STATUS_ERROR, **{"openinference.span.kind": "TOOL",
                                                                 "http.response.status_code": 503})
    (f,) = [e["payload"] for e in map_spans([spans[0], tool], ctx()).runs[0].events if e["kind"] == "FAILURE"]
    assert (f["failure_type"], f["failure_code"]) == ("TOOL", "http_503")


def test_no_openinference_content_attribute_survives():
    spans = [oi_llm("a", **{"session.id": "s-1", "metadata": '{"team": "travel"}'})]
    for ev in map_spans(spans, ctx()).runs[0].events:
        blob = json.dumps(ev)
        assert "Jane" not in blob and "itinerary" not in blob, ev["kind"]
    step = map_spans(spans, ctx()).runs[0].events[1]
    assert step["attributes"]["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert step["attributes"]["openinference.span.kind"] == "LLM"
    assert not [k for k in step["attributes"] if k.startswith(("llm.input", "llm.output", "llm.tools",
                                                               "llm.invocation", "input.value", "output.value"))]


def test_what_was_dropped_is_counted_never_by_value():
    step = map_spans([oi_llm("a")], ctx()).runs[0].events[1]
    counts = step["redaction"]["rule_counts"]
    assert counts == {"dropped_attribute:content_key": len(OI_CONTENT) - 1}  # input.mime_type is kept
    assert "Jane" not in json.dumps(step["redaction"])
