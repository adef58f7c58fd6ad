"""LLM steps carry a keyed digest of the request (model, messages, tools), never the content, so
the processors can tell the same prompt sent again from a new turn of a conversation."""
from __future__ import annotations

import json

import pytest

from agentstream.producer.step import request_canonical
from step_support import drain, make_tracer

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

CHAT = {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "SECRET ANSWER"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


@pytest.fixture
def client():
    from agentstream.producer.instrument.openai import instrument_openai

    undo = instrument_openai()
    yield openai.OpenAI(api_key="sk-test", base_url="http://mock/v1", max_retries=0,
                        http_client=httpx2.Client(transport=httpx2.MockTransport(
                            lambda r: httpx2.Response(200, json=CHAT))))
    undo()


def _digests(events):
    return [e["payload"]["llm"]["request_digest"] for e in events
            if e["kind"] == "STEP" and e["payload"]["step_kind"] == "LLM"]


def test_instrumented_calls_digest_model_messages_and_tools(tmp_path, client):
    tracer = make_tracer(tmp_path, True, digest_key="k1")
    ask = [{"role": "user", "content": "PRIVATE PROMPT"}]
    tool = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with tracer.run("r"):
        client.chat.completions.create(model="gpt-4o", messages=ask)
        client.chat.completions.create(model="gpt-4o", messages=[dict(m) for m in ask])  # same again
        client.chat.completions.create(model="gpt-4o", messages=ask + [{"role": "user", "content": "more"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=ask)
        client.chat.completions.create(model="gpt-4o", messages=ask, tools=tool)
    events = drain(tracer)
    d = _digests(events)
    assert len(d) == 5 and d[0] == d[1] and len(set(d)) == 4
    assert all(len(x) == 64 for x in d)
    blob = json.dumps(events, default=str)
    assert "PRIVATE PROMPT" not in blob and "SECRET ANSWER" not in blob


def test_manual_steps_record_the_request_and_the_key_matters(tmp_path):
    t1, t2 = make_tracer(tmp_path, False, digest_key="k1"), make_tracer(tmp_path / "b", False, digest_key="k2")
    for t in (t1, t2):
        with t.run("r") as run:
            with run.llm_step("openai", "gpt-4o") as s:
                s.record_request("gpt-4o", [{"role": "user", "content": "x"}])
                s.record_llm("openai", "gpt-4o", 5, 5)
            with run.llm_step("openai", "gpt-4o") as s:  # record_llm first, then the request
                s.record_llm("openai", "gpt-4o", 5, 5)
                s.record_request("gpt-4o", [{"role": "user", "content": "x"}])
            with run.llm_step("openai", "gpt-4o") as s:  # no request recorded: unknown (null)
                s.record_llm("openai", "gpt-4o", 5, 5)
    a, b = _digests(drain(t1)), _digests(drain(t2))
    assert a[0] == a[1] and a[2] is None and b[0] != a[0]


def test_the_canonical_request_shape():
    assert request_canonical("m", [1], None) == {"model": "m", "messages": [1], "tools": []}


def test_the_llm_decorator_digests_the_bound_arguments(tmp_path):
    tracer = make_tracer(tmp_path, True, digest_key="k1")

    @tracer.llm(provider="openai", model="gpt-4o")
    def ask(prompt, temperature=0.0):
        return None

    with tracer.run("r"):
        ask("PRIVATE same")
        ask(prompt="PRIVATE same")
        ask("PRIVATE other")
    events = drain(tracer)
    d = [e["payload"]["llm"]["request_digest"] for e in events
         if e["kind"] == "STEP" and e["payload"]["llm"] is not None]
    assert len(d) == 3 and d[0] == d[1] != d[2]
    assert "PRIVATE" not in json.dumps(events, default=str)
