"""OpenAI Agents SDK tracing processor (extra ``agentstream[openai-agents]``).

    from agents import add_trace_processor          # alongside the SDK's own exporter
    add_trace_processor(AgentstreamProcessor(tracer))
    # or set_trace_processors([AgentstreamProcessor(tracer)]) to send traces nowhere else

A trace (one ``Runner.run``) is a run: the agent's current run when one is open, else a run of
its own named after the workflow. Spans become steps linked to their parent span's step:
agents (CUSTOM, ``gen_ai.agent.name``), model calls (LLM: model, tokens, price-table cost),
function tools (TOOL: name + keyed digest of the arguments), handoffs (HANDOFF: target agent),
guardrails (GUARDRAIL; a tripped one fails its step with POLICY/guardrail_triggered), and
custom/task/turn spans (CUSTOM). Metadata only: inputs, outputs and error messages never
travel, only their shape (error type, codes).

The SDK catches exceptions from processors, so a processor cannot stop a run. Enforcement
comes from its run hooks instead: ``Runner.run(agent, input, hooks=processor.run_hooks())``
checks budgets and remote STOP commands before every model call and tool call, and raises
the ``EnforcementError`` out of ``Runner.run`` before the request or the tool runs.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from agents import RunHooks
from agents.tracing import TracingProcessor, get_current_trace

from ..context import current_run
from .base import get
from .step_tree import StepTree

log = logging.getLogger("agentstream.producer")


def _args(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _usage(u: Any) -> tuple[int, int, int]:
    """(input, output, cache read) tokens from a usage dict or a Responses usage object."""
    if u is None:
        return 0, 0, 0
    inp = get(u, "input_tokens", get(u, "prompt_tokens", 0)) or 0
    out = get(u, "output_tokens", get(u, "completion_tokens", 0)) or 0
    details = get(u, "input_tokens_details") or get(u, "prompt_tokens_details")
    return int(inp), int(out), int(get(details, "cached_tokens", 0) or 0)


class AgentstreamProcessor(TracingProcessor):
    """``tracer``: starts a run for a trace outside any run (None: only inside the agent's
    open run). ``provider``: the GenAI provider name of the model calls (``openai``)."""

    def __init__(self, tracer: Any = None, provider: str = "openai") -> None:
        self.tree = StepTree(tracer)
        self.provider = provider

    # ---- traces -------------------------------------------------------------------------
    def on_trace_start(self, trace: Any) -> None:
        try:
            name = str(get(trace, "name") or "agents workflow")[:256]
            self.tree.start_root(trace.trace_id, name)
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)

    def on_trace_end(self, trace: Any) -> None:
        try:
            self.tree.end_root(trace.trace_id)
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)

    # ---- spans --------------------------------------------------------------------------
    def on_span_start(self, span: Any) -> None:
        try:
            self._start(span)
        except Exception:  # includes enforcement: the SDK would swallow it
            log.warning("agentstream: instrumentation failed", exc_info=True)

    def _start(self, span: Any) -> None:
        data = span.span_data
        kind = data.type
        parent = span.parent_id or span.trace_id
        name = str(get(data, "name") or kind)[:256]
        sid = span.span_id
        if kind == "agent":
            attrs: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent",
                                     "gen_ai.agent.name": name}
            self.tree.open(sid, parent, "custom", f"agent {name}", **attrs)
        elif kind in ("generation", "response"):
            model = str(get(data, "model") or "unknown")
            self.tree.open(sid, parent, "llm", f"chat {model}",
                           lambda run: run.llm_step(self.provider, model, f"chat {model}"))
        elif kind == "function":
            self.tree.open(sid, parent, "tool", name, lambda run: run.step("tool", name),
                           **{"gen_ai.operation.name": "execute_tool"})
        elif kind == "handoff":
            self.tree.open(sid, parent, "handoff", "handoff")
        elif kind == "guardrail":
            self.tree.open(sid, parent, "guardrail", name)
        else:  # custom, task, turn, mcp_tools, speech...: the shape of the work, as CUSTOM
            self.tree.open(sid, parent, "custom", name, **{"openai_agents.span.type": kind})

    def on_span_end(self, span: Any) -> None:
        try:
            self._end(span)
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)

    def _end(self, span: Any) -> None:
        step = self.tree.get(span.span_id)
        if step is None:
            return
        data = span.span_data
        kind = data.type
        fail = None
        if kind in ("generation", "response"):
            resp = get(data, "response")
            model = str(get(data, "model") or get(resp, "model") or "unknown")
            usage = get(data, "usage") or get(resp, "usage")
            inp, out, cached = _usage(usage)
            step.record_llm(self.provider, model, inp, out, cached, 0, get(resp, "model"),
                            "chat" if kind == "generation" else "responses")
            step.set_attribute("gen_ai.request.model", model)
            if usage is None:
                step.set_attribute("agentstream.usage.missing", "true")
            fail = ("model", "model_error")
        elif kind == "function":
            step.record_tool(str(get(data, "name") or "tool"), _args(get(data, "input")))
            fail = ("tool", "tool_error")
        elif kind == "handoff":
            to = str(get(data, "to_agent") or "unknown")[:256]
            step.name = f"handoff {to}"
            step.handoff = {"to_agent_id": to, "to_run_id": None, "role": None}
            if get(data, "from_agent"):
                step.set_attribute("agentstream.handoff.from_agent",
                                   str(data.from_agent)[:256])
        elif kind == "guardrail" and get(data, "triggered"):
            self.tree.close(span.span_id, "guardrail_triggered",
                            fail=("policy", "guardrail_triggered"))
            return
        error = span.error
        if error:
            self.tree.close(span.span_id, "agents_span_error", fail=fail)
        else:
            self.tree.close(span.span_id)

    def run_hooks(self) -> "EnforcingHooks":
        """Run hooks that enforce budgets and remote commands on this processor's runs."""
        return EnforcingHooks(self)

    def run_of_current_trace(self) -> Any:
        trace = get_current_trace()
        run = self.tree.run_of(trace.trace_id) if trace is not None else None
        return run if run is not None else current_run.get()

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        if self.tree.tracer is not None:
            self.tree.tracer.flush()


class EnforcingHooks(RunHooks):
    """The SDK awaits run hooks in the run's own flow, so what they raise stops the run."""

    def __init__(self, processor: AgentstreamProcessor) -> None:
        self.processor = processor

    def _run(self) -> Any:
        run = self.processor.run_of_current_trace()
        return None if run is None or run.ended else run

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any,
                           input_items: Any) -> None:
        run = self._run()
        if run is not None:
            run.check()  # pending STOP/THROTTLE commands, step and wall-time budgets
            run.check_llm_budget()

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        run = self._run()
        if run is not None:
            run.check()
