"""When ``agentstream up`` starts an exited part again: crash-loop backoff, as Kubernetes and
compose (``restart: unless-stopped``) do for the same processes in production.

A part that exits (a bug, the sink's DLQ ratio guard, an OOM kill) is started again after a
delay that doubles with each exit in a row, from ``first_s`` up to ``max_s``; a part that stayed
up for ``stable_s`` before it exited starts the count over. Pure (times passed in), so the policy
is tested without processes; ``Stack.supervise`` applies it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestartPolicy:
    first_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0
    restarts: int = 0  # exits in a row (reset by a stable run)
    started_at: float = 0.0
    due_at: float | None = None  # when the exited part is to start again

    def started(self, now: float) -> None:
        self.started_at = now
        self.due_at = None

    def exited(self, now: float) -> float:
        """The part was found exited at ``now``: schedules its start; returns the delay."""
        if self.due_at is not None:
            return self.due_at - now
        if now - self.started_at >= self.stable_s:
            self.restarts = 0
        delay = min(self.max_s, self.first_s * 2 ** self.restarts)
        self.restarts += 1
        self.due_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        return self.due_at is not None and now >= self.due_at
