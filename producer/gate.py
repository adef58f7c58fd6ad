"""The enforcement gate of a run: commands, budgets and fingerprints, checked before a step.

Everything here runs on the agent's thread *before* the operation it may refuse. The step hot
path only tests ``run._gate`` (a bool); this code runs only while a budget, a throttle or a
pending command makes it necessary, and then it is integer comparisons on counters
(``RunBudget``). A breach records why (FAILURE, then RUN_END with the outcome) and raises a
typed ``EnforcementError``; every later step of that run raises it again.

A recorded step (``run.llm_call``/``tool_call``..., records.py) already ran, so nothing can
refuse it: it is judged by the same checks and counted the same way, and if a gated step of its
kind would have been refused, the run is stopped there without raising (``_judge_record``,
``_enforce_recorded``); the next gated operation raises.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from agentstream.schemas.loop_repeats import RESULT_DIGEST_ATTR, is_retry, step_signature

from .errors import BudgetExceeded, EnforcementError, LackOfProgress, RunStopped
from .records import ApprovalRequest
from .run_state import RunState
from .step import LLM, TOOL
from .wire import STEP_KIND_INDEX

if TYPE_CHECKING:
    from .enforcement import RunBudget
    from .step import Step

_KIND_NAMES = {v: k for k, v in STEP_KIND_INDEX.items()}
# A step waiting to close (``RunBudget.pending``) with its signature, or: not counted yet (its
# signature was unknown when it started), or a retry (never counted; its result is its call's).
UNCOUNTED, RETRY = "", "retry"


def _result(step: "Step") -> Any:
    """The step's result digest (``Step.record_result``), if any."""
    attrs = step.attrs
    return attrs.get(RESULT_DIGEST_ATTR) if attrs else None


def signature(step: "Step") -> str | None:
    """The step's signature as the processors will read it from its STEP event."""
    try:
        return step_signature(_KIND_NAMES.get(step.kind), step.name, step.tool, step.llm,
                              step.attrs)
    except Exception:  # noqa: BLE001 - a digest attribute whose str() raises: unknown arguments
        return None     # (the wire cannot encode it either); only enforcement may raise here


