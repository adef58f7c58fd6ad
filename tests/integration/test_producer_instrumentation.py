"""Auto-instrumentation with the real openai/anthropic clients over a mocked HTTP transport
(no network), and the OTel span processor; events read back from the real broker."""
from __future__ import annotations

import asyncio
import json

import pytest

from agentstream.producer import Budget, BudgetExceeded, Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name

pytestmark = pytest.mark.integration
openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
httpx2 = pytest.importorskip("httpx2")

CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "SECRET ANSWER", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 40}}}
CHUNKS = [
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "SECRET"},
                  "finish_reason": None}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
     "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}},
]
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant",
           "model": "claude-sonnet-4-20250514",
           "content": [{"type": "text", "text": "SECRET ANSWER"},
                       {"type": "tool_use", "id": "tu_1", "name": "lookup_order",
                        "input": {"order": "o-1"}}],
           "stop_reason": "tool_use", "stop_sequence": None,
           "usage": {"input_tokens": 50, "output_tokens": 10, "cache_read_input_tokens": 100,
                     "cache_creation_input_tokens": 20}}
ANTHROPIC_EVENTS = [
    ("message_start", {"type": "message_start", "message": {
        **MESSAGE, "content": [], "stop_reason": None,
        "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "SECRET"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                          "stop_sequence": None},
                       "usage": {"output_tokens": 15}}),
    ("message_stop", {"type": "message_stop"}),
]


def _handler(request):
    body = json.loads(request.content or b"{}")
    if body.get("model") == "rate-limited":
        return httpx2.Response(429, json={"error": {"message": "slow down", "type": "rate"}})
    if request.url.path.endswith("/chat/completions"):
        if body.get("stream"):
            sse = "".join(f"data: {json.dumps(c)}\n\n" for c in CHUNKS) + "data: [DONE]\n\n"
            return httpx2.Response(200, content=sse.encode(),
                                   headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, json=CHAT)
    if request.url.path.endswith("/messages"):
        if body.get("stream"):
            sse = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in ANTHROPIC_EVENTS)
            return httpx2.Response(200, content=sse.encode(),
                                   headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, json=MESSAGE)
    return httpx2.Response(404, json={"error": "no route"})


@pytest.fixture
def tracer(bootstrap, topic_prefix, tmp_path, unique):
    t = Tracer(f"tenant-{unique}", "llm-agent", "3.0", "test", bootstrap_servers=bootstrap,
               topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"),
               commands_enabled=False)
    yield t
    t.close(5)


@pytest.fixture
def instrumented():
    from agentstream.producer.instrument.anthropic import instrument_anthropic
    from agentstream.producer.instrument.openai import instrument_openai

    undo = [instrument_openai(), instrument_anthropic()]
    yield
    for u in undo:
        u()


def _events(bootstrap, topic_prefix, run_id):
    return read_events(bootstrap, topic_name("raw", topic_prefix), [run_id], timeout=30)[run_id]


def _llm_steps(events):
    return [e for e in events if e["kind"] == "STEP" and e["payload"]["step_kind"] == "LLM"]


def test_openai_sync_async_stream_and_errors(tracer, instrumented, bootstrap, topic_prefix):
    client = openai.OpenAI(api_key="sk-test", base_url="http://mock/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(_handler)))

    async def async_calls():
        aclient = openai.AsyncOpenAI(
            api_key="sk-test", base_url="http://mock/v1", max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_handler)))
        await aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user",
                                                                         "content": "hi"}])
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}])
        return [c async for c in stream]

    with tracer.run("openai-agent") as run:
        resp = client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "my email is a@b.com"}])
        assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]))
        assert len(chunks) == 3
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="rate-limited", messages=[])
        assert len(asyncio.run(async_calls())) == 3
    # outside a run the client is untouched
    assert client.chat.completions.create(model="gpt-4o", messages=[]).id == "chatcmpl-1"
    assert tracer.flush(10)
    events = _events(bootstrap, topic_prefix, run.run_id)
    steps = _llm_steps(events)
    assert len(steps) == 5
    sync, stream, failed, asynchronous, astream = (s["payload"] for s in steps)
    llm = sync["llm"]
    assert (llm["provider"], llm["request_model"], llm["response_model"]) == \
        ("openai", "gpt-4o", "gpt-4o-2024-08-06")
    assert (llm["input_tokens"], llm["output_tokens"], llm["cache_read_tokens"]) == (100, 20, 40)
    assert llm["tool_calls"] == ["get_weather"] and llm["finish_reasons"] == ["tool_calls"]
    assert llm["cost_usd"] == pytest.approx((60 * 2.5 + 40 * 1.25 + 20 * 10) / 1e6)
    assert stream["llm"]["input_tokens"] == 30 and stream["llm"]["output_tokens"] == 7
    assert stream["llm"]["finish_reasons"] == ["stop"]
    assert failed["status"] == "ERROR"
    assert asynchronous["llm"]["input_tokens"] == 100 and astream["llm"]["output_tokens"] == 7
    failure = next(e for e in events if e["kind"] == "FAILURE")
    assert failure["payload"]["failure_code"] == "rate_limited"
    assert failure["payload"]["step_id"] == failed["step_id"]
    assert failure["payload"]["retryable"] is True
    assert steps[2]["attributes"]["http.response.status_code"] == "429"
    # no content by default: neither prompts nor outputs travel
    blob = json.dumps(events, default=str)
    assert "SECRET" not in blob and "a@b.com" not in blob and "Paris" not in blob
    assert events[-1]["payload"]["llm_calls"] == 5


