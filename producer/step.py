"""One step of a run: a context manager that emits a single STEP event when it closes.

This is the hottest path of the SDK, so it does the least it can on the agent's thread: two
clock reads, a contextvar set/reset and one deque append of a tuple. Encoding happens later on
the transport thread.
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .context import current_step
from .errors import EnforcementError
from .wire import STEP_KIND_INDEX, STEP_STATUS_INDEX

if TYPE_CHECKING:
    from .run import Run

_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns
KIND_LOOKUP = {**STEP_KIND_INDEX, **{k.lower(): v for k, v in STEP_KIND_INDEX.items()}}
CUSTOM = STEP_KIND_INDEX["CUSTOM"]
LLM = STEP_KIND_INDEX["LLM"]
TOOL = STEP_KIND_INDEX["TOOL"]
_ERROR, _TIMEOUT, _CANCELLED = (STEP_STATUS_INDEX[s] for s in ("ERROR", "TIMEOUT", "CANCELLED"))


class Step:
    __slots__ = ("run", "kind", "name", "attrs", "step_id", "parent_step_id", "started_us", "_t0",
                 "_token", "attempt", "retry_of", "status", "llm", "tool", "handoff", "approval",
                 "fallback", "content", "fingerprint", "estimate")

    def __init__(self, run: "Run", kind: int, name: str, attrs: dict | None,
                 attempt: int = 1, retry_of: str | None = None) -> None:
        self.run = run
        self.kind = kind
        self.name = name
        self.attrs = attrs
        self.attempt = attempt
        self.retry_of = retry_of
        self.status = 0
        self.llm = self.tool = self.handoff = self.approval = self.fallback = self.content = None
        self.fingerprint = None
        self.estimate = None
        self.step_id = None
        self._t0 = None
        self._token = None

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> "Step":
        run = self.run
        if run._gate:
            delay = run._gate_check(self)  # enforcement: may raise before the step starts
            if delay:
                time.sleep(delay)
        self._open(run)
        return self

    async def __aenter__(self) -> "Step":
        run = self.run
        if run._gate:
            delay = run._gate_check(self)
            if delay:
                await asyncio.sleep(delay)
        self._open(run)
        return self

    def _open(self, run: "Run") -> None:
        self.step_id = sid = run._sid + str(next(run._counter))
        if self.attempt > 1:
            run._note_attempt(sid, self.attempt)
        parent = current_step.get()
        self.parent_step_id = parent.step_id if parent is not None and parent.run is run else None
        self._token = current_step.set(self)
        self.started_us = _time_ns() // 1000
        self._t0 = _perf_ns()

    def begin(self) -> "Step":
        """Opens the step without making it the current step (for work that outlives the
        caller's frame, e.g. a streamed response). Enforcement applies as in ``__enter__``."""
        run = self.run
        if run._gate:
            delay = run._gate_check(self)
            if delay:
                time.sleep(delay)
        self.step_id = run._sid + str(next(run._counter))
        parent = current_step.get()
        self.parent_step_id = parent.step_id if parent is not None and parent.run is run else None
        self._token = None
        self.started_us = _time_ns() // 1000
        self._t0 = _perf_ns()
        return self

    def end(self, exc: BaseException | None = None) -> None:
        """Closes a step opened with ``begin`` (idempotent)."""
        if self.step_id is not None and self._t0 is not None:
            self.__exit__(type(exc) if exc is not None else None, exc, None)

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        if self._t0 is None:  # already closed
            return False
        lat_ns = _perf_ns() - self._t0
        self._t0 = None
        if self._token is not None:
            try:
                current_step.reset(self._token)
            except ValueError:  # closed in another context (a generator finished elsewhere)
                current_step.set(None)
        status = self.status
        if et is not None:
            if not status:
                status = (_CANCELLED if issubclass(et, asyncio.CancelledError)
                          else _TIMEOUT if issubclass(et, TimeoutError) else _ERROR)
            if not issubclass(et, EnforcementError):
                attrs = self.attrs
                if attrs is None:
                    self.attrs = attrs = {}
                attrs["error.type"] = et.__name__
        self.run._close_step(self, status, lat_ns)
        return False

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> bool:
        return self.__exit__(et, ev, tb)

    # -- while open -----------------------------------------------------------------------
    def set_attribute(self, key: str, value: Any) -> "Step":
        if self.attrs is None:
            self.attrs = {}
        self.attrs[key] = value
        return self

    def set_attributes(self, **attrs: Any) -> "Step":
        if self.attrs is None:
            self.attrs = {}
        self.attrs.update(attrs)
        return self

    def set_status(self, status: str) -> "Step":
        """OK, ERROR, TIMEOUT or CANCELLED (case-insensitive); unknown values mean ERROR."""
        self.status = STEP_STATUS_INDEX.get(str(status).upper(), _ERROR)
        return self

    def record_llm(self, provider: str, model: str, input_tokens: int = 0,
                   output_tokens: int = 0, cache_read_tokens: int = 0,
                   cache_write_tokens: int = 0, response_model: str | None = None,
                   operation: str = "chat", finish_reasons: Any = (), tool_calls: Any = (),
                   cost_usd: float | None = None) -> "Step":
        """Model, provider and usage of the call this step made (OTel GenAI semantics)."""
        self.llm = self.run._llm_record(provider, model, input_tokens, output_tokens,
                                        cache_read_tokens, cache_write_tokens, response_model,
                                        operation, finish_reasons, tool_calls, cost_usd, self)
        return self

    def record_tool(self, tool_name: str | None = None, args: Any = ..., call_id: str | None = None
                    ) -> "Step":
        """The tool this step called; ``args`` travel only as a keyed digest."""
        digest = None if args is ... else self.run._policy.digest(args)
        self.tool = {"tool_name": tool_name or self.name, "call_id": call_id, "args_digest": digest}
        return self

    def capture(self, content: Any) -> "Step":
        """Offers content; the capture policy decides whether a redacted preview or a
        reference travels (metadata_only: nothing)."""
        try:
            self.content = self.run._policy.project(content)
        except Exception:  # noqa: BLE001 - a failing content store drops content, not the step
            self.run._count_failure("capture")
        return self

    def fail(self, failure_type: str, failure_code: str, message: str | None = None,
             retryable: bool = False) -> "Step":
        """Marks this step ERROR and records a FAILURE linked to it."""
        self.status = _ERROR
        self.run.failure(failure_type, failure_code, message, step_id=self.step_id,
                         retryable=retryable)
        return self
