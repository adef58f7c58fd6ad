"""One-shot records of a run: things that already happened, recorded in one call.

``llm_call``/``tool_call`` (a STEP that already ran), failures, decisions, quality signals,
bounded feedback, approvals bound to an action digest, fallbacks and handoffs. None of them
raise into the agent: they report what happened, which raising could not undo.

A recorded step counts against the run's budgets as a ``with`` step of its kind does (a step, a
model call, its tokens and cost, its place in the repeat window), each once. If a gated step of
its kind would have been refused, the run is stopped at that step (FAILURE, RUN_END
``budget_stopped``/``no_progress_stopped``) and the next gated operation raises (gate.py).
Callback-style integrations record every call this way, so this is all the enforcement their
runs get.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Literal

from agentstream.schemas.feedback_values import FEEDBACK_VALUES, NEGATIVE_SIGNALS
from agentstream.schemas.id_format import is_id_shaped
from agentstream.schemas.usage_numbers import is_cost, is_duration_ms, usage_cost, usage_count

from .context import current_step
from .ids import uuid4_str
from .run_state import RunState
from .step import Step
from .wire import FAILURE_TYPE_INDEX

log = logging.getLogger("agentstream.producer")
APPROVAL_DECISIONS = frozenset({"approved", "rejected", "expired"})
# ``_record_done``'s ``breach`` when there is none to report: the step is not judged yet, or the
# run has no budget (sentinels rather than a second ``self.budget`` lookup: a record in a run
# without a budget pays one attribute test for enforcement, as a ``with`` step does).
_UNJUDGED: Any = object()
_UNBUDGETED: Any = object()


class RunRecords(RunState):
    """Mixed into ``Run``: the one-shot record helpers (state lives on the run)."""

    def _llm_record(self, provider: str, model: str, input_tokens: int, output_tokens: int,
                    cache_read: int, cache_write: int, response_model: str | None,
                    operation: str, finish_reasons: Any, tool_calls: Any,
                    cost_usd: float | None, step: Step | None) -> dict[str, Any]:
        if not (input_tokens.__class__ is output_tokens.__class__ is cache_read.__class__
                is cache_write.__class__ is int and input_tokens >= 0 and output_tokens >= 0
                and cache_read >= 0 and cache_write >= 0):
            input_tokens, output_tokens, cache_read, cache_write = self._counts(
                input_tokens, output_tokens, cache_read, cache_write)
        if cost_usd is not None and not (cost_usd.__class__ is float and is_cost(cost_usd)):
            cost = usage_cost(cost_usd)
            if cost is None:  # NaN, negative, not a number: priced from the table instead
                self._count_failure("llm cost_usd not a finite cost >= 0")
            cost_usd = cost
        if cost_usd is None:
            try:
                cost_usd = self.tracer.prices.cost(provider, response_model or model, input_tokens,
                                                   output_tokens, cache_read, cache_write)
                if cost_usd is None and response_model:
                    cost_usd = self.tracer.prices.cost(provider, model, input_tokens, output_tokens,
                                                       cache_read, cache_write)
            except (TypeError, AttributeError):  # a provider or model that is not text
                self._count_failure("llm provider or model not text")
                cost_usd = None
            if cost_usd is None:
                cost_usd = 0.0
                if step is not None:
                    step.set_attribute("agentstream.cost.unknown_model", "true")
        # Counted here, on the agent thread: token and cost budgets need them before the
        # next model call.
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd
        if self.budget is not None:
            self.budget.add_usage(input_tokens + output_tokens, cost_usd)
        return {"provider": provider, "operation": operation, "request_model": model,
                "response_model": response_model, "input_tokens": input_tokens,
                "output_tokens": output_tokens, "cache_read_tokens": cache_read,
                "cache_write_tokens": cache_write, "cost_usd": float(cost_usd),
                "finish_reasons": self._texts(finish_reasons, "finish_reasons"),
                "tool_calls": self._texts(tool_calls, "tool_calls")}

    def _texts(self, v: Any, what: str) -> tuple[str, ...]:
        """A list of text as the wire takes it: a tuple (immutable, and the cyclic GC stops
        scanning a tuple of strings). One string is one item, not its letters; what is not
        iterable is counted as a failure and left out."""
        if v is None:
            return ()
        if v.__class__ is str:
            return (v,) if v else ()
        try:
            return tuple(map(str, v))
        except Exception:  # noqa: BLE001 - not iterable, or an item whose str() raises
            self._count_failure(f"llm {what} not a list of text")
            return ()

    def _counts(self, *values: Any) -> tuple[int, ...]:
        """Token counts as whole numbers >= 0; anything else (NaN, a negative, not a number) is
        0 and counted as a failure: it would otherwise raise into the agent or pay a budget back
        (schemas/usage_numbers.py)."""
        out = []
        for v in values:
            n = usage_count(v)
            if n is None:
                self._count_failure("llm token count not a whole number >= 0")
                n = 0
            out.append(n)
        return tuple(out)

    def llm_call(self, provider: str, model: str, input_tokens: int = 0, output_tokens: int = 0,
                 cache_read_tokens: int = 0, cache_write_tokens: int = 0, latency_ms: float = 0.0,
                 *, response_model: str | None = None, operation: str = "chat",
                 finish_reasons: Iterable[str] = (), tool_calls: Iterable[str] = (),
                 cost_usd: float | None = None, status: str = "OK", name: str | None = None,
                 retry_of: "Step | str | None" = None, **attrs: Any) -> str | None:
        """Records a model call that already happened (one LLM STEP). Returns its step id.
        Never raises: a call over a budget stops the run, and the next gated operation raises."""
        try:
            s = self.llm_step(provider, model, name, retry_of=retry_of, **attrs)
            # judged before its usage is counted, as a gated step is before the call
            breach = _UNBUDGETED if self.budget is None else self._judge_record(s)
            s.record_llm(provider, model, input_tokens, output_tokens, cache_read_tokens,
                         cache_write_tokens, response_model, operation, finish_reasons,
                         tool_calls, cost_usd)
            return self._record_done(s, status, latency_ms, breach)
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("llm_call")
            return None

    def tool_call(self, tool_name: str, args: Any = ..., latency_ms: float = 0.0, *,
                  call_id: str | None = None, status: str = "OK",
                  retry_of: "Step | str | None" = None, result: Any = ..., **attrs: Any) -> str | None:
        """Records a tool call that already happened (one TOOL STEP). Returns its step id.
        ``result``: what it returned, sent only as a keyed digest (``Step.record_result``), so
        a polled call whose result changes is progress, not a repeat."""
        try:
            # retry_of only when given: a call without keywords builds no kwargs dict
            s = self.step("tool", tool_name, **attrs) if retry_of is None else \
                self.step("tool", tool_name, retry_of=retry_of, **attrs)
            s.record_tool(tool_name, args, call_id)
            if result is not ...:
                s.record_result(result)
            return self._record_done(s, status, latency_ms)
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("tool_call")
            return None

    def _record_done(self, s: Step, status: str, latency_ms: float,
                     breach: Any = _UNJUDGED) -> str:
        """Closes and queues a recorded step; with a budget, judges and counts it (``breach``:
        what ``_judge_record`` found, when it had to run before the step's usage was counted)."""
        if breach is _UNJUDGED:
            breach = _UNBUDGETED if self.budget is None else self._judge_record(s)
        s._parent = current_step.get()
        lat = float(latency_ms)
        if not is_duration_ms(lat):  # NaN, negative, past 30 days: the sink refuses the row
            self._t.failed += 1
            log.warning("agentstream: latency_ms %r is not a duration; 0 sent", lat)
            lat = 0.0
        lat_ns = int(lat * 1e6)
        s._t0 = time.perf_counter_ns() - lat_ns
        if status != "OK":
            s.set_status(status)
        # Numbered before it is queued: until then no other thread can see the step, so the
        # number needs no lock (``Run._number`` takes one for steps already visible).
        n = s._n
        if n is None:
            n = s._n = next(self._counter)
        self._close_step(s, s.status, lat_ns)
        if breach is not _UNBUDGETED:
            self._enforce_recorded(s, breach)
        return self._sid + str(n)

    def failure(self, failure_type: str, failure_code: str, message: str | None = None,
                step_id: str | None = None, retryable: bool = False) -> None:
        """A semantic failure: type tool|model|retrieval|orchestration|policy|budget."""
        try:
            ftype = str(failure_type).upper()
            if ftype not in FAILURE_TYPE_INDEX:
                ftype = "UNKNOWN"
            if step_id is None:
                step_id = self._current_step_id()
            self.failures += 1
            self._emit("FAILURE", {"failure_type": ftype, "failure_code": str(failure_code),
                                   "step_id": step_id, "message": message,
                                   "retryable": bool(retryable)})
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("failure")

    def decision(self, decision_type: str, selected: str, candidates: Iterable[str] = (),
                 reason_code: str = "unspecified", confidence: float | None = None,
                 step_id: str | None = None) -> None:
        try:
            if confidence is not None:
                confidence = min(1.0, max(0.0, float(confidence)))
            self._emit("DECISION", {"decision_type": str(decision_type), "selected": str(selected),
                                    "candidates": [str(c) for c in candidates],
                                    "reason_code": str(reason_code), "confidence": confidence,
                                    "step_id": step_id or self._current_step_id()})
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("decision")

    def quality_signal(self, signal_type: str, signal_code: str, value: bool = True,
                       weight: float | None = None, step_id: str | None = None) -> None:
        try:
            self._emit("QUALITY_SIGNAL", {
                "signal_type": str(signal_type), "signal_code": str(signal_code),
                "value": bool(value), "weight": None if weight is None else float(weight),
                "step_id": step_id or self._current_step_id()})
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("quality_signal")

    def feedback(self, interaction_id: str, value: str, source: str = "sdk") -> bool:
        """Bounded user feedback: ``positive`` or ``negative`` only (no free text)."""
        if value.__class__ is not str or value not in FEEDBACK_VALUES:
            self._t.failed += 1
            log.warning("agentstream: feedback value %r rejected (allowed: %s)", value,
                        sorted(FEEDBACK_VALUES))
            return False
        self._emit("FEEDBACK", {"interaction_id": str(interaction_id),
                                "feedback_type": "user_rating", "value": value, "source": source})
        return True

    def negative_signal(self, interaction_id: str, signal_name: str, source: str = "sdk") -> bool:
        """A triage selector, not a correctness label: one of ``NEGATIVE_SIGNALS``."""
        if signal_name.__class__ is not str or signal_name not in NEGATIVE_SIGNALS:
            self._t.failed += 1
            log.warning("agentstream: negative signal %r rejected", signal_name)
            return False
        self._emit("FEEDBACK", {"interaction_id": str(interaction_id),
                                "feedback_type": "negative_signal", "value": signal_name,
                                "source": source})
        return True

    def approval(self, action: Any, decision: str, approval_latency_ms: float,
                 name: str | None = None, **attrs: Any) -> str | None:
        """An approval bound to the HMAC digest of the canonical action. The human wait is
        recorded as ``approval_latency_ms``, apart from the step's (agent) latency."""
        try:
            digest = self._policy.digest_total(_canonical_action(action))
            decision = decision if decision.__class__ is str and decision in APPROVAL_DECISIONS \
                else "rejected"
            wait = float(approval_latency_ms)
            if not is_duration_ms(wait):  # NaN, negative, past 30 days: the sink refuses the row
                self._t.failed += 1
                log.warning("agentstream: approval_latency_ms %r is not a duration; 0 sent", wait)
                wait = 0.0
            s = self.step("approval", name or f"approval {_action_name(action)}", **attrs)
            s.approval = {"action_digest": digest, "decision": decision,
                          "approval_latency_ms": wait}
            self.approval_wait_ms += wait
            self._record_done(s, "OK", 0.0)
            return digest
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("approval")
            return None

    def approval_request(self, action: Any, name: str | None = None) -> "ApprovalRequest":
        """``with run.approval_request(action) as req: ...; req.decide("approved")``."""
        return ApprovalRequest(self, action, name)

    def fallback(self, source: str, target: str, reason: str, preserves_safety_posture: bool,
                 kind: str = "llm", name: str | None = None, **attrs: Any) -> str | None:
        """Records a fallback and whether it keeps the safety posture (authz, filtering,
        validation, budgets, tenant isolation, audit)."""
        try:
            s = self.step(kind, name or f"fallback {source}->{target}", **attrs)
            s.fallback = {"source": str(source), "target": str(target), "reason": str(reason),
                          "preserves_safety_posture": bool(preserves_safety_posture)}
            return self._record_done(s, "OK", 0.0)
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("fallback")
            return None

    def handoff(self, to_agent_id: str, role: str | None = None, to_run_id: str | None = None,
                **attrs: Any) -> str:
        """Records a handoff and returns the child's run id; open the child with
        ``tracer.run(..., run_id=that, parent=run)`` (same session, parent link)."""
        try:
            # (inside the try: ``bool()`` of a caller's object may raise)
            to_run_id = to_run_id or uuid4_str()
            if to_run_id.__class__ is not str:
                to_run_id = str(to_run_id)
        except Exception:  # noqa: BLE001 - an unusable id: the child gets a fresh one
            self._count_failure("handoff to_run_id")
            to_run_id = uuid4_str()
        try:
            s = self.step("handoff", f"handoff {to_agent_id}", **attrs)
            s.handoff = {"to_agent_id": str(to_agent_id), "to_run_id": to_run_id, "role": role}
            self._record_done(s, "OK", 0.0)
        except Exception:  # noqa: BLE001 - never raise into the agent: counted and logged
            self._count_failure("handoff")
        return to_run_id


class ApprovalRequest:
    """Times the wait for a decision; the step records it as approval latency only."""

    def __init__(self, run: RunRecords, action: Any, name: str | None) -> None:
        self.run, self.action, self.name = run, action, name
        self.decision = "expired"
        self.digest: str | None = None

    def decide(self, decision: str) -> None:
        self.decision = decision

    def __enter__(self) -> "ApprovalRequest":
        self._t0 = time.perf_counter_ns()
        try:
            self.digest = self.run._policy.digest_total(_canonical_action(self.action))
        except Exception:  # noqa: BLE001 - never raise into the agent (as Step.record_tool)
            self.run._count_failure("approval action digest")
            self.digest = None
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        wait_ms = (time.perf_counter_ns() - self._t0) / 1e6
        self.run.approval(self.action, self.decision if et is None else "rejected", wait_ms,
                          self.name)
        return False


def _canonical_action(action: Any) -> Any:
    """A dataclass or pydantic action as its fields; anything else (or one whose conversion
    raises, e.g. an object whose ``__getattr__`` raises) as itself: ``digest_total`` takes any
    value."""
    try:
        if hasattr(action, "__dataclass_fields__"):
            import dataclasses

            return dataclasses.asdict(action)
        if hasattr(action, "model_dump"):
            return action.model_dump()
    except Exception:  # noqa: BLE001 - the action as given is still digestible
        pass
    return action


def _action_name(action: Any) -> str:
    """The action's name for the approval step's name: its ``tool``, ``action`` or ``name`` when
    that is a name (one id-shaped token of at most 64 characters). The action itself travels
    only as its digest, and the step name is metadata: ``{"action": "refund $40 to alice@…"}``
    put the action's text, e-mail and all, in the name."""
    a = _canonical_action(action)
    if isinstance(a, dict):
        for key in ("tool", "action", "name"):
            try:
                v = a.get(key)
            except Exception:  # noqa: BLE001 - a dict subclass whose get raises: no name
                return "action"
            if v.__class__ is str and len(v) <= 64 and is_id_shaped(v):
                return v
    return "action"
