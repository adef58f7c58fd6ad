"""Shared machinery for client auto-instrumentation: patching, LLM steps, streams, errors.

A patched method opens an LLM step in the *current run* (no run: the call passes through
untouched), so budgets and remote commands are enforced before the request is sent. Only
metadata is recorded: model, token usage, latency, finish reasons, names of requested tools,
error type and HTTP status. Prompts and outputs never leave the process.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

from ..context import current_run
from ..errors import EnforcementError

log = logging.getLogger("agentstream.producer")


class CallObserver:
    """Accumulates what a response (or a stream of chunks) tells about one model call."""

    def __init__(self, provider: str, model: str, operation: str) -> None:
        self.provider = provider
        self.model = model
        self.operation = operation
        self.response_model: str | None = None
        self.usage: dict[str, int] = {}
        self.finish_reasons: list[str] = []
        self.tool_calls: list[str] = []

    def record(self, step: Any) -> None:
        u = self.usage
        step.record_llm(self.provider, self.model, u.get("input_tokens", 0),
                        u.get("output_tokens", 0), u.get("cache_read_tokens", 0),
                        u.get("cache_write_tokens", 0), self.response_model, self.operation,
                        self.finish_reasons, self.tool_calls)
        if not u:
            step.set_attribute("agentstream.usage.missing", "true")


def classify_error(exc: BaseException) -> tuple[str, str]:
    """(failure_code, error.type) for a client exception, from its class and HTTP status."""
    name = type(exc).__name__
    status = http_status(exc)
    if "Timeout" in name:
        return "timeout", name
    if "Connection" in name:
        return "connection_error", name
    if status == 429:
        return "rate_limited", name
    if status is not None and status >= 500:
        return "server_error", name
    if status in (401, 403):
        return "auth_error", name
    if status is not None and status >= 400:
        return "bad_request", name
    return "client_error", name


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a client exception carries: ``status_code`` (openai, anthropic,
    litellm) or an integer ``code`` (google-genai)."""
    status = getattr(exc, "status_code", None)
    if status is None:
        code = getattr(exc, "code", None)
        status = code if isinstance(code, int) and not isinstance(code, bool) else None
    return status


def _fail(step: Any, exc: BaseException) -> None:
    code, etype = classify_error(exc)
    status = http_status(exc)
    if status is not None:
        step.set_attribute("http.response.status_code", status)
    step.set_attribute("error.type", etype)
    step.fail("model", code, retryable=code in ("timeout", "rate_limited", "server_error",
                                                 "connection_error"))


def _open(provider: str, kwargs: dict, operation: str) -> tuple[Any, CallObserver] | None:
    run = current_run.get()
    if run is None or run.ended:
        return None
    model = str(kwargs.get("model") or "unknown")
    step = run.llm_step(provider, model, f"{operation} {model}")
    step.set_attribute("gen_ai.operation.name", operation)
    step.record_request(model, request_messages(kwargs), kwargs.get("tools"))
    step.begin()  # enforcement may raise here, before the request
    return step, CallObserver(provider, model, operation)


def request_messages(kwargs: dict) -> Any:
    """The conversation a client call sends, across client APIs: chat ``messages``, the
    responses API's ``input`` + ``instructions``, Anthropic's ``system`` + ``messages``."""
    msgs = kwargs.get("messages")
    if msgs is None:
        msgs = kwargs.get("input")
    system = kwargs.get("system", kwargs.get("instructions"))
    if system is not None:
        return {"system": system, "messages": msgs}
    return msgs


def _safe(fn: Callable, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # telemetry must not break the caller
        log.warning("agentstream: instrumentation failed", exc_info=True)


def _finish(step: Any, obs: CallObserver, exc: BaseException | None) -> None:
    if exc is not None and not isinstance(exc, EnforcementError):
        _safe(_fail, step, exc)
    _safe(obs.record, step)
    step.end(exc)


def wrap_sync(orig: Callable, provider: str, operation: str,
              read_response: Callable[[Any, CallObserver], None],
              read_chunk: Callable[[Any, CallObserver], None],
              opener: Callable[..., Any] | None = None) -> Callable:
    @functools.wraps(orig)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        opened = (opener or _open)(provider, kwargs, operation)
        if opened is None:
            return orig(self, *args, **kwargs)
        step, obs = opened
        try:
            resp = orig(self, *args, **kwargs)
        except BaseException as exc:
            _finish(step, obs, exc)
            raise
        if kwargs.get("stream"):
            _observe_stream(resp, step, obs, read_chunk)
        else:
            _safe(read_response, resp, obs)
            _finish(step, obs, None)
        return resp
    wrapper.__agentstream_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def wrap_async(orig: Callable, provider: str, operation: str,
               read_response: Callable[[Any, CallObserver], None],
               read_chunk: Callable[[Any, CallObserver], None],
               opener: Callable[..., Any] | None = None) -> Callable:
    @functools.wraps(orig)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        opened = (opener or _open)(provider, kwargs, operation)
        if opened is None:
            return await orig(self, *args, **kwargs)
        step, obs = opened
        try:
            resp = await orig(self, *args, **kwargs)
        except BaseException as exc:
            _finish(step, obs, exc)
            raise
        if kwargs.get("stream"):
            _observe_astream(resp, step, obs, read_chunk)
        else:
            _safe(read_response, resp, obs)
            _finish(step, obs, None)
        return resp
    wrapper.__agentstream_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def observed_iter(inner: Any, step: Any, obs: CallObserver, read_chunk: Callable) -> Any:
    """``inner``'s chunks, read into ``obs``; the step ends when the stream does."""
    exc: BaseException | None = None
    try:
        for chunk in inner:
            _safe(read_chunk, chunk, obs)
            yield chunk
    except BaseException as e:  # includes GeneratorExit when the caller stops early
        exc = None if isinstance(e, GeneratorExit) else e
        raise
    finally:
        _finish(step, obs, exc)


async def observed_aiter(inner: Any, step: Any, obs: CallObserver, read_chunk: Callable) -> Any:
    exc: BaseException | None = None
    try:
        async for chunk in inner:
            _safe(read_chunk, chunk, obs)
            yield chunk
    except BaseException as e:
        exc = None if isinstance(e, GeneratorExit) else e
        raise
    finally:
        _finish(step, obs, exc)


def _observe_stream(stream: Any, step: Any, obs: CallObserver, read_chunk: Callable) -> None:
    stream.__dict__["_iterator"] = observed_iter(stream._iterator, step, obs, read_chunk)


def _observe_astream(stream: Any, step: Any, obs: CallObserver, read_chunk: Callable) -> None:
    stream.__dict__["_iterator"] = observed_aiter(stream._iterator, step, obs, read_chunk)


class Patcher:
    """Applies and reverts method patches; patching twice is a no-op."""

    def __init__(self) -> None:
        self._applied: list[tuple[type, str, Any]] = []

    def patch(self, cls: type, name: str, make: Callable[[Callable], Callable]) -> None:
        orig = cls.__dict__.get(name)
        if orig is None or hasattr(orig, "__agentstream_original__"):
            return
        setattr(cls, name, make(orig))
        self._applied.append((cls, name, orig))

    def revert(self) -> None:
        for cls, name, orig in reversed(self._applied):
            setattr(cls, name, orig)
        self._applied.clear()


def get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)
