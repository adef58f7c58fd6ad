"""Auto-instrumentation for the ``anthropic`` client (extra ``agentstream[anthropic]``).

``instrument_anthropic()`` patches ``messages.create``, sync and async, streaming or not.
Anthropic reports cache reads/writes outside ``input_tokens``; they are added in so token
counts follow the OTel GenAI convention (input includes cached). Returns an un-patch function.
"""
from __future__ import annotations

from typing import Any, Callable

from .base import CallObserver, Patcher, get, wrap_async, wrap_sync
from .usage import normalise_usage

PROVIDER = "anthropic"
_patcher = Patcher()


def _message(resp: Any, obs: CallObserver) -> None:
    obs.response_model = get(resp, "model")
    if get(resp, "usage") is not None:
        u = normalise_usage(resp.usage)
        u.pop("response_model", None)
        obs.usage = u
    if get(resp, "stop_reason"):
        obs.finish_reasons.append(str(resp.stop_reason))
    for block in get(resp, "content") or ():
        if get(block, "type") == "tool_use" and get(block, "name"):
            obs.tool_calls.append(str(block.name))


def _event(event: Any, obs: CallObserver) -> None:
    etype = get(event, "type")
    if etype == "message_start":
        msg = get(event, "message")
        obs.response_model = get(msg, "model")
        if get(msg, "usage") is not None:
            u = normalise_usage(msg.usage)
            u.pop("response_model", None)
            obs.usage = u
    elif etype == "content_block_start":
        block = get(event, "content_block")
        if get(block, "type") == "tool_use" and get(block, "name"):
            obs.tool_calls.append(str(block.name))
    elif etype == "message_delta":
        reason = get(get(event, "delta"), "stop_reason")
        if reason:
            obs.finish_reasons.append(str(reason))
        out = get(get(event, "usage"), "output_tokens")
        if out is not None:
            obs.usage["output_tokens"] = int(out)


def instrument_anthropic() -> Callable[[], None]:
    from anthropic.resources.messages import messages

    _patcher.patch(messages.Messages, "create", lambda f: wrap_sync(
        f, PROVIDER, "chat", _message, _event))
    _patcher.patch(messages.AsyncMessages, "create", lambda f: wrap_async(
        f, PROVIDER, "chat", _message, _event))
    return _patcher.revert
