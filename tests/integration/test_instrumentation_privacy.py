"""The real instrumentation libraries, end to end: ``openinference-instrumentation-openai`` and
``opentelemetry-instrumentation-openai-v2`` drive the ``openai`` client against a local fake
OpenAI server and export OTLP to the gateway -> raw -> processors -> events -> sink -> chDB ->
the query API. Both record prompts and completions in their spans (content capture on); none of
it may be stored. Tokens, cost and the failed call (an HTTP 500) must come out right."""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_gateway_e2e import stack  # noqa: F401 - same folder: the whole pipeline as a fixture

pytestmark = pytest.mark.integration

PROMPT_MARK = "zanzibar-prompt-7731"
COMPLETION_MARK = "quokka-completion-4412"
TOOL_MARK = "heliotrope-schema-5150"


class FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self):  # http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if body["model"] == "boom":
            self._send(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
            return
        self._send(200, {
            "id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": 1_700_000_000,
            "model": body["model"] + "-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"{COMPLETION_MARK}: done"}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}})

    def _send(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fake_openai():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def _agent_run(instrumentor, stack, fake_openai) -> tuple[str, str]:
    """An agent span with three chat calls (tools offered, one call failing with a 500): the run
    id, and the spans' attributes as exported (to prove the content was there to leak)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "travel-agent",
                                                        "service.version": "1.0"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=stack["gw"] + "/v1/traces", headers={"authorization": f"Bearer {stack['key']}"})))
    seen = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(seen))
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=fake_openai, api_key="sk-test-not-a-real-key", max_retries=0)
        tools = [{"type": "function", "function": {"name": "book", "description": TOOL_MARK,
                                                   "parameters": {"type": "object", "properties": {}}}}]
        tracer = provider.get_tracer("travel-agent")
        with tracer.start_as_current_span("travel-agent", attributes={
                "openinference.span.kind": "AGENT", "gen_ai.operation.name": "invoke_agent"}) as root:
            for i, model in enumerate(("gpt-4o-mini", "gpt-4o-mini", "boom")):
                try:
                    client.chat.completions.create(model=model, tools=tools, messages=[
                        {"role": "system", "content": f"You are {PROMPT_MARK} planner"},
                        {"role": "user", "content": f"{PROMPT_MARK} trip {i} for jane.roe@example.com"}])
                except openai.InternalServerError:
                    pass
            run_id = format(root.get_span_context().trace_id, "032x")
    finally:
        instrumentor.uninstrument()
    assert provider.force_flush(30_000)
    provider.shutdown()
    return run_id, json.dumps([dict(sp.attributes or {}) for sp in seen.get_finished_spans()], default=str)


def _get_run(stack, run_id: str, llm_calls: int) -> dict:
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=stack["api"], headers={"Authorization": f"Bearer {stack['key']}"},
                      timeout=10) as c:
        while True:
            r = c.get(f"/v1/runs/{run_id}")
            if r.status_code == 200 and r.json()["run"].get("llm_calls") == llm_calls \
                    and r.json()["failures"]:
                return r.json()
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} incomplete: {r.status_code} {r.text[:500]}")
            time.sleep(0.25)


def _stored_text(chdb_client, tenant: str, run_id: str) -> str:
    rows = chdb_client.query("SELECT * FROM events WHERE tenant_id = {t:String} AND run_id = {r:String}",
                             parameters={"t": tenant, "r": run_id}).result_rows
    assert rows
    return json.dumps([list(map(str, r)) for r in rows])


def _check(stack, chdb_client, run_id: str) -> dict:
    body = _get_run(stack, run_id, llm_calls=3)
    run = body["run"]
    assert run["input_tokens"] == 240 and run["output_tokens"] == 60  # the 500 used no tokens
    assert run["cost_usd"] == pytest.approx(2 * (120 * 0.15 + 30 * 0.60) / 1e6)
    assert [s["step_kind"] for s in body["steps"]] == ["LLM", "LLM", "LLM"]
    assert [f["failure_type"] for f in body["failures"]] == ["MODEL"]
    stored = _stored_text(chdb_client, stack["tenant"], run_id)
    for mark in (PROMPT_MARK, COMPLETION_MARK, TOOL_MARK, "jane.roe"):
        assert mark not in stored, f"{mark} was stored"
    return body


def test_openinference_instrumentation_stores_no_content(stack, fake_openai, chdb_client):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    run_id, exported = _agent_run(OpenAIInstrumentor(), stack, fake_openai)
    assert PROMPT_MARK in exported and COMPLETION_MARK in exported and TOOL_MARK in exported
    _check(stack, chdb_client, run_id)


def test_opentelemetry_openai_v2_with_content_capture_stores_no_content(stack, fake_openai, chdb_client,
                                                                        monkeypatch):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    # the worst case: the instrumentation told to put messages on its spans
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability as stability

    # the opt-in is read once per process; earlier imports may have read it before the env was set
    monkeypatch.setattr(stability, "_initialized", False)
    run_id, exported = _agent_run(OpenAIInstrumentor(), stack, fake_openai)
    assert PROMPT_MARK in exported, "content capture did not reach the spans: the test would prove nothing"
    _check(stack, chdb_client, run_id)
