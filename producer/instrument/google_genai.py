"""Auto-instrumentation for Google's ``google-genai`` client (extra ``agentstream[google-genai]``).

``instrument_google_genai()`` patches ``models.generate_content`` and
``generate_content_stream``, sync and async (Gemini API and Vertex AI alike). Inside an
agentstream run each call is an LLM step: provider ``gcp.gemini``, model, tokens (prompt,
candidates + thoughts, cached), cost from the price table, finish reasons, names of requested
function calls, and the keyed request digest; budgets and remote STOP commands raise before
the request. Outside a run calls pass untouched. Contents never travel. Returns a function
that removes the patches.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..context import current_run
from .base import (CallObserver, Patcher, _finish, get, observed_aiter, observed_iter, wrap_async,
                   wrap_sync)

PROVIDER = "gcp.gemini"
OPERATION = "generate_content"
_patcher = Patcher()


def _plain(value: Any) -> Any:
    """SDK objects as plain data, for the request digest only."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _open(provider: str, kwargs: dict, operation: str) -> tuple[Any, CallObserver] | None:
    run = current_run.get()
    if run is None or run.ended:
        return None
    model = str(kwargs.get("model") or "unknown").removeprefix("models/")
    step = run.llm_step(provider, model, f"{operation} {model}")
    step.set_attribute("gen_ai.operation.name", operation)
    step.record_request(model, _plain(kwargs.get("contents")),
                        _plain(get(kwargs.get("config"), "tools")))
    step.begin()  # enforcement may raise here, before the request
    return step, CallObserver(provider, model, operation)


def _read(resp: Any, obs: CallObserver) -> None:
    """One response or one streamed chunk (usage arrives on the last chunk)."""
    obs.response_model = get(resp, "model_version") or obs.response_model
    um = get(resp, "usage_metadata")
    if um is not None and get(um, "prompt_token_count") is not None:
        obs.usage = {"input_tokens": int(get(um, "prompt_token_count") or 0),
                     "output_tokens": int(get(um, "candidates_token_count") or 0)
                     + int(get(um, "thoughts_token_count") or 0),
                     "cache_read_tokens": int(get(um, "cached_content_token_count") or 0)}
    for cand in get(resp, "candidates") or ():
        reason = get(cand, "finish_reason")
        if reason is not None:
            obs.finish_reasons.append(str(get(reason, "value", reason)))
        for part in get(get(cand, "content"), "parts") or ():
            name = get(get(part, "function_call"), "name")
            if name:
                obs.tool_calls.append(str(name))


def _wrap_stream(orig: Callable) -> Callable:
    @functools.wraps(orig)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        opened = _open(PROVIDER, kwargs, OPERATION)
        if opened is None:
            return orig(self, *args, **kwargs)
        step, obs = opened
        try:
            inner = orig(self, *args, **kwargs)
        except BaseException as exc:
            _finish(step, obs, exc)
            raise
        return observed_iter(inner, step, obs, _read)
    wrapper.__agentstream_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def _wrap_astream(orig: Callable) -> Callable:
    @functools.wraps(orig)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        opened = _open(PROVIDER, kwargs, OPERATION)
        if opened is None:
            return await orig(self, *args, **kwargs)
        step, obs = opened
        try:
            inner = await orig(self, *args, **kwargs)
        except BaseException as exc:
            _finish(step, obs, exc)
            raise
        return observed_aiter(inner, step, obs, _read)
    wrapper.__agentstream_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def instrument_google_genai() -> Callable[[], None]:
    from google.genai import models

    _patcher.patch(models.Models, "generate_content", lambda f: wrap_sync(
        f, PROVIDER, OPERATION, _read, _read, opener=_open))
    _patcher.patch(models.Models, "generate_content_stream", _wrap_stream)
    _patcher.patch(models.AsyncModels, "generate_content", lambda f: wrap_async(
        f, PROVIDER, OPERATION, _read, _read, opener=_open))
    _patcher.patch(models.AsyncModels, "generate_content_stream", _wrap_astream)
    return _patcher.revert
