"""POST /v1/traces with the real OpenTelemetry SDK and OTLP/HTTP exporter: an instrumented
agent's spans land on raw as one run with the right steps, tokens, cost and failure."""
from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from agentstream.api.auth import add_key
from agentstream.api.gateway import GatewaySettings
from agentstream.api.gateway.pricing import PriceTable
from agentstream.api.gateway.server import ThreadedGateway, free_port

from raw_topic import read_raw

pytestmark = pytest.mark.integration
DIGEST_KEY = "test-digest-key"


@pytest.fixture(scope="module")
def env(bootstrap, topic_prefix, tmp_path_factory):
    path = tmp_path_factory.mktemp("otlpkeys") / "api_keys.json"
    tenant = "otel-" + uuid.uuid4().hex[:8]
    key = add_key(path, tenant, scopes=["write"])
    s = GatewaySettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                        api_keys_file=str(path), port=free_port(), args_digest_key=DIGEST_KEY)
    gw = ThreadedGateway(s).start()
    gw.wait_ready()
    yield {"gw": gw, "tenant": tenant, "key": key, "path": path}
    gw.stop()


def run_instrumented_agent(url: str, key: str) -> str:
    """A support agent instrumented by hand with GenAI semantic conventions; returns the
    trace id. Small export batches, so the run arrives over several requests."""
    provider = TracerProvider(resource=Resource.create({
        "service.name": "support-agent", "service.version": "2.1.0",
        "deployment.environment.name": "staging"}))
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces",
                                headers={"authorization": f"Bearer {key}"})
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=2,
                                                   schedule_delay_millis=50))
    tracer = provider.get_tracer("support-agent.instrumentation", "0.1")
    with tracer.start_as_current_span("invoke_agent support", kind=SpanKind.INTERNAL, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
            "gen_ai.conversation.id": "conv-42"}) as root:
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.output_tokens": 220,
                "gen_ai.usage.cache_read.input_tokens": 500,
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.input.messages": "SECRET-PROMPT my card is 4111"}):
            pass
        with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.id": "call_9", "gen_ai.tool.call.arguments": '{"order": 7}',
                "error.type": "TimeoutError"}) as tool:
            tool.record_exception(TimeoutError("order service took 30s"))
            tool.set_status(Status(StatusCode.ERROR, "order service timed out"))
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT,
                                          attributes={"db.system.name": "postgresql"}):
            pass
        with tracer.start_as_current_span("chat claude-sonnet-4", kind=SpanKind.CLIENT,
                                          attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-20250514",
                "gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 90}):
            pass
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(30_000)
    provider.shutdown()
    return trace_id


def test_otel_sdk_agent_becomes_a_run_on_raw(env, bootstrap, topic_prefix):
    trace_id = run_instrumented_agent(env["gw"].url, env["key"])
    got = [(k, v, r) for k, v, r in read_raw(bootstrap, topic_prefix, env["tenant"], 7,
                                                         run_id=trace_id)]
    assert all(k == trace_id.encode() for k, _, _ in got)
    assert not any(b"SECRET-PROMPT" in v or b"order\": 7" in v for _, v, _ in got)
    recs = sorted((r for _, _, r in got), key=lambda r: r["seq"])
    assert [r["seq"] for r in recs] == list(range(len(recs)))  # gap-free over 3+ exports
    kinds = sorted((r["kind"], r["payload"].get("step_kind")) for r in recs)
    assert kinds == sorted([("RUN_START", None), ("STEP", "LLM"), ("STEP", "TOOL"),
                            ("FAILURE", None), ("STEP", "CUSTOM"), ("STEP", "LLM"),
                            ("RUN_END", None)])
    for r in recs:
        assert (r["tenant_id"], r["agent_id"], r["agent_version"], r["environment"]) == \
            (env["tenant"], "support-agent", "2.1.0", "staging")
        assert r["sdk_version"].startswith("otlp:opentelemetry-python/")
        assert r["session_id"] == ("conv-42" if r["kind"] in ("RUN_START", "RUN_END") else None)
    by = {(r["kind"], r["payload"].get("name")): r for r in recs}
    start = by[("RUN_START", None)]
    assert start["payload"]["entrypoint"] == "support"
    prices = PriceTable()
    gpt = by[("STEP", "chat gpt-4o-mini")]["payload"]
    # the prompt travels only as the keyed request digest (span_digest.py), never as text
    assert re.fullmatch(r"[0-9a-f]{64}", gpt["llm"].pop("request_digest"))
    assert gpt["status"] == "OK" and gpt["llm"] == {
        "provider": "openai", "operation": "chat", "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 1500,
        "output_tokens": 220, "cache_read_tokens": 500, "cache_write_tokens": 0,
        "cost_usd": pytest.approx((1000 * 0.15 + 500 * 0.075 + 220 * 0.60) / 1e6),
        "finish_reasons": ["tool_calls"], "tool_calls": []}
    claude = by[("STEP", "chat claude-sonnet-4")]["payload"]["llm"]
    assert claude["cost_usd"] == pytest.approx(prices.cost(("claude-sonnet-4-20250514",), 800, 90))
    assert claude["cost_usd"] == pytest.approx((800 * 3 + 90 * 15) / 1e6)
    tool = by[("STEP", "lookup_order")]
    assert tool["payload"]["status"] == "TIMEOUT" and tool["payload"]["step_kind"] == "TOOL"
    assert tool["payload"]["tool"] == {
        "tool_name": "lookup_order", "call_id": "call_9",
        "args_digest": hmac.new(DIGEST_KEY.encode(), b'{"order":7}', hashlib.sha256).hexdigest()}
    assert "gen_ai.tool.call.arguments" not in tool["attributes"]
    assert tool["parent_step_id"] == start["attributes"]["otel.span_id"]
    fail = by[("FAILURE", None)]["payload"]
    assert fail == {"failure_type": "TOOL", "failure_code": "TimeoutError",
                    "step_id": tool["payload"]["step_id"], "message": "order service timed out",
                    "retryable": False}
    custom = by[("STEP", "SELECT orders")]
    assert custom["payload"]["llm"] is None and custom["attributes"]["db.system.name"] == "postgresql"
    end = by[("RUN_END", None)]["payload"]
    assert end["status"] == "SUCCESS" and end["duration_ms"] > 0
    assert end["started_us"] == start["ts_us"]
    # the root span ends last, so the run's own events come in the last export: RUN_END last
    assert recs[-1]["kind"] == "RUN_END" and start["seq"] < recs[-1]["seq"]
    # tokens and cost add up over the LLM steps
    steps = [r["payload"] for r in recs if r["kind"] == "STEP" and r["payload"]["llm"]]
    assert sum(s["llm"]["input_tokens"] for s in steps) == 2300
    assert sum(s["llm"]["output_tokens"] for s in steps) == 310


def otlp_json(trace_id: str, spans: list[dict]) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "ts-agent"}},
            {"key": "service.version", "value": {"stringValue": "0.9"}}]},
        "scopeSpans": [{"scope": {"name": "openllmetry"}, "spans": [
            {"traceId": trace_id, **s} for s in spans]}]}]}


