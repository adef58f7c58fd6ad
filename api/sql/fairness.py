"""Per-tenant concurrency and queueing for /v1/sql, so one tenant's heavy SQL cannot starve others.

Each tenant may run ``per_tenant`` queries at once and queue ``queue`` more; a further request,
or one that waited ``wait_s`` without a slot, gets 429 with Retry-After. All tenants together run
at most ``total`` queries (the size of the SQL pool); a waiting query takes the first free slot
its own tenant may use, so a busy tenant cannot take every slot from a quiet one.
Lives on the event loop: waiting costs no thread, so queued SQL never holds a worker that the
API's own routes need.
"""
from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from contextlib import asynccontextmanager
from typing import AsyncIterator

from ..errors import ApiError


class TenantLimiter:
    def __init__(self, per_tenant: int, queue: int, total: int, wait_s: float,
                 retry_after_s: float) -> None:
        self.per_tenant = max(1, per_tenant)
        self.queue = max(0, queue)
        self.total = max(1, total)
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self.running: dict[str, int] = defaultdict(int)
        self.waiting: dict[str, int] = defaultdict(int)
        self._busy = 0
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        # Bound to the running loop on first use (an asyncio primitive cannot cross loops; an app
        # served again, as tests do, gets a fresh one).
        loop = asyncio.get_running_loop()
        if self._changed is None or self._loop is not loop:
            self._changed, self._loop = asyncio.Condition(), loop
        return self._changed

    def _may_run(self, tenant: str) -> bool:
        return self.running[tenant] < self.per_tenant and self._busy < self.total

    def _too_many(self, tenant: str, why: str) -> ApiError:
        retry = max(1, math.ceil(self.retry_after_s))
        return ApiError(429, "sql_rate_limited",
                        f"{why}; retry after {retry} s", {"running": self.running[tenant],
                                                          "queued": self.waiting[tenant]},
                        headers={"Retry-After": str(retry)})

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        cond = self._condition()
        async with cond:
            if not self._may_run(tenant):
                if self.waiting[tenant] >= self.queue:
                    raise self._too_many(tenant, f"too many SQL queries of this tenant at once "
                                         f"({self.per_tenant} running, {self.queue} queued)")
                self.waiting[tenant] += 1
                try:
                    await asyncio.wait_for(cond.wait_for(lambda: self._may_run(tenant)), self.wait_s)
                except (asyncio.TimeoutError, TimeoutError):
                    raise self._too_many(tenant, "no SQL slot became free in time") from None
                finally:
                    self.waiting[tenant] -= 1
            self.running[tenant] += 1
            self._busy += 1
        try:
            yield
        finally:
            async with cond:
                self.running[tenant] -= 1
                self._busy -= 1
                if not self.running[tenant] and not self.waiting[tenant]:
                    self.running.pop(tenant, None)
                    self.waiting.pop(tenant, None)
                cond.notify_all()
