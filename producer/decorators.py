"""``@tracer.agent``, ``@tracer.tool``, ``@tracer.llm`` and ``@tracer.step``.

Each works on plain functions, coroutines, generators and async generators. ``agent`` opens a
run per call (a nested call becomes a child run: handoff); the others open a step in the
current run and call straight through when there is none.
"""
from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable

from .context import current_run
from .enforcement import Budget

if TYPE_CHECKING:
    from .durable import AuditWriter
    from .policy_follower import DurablePolicy
    from .run import Run
    from .settings import ProducerSettings

_USAGE_EXTRACTORS: list[Callable[[Any], dict[str, Any] | None]] = []

Fn = Callable[..., Any]
# Called with a call's positional and keyword arguments; returns its step's context manager, or
# None to call straight through.
Opener = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def _bound_args(fn: Fn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        ba = inspect.signature(fn).bind(*args, **kwargs)
        ba.apply_defaults()
        return {k: v for k, v in ba.arguments.items() if k not in ("self", "cls")}
    except (TypeError, ValueError):
        return {"args": list(args), "kwargs": kwargs}


def usage_from_response(resp: Any) -> dict[str, Any] | None:
    """Token usage from an OpenAI- or Anthropic-shaped response object, if it has one."""
    usage = getattr(resp, "usage", None)
    if usage is None:
        return None
    from .instrument.usage import normalise_usage

    return normalise_usage(usage, getattr(resp, "model", None))


def _record_result(step: Any, result: Any) -> None:
    record = getattr(step, "record_result", None)  # a durable step hands out the step it wraps
    if record is not None:
        record(result)


def _wrap(fn: Fn, opener: Opener, on_result: Callable[[Any, Any], None] | None = None) -> Fn:
    """Wraps ``fn`` so each call runs inside ``opener(args, kwargs)`` (a context manager)."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            cm = opener(args, kwargs)
            if cm is None:
                async for item in fn(*args, **kwargs):
                    yield item
                return
            async with cm:
                async for item in fn(*args, **kwargs):
                    yield item
        return agen_wrapper
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            cm = opener(args, kwargs)
            if cm is None:
                return await fn(*args, **kwargs)
            async with cm as handle:
                result = await fn(*args, **kwargs)
                if on_result is not None:
                    on_result(handle, result)
                return result
        return async_wrapper
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            cm = opener(args, kwargs)
            if cm is None:
                return (yield from fn(*args, **kwargs))
            with cm:
                return (yield from fn(*args, **kwargs))
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cm = opener(args, kwargs)
        if cm is None:
            return fn(*args, **kwargs)
        with cm as handle:
            result = fn(*args, **kwargs)
            if on_result is not None:
                on_result(handle, result)
            return result
    return wrapper


def _maybe_called(fn: Fn | None, make: Callable[[Fn], Fn]) -> Any:
    return make(fn) if fn is not None else make


class Decorators:
    """Mixed into ``Tracer``, which sets or defines what is declared below. The declarations
    are annotations only (no values): ``_durable_patterns`` and ``_durable_writer`` stay unset
    until first written, so they are read through ``getattr`` with a default."""

    settings: ProducerSettings
    topic: str
    _producer_factory: Callable[[dict[str, Any]], Any] | None
    _durable_patterns: tuple[str, ...]  # set_durable_tools' override; unset: follow the policy
    _durable_writer: AuditWriter  # the audit producer, created on the first durable call

    if TYPE_CHECKING:  # defined by ``Tracer`` (tracer.py)
        def run(self, name: str = "run", *, session_id: str | None = None,
                parent_run_id: str | None = None, parent: Run | None = None,
                role: str | None = None, budget: Budget | None = None, run_id: str | None = None,
                sampled: bool | None = None, end_user_id: Any = None, **attrs: Any) -> Run: ...

        def _durable_policy(self) -> DurablePolicy | None: ...

    def agent(self, fn: Fn | None = None, *, name: str | None = None,
              role: str | None = None, budget: Budget | None = None,
              session_arg: str | None = None) -> Any:
        """Each call is one run. Called inside another run, it is a handoff: a child run with
        the parent's id and session. ``session_arg`` names a parameter holding the session id."""
        def make(f: Fn) -> Fn:
            run_name = name or f.__qualname__

            def opener(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                parent = current_run.get()
                session = None
                if session_arg:
                    session = kwargs.get(session_arg)
                    if session is None:
                        session = _bound_args(f, args, kwargs).get(session_arg)
                return self.run(run_name, role=role, budget=budget,
                                parent=parent if parent is not None and not parent.ended else None,
                                session_id=None if session is None else str(session))
            return _wrap(f, opener)
        return _maybe_called(fn, make)

    def tool(self, fn: Fn | None = None, *, name: str | None = None,
             digest_args: bool = True, durable: bool = False, action_class: str | None = None,
             durable_timeout_s: float | None = None, digest_result: bool = False) -> Any:
        """A TOOL step per call; the bound arguments travel only as a keyed digest (and feed
        the repeated-call fingerprint, checked before the tool runs).

        ``digest_result=True`` (for a tool that is polled: ``get_job_status(job_id)``) records a
        keyed digest of what each call returns (``step.record_result``), so the same arguments
        with a new result are progress, not a loop. Off by default: a tool whose results carry a
        timestamp or a request id would then never repeat, and a real loop would go unseen.

        ``durable=True``, or an ``action_class`` (or tool name) matching the tenant's policy
        (``governance.durable_tools``, followed on the policies topic; ``set_durable_tools``
        overrides it), makes it fail closed: the call's audit record must be acknowledged by
        Kafka (acks=all) within ``durable_timeout_s`` (default 5 s) before the body runs, else
        ``AuditUnavailable`` is raised and the body does not run. Until the policy has been
        read, a tool with an ``action_class`` is durable (see ``DurablePolicy``)."""
        def make(f: Fn) -> Fn:
            tool_name = name or f.__name__

            def opener(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                run = current_run.get()
                if run is None or run.ended:
                    if durable or self.is_durable(tool_name, action_class):
                        # no run to audit under: a durable action still never runs unaudited
                        from .errors import AuditUnavailable
                        raise AuditUnavailable(f"durable tool {tool_name} called outside a run")
                    return None
                if digest_args:
                    s = run.tool_step(tool_name, _bound_args(f, args, kwargs))
                else:
                    s = run.tool_step(tool_name)
                if durable or self.is_durable(tool_name, action_class):
                    from .durable import DEFAULT_TIMEOUT_S, DurableStep
                    return DurableStep(s, self._audit_writer(), tool_name, action_class,
                                       DEFAULT_TIMEOUT_S if durable_timeout_s is None else durable_timeout_s)
                return s
            return _wrap(f, opener, _record_result if digest_result else None)
        return _maybe_called(fn, make)

    def set_durable_tools(self, patterns: list[str] | tuple[str, ...]) -> None:
        """An explicit override of the tenant policy's ``governance.durable_tools``, which the
        tracer otherwise follows by itself: fnmatch patterns matched against each tool's
        ``action_class`` and name (``[]``: nothing is durable by class or name)."""
        self._durable_patterns = tuple(str(p) for p in patterns)

    def is_durable(self, tool_name: str, action_class: str | None = None) -> bool:
        """Whether a ``@tracer.tool`` of this name and ``action_class`` is a durable action
        now (its audit record reaches Kafka before it runs; ``durable=True`` makes one so
        whatever this says): by ``set_durable_tools`` if given, else by the followed policy,
        which while unread holds every tool with an ``action_class`` durable (fail closed)."""
        patterns = getattr(self, "_durable_patterns", None)
        if patterns is None:  # no override: the followed policy decides
            followed = self._durable_policy()
            return followed is not None and followed.durable(tool_name, action_class)
        if not patterns:
            return False
        from .durable import is_durable
        return is_durable(tool_name, action_class, patterns)

    def _audit_writer(self) -> AuditWriter:
        w = getattr(self, "_durable_writer", None)
        if w is None:
            import threading

            from .durable import AuditWriter
            lock = self.__dict__.setdefault("_durable_lock", threading.Lock())
            with lock:
                w = getattr(self, "_durable_writer", None)
                if w is None:
                    st = self.settings
                    try:
                        w = AuditWriter(st.bootstrap_servers, self.topic, st.client_conf,
                                        producer_factory=getattr(self, "_producer_factory", None))
                    except Exception as exc:  # bad client conf: fail closed, documented
                        from .errors import AuditUnavailable
                        raise AuditUnavailable(f"cannot create the audit producer: {exc}") from exc
                    self._durable_writer = w
        return w

    def llm(self, fn: Fn | None = None, *, provider: str = "unknown",
            model: str | None = None, name: str | None = None,
            estimated_tokens: int = 0) -> Any:
        """An LLM step per call; budgets are checked before the call. The bound arguments
        travel only as the step's ``request_digest``. If the function returns an OpenAI- or
        Anthropic-shaped response, its usage is recorded and priced."""
        def make(f: Fn) -> Fn:
            def opener(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                run = current_run.get()
                if run is None or run.ended:
                    return None
                m = model or str(kwargs.get("model") or "unknown")
                s = run.llm_step(provider, m, name or f.__name__, estimated_tokens=estimated_tokens)
                # The call's arguments are its request: the same prompt again is the same digest.
                return s.record_request(m, _bound_args(f, args, kwargs))

            def on_result(step: Any, result: Any) -> None:
                try:
                    u = usage_from_response(result)
                except Exception:  # noqa: BLE001 - an unreadable usage object only loses the token counts
                    u = None
                if u is not None and step.llm is None:
                    req_model = model or u.pop("response_model", None) or "unknown"
                    step.record_llm(provider, req_model, response_model=getattr(
                        result, "model", None), **{k: v for k, v in u.items()
                                                   if k != "response_model"})
                elif step.llm is None:
                    # No usage in the result: still an LLM call (model, request digest), as the
                    # client instrumentation records it.
                    step.record_llm(provider, model or str(step.attrs.get("gen_ai.request.model")
                                                           or "unknown"))
                    step.set_attribute("agentstream.usage.missing", "true")
            return _wrap(f, opener, on_result)
        return _maybe_called(fn, make)

    def step(self, kind: str = "custom", name: str | None = None) -> Callable[[Fn], Fn]:
        """A step of ``kind`` per call (plan, retrieval, respond, guardrail, ...)."""
        def make(f: Fn) -> Fn:
            step_name = name or f.__name__

            def opener(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                run = current_run.get()
                if run is None or run.ended:
                    return None
                return run.step(kind, step_name)
            return _wrap(f, opener)
        return make
