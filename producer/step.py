"""One step of a run: a context manager that emits a single STEP event when it closes.

This is the hottest path of the SDK, so the agent's thread does only what must happen there:
the enforcement gate (one flag test unless a budget, throttle or command is active), a
contextvar get/set/reset (the parent is the step that was current), two ``perf_counter_ns``
reads, two run counters and one bounded ``deque.append`` of the step object itself. The step
number, step and parent ids, wall-clock times and encoding are derived on the transport thread
(``pipeline.py``); a step number is drawn earlier only if the agent asks for ``step_id``.

The contextvar stays: a per-run stack would save ~0.3 µs but is wrong for concurrent asyncio
tasks and threads of one run, whose steps are siblings, not parent and child.

Two cores implement the open/close path with the same behaviour: ``_PyStepCore`` here (the
reference) and ``_speedups.StepCore`` in C (``_speedups.c``), built at install time when a
compiler is there. ``Step`` holds everything else and is the base of both concrete classes,
``PyStep`` and ``FastStep``; a tracer uses the C one unless told not to (``speedups=False``).
"""
from __future__ import annotations

import asyncio
import contextvars
import time
from typing import TYPE_CHECKING, Any, Literal

from agentstream.schemas.loop_repeats import RESULT_DIGEST_ATTR

from .context import current_step
from .errors import EnforcementError
from .wire import STEP_KIND_INDEX, STEP_STATUS_INDEX

try:
    from . import _speedups
except ImportError:  # built without a compiler: the pure-Python core only
    _speedups = None  # type: ignore[assignment]  # optional extension: mypy types the name as its stub

if TYPE_CHECKING:
    from .run import Run

KIND_LOOKUP = {**STEP_KIND_INDEX, **{k.lower(): v for k, v in STEP_KIND_INDEX.items()}}
CUSTOM = STEP_KIND_INDEX["CUSTOM"]
LLM = STEP_KIND_INDEX["LLM"]
TOOL = STEP_KIND_INDEX["TOOL"]
_ERROR, _TIMEOUT, _CANCELLED = (STEP_STATUS_INDEX[s] for s in ("ERROR", "TIMEOUT", "CANCELLED"))


class Step:
    """A step of a run. Defaults live on the class so opening a step sets only what differs.
    (``__slots__`` would force every field to be set per step, which costs more than it saves
    on CPython 3.11.) The core fields (``run``, ``kind``, ``name``, ``attrs``, ``_parent``,
    ``_token``, ``_n``, ``_t0``, ``_lat``) and ``__init__``/``__enter__``/``__exit__`` come from
    the core class: ``_PyStepCore`` or the C ``StepCore``.

    Once closed, the step object itself is the queue item; the transport thread reads it."""

    # The core's fields, declared for the type checker only: a value here would shadow the C
    # core's slots (``Step`` comes first in ``FastStep``'s MRO).
    run: Run
    kind: int
    name: str
    attrs: dict[str, Any] | None
    _parent: Step | str | None  # the enclosing step, or an explicit parent step id
    _token: contextvars.Token[Any] | None
    _n: int | None  # step number in the run (drawn lazily: ``Run._number``)
    _t0: int | None  # perf_counter_ns at open
    _lat: int | None  # latency in ns; set once, at close

    if TYPE_CHECKING:  # the core's methods (``_PyStepCore`` below, or the C ``StepCore``)
        def __init__(self, run: Run, kind: int, name: str,
                     attrs: dict[str, Any] | None, /) -> None: ...

        def __enter__(self) -> Step: ...

        def __exit__(self, et: Any, ev: Any, tb: Any, /) -> Literal[False]: ...

        def _taken(self) -> None: ...

    status = 0
    llm: dict[str, Any] | None = None  # the STEP payload's sections, set by the record_* calls
    tool: dict[str, Any] | None = None
    handoff: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    content: dict[str, str | None] | None = None
    request_digest: str | None = None  # keyed digest of an LLM request (model, messages, tools)
    estimate: tuple[int, float] | None = None  # (tokens, cost) an LLM step expects to use
    attempt = 1
    retry_of: str | None = None

    @property
    def step_id(self) -> str:
        n = self._n
        return self.run._sid + str(self.run._number(self) if n is None else n)

    @property
    def parent_step_id(self) -> str | None:
        p = self._parent
        if p is None or isinstance(p, str):
            return p
        return p.step_id if p.run is self.run else None

    @property
    def started_us(self) -> int | None:
        t0 = self._t0
        return None if t0 is None else (t0 + self.run._clock_off) // 1000

    @property
    def closed(self) -> bool:
        return self._lat is not None

    # -- opening and closing beyond the core's __enter__/__exit__ -----------------------
    def _open(self) -> "Step":
        """Makes the step current and starts its clock (the cores' ``__enter__`` inline this)."""
        self._parent = current_step.get()
        self._token = current_step.set(self)
        self._t0 = time.perf_counter_ns()
        return self

    def _enter_gated(self) -> "Step":
        """``__enter__`` of a run whose gate is up: enforcement may raise before the step starts."""
        delay = self.run._gate_check(self)
        if delay:
            time.sleep(delay)
        return self._open()

    async def __aenter__(self) -> "Step":
        run = self.run
        if run._gate:
            delay = run._gate_check(self)
            if delay:
                await asyncio.sleep(delay)
        return self._open()

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        return self.__exit__(et, ev, tb)

    def begin(self) -> "Step":
        """Opens the step without making it the current step (for work that outlives the
        caller's frame, e.g. a streamed response). Enforcement applies as in ``__enter__``."""
        run = self.run
        if run._gate:
            delay = run._gate_check(self)
            if delay:
                time.sleep(delay)
        self._parent = current_step.get()
        self._t0 = time.perf_counter_ns()
        return self

    def end(self, exc: BaseException | None = None) -> None:
        """Closes a step opened with ``begin`` (idempotent)."""
        if self._t0 is not None and self._lat is None:
            self.__exit__(type(exc) if exc is not None else None, exc, None)

    def _failed(self, et: type) -> None:
        if not self.status:
            self.status = (_CANCELLED if issubclass(et, asyncio.CancelledError)
                           else _TIMEOUT if issubclass(et, TimeoutError) else _ERROR)
        if not issubclass(et, EnforcementError):
            self.set_attribute("error.type", et.__name__)

    # -- while open -----------------------------------------------------------------------
    def set_attribute(self, key: str, value: Any) -> "Step":
        if self.attrs is None:
            self.attrs = {}
        if key.__class__ is str:
            self.attrs[key] = value
            return self
        try:  # attribute keys are text on the wire; a key whose str() raises is left out
            self.attrs[str(key)] = value
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self.run._count_failure("step attribute key")
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
        try:
            self.llm = self.run._llm_record(provider, model, input_tokens, output_tokens,
                                            cache_read_tokens, cache_write_tokens, response_model,
                                            operation, finish_reasons, tool_calls, cost_usd, self)
            if self.request_digest is not None:
                self.llm["request_digest"] = self.request_digest
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self.run._count_failure("record_llm")
        return self

    def record_request(self, model: str, messages: Any, tools: Any = None) -> "Step":
        """The request this LLM step sends, as a keyed digest only (``request_model``,
        messages and tool definitions; never the content). Equal digests in one run mean the
        same request again: the processors count them as repeats, as they do tool calls with
        equal argument digests. The auto-instrumentation calls it for you."""
        try:
            self.request_digest = self.run._policy.digest(request_canonical(model, messages, tools))
            if self.llm is not None:
                self.llm["request_digest"] = self.request_digest
        except Exception:  # noqa: BLE001 - a digest failure must not break the agent's call
            self.run._count_failure("llm request digest")
        return self

    def record_tool(self, tool_name: str | None = None, args: Any = ..., call_id: str | None = None
                    ) -> "Step":
        """The tool this step called; ``args`` travel only as a keyed digest."""
        try:
            digest = None if args is ... else self.run._policy.digest(args)
        except Exception:  # noqa: BLE001 - args canonical JSON cannot write: the call, undigested
            self.run._count_failure("tool args digest")
            digest = None
        self.tool = {"tool_name": tool_name or self.name, "call_id": call_id, "args_digest": digest}
        return self

    def record_result(self, result: Any) -> "Step":
        """What the step's call returned, as a keyed digest only (the step's
        ``agentstream.return_digest`` attribute; never the result). A call repeated with the same
        arguments but a new result made progress: polling a job until it is done is not a loop
        for the SDK's repeated-call rule nor for the processors', the same result again is
        (schemas/loop_repeats.py). Not for an LLM call: a sampled reply differing is no progress."""
        try:
            self.set_attribute(RESULT_DIGEST_ATTR, self.run._policy.digest(result))
        except Exception:  # noqa: BLE001 - a result canonical JSON cannot write: the step goes without
            self.run._count_failure("step result digest")
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


