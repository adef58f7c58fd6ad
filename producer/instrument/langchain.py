"""LangChain / LangGraph callback handler (extra ``agentstream[langchain]``).

    handler = AgentstreamCallbackHandler(tracer)
    graph.invoke(inputs, config={"callbacks": [handler]})

A top-level invocation is a run (the agent's current run if one is open, else a run of its
own named after the chain or graph). Inside it: chat-model and LLM calls are LLM steps
(provider, model, tokens, cost from the price table), tools are TOOL steps (name and the keyed
digest of their input), retrievers RETRIEVAL steps, and nested chains and LangGraph nodes
CUSTOM steps, each linked to its parent. Metadata only: prompts, outputs, documents and tool
inputs never travel. Budgets and remote STOP commands raise ``EnforcementError`` out of the
callback (``raise_error``), before the model or tool runs.
"""
from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from .base import classify_error, get
from .step_tree import StepTree, guarded

# LangChain's ls_provider names → the GenAI semantic-convention provider names.
PROVIDERS = {"google_genai": "gcp.gemini", "google_vertexai": "gcp.vertex_ai",
             "azure": "azure.ai.openai", "bedrock": "aws.bedrock", "mistral": "mistral_ai"}


def _model(serialized: dict | None, kwargs: dict) -> tuple[str, str]:
    meta = kwargs.get("metadata") or {}
    params = kwargs.get("invocation_params") or {}
    model = (meta.get("ls_model_name") or params.get("model") or params.get("model_name")
             or "unknown")
    provider = meta.get("ls_provider") or params.get("_type") or \
        ((serialized or {}).get("id") or ["unknown"])[-1]
    return PROVIDERS.get(str(provider), str(provider)), str(model)


def _usage(response: Any) -> tuple[dict[str, int], str | None, list[str], list[str]]:
    """(usage, response model, finish reasons, requested tool names) of an LLMResult."""
    usage: dict[str, int] = {}
    finish, tools = [], []
    model = None
    for gens in get(response, "generations") or ():
        for g in gens:
            msg = get(g, "message")
            um = get(msg, "usage_metadata")
            if um:
                usage["input_tokens"] = usage.get("input_tokens", 0) + int(get(um, "input_tokens", 0) or 0)
                usage["output_tokens"] = usage.get("output_tokens", 0) + int(get(um, "output_tokens", 0) or 0)
                details = get(um, "input_token_details") or {}
                usage["cache_read_tokens"] = usage.get("cache_read_tokens", 0) + int(get(details, "cache_read", 0) or 0)
            info = get(g, "generation_info") or {}
            if get(info, "finish_reason"):
                finish.append(str(info["finish_reason"]))
            meta = get(msg, "response_metadata") or {}
            model = model or get(meta, "model_name") or get(meta, "model")
            for call in get(msg, "tool_calls") or ():
                if get(call, "name"):
                    tools.append(str(get(call, "name")))
    out = get(response, "llm_output") or {}
    if not usage and get(out, "token_usage"):
        tu = out["token_usage"]
        usage = {"input_tokens": int(get(tu, "prompt_tokens", 0) or 0),
                 "output_tokens": int(get(tu, "completion_tokens", 0) or 0)}
    return usage, model or get(out, "model_name"), finish, tools


