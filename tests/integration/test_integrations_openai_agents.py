"""The OpenAI Agents SDK tracing processor with the real SDK against a local fake model
server, events read back from the real broker and, through the real processors and sink, from
chDB: agents, a handoff, a function tool, a guardrail that trips, tokens, cost and a failed
model call; no prompt or tool content stored anywhere."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("agents")

from agents import (Agent, GuardrailFunctionOutput, InputGuardrailTripwireTriggered,
                    OpenAIChatCompletionsModel, Runner, function_tool, input_guardrail,
                    set_trace_processors)
from openai import AsyncOpenAI

from agentstream.producer import BudgetExceeded, Tracer
from agentstream.producer.instrument.openai_agents import AgentstreamProcessor
from agentstream.schemas import topic_name

from integrations_fake_server import FakeModels, failures, steps, tenant_runs
from pipeline_stack import stack_fixtures

pytestmark = pytest.mark.integration
SECRET = "acct-9911-secret"
topic_prefix, stack = stack_fixtures()


@function_tool
def lookup(query: str) -> str:
    """Looks up a billing record."""
    return "balance 12 EUR"


@input_guardrail
async def content_gate(ctx, agent, user_input):
    return GuardrailFunctionOutput(output_info=None,
                                   tripwire_triggered="forbidden" in str(user_input))


def _agents(url, model="gpt-4.1-mini"):
    client = AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    m = OpenAIChatCompletionsModel(model=model, openai_client=client)
    billing = Agent(name="billing", instructions="bill", model=m, tools=[lookup])
    return Agent(name="triage", instructions="route", model=m, handoffs=[billing],
                 input_guardrails=[content_gate])


@pytest.fixture
def tracer(bootstrap, topic_prefix, tmp_path, unique):
    t = Tracer(f"oa-{unique}", "agents-app", "1.0", "test", bootstrap_servers=bootstrap,
               topic_prefix=topic_prefix, digest_key="k", spool_dir=str(tmp_path / "spool"),
               commands_enabled=False)
    set_trace_processors([AgentstreamProcessor(t)])  # no exporter to the network
    yield t
    t.close(5)
    set_trace_processors([])


def _runs(t, bootstrap, topic_prefix, n):
    t.flush(10)
    return tenant_runs(bootstrap, topic_name("raw", topic_prefix), t.tenant_id, n,
                       forbidden=SECRET.encode())


def test_handoff_tool_tokens_and_cost(tracer, bootstrap, topic_prefix, stack):
    with FakeModels() as fake:
        result = asyncio.run(Runner.run(_agents(fake.url), f"what do I owe? {SECRET}"))
    assert result.final_output == "It is sunny."
    (events,) = _runs(tracer, bootstrap, topic_prefix, 1).values()
    assert events[0]["payload"]["entrypoint"] == "Agent workflow"
    custom = [s["name"] for s in steps(events, "CUSTOM")]
    assert "agent triage" in custom and "agent billing" in custom
    (handoff,) = steps(events, "HANDOFF")
    assert handoff["handoff"]["to_agent_id"] == "billing"
    (tool,) = steps(events, "TOOL")
    assert tool["tool"]["tool_name"] == "lookup"
    assert tool["tool"]["args_digest"] == tracer._policy.digest({"query": "weather in Oslo"})
    llms = steps(events, "LLM")
    # triage: 2 messages (system, user); billing: system, user, call, result, call, result
    assert [s["llm"]["input_tokens"] for s in llms] == [20, 40, 60]
    assert all(s["llm"]["output_tokens"] == 7 for s in llms)
    cost = sum(tracer.prices.cost("openai", "gpt-4.1-mini", i, 7) for i in (20, 40, 60))
    assert abs(sum(s["llm"]["cost_usd"] for s in llms) - cost) < 1e-12
    guard = steps(events, "GUARDRAIL")
    assert [(g["name"], g["status"]) for g in guard] == [("content_gate", "OK")]
    parents = {e["payload"]["step_id"]: e["parent_step_id"] for e in events if e["kind"] == "STEP"}
    by_id = {s["step_id"]: s for s in steps(events)}
    ancestor = by_id[parents[tool["step_id"]]]
    while not ancestor["name"].startswith("agent "):  # through the SDK's turn spans
        ancestor = by_id[parents[ancestor["step_id"]]]
    assert ancestor["name"] == "agent billing"
    end = events[-1]["payload"]
    assert (end["status"], end["llm_calls"], end["input_tokens"]) == ("SUCCESS", 3, 120)
    stored = stack.assert_stored_as_emitted(tracer.tenant_id, events, secrets=(SECRET, "weather in Oslo"))
    (stored_handoff,) = [r for r in stored if r["step_kind"] == "HANDOFF"]
    assert stored_handoff["payload"]["handoff"]["to_agent_id"] == "billing"
    assert stack.run(tracer.tenant_id, events[0]["run_id"])["cost_usd"] == pytest.approx(cost)


def test_tripped_guardrail_and_failed_model_call(tracer, bootstrap, topic_prefix, stack):
    with FakeModels() as fake:
        with pytest.raises(InputGuardrailTripwireTriggered):
            asyncio.run(Runner.run(_agents(fake.url), "something forbidden"))
        with pytest.raises(Exception) as bad:
            asyncio.run(Runner.run(_agents(fake.url, "fail-400"), "hello"))
    assert bad.value.status_code == 400
    runs = list(_runs(tracer, bootstrap, topic_prefix, 2).values())
    tripped = next(r for r in runs if ("POLICY", "guardrail_triggered") in failures(r))
    assert [g["status"] for g in steps(tripped, "GUARDRAIL")] == ["ERROR"]
    assert ("POLICY", "guardrail_triggered") in failures(tripped)
    failed = next(r for r in runs if r is not tripped)
    assert [s["status"] for s in steps(failed, "LLM")] == ["ERROR"]
    assert ("MODEL", "model_error") in failures(failed)
    assert "something forbidden" not in repr(runs) and "bad request" not in repr(runs)
    for run in runs:
        stack.assert_stored_as_emitted(tracer.tenant_id, run)
    assert stack.tables_containing("something forbidden") == []
    assert stack.run(tracer.tenant_id, tripped[0]["run_id"])["failure_count"] >= 1


def test_run_hooks_stop_the_run_before_the_model_call(tracer, bootstrap, topic_prefix, stack):
    limited = Tracer(tracer.tenant_id + "-b", "agents-app", "1.0", "test",
                     bootstrap_servers=bootstrap, topic_prefix=topic_prefix, digest_key="k",
                     spool_dir=tracer.settings.spool_dir + "-b", commands_enabled=False,
                     max_model_calls=1)
    processor = AgentstreamProcessor(limited)
    set_trace_processors([processor])
    try:
        with FakeModels() as fake:
            with pytest.raises(BudgetExceeded):
                asyncio.run(Runner.run(_agents(fake.url), "what do I owe?",
                                       hooks=processor.run_hooks()))
            served = len(fake.requests)
        assert served == 1  # the handoff target's model call never reached the server
        (events,) = _runs(limited, bootstrap, topic_prefix, 1).values()
        assert len(steps(events, "LLM")) == 1
        assert ("BUDGET", "model_calls_budget_exceeded") in failures(events)
        assert events[-1]["payload"]["outcome"] == "budget_stopped"
        stack.assert_stored_as_emitted(limited.tenant_id, events)
        assert stack.run(limited.tenant_id, events[0]["run_id"])["outcome"] == "budget_stopped"
    finally:
        limited.close(5)
