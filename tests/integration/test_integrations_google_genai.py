"""google-genai instrumentation with the real client against a local fake Gemini server,
events read back from the real broker and, through the real processors and sink, from chDB: sync,
async and streamed (both) calls, tokens, cost, a failed call, and a budget refusing a call before
the request; no prompt content stored anywhere."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("google.genai")

from google import genai
from google.genai import types

from agentstream.producer import BudgetExceeded
from agentstream.producer.instrument.google_genai import instrument_google_genai
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name

from integrations_fake_server import FakeModels, Tracers, failures, steps
from pipeline_stack import stack_fixtures

pytestmark = pytest.mark.integration
SECRET = "gemini-secret-5150"
MODEL = "gemini-2.0-flash"
topic_prefix, stack = stack_fixtures()


@pytest.fixture
def instrumented():
    undo = instrument_google_genai()
    yield
    undo()


@pytest.fixture
def tracer(bootstrap, topic_prefix, tmp_path, unique):
    with Tracers(bootstrap, topic_prefix, tmp_path, f"gg-{unique}", "genai-app") as tracers:
        yield tracers


def _client(url):
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=url))


def _events(t, bootstrap, topic_prefix, run_id):
    t.flush(10)
    return read_events(bootstrap, topic_name("raw", topic_prefix), [run_id])[run_id]


def test_calls_are_llm_steps_with_tokens_cost_and_failures(instrumented, tracer, bootstrap,
                                                           topic_prefix, stack):
    t = tracer()
    with FakeModels() as fake, t.run("gemini-agent") as run:
        client = _client(fake.url)
        r = client.models.generate_content(model=MODEL, contents="weather? " + SECRET)
        assert r.text == "Sunny."
        chunks = list(client.models.generate_content_stream(
            model=MODEL, contents=["a " + SECRET, "b"]))
        assert "".join(c.text or "" for c in chunks) == "SunSunny."

        async def acall():
            await client.aio.models.generate_content(model=MODEL, contents=["x", "y", "z"])
            return [c async for c in await client.aio.models.generate_content_stream(
                model=MODEL, contents=["p", "q"])]
        assert len(asyncio.run(acall())) == 2
        with pytest.raises(genai.errors.ClientError):
            client.models.generate_content(model="fail-400", contents="x")
    events = _events(t, bootstrap, topic_prefix, run.run_id)
    llms = steps(events, "LLM")
    assert [s["status"] for s in llms] == ["OK", "OK", "OK", "OK", "ERROR"]
    assert {s["llm"]["provider"] for s in llms} == {"gcp.gemini"}
    assert [s["llm"]["input_tokens"] for s in llms[:4]] == [10, 20, 30, 20]
    assert [s["llm"]["output_tokens"] for s in llms[:4]] == [7, 7, 7, 7]
    assert llms[0]["llm"]["finish_reasons"] == ["STOP"]
    cost = sum(t.prices.cost("gcp.gemini", MODEL, i, 7) for i in (10, 20, 30, 20))
    assert cost > 0 and abs(sum(s["llm"]["cost_usd"] for s in llms) - cost) < 1e-12
    assert len({s["llm"]["request_digest"] for s in llms}) == 5
    assert failures(events) == [("MODEL", "bad_request")]
    assert SECRET not in repr(events)
    stored = stack.assert_stored_as_emitted(t.tenant_id, events, secrets=(SECRET,))
    assert {r["provider"] for r in stored if r["step_kind"] == "LLM"} == {"gcp.gemini"}
    assert stack.run(t.tenant_id, run.run_id)["cost_usd"] == pytest.approx(cost)


def test_a_token_budget_refuses_the_call_before_the_request(instrumented, tracer, bootstrap,
                                                            topic_prefix, stack):
    t = tracer(max_tokens=10)
    with FakeModels() as fake:
        client = _client(fake.url)
        with pytest.raises(BudgetExceeded), t.run("gemini-agent") as run:
            client.models.generate_content(model=MODEL, contents="one")  # 17 tokens used
            client.models.generate_content(model=MODEL, contents="two")
        served = len(fake.requests)
    assert served == 1
    events = _events(t, bootstrap, topic_prefix, run.run_id)
    assert len(steps(events, "LLM")) == 1
    assert ("BUDGET", "tokens_budget_exceeded") in failures(events)
    stored = stack.assert_stored_as_emitted(t.tenant_id, events)
    assert ("BUDGET", "tokens_budget_exceeded") in [(r["failure_type"], r["failure_code"]) for r in stored]


def test_outside_a_run_calls_pass_untouched(instrumented):
    with FakeModels() as fake:
        assert _client(fake.url).models.generate_content(model=MODEL, contents="x").text == \
            "Sunny."
