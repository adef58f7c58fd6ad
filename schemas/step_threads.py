"""``RunTaskInThreads``: the step that runs its work on a thread pool (schemas/steps.py has the
interface, the contract and the other steps; tests/unit/steps/test_steps_all.py checks this one
with them)."""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from .steps import (Abandoned, Forwarder, MessageRejected, ProcessingStep, Retry, TIn, TOut, deadline_in,
                    expired)


class RunTaskInThreads(Forwarder[TIn, TOut]):
    """Runs ``fn(item)`` on up to ``concurrency`` threads, at most ``max_pending`` items at once
    (then ``MessageRejected``), and forwards the results in the order the items came. With
    ``retry``, an item whose call failed transiently is run again after the backoff; a result
    after it waits for it. ``executor``: run on the caller's pool instead of one of its own."""

    def __init__(self, fn: Callable[[TIn], TOut], next_step: ProcessingStep[TOut], concurrency: int,
                 max_pending: int, retry: Retry | None = None, what: Callable[[TIn], Any] = lambda _i: "task",
                 executor: ThreadPoolExecutor | None = None, name: str = "step") -> None:
        super().__init__(next_step)
        if concurrency < 1 or max_pending < 1:
            raise ValueError("concurrency and max_pending must be at least 1")
        self.fn, self.retry, self.what, self.max_pending = fn, retry, what, max_pending
        # A pool given by the caller outlives the step (the sink keeps its insert threads, and
        # their connections, across assignments); it is never shut down here.
        self._owns_pool = executor is None
        self._pool = executor if executor is not None else ThreadPoolExecutor(concurrency, thread_name_prefix=name)
        # per item: [item, future or None while waiting to retry, attempts, retry_at]
        self._pending: deque[list[Any]] = deque()

    def busy(self) -> bool:
        return bool(self._pending)

    def submit(self, item: TIn) -> None:
        self._check_open()
        if len(self._pending) >= self.max_pending:
            raise MessageRejected()
        self._pending.append([item, self._pool.submit(self.fn, item), 0, 0.0])

    def _collect(self) -> None:
        now = time.monotonic()
        for slot in self._pending:
            fut: Future[TOut] | None = slot[1]
            if fut is None:
                if self.retry is not None and self.retry.give_up():
                    raise Abandoned(f"{self.what(slot[0])}: stopped while retrying")
                if now >= slot[3]:
                    slot[1] = self._pool.submit(self.fn, slot[0])
                continue
            if not fut.done():
                continue
            exc = fut.exception()
            if exc is None:
                continue
            if self.retry is None or not isinstance(exc, Exception):
                raise exc
            slot[1] = None
            slot[3] = now + self.retry.failed(self.what(slot[0]), exc, slot[2])
            slot[2] += 1
        while self._pending and self._pending[0][1] is not None and self._pending[0][1].done():
            out = self._pending.popleft()[1].result()
            if self.retry is not None and not any(s[1] is None for s in self._pending):
                self.retry.succeeded()
            self._out.append(out)

    def poll(self) -> None:
        if self.terminated:
            return
        self._forward()
        if not self._out:
            self._collect()
            self._forward()
        self.next.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = deadline_in(timeout)
        while self._pending or self._out:
            self._forward()
            if not self._out:
                self._collect()
                self._forward()
            if not (self._pending or self._out) or expired(deadline):
                break
            self.next.poll()
            time.sleep(0.002)
        if not (self._pending or self._out):
            if self._owns_pool:
                self._pool.shutdown(wait=True)
            self._join_next(deadline)

    def terminate(self) -> None:
        for slot in self._pending:
            if slot[1] is not None:
                slot[1].cancel()  # a call already running finishes; its result is dropped
        self._pending.clear()
        if self._owns_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        super().terminate()
