"""Auto-instrumentation for the ``openai`` client (extra ``agentstream[openai]``).

``instrument_openai()`` patches chat completions and responses, sync and async, streaming or
not. Returns a function that removes the patches.
"""
from __future__ import annotations

from typing import Any, Callable

from .base import CallObserver, Patcher, get, wrap_async, wrap_sync
from .usage import normalise_usage

PROVIDER = "openai"
_patcher = Patcher()


def _chat_response(resp: Any, obs: CallObserver) -> None:
    obs.response_model = get(resp, "model")
    if get(resp, "usage") is not None:
        u = normalise_usage(resp.usage)
        u.pop("response_model", None)
        obs.usage = u
    for choice in get(resp, "choices") or ():
        if get(choice, "finish_reason"):
            obs.finish_reasons.append(str(choice.finish_reason))
        for call in get(get(choice, "message"), "tool_calls") or ():
            name = get(get(call, "function"), "name")
            if name:
                obs.tool_calls.append(str(name))


def _chat_chunk(chunk: Any, obs: CallObserver) -> None:
    obs.response_model = get(chunk, "model") or obs.response_model
    if get(chunk, "usage") is not None:
        u = normalise_usage(chunk.usage)
        u.pop("response_model", None)
        obs.usage = u
    for choice in get(chunk, "choices") or ():
        if get(choice, "finish_reason"):
            obs.finish_reasons.append(str(choice.finish_reason))
        for call in get(get(choice, "delta"), "tool_calls") or ():
            name = get(get(call, "function"), "name")
            if name:
                obs.tool_calls.append(str(name))


def _responses_response(resp: Any, obs: CallObserver) -> None:
    obs.response_model = get(resp, "model")
    if get(resp, "usage") is not None:
        u = normalise_usage(resp.usage)
        u.pop("response_model", None)
        obs.usage = u
    if get(resp, "status"):
        obs.finish_reasons.append(str(resp.status))
    for item in get(resp, "output") or ():
        if get(item, "type") == "function_call" and get(item, "name"):
            obs.tool_calls.append(str(item.name))


def _responses_event(event: Any, obs: CallObserver) -> None:
    if get(event, "type") in ("response.completed", "response.incomplete", "response.failed"):
        _responses_response(get(event, "response"), obs)


def instrument_openai() -> Callable[[], None]:
    from openai.resources.chat.completions import completions as chat
    from openai.resources.responses import responses

    _patcher.patch(chat.Completions, "create", lambda f: wrap_sync(
        f, PROVIDER, "chat", _chat_response, _chat_chunk))
    _patcher.patch(chat.AsyncCompletions, "create", lambda f: wrap_async(
        f, PROVIDER, "chat", _chat_response, _chat_chunk))
    _patcher.patch(responses.Responses, "create", lambda f: wrap_sync(
        f, PROVIDER, "responses", _responses_response, _responses_event))
    _patcher.patch(responses.AsyncResponses, "create", lambda f: wrap_async(
        f, PROVIDER, "responses", _responses_response, _responses_event))
    return _patcher.revert
