"""The sink's liveness and readiness as /healthz and /readyz report them."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .offset_commits import OffsetCommitter
    from .settings import SinkSettings


class ReadinessMixin:
    """Part of ``Sink``: reads its counters; never changes them."""

    settings: SinkSettings
    _lag: int
    _progress_at: float
    failed: str | None
    migrated: bool
    paused: bool
    _consumer: Any
    commits: OffsetCommitter
    stored_rows: int
    dlq_records: int
    last_error: str | None

    if TYPE_CHECKING:  # read-only properties of ``Sink`` (service.py)
        @property
        def _pending_rows(self) -> int: ...

        @property
        def _flushing(self) -> bool: ...

    def stuck_for(self) -> float:
        """Seconds without progress (a commit) while records wait (buffered, being flushed, or
        lag > 0); 0 while caught up or moving."""
        if not self._pending_rows and not self._lag and not self._flushing:
            return 0.0
        return max(0.0, time.monotonic() - self._progress_at)

    def health(self) -> dict[str, Any]:
        """``alive`` is False once the loop has crashed or has made no progress for
        ``stuck_after_s`` with records waiting; /healthz answers 503 then."""
        stuck = self.stuck_for()
        return {
            "alive": self.failed is None and stuck < self.settings.stuck_after_s,
            "failed": self.failed,
            "stuck_seconds": round(stuck, 1),
            "lag": self._lag,
            "ready": self.migrated and self._consumer is not None and self.failed is None,
            "migrated": self.migrated,
            "paused": self.paused,
            "assigned": sorted(f"{t}[{p}]" for t, p in self.commits.assigned),
            "pending_rows": self._pending_rows,
            "stored_rows": self.stored_rows,
            "committed_ranges": self.commits.committed_ranges,
            "dlq_records": self.dlq_records,
            "last_commit_at": self.commits.last_commit_at,
            "last_error": self.last_error,
        }

    def metrics(self) -> dict[str, Any]:
        return self.health()
