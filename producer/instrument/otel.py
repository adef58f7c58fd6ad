"""An OpenTelemetry SpanProcessor that turns GenAI-semconv spans into agentstream events.

Add it to any OTel-instrumented agent's ``TracerProvider``. Spans end child-first, so the
processor holds a trace's spans until its local root span ends, then emits one run: the root
is the run (``gen_ai.agent.name`` or its span name; ``gen_ai.conversation.id`` is the
session), every other span a step in start order: ``chat``/``text_completion``/
``generate_content``/``embeddings`` → LLM (usage priced from the table), ``execute_tool`` →
TOOL (arguments only as a keyed digest), a nested ``invoke_agent`` → HANDOFF, anything else →
CUSTOM. Content attributes (messages, instructions, tool arguments and results) never travel;
other attributes are copied only from an allowlist.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Any

from ..step import request_canonical

log = logging.getLogger("agentstream.producer")

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "embeddings"}
SAFE_ATTRIBUTES = {
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.response.id", "gen_ai.request.max_tokens",
    "gen_ai.request.temperature", "gen_ai.request.top_p", "gen_ai.agent.id",
    "gen_ai.agent.name", "gen_ai.tool.name", "gen_ai.tool.type", "gen_ai.output.type",
    "gen_ai.data_source.id", "server.address", "server.port", "http.response.status_code",
    "error.type",
}
MAX_TRACES = 10_000
MAX_SPANS_PER_TRACE = 5_000


def _attr(span: Any, name: str, default: Any = None) -> Any:
    return (span.attributes or {}).get(name, default)


def _json_or_text(value: Any) -> Any:
    """GenAI semconv carries messages as a JSON string: digest the parsed value, so key order
    and whitespace do not split one request into two digests."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class AgentstreamSpanProcessor:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self._traces: "OrderedDict[int, list[Any]]" = OrderedDict()
        self._lock = threading.Lock()
        self.dropped_spans = 0
        self.last_run_id: str | None = None

    # SpanProcessor protocol
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: Any) -> None:
        try:
            parent = span.parent
            is_root = parent is None or getattr(parent, "is_remote", False)
            trace_id = span.context.trace_id
            with self._lock:
                spans = self._traces.get(trace_id)
                if spans is None:
                    spans = self._traces[trace_id] = []
                    while len(self._traces) > MAX_TRACES:
                        _, evicted = self._traces.popitem(last=False)
                        self.dropped_spans += len(evicted)
                if len(spans) < MAX_SPANS_PER_TRACE:
                    spans.append(span)
                else:
                    self.dropped_spans += 1
                if not is_root:
                    return
                mine = self._subtree(spans, span)
                rest = [s for s in spans if s not in mine]
                if rest:
                    self._traces[trace_id] = rest
                else:
                    self._traces.pop(trace_id, None)
            self._emit_run(span, [s for s in mine if s is not span])
        except Exception:  # never break the instrumented app
            log.warning("agentstream: span conversion failed", exc_info=True)

    def shutdown(self) -> None:
        self.tracer.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.tracer.flush(timeout_millis / 1000)

    @staticmethod
    def _subtree(spans: list[Any], root: Any) -> list[Any]:
        ids = {root.context.span_id}
        out = [root]
        changed = True
        pending = [s for s in spans if s is not root]
        while changed:
            changed = False
            for s in list(pending):
                if s.parent is not None and s.parent.span_id in ids:
                    ids.add(s.context.span_id)
                    out.append(s)
                    pending.remove(s)
                    changed = True
        return out

    def _emit_run(self, root: Any, children: list[Any]) -> None:
        tracer = self.tracer
        name = str(_attr(root, "gen_ai.agent.name") or root.name)
        session = next((str(_attr(s, "gen_ai.conversation.id")) for s in [root, *children]
                        if _attr(s, "gen_ai.conversation.id")), None)
        run_id = str(uuid.UUID(int=root.context.trace_id ^ root.context.span_id))
        run = tracer.run(name, run_id=run_id, session_id=session, sampled=True)
        start_us = root.start_time // 1000
        run.started_us = start_us
        attrs = {"otel.trace_id": format(root.context.trace_id, "032x")}
        run._emit("RUN_START", {"entrypoint": name, "role": None, "sampled": True}, attrs,
                  ts_us=start_us)
        step_ids: dict[int, str] = {}
        spans = sorted(children, key=lambda s: s.start_time)
        if _attr(root, "gen_ai.operation.name") in LLM_OPERATIONS:
            spans = [root] + spans  # a bare model call is a one-step run
        for span in spans:
            step_ids[span.context.span_id] = self._emit_step(run, span, step_ids)
        failed = _is_error(root)
        end_us = root.end_time // 1000
        run._emit("RUN_END", {
            "status": "FAILURE" if failed else "SUCCESS",
            "outcome": "error" if failed else "completed", "started_us": start_us,
            "duration_ms": (root.end_time - root.start_time) / 1e6, "step_count": run.step_count,
            "llm_calls": run.llm_calls, "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens, "cost_usd": run.cost_usd}, None, ts_us=end_us)
        run.ended = True
        self.last_run_id = run_id

    def _emit_step(self, run: Any, span: Any, step_ids: dict[int, str]) -> str:
        op = _attr(span, "gen_ai.operation.name")
        kind = ("llm" if op in LLM_OPERATIONS else "tool" if op == "execute_tool"
                else "handoff" if op == "invoke_agent" else "custom")
        attrs = {k: v for k, v in (span.attributes or {}).items() if k in SAFE_ATTRIBUTES}
        step = run.step(kind, span.name, **attrs)
        step._n = next(run._counter)
        step._parent = step_ids.get(span.parent.span_id) if span.parent else None
        step._t0 = span.start_time - run._clock_off
        if kind == "llm":
            provider = str(_attr(span, "gen_ai.provider.name") or _attr(span, "gen_ai.system")
                           or "unknown")
            reasons = _attr(span, "gen_ai.response.finish_reasons") or ()
            step.llm = run._llm_record(
                provider, str(_attr(span, "gen_ai.request.model") or "unknown"),
                _attr(span, "gen_ai.usage.input_tokens", 0),
                _attr(span, "gen_ai.usage.output_tokens", 0),
                _attr(span, "gen_ai.usage.cache_read.input_tokens", 0),
                _attr(span, "gen_ai.usage.cache_creation.input_tokens", 0),
                _attr(span, "gen_ai.response.model"), str(op), list(reasons), (), None, step)
            messages = _attr(span, "gen_ai.input.messages")
            if messages is not None:  # digested, never kept (a content attribute)
                step.llm["request_digest"] = run._policy.digest(request_canonical(
                    step.llm["request_model"], _json_or_text(messages),
                    _json_or_text(_attr(span, "gen_ai.tool.definitions"))))
        elif kind == "tool":
            args = _attr(span, "gen_ai.tool.call.arguments")
            step.tool = {"tool_name": str(_attr(span, "gen_ai.tool.name") or span.name),
                         "call_id": _attr(span, "gen_ai.tool.call.id"),
                         "args_digest": None if args is None else run._policy.digest(args)}
        elif kind == "handoff":
            step.handoff = {"to_agent_id": str(_attr(span, "gen_ai.agent.name") or span.name),
                            "to_run_id": None, "role": None}
        status = 1 if _is_error(span) else 0
        if status and span.status.description is None and "error.type" not in attrs:
            step.set_attribute("error.type", "span_error")
        step_id = step.step_id
        run._close_step(step, status, span.end_time - span.start_time)
        return step_id


def _is_error(span: Any) -> bool:
    try:
        from opentelemetry.trace import StatusCode

        return span.status.status_code == StatusCode.ERROR
    except Exception:  # noqa: BLE001 - a span without a readable status is not an error
        return False
