"""A processing step (schemas/steps.py) whose work is finished on someone else's thread: the raw
loop's outputs are handed to librdkafka, which sends them and reports each delivery from its own
threads, so the step starts the work on the caller's thread and only collects the outcome.

``RunTaskInThreads`` does not fit: it would hold a Python thread per batch in flight, blocked on
delivery reports that librdkafka already tracks, and on a transient failure it would run the
whole item again, where only the refused outputs need producing again.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Generic, Protocol, TypeVar, cast

from agentstream.schemas.steps import Abandoned, MessageRejected, ProcessingStep, Retry, Forwarder

TIn = TypeVar("TIn")
TOut = TypeVar("TOut")
TOut_co = TypeVar("TOut_co", covariant=True)


class Pending(Protocol[TOut_co]):
    """Work under way elsewhere: ``done`` once every part has reported; ``result`` returns the
    output or raises the failure; ``again`` starts the failed part once more."""

    def done(self) -> bool: ...

    def result(self) -> TOut_co: ...

    def again(self) -> None: ...


class _Slot(Generic[TIn, TOut]):
    __slots__ = ("item", "pending", "attempts", "retry_at", "started", "ok", "out")

    def __init__(self, item: TIn, pending: Pending[TOut]) -> None:
        self.item, self.pending = item, pending
        self.ok = False  # its result was taken: ``out`` is ready to forward
        self.out: TOut | None = None
        self.attempts = 0
        self.retry_at: float | None = None  # set while waiting to start the failed part again
        self.started = time.monotonic()


class AwaitCompletion(Forwarder[TIn, TOut]):
    """``start(item)`` begins the work and returns its ``Pending``; at most ``max_pending`` are
    under way (then ``MessageRejected``). ``pump(timeout)`` lets the other side report (the
    producer's ``poll``); it waits up to 10 ms only while the step is full, so a driver held back
    by it wakes on the first report instead of spinning. Results are forwarded in the order the
    items came. With ``retry``, a failure that ``retry`` deems transient is started ``again`` after
    the backoff; anything else is raised. An item not done ``timeout_s`` after it was (re)started
    raises ``on_timeout(what(item), timeout_s)``."""

    def __init__(self, start: Callable[[TIn], Pending[TOut]], next_step: ProcessingStep[TOut], max_pending: int,
                 pump: Callable[[float], Any] = lambda _t: None, retry: Retry | None = None,
                 what: Callable[[TIn], Any] = lambda _i: "task", timeout_s: float | None = None,
                 on_timeout: Callable[[Any, float], BaseException] = lambda w, t: TimeoutError(
                     f"{w} not done within {t:.0f}s")) -> None:
        super().__init__(next_step)
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.start, self.pump, self.retry, self.what = start, pump, retry, what
        self.max_pending, self.timeout_s, self.on_timeout = max_pending, timeout_s, on_timeout
        self._pending: deque[_Slot[TIn, TOut]] = deque()

    def busy(self) -> bool:
        return bool(self._pending or self._out)

    def submit(self, item: TIn) -> None:
        self._check_open()
        if len(self._pending) >= self.max_pending:
            raise MessageRejected()
        self._pending.append(_Slot(item, self.start(item)))

    def _collect(self) -> None:
        now = time.monotonic()
        for slot in self._pending:
            if slot.ok:
                continue
            if slot.retry_at is not None:
                if self.retry is not None and self.retry.give_up():
                    raise Abandoned(f"{self.what(slot.item)}: stopped while retrying")
                if now >= slot.retry_at:
                    slot.retry_at, slot.started = None, now
                    slot.pending.again()
                continue
            if not slot.pending.done():
                if self.timeout_s is not None and now - slot.started > self.timeout_s:
                    raise self.on_timeout(self.what(slot.item), self.timeout_s)
                continue
            try:
                slot.out = slot.pending.result()
            except Exception as exc:  # sorted by the Retry: only transient ones are started again
                if self.retry is None:
                    raise
                slot.retry_at = now + self.retry.failed(self.what(slot.item), exc, slot.attempts)
                slot.attempts += 1
                continue
            slot.ok = True
        while self._pending and self._pending[0].ok:
            out = self._pending.popleft().out
            if self.retry is not None and not any(s.retry_at is not None for s in self._pending):
                self.retry.succeeded()
            self._out.append(cast(TOut, out))  # set with ok

    def _turn(self) -> None:
        self.pump(0.01 if len(self._pending) >= self.max_pending else 0.0)
        self._forward()
        if not self._out:
            self._collect()
            self._forward()

    def poll(self) -> None:
        if self.terminated:
            return
        self._turn()
        self.next.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending or self._out:
            self._turn()
            if not (self._pending or self._out) or (deadline is not None and time.monotonic() >= deadline):
                break
            self.next.poll()
            self.pump(0.01)
        if not (self._pending or self._out):
            self._join_next(deadline)

    def terminate(self) -> None:
        # What librdkafka already holds may still be delivered; nothing of it is forwarded, so
        # nothing of it is committed (at-least-once: the input is read again).
        self._pending.clear()
        super().terminate()