def test_otlp_json_and_partial_rejection(env, bootstrap, topic_prefix):
    trace_id = uuid.uuid4().hex
    t = time.time_ns()
    body = otlp_json(trace_id, [
        {"spanId": "a" * 16, "name": "agent run", "kind": 1,
         "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 5_000_000),
         "status": {"code": 2, "message": "budget exceeded"}},
        {"spanId": "b" * 16, "parentSpanId": "a" * 16, "name": "chat gpt-4o",
         "startTimeUnixNano": str(t + 1000), "endTimeUnixNano": str(t + 2_000_000),
         "attributes": [
             {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
             {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
             {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "100"}},
             {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": 10}},
             {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.5}}]},
        {"spanId": "0" * 16, "name": "broken", "startTimeUnixNano": str(t),
         "endTimeUnixNano": str(t)},
    ])
    r = httpx.post(env["gw"].url + "/v1/traces", json=body, timeout=60,
                   headers={"authorization": f"Bearer {env['key']}"})
    assert r.status_code == 200, r.text
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    recs = sorted((rec for _, _, rec in read_raw(bootstrap, topic_prefix, env["tenant"], 4,
                                                      run_id=trace_id)), key=lambda x: x["seq"])
    assert [x["kind"] for x in recs] == ["RUN_START", "STEP", "FAILURE", "RUN_END"]
    llm = recs[1]["payload"]["llm"]
    assert (llm["provider"], llm["input_tokens"], llm["output_tokens"], llm["cost_usd"]) == \
        ("openai", 100, 10, 0.5)
    assert recs[2]["payload"]["failure_type"] == "ORCHESTRATION"
    assert recs[2]["payload"]["message"] == "budget exceeded"
    assert recs[3]["payload"]["status"] == "FAILURE" and recs[3]["payload"]["cost_usd"] == 0.5
    assert recs[0]["agent_id"] == "ts-agent" and recs[0]["attributes"]["otel.scope"] == "openllmetry"


@pytest.mark.parametrize("ctype,body,status,code", [
    ("application/x-protobuf", b"\xff\xff\xff not protobuf", 400, "malformed_otlp"),
    ("application/json", b"{nope", 400, "malformed_json"),
    ("application/json", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
     400, "malformed_otlp"),
    ("text/plain", b"hello", 415, "unsupported_media_type"),
])
def test_otlp_bad_requests(env, ctype, body, status, code):
    r = httpx.post(env["gw"].url + "/v1/traces", content=body, timeout=60,
                   headers={"authorization": f"Bearer {env['key']}", "content-type": ctype})
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_otlp_needs_a_write_key(env):
    r = httpx.post(env["gw"].url + "/v1/traces", content=b"", timeout=60,
                   headers={"authorization": "Bearer ask_unknown_unknown_unknown",
                            "content-type": "application/x-protobuf"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    read_only = add_key(env["path"], env["tenant"], scopes=["read"])
    r = httpx.post(env["gw"].url + "/v1/traces", content=b"", timeout=60,
                   headers={"authorization": f"Bearer {read_only}",
                            "content-type": "application/x-protobuf"})
    assert r.status_code == 403