class RunGate(RunState):
    """Mixed into ``Run``: the enforcement hooks (state lives on the run)."""

    def _gate_check(self, step: "Step | None") -> float:
        """Commands, budgets and fingerprints before a step starts. Returns a throttle delay."""
        if self._stop_exc is not None:
            raise self._stop_exc
        if self._commands:
            self._apply_commands()
        b = self.budget
        if b is None:
            pass
        elif step is None:
            # ``run.check()``: no step starts here, so none is counted (counting one made ten
            # checked steps use twenty of max_steps)
            try:
                if b.repeats is not None and b.pending:
                    self._fold_pending(b)
                b.check_now()
            except EnforcementError as exc:
                self._enforce(exc)
        else:
            llm = step if step.kind == LLM else None
            try:
                if b.repeats is not None and b.pending:
                    self._fold_pending(b)  # steps that closed since: before this one, in order
                b.before_step(step)
                if llm is not None:
                    est = llm.estimate or (0, 0.0)
                    b.before_model_call(est[0], est[1])
                if b.repeats is not None:
                    self._admit_call(b, step)
            except EnforcementError as exc:
                self._enforce(exc)
            b.add_step()
            if llm is not None:
                b.add_model_call()
        self._gate = self.budget is not None or self._throttle_s > 0 or bool(self._commands)
        return self._throttle_s

    def _admit_call(self, b: "RunBudget", step: "Step") -> None:
        """The repeat rule (schemas/loop_repeats.py) for a step about to start: a retry is not a
        repeat; a step whose signature is known now is counted now, and a tool call seen more
        often than allowed is refused; one whose signature comes later (an LLM request digest,
        arguments recorded inside the step) takes its place in the window once it has closed.
        A step not an LLM call's waits for its result (``record_result``), folded once closed:
        a changed result is progress."""
        if is_retry(step.attempt, step.retry_of):
            if step.kind != LLM:
                b.wait_result(step, RETRY)  # its result is its call's
            return
        sig = signature(step)
        if sig is None:
            b.wait_result(step, UNCOUNTED)
        else:
            self._count_call(b, step, sig)
            if step.kind != LLM:
                b.wait_result(step, sig)

    def _count_call(self, b: "RunBudget", step: "Step", sig: str) -> None:
        """``step``'s place in the repeat window; only a tool call can be refused for a repeat
        (its digest is made only then)."""
        b.record_call(sig, self._policy.digest if step.kind == TOOL else None)

    def _fold_pending(self, b: "RunBudget") -> None:
        """The closed steps that were waiting, in the order they started: one that started
        without a signature is counted now (a tool call among them seen more often than allowed
        raises here: it already ran, and this is the next gated operation), then each one's
        result is noted."""
        pending, still_open = b.pending, []
        for i, entry in enumerate(pending):
            s, waiting = entry
            if not s.closed:
                still_open.append(entry)
                continue
            sig: str | None = waiting
            if waiting == UNCOUNTED or waiting == RETRY:
                sig = signature(s)
                if sig is not None and waiting == UNCOUNTED:
                    try:
                        self._count_call(b, s, sig)
                    except EnforcementError:
                        b.pending = still_open + pending[i + 1:]
                        raise
            if sig is not None and s.kind != LLM:
                b.note_result(sig, _result(s))
        b.pending = still_open

    def _judge_record(self, step: "Step") -> EnforcementError | None:
        """A recorded step is judged by the checks a gated step of its kind passes before it
        starts, then counted as one (a step; an LLM step also a model call; its tokens and cost
        are counted by ``record_llm``, after this). Returns the breach, if a gated step would
        have been refused; never raises (the call already happened)."""
        b = self.budget
        if b is None:
            return None
        breach = None
        approval = step.approval
        if approval is not None:  # the human's wait is not the run's time (enforcement.py)
            b.pause(approval["approval_latency_ms"] / 1000)
        try:
            if b.repeats is not None and b.pending:
                self._fold_pending(b)
            b.before_step()
            if step.kind == LLM:
                b.before_model_call()
        except EnforcementError as exc:
            breach = exc
        b.add_step()
        if step.kind == LLM:
            b.add_model_call()
        return breach

    def _enforce_recorded(self, step: "Step", breach: EnforcementError | None) -> None:
        """After a recorded step is queued: its place in the repeat window, then the stop if it
        broke a limit. The stop is recorded (once), not raised: the next gated operation
        raises it. Never raises."""
        b = self.budget
        if b is None:
            return
        if b.repeats is not None:
            sig = signature(step)
            if sig is not None:
                if not is_retry(step.attempt, step.retry_of):
                    try:
                        self._count_call(b, step, sig)
                    except EnforcementError as exc:
                        breach = breach or exc
                if step.kind != LLM:
                    b.note_result(sig, _result(step))
        if breach is not None and self._stop_exc is None:
            self._stop(breach, step.step_id)

    def _enforce(self, exc: EnforcementError) -> None:
        """Records the stop (once) and raises it; every later step raises it again."""
        self._stop(exc)
        raise exc

    def _stop(self, exc: EnforcementError, step_id: str | None = None) -> None:
        """Stops the run: records why (a FAILURE, naming the recorded step that broke the limit
        when there is one) and keeps the exception for every later gated operation to raise."""
        self._stop_exc = exc
        self._gate = True
        if isinstance(exc, BudgetExceeded):
            self._emit("FAILURE", {"failure_type": "BUDGET", "failure_code":
                                   f"{exc.budget_type}_budget_exceeded", "step_id": step_id,
                                   "message": str(exc), "retryable": False},
                       {"agentstream.budget.type": exc.budget_type,
                        "agentstream.budget.limit": exc.limit,
                        "agentstream.budget.action": "stop"})
            self.failures += 1
        elif isinstance(exc, LackOfProgress):
            self._emit("FAILURE", {"failure_type": "ORCHESTRATION", "failure_code": "no_progress",
                                   "step_id": step_id, "message": str(exc), "retryable": False},
                       {"agentstream.progress.fingerprint": exc.fingerprint[:12]})
            self.failures += 1

    def apply_command(self, command: dict[str, Any]) -> None:
        """Queues a remote command (an ``agentstream.v1.Command`` as a dict: ``command_id``,
        ``command_type`` STOP or THROTTLE, ``reason``, ``throttle_ms``) to be applied before
        the run's next step, which acknowledges it with a COMMAND_ACK event. The command
        listener calls this for each command the commands topic carries for this run; a custom
        control channel, or a test of how the agent takes a STOP, may call it too. Safe from
        any thread; never raises (a STOP raises ``RunStopped`` at the next step)."""
        # The run's list is made on first use; setdefault is one atomic step, so two threads
        # applying commands at once share one list.
        self.__dict__.setdefault("_commands", []).append(command)
        self._gate = True

    def _apply_commands(self) -> None:
        commands = self._commands
        if not isinstance(commands, list):  # none ever came: the class's empty tuple
            return
        while commands:
            cmd = commands.pop(0)
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
        """Applies pending commands and the step/wall-time budgets now (raises if stopped, or
        if the run is already over one of those budgets). It is not a step: nothing is counted."""
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


class TimedApproval(ApprovalRequest):
    """``run.approval_request`` (``Run``'s): its wait is known to the run's wall-time budget while it lasts
    (a ``run.check()`` or a step of another thread meanwhile does not count it) and taken off
    whole once decided (``RunBudget.wait_opened``/``wait_closed``)."""

    def __enter__(self) -> "TimedApproval":
        super().__enter__()
        b = self.run.budget
        if b is not None:
            b.wait_opened()
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Literal[False]:
        b = self.run.budget
        if b is not None:
            b.wait_closed()
        return super().__exit__(et, ev, tb)
