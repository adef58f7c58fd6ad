"""The LiteLLM callback with the real litellm against a local fake model server, events
read back from the real broker and, through the real processors and sink, from chDB: sync and
async calls, tokens, cost, tool calls, failures; no prompt content stored anywhere."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price map
litellm = pytest.importorskip("litellm")

from agentstream.producer import Tracer  # noqa: E402
from agentstream.producer.instrument.litellm import AgentstreamLiteLLM  # noqa: E402
from agentstream.producer.testing import read_events  # noqa: E402
from agentstream.schemas import topic_name  # noqa: E402

from integrations_fake_server import FakeModels, failures, steps  # noqa: E402
from pipeline_stack import stack_fixtures  # noqa: E402

pytestmark = pytest.mark.integration
SECRET = "patient-id-777-secret"
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "weather",
                                           "parameters": {"type": "object", "properties": {
                                               "query": {"type": "string"}}}}}]
topic_prefix, stack = stack_fixtures()


@pytest.fixture
def callback():
    cb = AgentstreamLiteLLM()
    saved = list(litellm.callbacks)
    litellm.callbacks = [cb]
    yield cb
    litellm.callbacks = saved


def _wait_closed(cb):
    """LiteLLM reports sync calls from a worker thread: wait for the steps to close."""
    deadline = time.monotonic() + 20
    while cb._pending and time.monotonic() < deadline:
        time.sleep(0.05)


async def _acall(cb, **kw):
    await litellm.acompletion(**kw)
    # LiteLLM reports an async call from a task of the running loop: let it run
    deadline = time.monotonic() + 20
    while cb._pending and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def test_calls_in_a_run_are_llm_steps_with_tokens_cost_and_failures(
        callback, bootstrap, topic_prefix, tmp_path, unique, stack):
    t = Tracer(f"ll-{unique}", "litellm-app", "1.0", "test", bootstrap_servers=bootstrap,
               topic_prefix=topic_prefix, digest_key="k", spool_dir=str(tmp_path / "spool"),
               commands_enabled=False)
    msgs = [{"role": "user", "content": "weather? " + SECRET}]
    with FakeModels() as fake, t.run("litellm-agent") as run:
        kw = dict(api_base=fake.url + "/v1", api_key="test", num_retries=0)
        first = litellm.completion(model="openai/gpt-4.1-mini", messages=msgs, tools=TOOLS, **kw)
        assert first.choices[0].message.tool_calls[0].function.name == "weather"
        _wait_closed(callback)
        asyncio.run(_acall(callback, model="openai/gpt-4.1-mini", messages=msgs * 2, **kw))
        with pytest.raises(Exception) as bad:
            litellm.completion(model="openai/fail-400", messages=msgs, **kw)
        assert getattr(bad.value, "status_code", None) == 400
        _wait_closed(callback)
    t.flush(10)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id])[run.run_id]
    t.close(5)
    llms = sorted(steps(events, "LLM"), key=lambda s: s["started_us"])
    assert [s["status"] for s in llms] == ["OK", "OK", "ERROR"]
    assert [(s["llm"]["provider"], s["llm"]["request_model"]) for s in llms] == [
        ("openai", "gpt-4.1-mini")] * 2 + [("openai", "fail-400")]
    assert [s["llm"]["input_tokens"] for s in llms[:2]] == [10, 20]
    assert [s["llm"]["output_tokens"] for s in llms[:2]] == [7, 7]
    assert llms[0]["llm"]["tool_calls"] == ["weather"]
    assert llms[0]["llm"]["finish_reasons"] == ["tool_calls"]
    cost = sum(t.prices.cost("openai", "gpt-4.1-mini", i, 7) for i in (10, 20))
    assert abs(sum(s["llm"]["cost_usd"] for s in llms) - cost) < 1e-12
    assert llms[0]["llm"]["request_digest"] and \
        llms[0]["llm"]["request_digest"] != llms[1]["llm"]["request_digest"]
    assert failures(events) == [("MODEL", "bad_request")]
    assert SECRET not in repr(events)
    end = events[-1]["payload"]
    assert (end["llm_calls"], end["input_tokens"], end["output_tokens"]) == (3, 30, 14)
    stored = stack.assert_stored_as_emitted(t.tenant_id, events, secrets=(SECRET,))
    assert [(r["request_model"], r["status"]) for r in stored if r["step_kind"] == "LLM"] == [
        (s["llm"]["request_model"], s["status"]) for s in steps(events, "LLM")]
    assert stack.run(t.tenant_id, run.run_id)["cost_usd"] == pytest.approx(cost)


def test_calls_outside_a_run_pass_unrecorded(callback):
    with FakeModels() as fake:
        r = litellm.completion(model="openai/gpt-4.1-mini", api_base=fake.url + "/v1",
                               api_key="test", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "It is sunny."
    assert callback._pending == {}