class AgentstreamCallbackHandler(BaseCallbackHandler):
    """``tracer``: used to start a run when a chain starts outside any run (None: only
    record inside the agent's current run)."""

    raise_error = True  # an EnforcementError must stop the chain; nothing else is raised
    run_inline = True   # sync callbacks in the caller's context, so current_run is visible

    def __init__(self, tracer: Any = None) -> None:
        self.tree = StepTree(tracer)

    def _node(self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: str,
              make: Any = None, **attrs: Any) -> Any:
        if parent_run_id is None or self.tree.run_of(None, parent_run_id) is None:
            if self.tree.run_of(run_id) is None and self.tree.start_root(run_id, name) is None:
                return None
            if kind == "chain":
                if self.tree.owns(run_id):
                    return None  # the root chain is the run itself
                kind = "custom"  # inside the agent's own run: one step of it
            # a model or tool called on its own: a root of one step
        return self.tree.open(run_id, parent_run_id, kind, name, make, **attrs)

    # ---- chains and graph nodes ---------------------------------------------------------
    @guarded
    def on_chain_start(self, serialized: dict | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kw: Any) -> None:
        name = kw.get("name") or get(serialized, "name") or "chain"
        node = (kw.get("metadata") or {}).get("langgraph_node")
        self._node(run_id, parent_run_id, str(name), "chain" if parent_run_id is None else
                   "custom", **({"langgraph.node": str(node)[:128]} if node else {}))

    @guarded
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self._close_single(run_id)

    @guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        if any(c.__name__ == "GraphBubbleUp" for c in type(error).__mro__):
            # LangGraph control flow (interrupts, parent commands), not a failure
            self._close_single(run_id)
            return
        self.tree.close(run_id, error)
        self.tree.end_root(run_id, error)

    # ---- models -------------------------------------------------------------------------
    def _llm_start(self, serialized: dict | None, messages: Any, run_id: UUID,
                   parent_run_id: UUID | None, kw: dict) -> None:
        provider, model = _model(serialized, kw)

        def make(run: Any) -> Any:
            step = run.llm_step(provider, model, f"chat {model}")
            step.set_attribute("gen_ai.operation.name", "chat")
            step.record_request(model, _digestable(messages),
                                (kw.get("invocation_params") or {}).get("tools"))
            step._as_meta = (provider, model)
            return step

        self._node(run_id, parent_run_id, f"chat {model}", "llm", make)

    @guarded
    def on_chat_model_start(self, serialized: dict | None, messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kw: Any) -> None:
        self._llm_start(serialized, messages, run_id, parent_run_id, kw)

    @guarded
    def on_llm_start(self, serialized: dict | None, prompts: Any, *, run_id: UUID,
                     parent_run_id: UUID | None = None, **kw: Any) -> None:
        self._llm_start(serialized, prompts, run_id, parent_run_id, kw)

    @guarded
    def on_llm_end(self, response: Any, *, run_id: UUID, **kw: Any) -> None:
        step = self.tree.get(run_id)
        if step is not None:
            usage, rmodel, finish, tools = _usage(response)
            provider, model = getattr(step, "_as_meta", ("unknown", "unknown"))
            step.record_llm(provider, model, usage.get("input_tokens", 0),
                            usage.get("output_tokens", 0), usage.get("cache_read_tokens", 0), 0,
                            rmodel, "chat", finish, tools)
            if not usage:
                step.set_attribute("agentstream.usage.missing", "true")
        self._close_single(run_id)

    @guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        code, _ = classify_error(error)
        status = getattr(error, "status_code", None)
        step = self.tree.get(run_id)
        if step is not None and status is not None:
            step.set_attribute("http.response.status_code", status)
        self.tree.close(run_id, error, fail=("model", code))
        self.tree.end_root(run_id, error)

    # ---- tools and retrievers -----------------------------------------------------------
    @guarded
    def on_tool_start(self, serialized: dict | None, input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, inputs: Any = None, **kw: Any) -> None:
        name = str(kw.get("name") or get(serialized, "name") or "tool")
        args = inputs if inputs is not None else input_str
        call_id = (kw.get("metadata") or {}).get("tool_call_id")
        self._node(run_id, parent_run_id, name, "tool",
                   lambda run: run.tool_step(name, args, call_id=call_id))

    @guarded
    def on_tool_end(self, output: Any, *, run_id: UUID, **kw: Any) -> None:
        status = get(output, "status")
        if status == "error":  # a ToolMessage the tool returned as an error
            self.tree.close(run_id, "tool_error", fail=("tool", "tool_error"))
            self.tree.end_root(run_id)
            return
        self._close_single(run_id)

    @guarded
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.tree.close(run_id, error, fail=("tool", "tool_error"))
        self.tree.end_root(run_id, error)

    @guarded
    def on_retriever_start(self, serialized: dict | None, query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, **kw: Any) -> None:
        name = str(kw.get("name") or get(serialized, "name") or "retriever")
        self._node(run_id, parent_run_id, name, "retrieval")

    @guarded
    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kw: Any) -> None:
        step = self.tree.get(run_id)
        if step is not None:
            step.set_attribute("agentstream.retrieval.documents", len(documents or ()))
        self._close_single(run_id)

    @guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.tree.close(run_id, error, fail=("retrieval", "retriever_error"))
        self.tree.end_root(run_id, error)

    def _close_single(self, run_id: UUID) -> None:
        self.tree.close(run_id)
        self.tree.end_root(run_id)  # a model or tool run on its own was its own root


def _digestable(messages: Any) -> Any:
    """LangChain message objects as plain data for the request digest (never sent)."""
    out = []
    for m in messages or ():
        if isinstance(m, (list, tuple)):
            out.append(_digestable(m))
        elif isinstance(m, str):
            out.append(m)
        else:
            out.append({"type": get(m, "type"), "content": get(m, "content"),
                        "tool_calls": get(m, "tool_calls")})
    return out


def langchain_handler(tracer: Any = None) -> AgentstreamCallbackHandler:
    return AgentstreamCallbackHandler(tracer)
