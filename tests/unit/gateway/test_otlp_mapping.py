"""The OTLP -> agentstream mapping, span by span, without a broker."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from agentstream.api.gateway.otlp_decode import STATUS_ERROR, OtlpSpan
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.pricing import PriceTable
from agentstream.api.gateway.validation import EventValidator

TRACE = "0af7651916cd43dd8448eb211c80319c"
RES = {"service.name": "planner", "service.version": "3.0", "deployment.environment": "prod",
       "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "go",
       "telemetry.sdk.version": "1.30.0"}
T = 1_760_000_000_000_000_000


def span(sid: str, parent: str = "", name: str = "s", start: int = 0, dur_ms: float = 10,
         status: int = 0, msg: str = "", events=None, **attrs) -> OtlpSpan:
    return OtlpSpan(TRACE, sid * 16 if len(sid) == 1 else sid, parent * 16 if len(parent) == 1 else parent,
                    name, T + start, T + start + int(dur_ms * 1e6), attrs, status, msg,
                    events or [], RES, "scope")


def ctx(**kw) -> MappingContext:
    return MappingContext("tenant-1", 123, PriceTable().cost, **kw)


def kinds(events):
    return [(e["kind"], e["payload"].get("step_kind")) for e in events]


def test_agent_run_with_llm_tool_custom_and_failure():
    spans = [
        span("a", name="invoke_agent planner", dur_ms=100, **{
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}),
        span("b", "a", "chat gpt-4o", 1000, 20, **{
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50, "gen_ai.input.messages": "PROMPT"}),
        span("c", "a", "execute_tool search", 2000, 5, STATUS_ERROR, "boom", **{
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": {"q": "x"}}),
        span("d", "a", "GET /x", 3000, 1, **{"http.request.method": "GET"}),
    ]
    out = map_spans(spans, ctx(args_digest_key=b"k"))
    assert out.rejected == [] and len(out.runs) == 1
    ev = out.runs[0].events
    assert kinds(ev) == [("RUN_START", None), ("STEP", "LLM"), ("STEP", "TOOL"),
                         ("FAILURE", None), ("STEP", "CUSTOM"), ("RUN_END", None)]
    assert [e["seq"] for e in ev] == list(range(6))
    assert {e["run_id"] for e in ev} == {TRACE}
    assert {(e["agent_id"], e["agent_version"], e["environment"]) for e in ev} == {("planner", "3.0", "prod")}
    assert ev[0]["sdk_version"] == "otlp:opentelemetry-go/1.30.0"
    llm = ev[1]["payload"]["llm"]
    assert llm["cost_usd"] == pytest.approx((100 * 2.5 + 50 * 10) / 1e6)
    assert "gen_ai.input.messages" not in ev[1]["attributes"]
    tool = ev[2]["payload"]
    assert tool["status"] == "ERROR" and tool["tool"]["args_digest"] == hmac.new(
        b"k", b'{"q":"x"}', hashlib.sha256).hexdigest()
    assert ev[3]["payload"]["failure_type"] == "TOOL" and ev[3]["payload"]["message"] == "boom"
    assert ev[3]["payload"]["step_id"] == "c" * 16
    assert ev[4]["attributes"]["http.request.method"] == "GET"
    end = ev[5]["payload"]
    assert (end["status"], end["step_count"], end["llm_calls"], end["input_tokens"]) == \
        ("SUCCESS", 3, 1, 100)
    assert end["duration_ms"] == 100.0


def test_every_mapped_event_passes_the_contract_validator():
    v = EventValidator()
    spans = [span("a", status=STATUS_ERROR, msg="x"),
             span("b", "a", **{"gen_ai.operation.name": "create_agent"}),
             span("c", "a", **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "asst_1"}),
             span("e", "a", **{"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "m"})]
    for run in map_spans(spans, ctx()).runs:
        for e in run.events:
            rec, issues = v.validate(e, "tenant-1")
            assert issues == [], (e["kind"], issues)


def test_operations_map_to_step_kinds():
    ev = map_spans([
        span("b", "a", **{"gen_ai.operation.name": "create_agent"}),
        span("c", "a", start=1, **{"gen_ai.operation.name": "invoke_agent",
                                   "gen_ai.agent.id": "asst_1"}),
        span("e", "a", start=2, **{"gen_ai.operation.name": "embeddings",
                                   "gen_ai.request.model": "text-embedding-3-small",
                                   "gen_ai.usage.input_tokens": 1000}),
        span("f", "a", start=3, **{"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-5-haiku",
                                   "gen_ai.usage.prompt_tokens": 10}),  # pre-operation.name spans
    ], ctx()).runs[0].events
    assert kinds(ev) == [("STEP", "CUSTOM"), ("STEP", "HANDOFF"), ("STEP", "LLM"), ("STEP", "LLM")]
    assert ev[1]["payload"]["handoff"]["to_agent_id"] == "asst_1"
    assert ev[2]["payload"]["llm"]["operation"] == "embeddings"
    assert ev[2]["payload"]["llm"]["cost_usd"] == pytest.approx(1000 * 0.02 / 1e6)
    assert ev[3]["payload"]["llm"]["provider"] == "anthropic"
    assert ev[3]["payload"]["llm"]["input_tokens"] == 10


def test_root_llm_span_is_run_and_step_and_root_error_fails_the_run():
    ev = map_spans([span("a", status=STATUS_ERROR, events=[
        ("exception", {"exception.type": "RateLimitError", "exception.message": "429"})], **{
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "unknown-model",
        "gen_ai.usage.input_tokens": 5})], ctx()).runs[0].events
    assert kinds(ev) == [("RUN_START", None), ("STEP", "LLM"), ("FAILURE", None), ("RUN_END", None)]
    assert ev[1]["payload"]["llm"]["cost_usd"] == 0.0  # no price known
    assert ev[2]["payload"] == {"failure_type": "MODEL", "failure_code": "RateLimitError",
                                "step_id": "a" * 16, "message": "429", "retryable": False}
    assert ev[3]["payload"]["status"] == "FAILURE" and ev[3]["payload"]["outcome"] == "error"


def test_timeout_status_and_span_cost_attribute_wins():
    ev = map_spans([span("b", "a", status=STATUS_ERROR, **{
        "error.type": "httpx.ReadTimeout", "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.cost": 1.25})], ctx()).runs[0].events
    assert ev[0]["payload"]["status"] == "TIMEOUT"
    assert ev[0]["payload"]["llm"]["cost_usd"] == 1.25
    assert ev[1]["payload"]["failure_code"] == "httpx.ReadTimeout"


def test_event_ids_are_stable_per_tenant_span_and_kind():
    spans = [span("a"), span("b", "a")]
    one = [e["event_id"] for r in map_spans(spans, ctx()).runs for e in r.events]
    two = [e["event_id"] for r in map_spans(spans, ctx()).runs for e in r.events]
    other = [e["event_id"] for r in map_spans(spans, MappingContext("t2", 1)).runs for e in r.events]
    assert one == two and len(set(one)) == len(one) and not set(one) & set(other)


def test_invalid_spans_are_rejected_not_dropped_silently():
    bad = [OtlpSpan("0" * 32, "a" * 16, "", "x", T, T + 1),
           OtlpSpan(TRACE, "", "", "x", T, T + 1),
           OtlpSpan(TRACE, "b" * 16, "", "x", T + 5, T)]
    out = map_spans(bad, ctx())
    assert out.runs == [] and [r for _, r in out.rejected] == [
        "invalid trace id", "invalid span id", "span times missing or end before start"]


def test_attributes_are_bounded_and_content_free():
    attrs = {f"k{i:02d}": i for i in range(50)}
    attrs.update({"gen_ai.prompt.0.content": "P", "gen_ai.completion.0.content": "C",
                  "long": "x" * 1000, "arr": [1, 2]})
    ev = map_spans([span("b", "a", **attrs)], ctx()).runs[0].events[0]
    a = ev["attributes"]
    assert len(a) <= 33 and a["agentstream.attributes_truncated"] == "true"
    assert not any(k.startswith(("gen_ai.prompt", "gen_ai.completion")) for k in a)
    # a long free value is not a short scalar: dropped, not cut to a 256-char piece of a prompt;
    # a known metadata key is kept, bounded
    ev = map_spans([span("b", "a", long="x" * 1000, arr=[1, 2], **{"gen_ai.response.id": "r" * 1000})],
                   ctx()).runs[0].events[0]
    assert "long" not in ev["attributes"] and ev["attributes"]["arr"] == "[1,2]"
    assert len(ev["attributes"]["gen_ai.response.id"]) == 256
    assert all(isinstance(v, str) for v in ev["attributes"].values())
