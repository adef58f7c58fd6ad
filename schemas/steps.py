"""Processing steps: the one interface every consumer's hot path is built from (issue #24).

A consumer is a chain of small steps, each wrapping the next, in the shape of getsentry/arroyo's
``ProcessingStrategy``: ``submit`` hands a step one item, ``poll`` lets it do what is due and
forward what is ready, ``close`` + ``join`` finish everything accepted, ``terminate`` drops it.
The driver (the Kafka loop) owns the consumer; a step that is full raises ``MessageRejected``,
the driver keeps the item, stops reading (pausing its partitions if that lasts) and submits the
same item again after the next ``poll``. That is the only backpressure there is.

Why not arroyo itself (read from its source): its ``StreamProcessor`` polls and submits one
message at a time (``consumer.poll(timeout=1.0)``), where our drivers hand a step whole
``consume()`` batches; its ``RunTaskInThreads`` re-raises every exception, where our steps retry
a transient failure with backoff (the driver pausing meanwhile) and crash only on a bug
(``consumer_errors``); it brings its own consumer wrapper and commit policy and pins
``confluent-kafka>=2.13.2``; and ``sentry-arroyo`` is not among the packages this project's
environment offers. Its ``create_with_partitions(commit, partitions)`` could read the sink's
ledger, so exactly-once replay was not the obstacle: the replay lives in the sink's batcher
(``sink/range_batcher.py``) either way, and the interface here is arroyo's, so moving onto it
later means wrapping these steps.

The step types here are ``RunTask``, ``FlatMap``, ``Reduce`` and ``Terminal``; ``RunTaskInThreads``
is in ``step_threads.py``, and a step type of a part's own (the processors' ``AwaitCompletion``)
builds on ``Forwarder``.

This module lives in ``schemas/`` because it is the one package every part may import, like
``consumer_errors``; it knows nothing of Kafka, ClickHouse or the project's records.

Contract of every step (checked for each step type by tests/unit/steps/test_steps_all.py):

- ``submit`` either takes the item (it will be processed and its output forwarded, in order) or
  raises ``MessageRejected`` having taken nothing; after ``close`` it raises ``StepClosed``.
- ``poll`` never blocks for long; it forwards what is ready and polls the next step. An error
  of the work surfaces from ``submit``/``poll``/``join`` as it was raised (transient ones are
  retried when the step has a ``Retry``; ``Abandoned`` when a retry is given up).
- ``join(timeout)`` (after ``close``) finishes and forwards everything accepted, then closes and
  joins the next step; it returns early once ``timeout`` passes (then call ``terminate``).
- ``terminate`` drops everything not yet forwarded, does not wait for threads, and terminates
  the next step. Nothing dropped was forwarded, so nothing after it is committed.
"""
from __future__ import annotations

import abc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Protocol, TypeVar

from .consumer_errors import ErrorClass


TIn = TypeVar("TIn")
TOut = TypeVar("TOut")
TIn_contra = TypeVar("TIn_contra", contravariant=True)
TOut_co = TypeVar("TOut_co", covariant=True)


class MessageRejected(Exception):
    """The step is full: nothing was taken; submit the same item again after ``poll``."""


class StepClosed(RuntimeError):
    """``submit`` after ``close``: a bug in the driver."""


class Abandoned(Exception):
    """A retried call was given up (the consumer is stopping or handing its partitions over):
    the item was not processed and nothing after it was forwarded."""


class ProcessingStep(abc.ABC, Generic[TIn]):
    """One link of a consumer's chain; see the module docstring for the contract."""

    @abc.abstractmethod
    def submit(self, item: TIn) -> None: ...

    @abc.abstractmethod
    def poll(self) -> None: ...

    @abc.abstractmethod
    def join(self, timeout: float | None = None) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def terminate(self) -> None: ...


