"""A run's lifecycle: RUN_START first, its events in between, RUN_END last with totals.

``Run`` owns the run's identity and state, emission onto the transport queue, the step
factories (``step``, ``tool_step``, ``llm_step``) and start/end. The enforcement gate lives in
``gate.py`` and the one-shot record helpers in ``records.py`` (mixins over the same state).

Public methods never raise into the agent, except the enforcement checks, which raise a typed
``EnforcementError`` *before* the operation they refuse, after recording why.
"""
from __future__ import annotations

import contextvars
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from agentstream.schemas.stored_ranges import ATTEMPT_MAX, step_attempt
from agentstream.schemas.usage_numbers import usage_cost, usage_count

from .context import current_run, current_step
from .enforcement import RunBudget
from .errors import EnforcementError
from .gate import RunGate, TimedApproval
from .ids import uuid4_str
from .records import (APPROVAL_DECISIONS, FEEDBACK_VALUES, NEGATIVE_SIGNALS, ApprovalRequest,
                      RunRecords)
from .step import CUSTOM, KIND_LOOKUP, LLM, TOOL, FastStep, PyStep, Step, _speedups
from .wire import STEP_KIND_INDEX, RunWire, utf8

if TYPE_CHECKING:
    from .tracer import Tracer

log = logging.getLogger("agentstream.producer")
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns


