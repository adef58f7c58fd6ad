"""Keyed digests for OTLP tool and LLM spans, so the loop detector can tell "the same call again"
from "a call with other arguments" on OTLP data too.

A span that carries no argument digest has unknown arguments and never counts as a repeat (the
detector's rule). Where the span says what the call was about, a digest is derived here from the
attributes that vary with the call's input, and only from those: the GenAI/OpenInference/
OpenLLMetry argument attributes (content: digested, never kept) or argument-bearing
non-content attributes (``url.full``, ``url.path``/``url.query``, ``file.path``,
``db.query.parameter.*``). Identity attributes that are the same for every call of a tool
(``gen_ai.tool.name``, ``http.request.method``, ``server.address``, ``db.operation.name``, ...)
are never a digest on their own: that is what made every OTLP trace look like a loop.

LLM spans: the request digest covers the model, the input messages (GenAI ``gen_ai.input.
messages`` + ``gen_ai.system_instructions``, or the indexed ``gen_ai.prompt.*`` of older
instrumentations, or OpenInference ``llm.input_messages.*`` / ``input.value``) and the tool
definitions, in the SDK's canonical shape (``producer/step.request_canonical``), so one key gives
one request one digest on both paths. No messages: no digest.

Digests are HMAC-SHA256 under the gateway's ``args_digest_key``; no key, no digest.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping

TOOL_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input")
ARGUMENT_ATTRIBUTES = ("url.full", "url.path", "url.query", "http.url", "http.target", "file.path")
ARGUMENT_PREFIXES = ("db.query.parameter.",)
MESSAGE_KEYS = ("gen_ai.input.messages", "gen_ai.system_instructions", "llm.prompts")
MESSAGE_PREFIXES = ("gen_ai.prompt.", "llm.input_messages.")
TOOL_DEFINITION_KEYS = ("gen_ai.tool.definitions",)
TOOL_DEFINITION_PREFIXES = ("llm.tools.",)


def _parsed(v: Any) -> Any:
    """JSON text is digested as its value: key order and whitespace do not split a call."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def keyed(key: bytes, value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def _collect(a: Mapping[str, Any], keys: tuple[str, ...], prefixes: tuple[str, ...]) -> dict[str, Any]:
    out = {k: _parsed(a[k]) for k in keys if a.get(k) not in (None, "")}
    if prefixes:
        out.update({k: _parsed(v) for k, v in a.items() if k.startswith(prefixes) and v not in (None, "")})
    return out


def tool_args_digest(a: Mapping[str, Any], key: bytes | None) -> str | None:
    """The digest of a tool span's arguments, or None when nothing in the span varies with them."""
    if key is None:
        return None
    for k in TOOL_ARGUMENT_KEYS:
        if a.get(k) not in (None, ""):
            return keyed(key, _parsed(a[k]))
    derived = _collect(a, ARGUMENT_ATTRIBUTES, ARGUMENT_PREFIXES)
    if not derived:
        return None
    return keyed(key, {"derived": derived})


def llm_request_digest(a: Mapping[str, Any], model: str, key: bytes | None) -> str | None:
    if key is None:
        return None
    messages = _collect(a, MESSAGE_KEYS, MESSAGE_PREFIXES)
    if not messages:
        return None
    if set(messages) == {"gen_ai.input.messages"}:
        msgs: Any = messages["gen_ai.input.messages"]
    else:
        msgs = dict(sorted(messages.items()))
    tools = _collect(a, TOOL_DEFINITION_KEYS, TOOL_DEFINITION_PREFIXES)
    tool_defs: Any = tools.get("gen_ai.tool.definitions") if set(tools) == {"gen_ai.tool.definitions"} else (
        dict(sorted(tools.items())) if tools else [])
    return keyed(key, {"model": str(model), "messages": msgs, "tools": tool_defs or []})
