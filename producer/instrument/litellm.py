"""LiteLLM callback (extra ``agentstream[litellm]``).

    litellm.callbacks = [AgentstreamLiteLLM()]
    with tracer.run("triage"):
        litellm.completion(model="openai/gpt-4.1-mini", messages=[...])

Each completion made inside an agentstream run is an LLM step of that run (provider, request
and response model, tokens, cost, finish reasons, requested tool names, the keyed request
digest), whichever provider LiteLLM routes it to; a failed call fails its step with a code from
the exception (rate_limited, bad_request, timeout...). Outside a run calls pass unrecorded.
Metadata only: messages and completions never travel.

Cost comes from agentstream's price table, as for every other integration; for a model the
table does not know, LiteLLM's own ``response_cost`` is used. LiteLLM swallows exceptions
raised by callbacks, so budgets and remote STOP commands are enforced at the agent's next step
(or ``run.check_llm_budget()``), not by refusing this call.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from ..context import current_run
from ..errors import EnforcementError
from .base import classify_error, get

log = logging.getLogger("agentstream.producer")
PROVIDERS = {"gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "bedrock": "aws.bedrock",
             "azure": "azure.ai.openai", "mistral": "mistral_ai", "groq": "groq",
             "deepseek": "deepseek", "xai": "x_ai", "cohere": "cohere"}


def _provider(kwargs: dict, model: str) -> str:
    lp = kwargs.get("litellm_params") or {}
    p = kwargs.get("custom_llm_provider") or lp.get("custom_llm_provider")
    if not p and "/" in model:
        p = model.split("/", 1)[0]
    return PROVIDERS.get(str(p), str(p or "unknown"))


def _bare(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


class AgentstreamLiteLLM(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()

    # ---- before the call ----------------------------------------------------------------
    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict) -> None:
        try:
            run = current_run.get()
            call_id = kwargs.get("litellm_call_id")
            if run is None or run.ended or not call_id or call_id in self._pending:
                return
            name = _bare(str(kwargs.get("model") or model or "unknown"))
            provider = _provider(kwargs, str(kwargs.get("model") or model or ""))
            step = run.llm_step(provider, name, f"chat {name}")
            step.set_attribute("gen_ai.operation.name", "chat")
            params = kwargs.get("optional_params") or {}
            step.record_request(name, messages, params.get("tools"))
            step._as_meta = (provider, name)
            step.begin()
        except EnforcementError:
            return  # recorded by the run; LiteLLM would swallow it: the agent's next step raises
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)
            return
        with self._lock:
            if len(self._pending) > 10_000:  # calls LiteLLM never reported back: bounded
                self._pending.clear()
            self._pending[call_id] = step

    async def async_log_pre_api_call(self, model: Any, messages: Any, kwargs: dict) -> None:
        self.log_pre_api_call(model, messages, kwargs)

    # ---- after the call -----------------------------------------------------------------
    def _take(self, kwargs: dict) -> Any:
        with self._lock:
            call_id = kwargs.get("litellm_call_id")
            return self._pending.pop(call_id, None) if call_id else None  # none was ever stored

    def _success(self, kwargs: dict, response: Any) -> None:
        step = self._take(kwargs)
        if step is None:
            return
        try:
            provider, model = step._as_meta
            usage = get(response, "usage")
            inp = int(get(usage, "prompt_tokens", 0) or 0)
            out = int(get(usage, "completion_tokens", 0) or 0)
            cached = int(get(get(usage, "prompt_tokens_details"), "cached_tokens", 0) or 0)
            finish, tools = [], []
            for choice in get(response, "choices") or ():
                if get(choice, "finish_reason"):
                    finish.append(str(choice.finish_reason))
                for call in get(get(choice, "message"), "tool_calls") or ():
                    if get(get(call, "function"), "name"):
                        tools.append(str(call.function.name))
            rmodel = get(response, "model")
            cost = None
            if step.run.tracer.prices.lookup(provider, rmodel or model) is None and \
                    step.run.tracer.prices.lookup(provider, model) is None:
                slo = kwargs.get("standard_logging_object") or {}
                cost = slo.get("response_cost") or kwargs.get("response_cost")
                cost = float(cost) if isinstance(cost, (int, float)) else None
            step.record_llm(provider, model, inp, out, cached, 0, rmodel, "chat", finish, tools,
                            cost)
            if usage is None:
                step.set_attribute("agentstream.usage.missing", "true")
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)
        step.end()

    def _failure(self, kwargs: dict) -> None:
        step = self._take(kwargs)
        if step is None:
            return
        exc = kwargs.get("exception")
        try:
            if isinstance(exc, BaseException):
                code, etype = classify_error(exc)
                status = getattr(exc, "status_code", None)
                if isinstance(status, int):
                    step.set_attribute("http.response.status_code", status)
            else:
                code, etype = "client_error", "unknown"
            step.set_attribute("error.type", etype)
            step.record_llm(*step._as_meta)  # model and provider of the failed call, no usage
            step.fail("model", code, retryable=code in ("timeout", "rate_limited",
                                                        "server_error", "connection_error"))
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)
        step.end()

    def log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any,
                          end_time: Any) -> None:
        self._success(kwargs, response_obj)

    def log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any,
                          end_time: Any) -> None:
        self._failure(kwargs)

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._success(kwargs, response_obj)

    async def async_log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._failure(kwargs)
