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
    """Defaults live on the class so opening a step sets only what differs (cheaper)."""

    status = 0
    llm = tool = handoff = approval = fallback = content = None
    fingerprint = None
    estimate = None
    attempt = 1
    retry_of = None
    _n: int | None = None          # step number in the run; step_id is derived from it
    _pn: int | str | None = None   # parent step's number (or id)
    _t0: int | None = None         # perf_counter_ns at open; None once closed
    _token = None

    def __init__(self, run: "Run", kind: int, name: str, attrs: dict | None) -> None:
        self.run = run
        self.kind = kind
        self.name = name
        self.attrs = attrs

    @property
    def step_id(self) -> str | None:
        n = self._n
        return None if n is None else self.run._sid + str(n)

    @property
    def parent_step_id(self) -> str | None:
        pn = self._pn
        return pn if pn is None or pn.__class__ is str else self.run._sid + str(pn)

    @property
    def started_us(self) -> int | None:
        t0 = self._t0
        return None if t0 is None else (t0 + self.run._clock_off) // 1000

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> "Step":
        run = self.run
        if run._gate:
            delay = run._gate_check(self)  # enforcement: may raise before the step starts
            if delay:
                time.sleep(delay)
        self._n = next(run._counter)
        if self.attempt > 1:
            run._note_attempt(self.step_id, self.attempt)
        parent = current_step.get()
        if parent is not None and parent.run is run:
            self._pn = parent._n
        self._token = current_step.set(self)
        self._t0 = _perf_ns()
        return self

    async def __aenter__(self) -> "Step":
        run = self.run
        if run._gate:
            delay = run._gate_check(self)
            if delay:
                await asyncio.sleep(delay)
        self._token = None
        return self._begin(run, True)

    def _begin(self, run: "Run", make_current: bool) -> "Step":
        self._n = next(run._counter)
        if self.attempt > 1:
            run._note_attempt(self.step_id, self.attempt)
        parent = current_step.get()
        if parent is not None and parent.run is run:
            self._pn = parent._n
        if make_current:
            self._token = current_step.set(self)
        self._t0 = _perf_ns()
        return self

    def begin(self) -> "Step":
        """Opens the step without making it the current step (for work that outlives the
        caller's frame, e.g. a streamed response). Enforcement applies as in ``__enter__``."""
        run = self.run
        if run._gate:
            delay = run._gate_check(self)
            if delay:
                time.sleep(delay)
        return self._begin(run, False)

    def end(self, exc: BaseException | None = None) -> None:
        """Closes a step opened with ``begin`` (idempotent)."""
        if self._t0 is not None:
            self.__exit__(type(exc) if exc is not None else None, exc, None)

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        t0 = self._t0
        if t0 is None:  # already closed
            return False
        lat_ns = _perf_ns() - t0
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
        # inlined Run._close_step: this is the hot path
        run = self.run
        run.step_count += 1
        kind = self.kind
        if kind == LLM:
            run.llm_calls += 1
        q = run._q
        if len(q) < run._qmax:
            q.append((run, "STEP", 0, self._pn, self.attrs,
                      (self._n, kind, self.name, status, t0, lat_ns, self.attempt, self.retry_of,
                       self.llm, self.tool, self.handoff, self.approval, self.fallback,
                       self.content)))
        else:
            run._t.dropped += 1
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
