"""The only exceptions the SDK lets reach the agent: enforcement decisions.

Everything else that goes wrong inside the SDK (encoding, Kafka, disk) is caught and counted in
``Tracer.stats()``. Catch ``EnforcementError`` at the agent's workflow boundary; the run has
already recorded its terminal outcome when you see one.
"""
from __future__ import annotations


class EnforcementError(RuntimeError):
    """Base of every enforcement stop. ``outcome`` is what RUN_END records."""

    outcome = "stopped"

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class BudgetExceeded(EnforcementError):
    """A run budget (steps, model_calls, tokens, cost_usd, wall_time_s) would be exceeded.

    Raised *before* the operation that would exceed it.
    """

    outcome = "budget_stopped"

    def __init__(self, budget_type: str, limit: float, used: float, run_id: str | None = None):
        super().__init__(f"{budget_type} budget exhausted ({used:g} used of {limit:g})", run_id)
        self.budget_type = budget_type
        self.limit = limit
        self.used = used


class LackOfProgress(EnforcementError):
    """The same approved-field fingerprint repeated more often than allowed."""

    outcome = "no_progress_stopped"

    def __init__(self, fingerprint: str, repeats: int, run_id: str | None = None) -> None:
        super().__init__(f"run stopped making progress (fingerprint {fingerprint[:12]} seen "
                         f"{repeats} times)", run_id)
        self.fingerprint = fingerprint
        self.repeats = repeats


class RunStopped(EnforcementError):
    """A remote STOP command for this run arrived; raised at the run's next step."""

    outcome = "stopped_by_command"

    def __init__(self, command_id: str, reason: str, run_id: str | None = None) -> None:
        super().__init__(f"run stopped by command {command_id}: {reason}", run_id)
        self.command_id = command_id
        self.reason = reason


class AuditUnavailable(EnforcementError):
    """A durable action (``@tracer.tool(durable=True)`` or a policy-named action class) did not
    run: Kafka did not acknowledge its audit record (acks=all) within the bounded wait.

    Raised *before* the action's body runs; the TOOL step is recorded as failed. Safe to retry
    the call once Kafka is reachable again.
    """

    outcome = "audit_unavailable"
