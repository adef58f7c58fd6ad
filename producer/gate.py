"""The enforcement gate of a run: commands, budgets and fingerprints, checked before a step.

Everything here runs on the agent's thread *before* the operation it may refuse. The step hot
path only tests ``run._gate`` (a bool); this code runs only while a budget, a throttle or a
pending command makes it necessary, and then it is integer comparisons on counters
(``RunBudget``). A breach records why (FAILURE, then RUN_END with the outcome) and raises a
typed ``EnforcementError``; every later step of that run raises it again.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import BudgetExceeded, EnforcementError, LackOfProgress, RunStopped
from .run_state import RunState
from .step import LLM

if TYPE_CHECKING:
    from .step import Step


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
                b.check_now()
            except EnforcementError as exc:
                self._enforce(exc)
        else:
            llm = step if step.kind == LLM else None
            try:
                b.before_step()
                if llm is not None:
                    est = llm.estimate or (0, 0.0)
                    b.before_model_call(est[0], est[1])
                if step.fingerprint is not None:
                    b.record_fingerprint(step.fingerprint)
            except EnforcementError as exc:
                self._enforce(exc)
            b.add_step()
            if llm is not None:
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