def test_anthropic_sync_async_stream_and_budget(tracer, instrumented, bootstrap, topic_prefix):
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://mock", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_handler)))
    aclient = anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url="http://mock", max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_handler)))
    sent = []

    async def async_calls():
        await aclient.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[])
        stream = await aclient.messages.create(model="claude-sonnet-4", max_tokens=10,
                                               messages=[], stream=True)
        return [e async for e in stream]

    with pytest.raises(BudgetExceeded):
        with tracer.run("claude-agent", budget=Budget(max_model_calls=4)) as run:
            msg = client.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[
                {"role": "user", "content": "hi"}])
            assert msg.content[1].name == "lookup_order"
            events = list(client.messages.create(model="claude-sonnet-4", max_tokens=10,
                                                 messages=[], stream=True))
            assert events[-1].type == "message_stop"
            assert len(asyncio.run(async_calls())) == 6
            sent.append("fifth")  # the fifth call must be refused before any request
            client.messages.create(model="claude-sonnet-4", max_tokens=10, messages=[])
    assert tracer.flush(10)
    events = _events(bootstrap, topic_prefix, run.run_id)
    steps = [s["payload"]["llm"] for s in _llm_steps(events)]
    assert len(steps) == 4
    sync, stream, asynchronous, astream = steps
    # Anthropic's input_tokens exclude cache tokens; the SDK reports the OTel total
    assert (sync["input_tokens"], sync["cache_read_tokens"], sync["cache_write_tokens"]) == \
        (170, 100, 20)
    assert sync["tool_calls"] == ["lookup_order"] and sync["finish_reasons"] == ["tool_use"]
    assert sync["cost_usd"] == pytest.approx((50 * 3 + 100 * 0.3 + 20 * 3.75 + 10 * 15) / 1e6)
    assert (stream["input_tokens"], stream["output_tokens"]) == (25, 15)
    assert stream["finish_reasons"] == ["end_turn"]
    assert asynchronous["input_tokens"] == 170 and astream["output_tokens"] == 15
    assert events[-1]["payload"]["outcome"] == "budget_stopped"
    assert "SECRET" not in json.dumps(events, default=str)


def test_otel_genai_spans_become_events(tracer, bootstrap, topic_prefix):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider

    from agentstream.producer.instrument.otel import AgentstreamSpanProcessor

    provider = TracerProvider()
    proc = AgentstreamSpanProcessor(tracer)
    provider.add_span_processor(proc)
    otel = provider.get_tracer("agent")
    with otel.start_as_current_span("invoke_agent support") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "support")
        root.set_attribute("gen_ai.conversation.id", "conv-9")
        with otel.start_as_current_span("chat gpt-4o") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o")
            span.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            span.set_attribute("gen_ai.usage.input_tokens", 1000)
            span.set_attribute("gen_ai.usage.output_tokens", 100)
            span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
            span.set_attribute("gen_ai.input.messages", "SECRET PROMPT")
        with otel.start_as_current_span("execute_tool get_weather") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", "get_weather")
            span.set_attribute("gen_ai.tool.call.id", "call_1")
            span.set_attribute("gen_ai.tool.call.arguments", "{\"city\": \"Paris\"}")
        with otel.start_as_current_span("http GET") as span:
            span.set_attribute("http.request.method", "GET")
    provider.shutdown()
    assert tracer.flush(10)
    run_id = proc.last_run_id
    events = _events(bootstrap, topic_prefix, run_id)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "STEP", "STEP", "RUN_END"]
    assert events[0]["session_id"] == "conv-9"
    assert events[0]["payload"]["entrypoint"] == "support"
    llm, tool, other = (e["payload"] for e in events[1:4])
    assert llm["step_kind"] == "LLM" and llm["llm"]["input_tokens"] == 1000
    assert llm["llm"]["cost_usd"] == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert tool["step_kind"] == "TOOL" and tool["tool"]["call_id"] == "call_1"
    assert len(tool["tool"]["args_digest"]) == 64
    assert other["step_kind"] == "CUSTOM" and other["name"] == "http GET"
    assert events[-1]["payload"]["input_tokens"] == 1000
    blob = json.dumps(events, default=str)
    assert "SECRET" not in blob and "Paris" not in blob
