"""A run: RUN_START first, its events in between, RUN_END last with totals.

Public methods never raise into the agent, except the enforcement checks, which raise a typed
``EnforcementError`` *before* the operation they refuse, after recording why.
"""
from __future__ import annotations

import itertools
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable

from .context import current_run, current_step
from .enforcement import RunBudget
from .errors import BudgetExceeded, EnforcementError, LackOfProgress, RunStopped
from .step import CUSTOM, KIND_LOOKUP, LLM, TOOL, Step
from .wire import FAILURE_TYPE_INDEX, STEP_KIND_INDEX

if TYPE_CHECKING:
    from .tracer import Tracer

log = logging.getLogger("agentstream.producer")
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns
FEEDBACK_VALUES = frozenset({"positive", "negative"})
NEGATIVE_SIGNALS = frozenset({"repeated_question", "user_reformulated_request",
                              "conversation_abandoned", "human_takeover", "response_ignored",
                              "response_copied"})
APPROVAL_DECISIONS = frozenset({"approved", "rejected", "expired"})


def _kind(kind: Any) -> int:
    k = KIND_LOOKUP.get(kind)
    return k if k is not None else KIND_LOOKUP.get(str(kind).upper(), CUSTOM)


class Run:
    def __init__(self, tracer: "Tracer", name: str, run_id: str | None, session_id: str | None,
                 parent_run_id: str | None, role: str | None, limits: Any, sampled: bool,
                 attrs: dict[str, Any] | None) -> None:
        self.tracer = tracer
        self._t = tracer._transport
        self._q = self._t.q
        self._qmax = self._t.maxsize
        self._policy = tracer._policy
        self.tenant_id = tracer.tenant_id
        self.agent_id = tracer.agent_id
        self.agent_version = tracer.agent_version
        self.environment = tracer.environment
        self.name = name
        self.run_id = run_id or str(uuid.uuid4())
        self.session_id = session_id
        self.parent_run_id = parent_run_id
        self.role = role
        self.attrs = attrs or None
        self.budget = RunBudget(limits, self.run_id) if limits.any() else None
        self._sid = self.run_id[:8] + "."
        self._counter = itertools.count(1)
        self._attempts: dict[str, int] = {}
        self._commands: list[dict[str, Any]] = []
        self._throttle_s = 0.0
        self._gate = self.budget is not None
        self._stop_exc: EnforcementError | None = None
        self.step_count = 0
        self.llm_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.approval_wait_ms = 0.0
        self.status: str | None = None
        self.outcome: str | None = None
        self.failures = 0
        self.started_us = 0
        self._t0 = 0
        self._tokens: tuple | None = None
        # wall clock = perf_counter + offset: one clock read per step edge instead of two
        self._clock_off = _time_ns() - _perf_ns()
        self.ended = False
        # Owned by the transport thread (pipeline.py).
        self._key = self.run_id.encode()
        self._event_seed = str(uuid.uuid4())
        self._wire = None
        self._seq = 0
        self._buf: list = []
        self._sampled = sampled
        self._had_failure = False

    # ---- emission -----------------------------------------------------------------------
    def _emit(self, kind: str, payload: Any, attrs: dict | None = None,
              parent_step_id: str | None = None, ts_us: int | None = None) -> None:
        t = self._t
        if len(t.q) < t.maxsize:
            t.q.append((self, kind, ts_us or _time_ns() // 1000, parent_step_id, attrs, payload))

        else:
            t.dropped += 1

    def _count_failure(self, what: str) -> None:
        self._t.failed += 1
        log.warning("agentstream: %s failed", what, exc_info=True)

    def _close_step(self, step: Step, status: int, lat_ns: int) -> None:
        """Emits a step whose ``_n``, ``_t0`` (perf_counter ns) and parent are already set."""
        self.step_count += 1
        if step.kind == LLM:
            self.llm_calls += 1
        self._emit("STEP", (step._n, step.kind, step.name, status, step._t0, lat_ns,
                            step.attempt, step.retry_of, step.llm, step.tool, step.handoff,
                            step.approval, step.fallback, step.content), step.attrs, step._pn, 1)
        step._t0 = None

    def _note_attempt(self, step_id: str, attempt: int) -> None:
        if len(self._attempts) > 10_000:
            self._attempts.clear()
        self._attempts[step_id] = attempt

    # ---- enforcement --------------------------------------------------------------------
    def _gate_check(self, step: Step | None) -> float:
        """Commands, budgets and fingerprints before a step starts. Returns a throttle delay."""
        if self._stop_exc is not None:
            raise self._stop_exc
        if self._commands:
            self._apply_commands()
        b = self.budget
        if b is not None:
            try:
                b.before_step()
                if step is not None and step.kind == LLM:
                    est = step.estimate or (0, 0.0)
                    b.before_model_call(est[0], est[1])
                if step is not None and step.fingerprint is not None:
                    b.record_fingerprint(step.fingerprint)
            except EnforcementError as exc:
                self._enforce(exc)
            b.add_step()
            if step is not None and step.kind == LLM:
                b.add_model_call()
        self._gate = self.budget is not None or self._throttle_s > 0 or bool(self._commands)
        return self._throttle_s

    def _enforce(self, exc: EnforcementError) -> None:
        """Records the stop (once) and raises it; every later step raises it again."""
        self._stop_exc = exc
        self._gate = True
        if isinstance(exc, BudgetExceeded):
            self._emit("FAILURE", {"failure_type": "BUDGET", "failure_code":
                                   f"{exc.budget_type}_budget_exceeded", "step_id": None,
                                   "message": str(exc), "retryable": False},
                       {"agentstream.budget.type": exc.budget_type,
                        "agentstream.budget.limit": exc.limit,
                        "agentstream.budget.action": "stop"})
            self.failures += 1
        elif isinstance(exc, LackOfProgress):
            self._emit("FAILURE", {"failure_type": "ORCHESTRATION", "failure_code": "no_progress",
                                   "step_id": None, "message": str(exc), "retryable": False},
                       {"agentstream.progress.fingerprint": exc.fingerprint[:12]})
            self.failures += 1
        raise exc

    def _apply_commands(self) -> None:
        while self._commands:
            cmd = self._commands.pop(0)
            ctype = cmd.get("command_type")
            if ctype == "STOP":
                self._ack(cmd, "applied", None)
                self._enforce(RunStopped(cmd["command_id"], cmd.get("reason", ""), self.run_id))
            elif ctype == "THROTTLE":
                ms = cmd.get("throttle_ms") or 1000
                self._throttle_s = max(0.0, ms / 1000)
                self._ack(cmd, "applied", f"throttle {ms} ms per step")
            else:
                self._ack(cmd, "ignored", f"unknown command type {ctype}")

    def _ack(self, cmd: dict[str, Any], status: str, detail: str | None) -> None:
        self._emit("COMMAND_ACK", {"command_id": cmd["command_id"],
                                   "command_type": str(cmd.get("command_type")),
                                   "status": status, "detail": detail})

    def check(self) -> None:
        """Applies pending commands and the step/wall-time budgets now (raises if stopped)."""
        if self._gate:
            delay = self._gate_check(None)
            if delay:
                time.sleep(delay)

    def check_llm_budget(self, estimated_tokens: int = 0, estimated_cost_usd: float = 0.0
                         ) -> None:
        """Raises ``BudgetExceeded`` if a model call (of this estimated size) would exceed a
        model-call, token or cost budget. ``with run.llm_step(...)`` calls this for you."""
        if self._stop_exc is not None:
            raise self._stop_exc
        if self.budget is not None:
            try:
                self.budget.before_model_call(estimated_tokens, estimated_cost_usd)
            except EnforcementError as exc:
                self._enforce(exc)

    def check_progress(self, **approved_fields: Any) -> str:
        """Fingerprints approved fields (keyed digest); raises ``LackOfProgress`` when the same
        fingerprint repeats more than ``max_repeated_fingerprints`` times. Returns it."""
        fp = self._policy.digest(approved_fields)
        if self.budget is not None:
            try:
                self.budget.record_fingerprint(fp)
            except EnforcementError as exc:
                self._enforce(exc)
        return fp

    # ---- steps --------------------------------------------------------------------------
    def step(self, kind: str, name: str, *, attempt: int | None = None,
             retry_of: "Step | str | None" = None, **attrs: Any) -> Step:
        """``with run.step("tool", "search", k=v) as step:`` one STEP event at close.

        ``retry_of`` (a step or its id) links a retry to the attempt it retries; the attempt
        number follows from it unless given."""
        k = KIND_LOOKUP.get(kind)
        s = Step(self, _kind(kind) if k is None else k, name, attrs or None)
        if retry_of is not None:
            rid = retry_of if retry_of.__class__ is str else retry_of.step_id
            s.retry_of = rid
            s.attempt = attempt or self._attempts.get(rid, 1) + 1
        elif attempt:
            s.attempt = attempt
        return s

    def tool_step(self, tool_name: str, args: Any = ..., *, call_id: str | None = None,
                  retry_of: "Step | str | None" = None, **attrs: Any) -> Step:
        """A TOOL step; args travel as a keyed digest, which also feeds loop fingerprints."""
        s = self.step("tool", tool_name, retry_of=retry_of, **attrs)
        try:
            s.record_tool(tool_name, args, call_id)
            if self.budget is not None and self.budget.limits.max_repeated_fingerprints is not None:
                s.fingerprint = self._policy.digest(["tool", tool_name, s.tool["args_digest"]])
        except Exception:  # noqa: BLE001
            self._count_failure("tool args digest")
        return s

    def llm_step(self, provider: str, model: str, name: str | None = None, *,
                 estimated_tokens: int = 0, estimated_cost_usd: float = 0.0,
                 retry_of: "Step | str | None" = None, **attrs: Any) -> Step:
        """An LLM step; entering it checks model-call, token and cost budgets first.
        Call ``step.record_llm(...)`` with the usage when the response arrives."""
        s = self.step("llm", name or f"chat {model}", retry_of=retry_of, **attrs)
        s.estimate = (estimated_tokens, estimated_cost_usd)
        s.attrs = s.attrs or {}
        s.attrs.setdefault("gen_ai.provider.name", provider)
        s.attrs.setdefault("gen_ai.request.model", model)
        return s

    def _llm_record(self, provider: str, model: str, input_tokens: int, output_tokens: int,
                    cache_read: int, cache_write: int, response_model: str | None,
                    operation: str, finish_reasons: Any, tool_calls: Any,
                    cost_usd: float | None, step: Step | None) -> dict[str, Any]:
        input_tokens, output_tokens = int(input_tokens or 0), int(output_tokens or 0)
        cache_read, cache_write = int(cache_read or 0), int(cache_write or 0)
        if cost_usd is None:
            cost_usd = self.tracer.prices.cost(provider, response_model or model, input_tokens,
                                               output_tokens, cache_read, cache_write)
            if cost_usd is None and response_model:
                cost_usd = self.tracer.prices.cost(provider, model, input_tokens, output_tokens,
                                                   cache_read, cache_write)
            if cost_usd is None:
                cost_usd = 0.0
                if step is not None:
                    step.set_attribute("agentstream.cost.unknown_model", "true")
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd
        if self.budget is not None:
            self.budget.add_usage(input_tokens + output_tokens, cost_usd)
        return {"provider": provider, "operation": operation, "request_model": model,
                "response_model": response_model, "input_tokens": input_tokens,
                "output_tokens": output_tokens, "cache_read_tokens": cache_read,
                "cache_write_tokens": cache_write, "cost_usd": float(cost_usd),
                "finish_reasons": [str(f) for f in finish_reasons or ()],
                "tool_calls": [str(t) for t in tool_calls or ()]}

    def llm_call(self, provider: str, model: str, input_tokens: int = 0, output_tokens: int = 0,
                 cache_read_tokens: int = 0, cache_write_tokens: int = 0, latency_ms: float = 0.0,
                 *, response_model: str | None = None, operation: str = "chat",
                 finish_reasons: Iterable[str] = (), tool_calls: Iterable[str] = (),
                 cost_usd: float | None = None, status: str = "OK", name: str | None = None,
                 retry_of: "Step | str | None" = None, **attrs: Any) -> str | None:
        """Records a model call that already happened (one LLM STEP). Returns its step id.
        Never raises: the next ``llm_step`` or ``check_llm_budget`` enforces budgets."""
        try:
            s = self.llm_step(provider, model, name, retry_of=retry_of, **attrs)
            s.record_llm(provider, model, input_tokens, output_tokens, cache_read_tokens,
                         cache_write_tokens, response_model, operation, finish_reasons,
                         tool_calls, cost_usd)
            return self._record_done(s, status, latency_ms)
        except Exception:  # noqa: BLE001
            self._count_failure("llm_call")
            return None

    def tool_call(self, tool_name: str, args: Any = ..., latency_ms: float = 0.0, *,
                  call_id: str | None = None, status: str = "OK",
                  retry_of: "Step | str | None" = None, **attrs: Any) -> str | None:
        """Records a tool call that already happened (one TOOL STEP). Returns its step id."""
        try:
            s = self.step("tool", tool_name, retry_of=retry_of, **attrs)
            s.record_tool(tool_name, args, call_id)
            return self._record_done(s, status, latency_ms)
        except Exception:  # noqa: BLE001
            self._count_failure("tool_call")
            return None

    def _record_done(self, s: Step, status: str, latency_ms: float) -> str:
        s._n = next(self._counter)
        if s.attempt > 1:
            self._note_attempt(s.step_id, s.attempt)
        parent = current_step.get()
        if parent is not None and parent.run is self:
            s._pn = parent._n
        lat_ns = int(float(latency_ms) * 1e6)
        s._t0 = _perf_ns() - lat_ns
        s.set_status(status)
        self._close_step(s, s.status, lat_ns)
        return s.step_id

    # ---- other records ------------------------------------------------------------------
    def failure(self, failure_type: str, failure_code: str, message: str | None = None,
                step_id: str | None = None, retryable: bool = False) -> None:
        """A semantic failure: type tool|model|retrieval|orchestration|policy|budget."""
        try:
            ftype = str(failure_type).upper()
            if ftype not in FAILURE_TYPE_INDEX:
                ftype = "UNKNOWN"
            if step_id is None:
                cur = current_step.get()
                step_id = cur.step_id if cur is not None and cur.run is self else None
            self.failures += 1
            self._emit("FAILURE", {"failure_type": ftype, "failure_code": str(failure_code),
                                   "step_id": step_id, "message": message,
                                   "retryable": bool(retryable)})
        except Exception:  # noqa: BLE001
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
        except Exception:  # noqa: BLE001
            self._count_failure("decision")

    def quality_signal(self, signal_type: str, signal_code: str, value: bool = True,
                       weight: float | None = None, step_id: str | None = None) -> None:
        try:
            self._emit("QUALITY_SIGNAL", {
                "signal_type": str(signal_type), "signal_code": str(signal_code),
                "value": bool(value), "weight": None if weight is None else float(weight),
                "step_id": step_id or self._current_step_id()})
        except Exception:  # noqa: BLE001
            self._count_failure("quality_signal")

    def feedback(self, interaction_id: str, value: str, source: str = "sdk") -> bool:
        """Bounded user feedback: ``positive`` or ``negative`` only (no free text)."""
        if value not in FEEDBACK_VALUES:
            self._t.failed += 1
            log.warning("agentstream: feedback value %r rejected (allowed: %s)", value,
                        sorted(FEEDBACK_VALUES))
            return False
        self._emit("FEEDBACK", {"interaction_id": str(interaction_id),
                                "feedback_type": "user_rating", "value": value, "source": source})
        return True

    def negative_signal(self, interaction_id: str, signal_name: str, source: str = "sdk") -> bool:
        """A triage selector, not a correctness label: one of ``NEGATIVE_SIGNALS``."""
        if signal_name not in NEGATIVE_SIGNALS:
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
            digest = self._policy.digest(_canonical_action(action))
            decision = decision if decision in APPROVAL_DECISIONS else "rejected"
            s = self.step("approval", name or f"approval {_action_name(action)}", **attrs)
            s.approval = {"action_digest": digest, "decision": decision,
                          "approval_latency_ms": float(approval_latency_ms)}
            self.approval_wait_ms += float(approval_latency_ms)
            self._record_done(s, "OK", 0.0)
            return digest
        except Exception:  # noqa: BLE001
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
        except Exception:  # noqa: BLE001
            self._count_failure("fallback")
            return None

    def handoff(self, to_agent_id: str, role: str | None = None, to_run_id: str | None = None,
                **attrs: Any) -> str:
        """Records a handoff and returns the child's run id; open the child with
        ``tracer.run(..., run_id=that, parent=run)`` (same session, parent link)."""
        to_run_id = to_run_id or str(uuid.uuid4())
        try:
            s = self.step("handoff", f"handoff {to_agent_id}", **attrs)
            s.handoff = {"to_agent_id": str(to_agent_id), "to_run_id": to_run_id, "role": role}
            self._record_done(s, "OK", 0.0)
        except Exception:  # noqa: BLE001
            self._count_failure("handoff")
        return to_run_id

    def set_status(self, status: str, outcome: str | None = None) -> None:
        """Overrides the RUN_END status (SUCCESS, FAILURE, PARTIAL) and outcome."""
        self.status = str(status).upper()
        if outcome is not None:
            self.outcome = outcome

    def _current_step_id(self) -> str | None:
        cur = current_step.get()
        return cur.step_id if cur is not None and cur.run is self else None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Run":
        self._tokens = (current_run.set(self), current_step.set(None))
        self.tracer._live[self.run_id] = self
        self.started_us = _time_ns() // 1000
        self._t0 = _perf_ns()
        self._emit("RUN_START", {"entrypoint": self.name, "role": self.role,
                                 "sampled": self._sampled}, self.attrs, ts_us=self.started_us)
        return self

    def end(self, exc: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            if exc is None:
                status, outcome = self.status or "SUCCESS", self.outcome or "completed"
            elif isinstance(exc, EnforcementError):
                status, outcome = "PARTIAL", exc.outcome
            else:
                status, outcome = "FAILURE", self.outcome or "error"
                if not self.failures:
                    self.failure("unknown", "unhandled_exception", type(exc).__name__)
            if status not in ("SUCCESS", "FAILURE", "PARTIAL"):
                status = "FAILURE"
            duration_ms = (_perf_ns() - self._t0) / 1e6
            attrs = {"agentstream.approval_wait_ms": round(self.approval_wait_ms, 3)} \
                if self.approval_wait_ms else None
            self._emit("RUN_END", {
                "status": status, "outcome": outcome, "started_us": self.started_us,
                "duration_ms": duration_ms, "step_count": self.step_count,
                "llm_calls": self.llm_calls, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}, attrs)
        except Exception:  # noqa: BLE001
            self._count_failure("run end")
        finally:
            self.tracer._live.pop(self.run_id, None)
            if self._tokens is not None:
                for var, tok in zip((current_run, current_step), self._tokens):
                    try:
                        var.reset(tok)
                    except ValueError:
                        var.set(None)
                self._tokens = None

    def __enter__(self) -> "Run":
        return self.start()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        self.end(ev)
        return False

    async def __aenter__(self) -> "Run":
        return self.start()

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> bool:
        self.end(ev)
        return False


class ApprovalRequest:
    """Times the wait for a decision; the step records it as approval latency only."""

    def __init__(self, run: Run, action: Any, name: str | None) -> None:
        self.run, self.action, self.name = run, action, name
        self.decision = "expired"
        self.digest: str | None = None

    def decide(self, decision: str) -> None:
        self.decision = decision

    def __enter__(self) -> "ApprovalRequest":
        self._t0 = _perf_ns()
        self.digest = self.run._policy.digest(_canonical_action(self.action))
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        wait_ms = (_perf_ns() - self._t0) / 1e6
        self.run.approval(self.action, self.decision if et is None else "rejected", wait_ms,
                          self.name)
        return False


def _canonical_action(action: Any) -> Any:
    if hasattr(action, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(action)
    if hasattr(action, "model_dump"):
        return action.model_dump()
    return action


def _action_name(action: Any) -> str:
    a = _canonical_action(action)
    if isinstance(a, dict):
        return str(a.get("tool") or a.get("action") or a.get("name") or "action")
    return "action"


__all__ = ["Run", "ApprovalRequest", "STEP_KIND_INDEX", "TOOL"]