def deadline_in(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


@dataclass
class Retry:
    """How a step retries its work: ``classify`` sorts an exception; a TRANSIENT one is retried
    after ``initial_s``, doubling up to ``max_s``; anything else is re-raised at once (after
    ``on_failure(item description, exc, class, delay)``, which may raise a richer error naming
    the item; the description is what the step's ``what(item)`` returns). ``give_up()`` true
    turns the next transient failure, or a wait for one, into ``Abandoned``. ``failing`` is
    True from a transient failure until the next success (the driver pauses its partitions)."""

    classify: Callable[[BaseException], ErrorClass]
    initial_s: float = 0.2
    max_s: float = 10.0
    on_failure: Callable[[Any, BaseException, ErrorClass, float], None] = lambda _w, _e, _k, _d: None
    give_up: Callable[[], bool] = lambda: False
    failing: bool = field(default=False, init=False)
    on_recover: Callable[[], None] = lambda: None

    def failed(self, what: Any, exc: BaseException, attempt: int) -> float:
        """Returns the delay before the next attempt; raises ``exc`` (or what ``on_failure``
        raises) unless it is transient, ``Abandoned`` when giving up."""
        kind = self.classify(exc)
        delay = min(self.initial_s * 2.0 ** attempt, self.max_s)
        self.on_failure(what, exc, kind, delay)
        if kind is not ErrorClass.TRANSIENT:
            raise exc
        self.failing = True
        if self.give_up():
            raise Abandoned(f"{what}: gave up retrying {type(exc).__name__}: {exc}") from exc
        return delay

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            self.on_recover()


class Forwarder(ProcessingStep[TIn], Generic[TIn, TOut]):
    """Outputs waiting for the next step to accept them, in order."""

    def __init__(self, next_step: ProcessingStep[TOut]) -> None:
        self.next = next_step
        self._out: deque[TOut] = deque()
        self.closed = False
        self.terminated = False

    def _forward(self) -> None:
        while self._out:
            try:
                self.next.submit(self._out[0])
            except MessageRejected:
                return
            self._out.popleft()

    def _check_open(self) -> None:
        if self.closed:
            raise StepClosed(f"{type(self).__name__} is closed")

    def close(self) -> None:
        self.closed = True

    def _drain_out(self, deadline: float | None) -> bool:
        """Forwards every waiting output (polling the next step between tries); False on timeout."""
        while True:
            self._forward()
            if not self._out:
                return True
            if expired(deadline):
                return False
            self.next.poll()
            time.sleep(0.001)

    def _join_next(self, deadline: float | None) -> None:
        self.next.close()
        self.next.join(time_left(deadline))

    def terminate(self) -> None:
        self.closed = self.terminated = True
        self._out.clear()
        self.next.terminate()


class RunTask(Forwarder[TIn, TOut]):
    """Calls ``fn(item)`` on the caller's thread and forwards its result. With ``retry``, a
    transient failure keeps the item and retries it from ``poll`` after the backoff (the step
    is full meanwhile); ``what(item)`` names it in logs and errors. ``admit()`` false makes the
    step full too: a bound on something the steps after it hold (the sink's rows in flight)."""

    def __init__(self, fn: Callable[[TIn], TOut], next_step: ProcessingStep[TOut], retry: Retry | None = None,
                 what: Callable[[TIn], Any] = lambda _i: "task",
                 admit: Callable[[], bool] = lambda: True) -> None:
        super().__init__(next_step)
        self.fn, self.retry, self.what, self.admit = fn, retry, what, admit
        self._failed: TIn | None = None
        self._has_failed = False
        self._attempt = 0
        self._retry_at = 0.0

    def _run(self, item: TIn) -> None:
        try:
            out = self.fn(item)
        except Exception as exc:  # sorted by the Retry: only transient ones are kept
            if self.retry is None:
                raise
            delay = self.retry.failed(self.what(item), exc, self._attempt)
            self._failed, self._has_failed = item, True
            self._attempt += 1
            self._retry_at = time.monotonic() + delay
            return
        self._failed, self._has_failed, self._attempt = None, False, 0
        if self.retry is not None:
            self.retry.succeeded()
        self._emit(out)

    def _emit(self, out: TOut) -> None:
        self._out.append(out)
        self._forward()

    def submit(self, item: TIn) -> None:
        self._check_open()
        if self._out or self._has_failed or not self.admit():
            raise MessageRejected()
        self._run(item)

    def _retry_due(self, wait: bool) -> None:
        if not self._has_failed:
            return
        if self.retry is not None and self.retry.give_up():
            raise Abandoned(f"{self.what(self._failed)}: stopped while retrying")  # type: ignore[arg-type]
        now = time.monotonic()
        if now < self._retry_at:
            if not wait:
                return
            time.sleep(min(0.05, self._retry_at - now))
            return
        self._run(self._failed)  # type: ignore[arg-type]

    def poll(self) -> None:
        if self.terminated:
            return
        self._retry_due(wait=False)
        self._forward()
        self.next.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = deadline_in(timeout)
        while self._has_failed and not expired(deadline):
            self._retry_due(wait=True)
        if self._drain_out(deadline):
            self._join_next(deadline)

    def terminate(self) -> None:
        self._failed, self._has_failed = None, False
        super().terminate()


class FlatMap(RunTask[TIn, Any]):
    """``RunTask`` whose ``fn`` returns a sequence: each element is forwarded, in order."""

    def _emit(self, out: Any) -> None:
        self._out.extend(out)
        self._forward()


class Batcher(Protocol[TIn_contra, TOut_co]):
    """What ``Reduce`` batches with: pure, no I/O, the clock passed in."""

    def add(self, item: TIn_contra) -> None: ...

    def full(self) -> bool:
        """Takes no more items until the next cut."""
        ...

    def due(self, now: float) -> bool: ...

    def cut(self, now: float, final: bool = False) -> Iterable[TOut_co]:
        """Takes the batches that are ready (``final``: everything that can go)."""
        ...


class Reduce(Forwarder[TIn, TOut]):
    """Accumulates items in ``batcher`` and forwards its batches when it says they are due. A
    cut is taken only once the previous one was accepted downstream, so while the next step is
    busy the batcher fills up to ``full()`` and then rejects."""

    def __init__(self, batcher: Batcher[TIn, TOut], next_step: ProcessingStep[TOut],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(next_step)
        self.batcher, self.clock = batcher, clock

    def submit(self, item: TIn) -> None:
        self._check_open()
        if self.batcher.full():
            raise MessageRejected()
        self.batcher.add(item)

    def poll(self) -> None:
        if self.terminated:
            return
        self._forward()
        if not self._out and self.batcher.due(self.clock()):
            self._out.extend(self.batcher.cut(self.clock()))
            self._forward()
        self.next.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = deadline_in(timeout)
        if not self._drain_out(deadline):
            return
        self._out.extend(self.batcher.cut(self.clock(), final=True))
        if self._drain_out(deadline):
            self._join_next(deadline)


class ListBatcher(Generic[TIn]):
    """A ``Batcher`` of lists: due at ``max_items`` or once the oldest is ``max_seconds`` old;
    full at ``max_items``."""

    def __init__(self, max_items: int, max_seconds: float) -> None:
        self.max_items, self.max_seconds = max_items, max_seconds
        self.items: list[TIn] = []
        self.oldest_at: float | None = None

    def add(self, item: TIn) -> None:
        if not self.items:
            self.oldest_at = time.monotonic()
        self.items.append(item)

    def full(self) -> bool:
        return len(self.items) >= self.max_items

    def due(self, now: float) -> bool:
        return bool(self.items) and (self.full() or now - (self.oldest_at or now) >= self.max_seconds)

    def cut(self, now: float, final: bool = False) -> list[list[TIn]]:
        out, self.items, self.oldest_at = ([self.items] if self.items else []), [], None
        return out


class Terminal(ProcessingStep[Any]):
    """The end of a chain: calls ``fn(item)`` (a commit, say) for each item. Use ``RunTask``
    in front of it for a call that must be retried."""

    def __init__(self, fn: Callable[[Any], None] = lambda _i: None) -> None:
        self.fn = fn
        self.closed = False

    def submit(self, item: Any) -> None:
        if self.closed:
            raise StepClosed("Terminal is closed")
        self.fn(item)

    def poll(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def terminate(self) -> None:
        self.closed = True


class HeldBatch:
    """The driver's side of backpressure: records read from Kafka that the chain's head has not
    taken yet. ``offer`` submits all of them at once; on ``MessageRejected`` (nothing taken)
    they stay here and ``blocked_for`` says how long the head has been refusing them."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self._blocked_at: float | None = None

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: Iterable[Any]) -> None:
        self.records.extend(records)

    def offer(self, head: ProcessingStep[list[Any]]) -> bool:
        """Submits the held records; True once the head took them (or there were none)."""
        if not self.records:
            return True
        try:
            head.submit(self.records)
        except MessageRejected:
            if self._blocked_at is None:
                self._blocked_at = time.monotonic()
            return False
        self.records, self._blocked_at = [], None
        return True

    def blocked_for(self) -> float:
        """Seconds the head has been refusing the held records (0.0 when it is not)."""
        return 0.0 if self._blocked_at is None else time.monotonic() - self._blocked_at

    def take(self) -> list[Any]:
        """The held records, handed over and forgotten (a chain being dropped)."""
        records, self.records, self._blocked_at = self.records, [], None
        return records