def _reset(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    try:
        var.reset(token)
    except ValueError:  # ended in another context than it started in
        var.set(None)


def _kind(kind: Any) -> int:
    """Any other spelling of a kind, or anything else (even unhashable): CUSTOM."""
    return KIND_LOOKUP.get(str(kind).upper(), CUSTOM)


class Run(RunGate, RunRecords):
    """A run on the pure-Python step core; ``FastRun`` (below) is the same with ``step`` in C."""

    _step_type: type[Step] = PyStep

    # Defaults live on the class (as Step's do): a run is made per agent request, and each
    # assignment in __init__ was CPU on the agent's thread. Set per run when they change.
    _throttle_s = 0.0
    _stop_exc: EnforcementError | None = None
    step_count = 0
    llm_calls = 0
    input_tokens = 0
    output_tokens = 0
    cost_usd = 0.0
    approval_wait_ms = 0.0
    status: str | None = None
    outcome: str | None = None
    failures = 0
    started_us = 0
    _t0 = 0
    # current_run's and current_step's tokens while the run is current (reset at its end)
    _tokens: tuple[contextvars.Token[Any], contextvars.Token[Any]] | None = None
    ended = False
    _gate = False
    # Unset unless given: every store into a run's own attributes costs (a FastRun keeps them
    # in a dict, which grows as they come). A Run on the pure-Python core keeps CPython 3.11's
    # compact shared layout as long as it has at most 30; these keep it at 26 to 30.
    session_id: str | None = None
    parent_run_id: str | None = None
    end_user_id: str | None = None
    role: str | None = None
    attrs: dict[str, Any] | None = None
    budget: RunBudget | None = None
    # Made when first needed (most runs have no retries and get no commands): fewer objects
    # per run for the agent's thread to allocate and the cyclic GC to scan.
    _attempts: dict[str, int] | None = None
    _commands: list[dict[str, Any]] | tuple[()] = ()
    # Owned by the transport thread (pipeline.py).
    _wire: RunWire | None = None
    _buf: list[tuple[bytes, bytes]] | None = None
    _seq = 0
    _had_failure = False

    def __init__(self, tracer: "Tracer", name: str, run_id: str | None, session_id: str | None,
                 parent_run_id: str | None, role: str | None, limits: Any, sampled: bool,
                 attrs: dict[str, Any] | None, *, end_user_id: str | None = None) -> None:
        self.tracer = tracer
        self._t = tracer._transport
        self._q = self._t.q
        self._qmax = self._t.maxsize
        self._policy = tracer._policy
        self.name = name
        self.run_id = run_id or uuid4_str()
        # Set only when given (the class holds None): see the note at the class attributes.
        if session_id is not None:
            self.session_id = session_id
        if parent_run_id is not None:
            self.parent_run_id = parent_run_id
        if end_user_id is not None:
            self.end_user_id = end_user_id  # the keyed digest (Tracer.run made it), never the raw id
        if role is not None:
            self.role = role
        if attrs:
            self.attrs = attrs
        if limits is not tracer._limits or tracer._limits_any:
            if limits.any():
                self.budget = RunBudget(limits, self.run_id)
                self._gate = True
        self._sid = self.run_id[:8] + "."
        self._counter = itertools.count(1)
        self._n_lock = threading.Lock()
        # One wall-clock anchor per run: a step's wall time is perf_counter_ns + this offset,
        # computed on the transport thread (no time.time() per step).
        self._clock_off = _time_ns() - _perf_ns()
        # Owned by the transport thread (pipeline.py).
        self._key = utf8(self.run_id)
        # Event ids are this seed's first 24 characters and the event's seq. A run id this
        # Run drew is as random and as unique as a second draw would be; a run id the caller
        # gave may come again (a run resumed in another process), so it gets a fresh seed.
        self._event_seed = self.run_id if run_id is None else uuid4_str()
        if not sampled:
            self._buf: list[tuple[bytes, bytes]] = []  # the run's records, held to its end
        self._sampled = sampled

    # The tracer's identity, read through it (not stored per run: see the class attributes).
    @property
    def tenant_id(self) -> str:
        return self.tracer.tenant_id

    @property
    def agent_id(self) -> str:
        return self.tracer.agent_id

    @property
    def agent_version(self) -> str:
        return self.tracer.agent_version

    @property
    def environment(self) -> str:
        return self.tracer.environment

    # ---- emission -----------------------------------------------------------------------
    def _emit(self, kind: str, payload: Any, attrs: dict | None = None,
              parent_step_id: str | None = None, ts_us: int | None = None) -> None:
        item = (self, kind, ts_us or _time_ns() // 1000, parent_step_id, attrs, payload)
        if len(self._q) < self._qmax:
            self._q.append(item)
        else:
            self._t.overflow(item)  # drops the oldest queued event, counts and warns

    def _count_failure(self, what: str) -> None:
        self._t.failed += 1
        log.warning("agentstream: %s failed", what, exc_info=True)

    def _close_step(self, step: Step, status: int, lat_ns: int) -> None:
        """Queues a step whose ``_t0`` (perf_counter ns) and parent are already set."""
        step.status = status
        step._lat = lat_ns
        self._queue_step(step)

    def _queue_step(self, step: Step) -> None:
        """Counts a closed step and queues it (the C core does the same in ``_speedups.c``).
        Counted on the agent's thread: budgets and readers of run totals need them now."""
        self.step_count += 1
        if step.kind == LLM:
            self.llm_calls += 1
        q = self._q
        if len(q) < self._qmax:
            q.append(step)
        else:
            self._t.overflow(step)  # drops the oldest queued event, counts and warns

    def _number(self, step: Step) -> int:
        """A step's number, drawn once by whichever thread asks first: the agent reading
        ``step_id`` or the transport thread encoding the step. Drawing it there keeps a
        counter off the hot path; numbers are unique per run, not ordered by open time."""
        with self._n_lock:
            n = step._n
            if n is None:
                n = step._n = next(self._counter)
            return n

    def _note_attempt(self, step: Step, retried: str | None) -> None:
        """Remembers a retry's attempt number under its own id and under the step it retries,
        so that the next retry numbers on whichever it links to (the previous attempt or, as
        many agents do, the first: each of those was sent as attempt 2)."""
        attempts = self._attempts
        if attempts is None:
            attempts = self._attempts = {}
        elif len(attempts) > 10_000:
            attempts.clear()
        attempts[step.step_id] = step.attempt
        if retried is not None and attempts.get(retried, 1) < step.attempt:
            attempts[retried] = step.attempt

    def _current_step_id(self) -> str | None:
        cur = current_step.get()
        return cur.step_id if cur is not None and cur.run is self else None

    # ---- steps --------------------------------------------------------------------------
    def step(self, kind: str, name: str, attributes: dict[str, Any] | None = None, /, *,
             attempt: int | None = None, retry_of: "Step | str | None" = None,
             **attrs: Any) -> Step:
        """``with run.step("tool", "search", k=v) as step:`` one STEP event at close.

        Attributes come as keywords or as one mapping (``run.step("tool", "search", attrs)``,
        copied, so mutating it later does not change the event; cheaper than ``**attrs``).
        ``retry_of`` (a step or its id) links a retry to the attempt it retries; the attempt
        number follows from it unless given."""
        try:
            k = KIND_LOOKUP.get(kind)
        except TypeError:  # unhashable: never raise into the agent for a bad kind
            k = None
        if attributes is not None:
            try:
                attrs = {**attributes, **attrs} if attrs else (
                    attributes.copy() if attributes.__class__ is dict else dict(attributes))
            except (TypeError, ValueError):  # not a mapping: the step goes without them
                self._count_failure("step attributes not a mapping")
        s = self._step_type(self, _kind(kind) if k is None else k, name, attrs or None)
        if attempt is not None or retry_of is not None:
            self._retry(s, attempt, retry_of)
        return s

    def _retry(self, s: Step, attempt: Any, retry_of: Any) -> None:
        """``attempt=`` and ``retry_of=`` of ``step``. A value that is neither a step (or its
        id) nor a storable attempt number (schemas/stored_ranges.py) is counted as a failure
        and left out: raising would break the agent, and an attempt the events table cannot
        store would dead-letter the step's record at the sink."""
        number = step_attempt(attempt)
        if number is None and attempt is not None and attempt != 0:
            self._count_failure("step attempt not a whole number in 1..65535")
        if retry_of is not None:
            rid = retry_of if isinstance(retry_of, str) else getattr(retry_of, "step_id", None)
            if rid.__class__ is not str:
                self._count_failure("step retry_of not a step or a step id")
            else:
                s.retry_of = rid
                if number is None:
                    number = min((self._attempts or {}).get(rid, 1) + 1, ATTEMPT_MAX)
        if number is not None:
            s.attempt = number
            if number > 1:
                self._note_attempt(s, s.retry_of)

    def tool_step(self, tool_name: str, args: Any = ..., *, call_id: str | None = None,
                  retry_of: "Step | str | None" = None, **attrs: Any) -> Step:
        """A TOOL step; args travel as a keyed digest, which is also the call's signature for
        the repeated-call rule, checked when the step starts (``gate.py``)."""
        s = self.step("tool", tool_name, **attrs) if retry_of is None else \
            self.step("tool", tool_name, retry_of=retry_of, **attrs)
        try:
            s.record_tool(tool_name, args, call_id)
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("tool args digest")
        return s

    def llm_step(self, provider: str, model: str, name: str | None = None, *,
                 estimated_tokens: int = 0, estimated_cost_usd: float = 0.0,
                 retry_of: "Step | str | None" = None, **attrs: Any) -> Step:
        """An LLM step; entering it checks model-call, token and cost budgets first.
        Call ``step.record_llm(...)`` with the usage when the response arrives."""
        name = name or f"chat {model}"
        s = self.step("llm", name, **attrs) if retry_of is None else \
            self.step("llm", name, retry_of=retry_of, **attrs)
        if estimated_tokens or estimated_cost_usd:  # a NaN estimate passed every budget check
            s.estimate = (usage_count(estimated_tokens) or 0, usage_cost(estimated_cost_usd) or 0.0)
        s.attrs = s.attrs or {}
        s.attrs.setdefault("gen_ai.provider.name", provider)
        s.attrs.setdefault("gen_ai.request.model", model)
        return s

    def approval_request(self, action: Any, name: str | None = None) -> TimedApproval:
        """``with run.approval_request(action) as req: ...; req.decide("approved")``. While it
        waits for the decision, the wait does not count toward the wall-time budget (gate.py)."""
        return TimedApproval(self, action, name)

    def set_status(self, status: str, outcome: str | None = None) -> None:
        """Overrides the RUN_END status (SUCCESS, FAILURE, PARTIAL) and outcome."""
        self.status = str(status).upper()
        if outcome is not None:
            self.outcome = outcome

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Run":
        self._tokens = (current_run.set(self), current_step.set(None))
        self.tracer._live[self.run_id] = self
        # Wall times from the run's anchor, as its steps' are (one clock read, and a run's
        # events stay in order even if the wall clock is stepped meanwhile).
        self._t0 = t0 = _perf_ns()
        self.started_us = started = (t0 + self._clock_off) // 1000
        self._emit("RUN_START", {"entrypoint": self.name, "role": self.role, "sampled": self._sampled},
                   self.attrs, ts_us=started)
        return self

    def end(self, exc: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            stopped = self._stop_exc
            if exc is None and stopped is not None and self.status is None:
                # The agent caught the enforcement exception and returned normally: the run was
                # still stopped, and an operator must not read "completed" for it.
                status, outcome = "PARTIAL", stopped.outcome
            elif exc is None:
                status, outcome = self.status or "SUCCESS", self.outcome or "completed"
            elif isinstance(exc, EnforcementError):
                status, outcome = "PARTIAL", exc.outcome
            else:
                status, outcome = "FAILURE", self.outcome or "error"
                if not self.failures:
                    self.failure("unknown", "unhandled_exception", type(exc).__name__)
            if status not in ("SUCCESS", "FAILURE", "PARTIAL"):
                status = "FAILURE"
            now = _perf_ns()
            attrs = {"agentstream.approval_wait_ms": round(self.approval_wait_ms, 3)} \
                if self.approval_wait_ms else None
            self._emit("RUN_END", {
                "status": status, "outcome": outcome, "started_us": self.started_us,
                "duration_ms": (now - self._t0) / 1e6, "step_count": self.step_count,
                "llm_calls": self.llm_calls, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost_usd},
                attrs, ts_us=(now + self._clock_off) // 1000)
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("run end")
        finally:
            self.tracer._live.pop(self.run_id, None)
            tokens = self._tokens
            if tokens is not None:
                self._tokens = None
                _reset(current_run, tokens[0])
                _reset(current_step, tokens[1])

    def __enter__(self) -> "Run":
        return self.start()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        self.end(ev)
        return False

    async def __aenter__(self) -> "Run":
        return self.start()

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        self.end(ev)
        return False


if _speedups is not None:
    class FastRun(_speedups.RunCore, Run):
        """``Run`` whose ``step()`` common case (no retry, a known kind, attributes as keywords
        or one dict) is C; every other call goes to ``Run.step`` unchanged."""

        _step_type = FastStep

    _speedups.configure(current_step, FastStep, KIND_LOOKUP, LLM, Run.step)
else:
    FastRun = None  # type: ignore[misc]  # no C core: callers test FastRun first


__all__ = ["APPROVAL_DECISIONS", "FastRun", "FEEDBACK_VALUES", "NEGATIVE_SIGNALS", "ApprovalRequest", "Run",
           "STEP_KIND_INDEX", "TOOL"]
