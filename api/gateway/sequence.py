"""Per-run sequence numbers for OTLP runs, whose spans arrive over several exports.

Kept in this process (LRU-bounded): seq is gap-free per run while one gateway instance
sees the run; with several replicas behind a load balancer the numbers stay unique per
instance but not gap-free (docs/ingest.md). Numbers of a batch Kafka refused are handed back
when nothing was allocated after them, so an exporter's retry does not leave a gap.
"""
from __future__ import annotations

import threading
from collections import OrderedDict


class SeqAllocator:
    def __init__(self, max_runs: int = 100_000) -> None:
        self.max_runs = max_runs
        self._next: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def allocate(self, tenant: str, run_id: str, n: int) -> int:
        key = (tenant, run_id)
        with self._lock:
            start = self._next.pop(key, 0)
            self._next[key] = start + n
            if len(self._next) > self.max_runs:
                self._next.popitem(last=False)
        return start

    def release(self, tenant: str, run_id: str, start: int, n: int) -> None:
        key = (tenant, run_id)
        with self._lock:
            if self._next.get(key) == start + n:
                self._next[key] = start
