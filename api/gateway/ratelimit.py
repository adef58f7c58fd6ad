"""Per-tenant token buckets, in events: a batch of n events takes n tokens."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBuckets:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)

    def take(self, tenant: str, n: int) -> float:
        """Takes n tokens; returns 0.0 when granted, else the seconds until they would be."""
        # A batch larger than the burst could never pass; it is charged as a full bucket.
        n = min(n, self.burst)
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(tenant, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= n:
                self._buckets[tenant] = (tokens - n, now)
                return 0.0
            self._buckets[tenant] = (tokens, now)
            return (n - tokens) / self.rate

    def refund(self, tenant: str, n: int) -> None:
        """Gives back tokens of a batch that Kafka never took (the client will resend it)."""
        with self._lock:
            if tenant in self._buckets:
                tokens, at = self._buckets[tenant]
                self._buckets[tenant] = (min(float(self.burst), tokens + min(n, self.burst)), at)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