def request_canonical(model: Any, messages: Any, tools: Any = None) -> dict[str, Any]:
    """What an LLM request digest covers; the gateway's OTLP mapping digests the same shape
    (``api/gateway/span_digest.py``), so one key gives one request one digest on both paths."""
    return {"model": str(model), "messages": messages, "tools": tools or []}


class _PyStepCore(Step):
    """The pure-Python core: the reference for ``_speedups.StepCore``. It derives from
    ``Step`` (the C core cannot): its open and close call ``Step``'s gated open and failure
    marking."""

    # (typed again here: mypy may see this class before Step's annotations in the step/run
    # import cycle, and would then type them None)
    _n: int | None = None
    _parent: Step | str | None = None
    # Dropped at close: a queued step should not keep its token (and the token its context)
    # alive; every object that survives in the queue makes the cyclic GC's passes longer.
    _token: contextvars.Token[Any] | None = None
    _t0: int | None = None
    _lat: int | None = None

    def __init__(self, run: Run, kind: int, name: str, attrs: dict[str, Any] | None) -> None:
        self.run = run
        self.kind = kind
        self.name = name
        self.attrs = attrs

    def __enter__(self) -> Step:
        if self.run._gate:
            return self._enter_gated()
        # ``Step._open`` inlined: this is the pure-Python core's hot path.
        self._parent = current_step.get()
        self._token = current_step.set(self)
        self._t0 = time.perf_counter_ns()
        return self

    def _taken(self) -> None:
        """The transport took the step off the queue (the C core re-enables GC tracking)."""

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        t0 = self._t0
        if t0 is None or self._lat is not None:  # never opened, or already closed
            return False
        self._lat = time.perf_counter_ns() - t0
        token = self._token
        if token is not None:
            self._token = None
            try:
                current_step.reset(token)
            except ValueError:  # closed in another context (a generator finished elsewhere)
                current_step.set(None)
        if et is not None:
            self._failed(et)
        self.run._queue_step(self)
        return False


class PyStep(_PyStepCore):
    """A step on the pure-Python core."""


if _speedups is not None:
    class FastStep(Step, _speedups.StepCore):
        """A step on the C core (``_speedups.c``)."""
else:
    FastStep = None  # type: ignore[misc]  # no C core: callers test FastStep first
