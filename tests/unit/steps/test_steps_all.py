"""The contract every processing step keeps (schemas/steps.py), checked for every step type the
consumers are built from, generic and the sink's own: modelled on arroyo's test_all.py.

Each case builds its step in front of a ``Recorder`` (a next step that can be made full) and
says how to turn its outputs back into the inputs' numbers, so one test checks them all: in
order, nothing lost or doubled, backpressure when the next step is full, join flushes,
close/terminate, and errors by class."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from agentstream.schemas.consumer_errors import ErrorClass
from agentstream.schemas.step_threads import RunTaskInThreads
from agentstream.schemas.steps import (Abandoned, FlatMap, ListBatcher, MessageRejected, ProcessingStep,
                                       Reduce, Retry, RunTask, StepClosed, Terminal)
from agentstream.sink.flush_chain import FlushGrouper
from agentstream.sink.flush_policy import FlushPolicy
from agentstream.sink.ledger import OffsetRange
from agentstream.sink.range_batcher import Chunk, Flush, RangeBatcher
from agentstream.stream_processors.delivery_steps import AwaitCompletion
from agentstream.schemas.step_retry import BoundedRetry
from agentstream.sink.export_steps import Decoded, SpanBatcher

T = "t"


class Recorder(ProcessingStep[Any]):
    """The next step: records what it is given; refuses everything while ``full``."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.full = False
        self.closed = self.joined = self.terminated = False

    def submit(self, item: Any) -> None:
        if self.full:
            raise MessageRejected()
        self.items.append(item)

    def poll(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        self.joined = True

    def close(self) -> None:
        self.closed = True

    def terminate(self) -> None:
        self.terminated = True


class Rec:
    def __init__(self, offset: int) -> None:
        self._o = offset

    def topic(self) -> str:
        return T

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, 1000 + self._o)


def transient_only(exc: BaseException) -> ErrorClass:
    return ErrorClass.TRANSIENT if isinstance(exc, ConnectionError) else ErrorClass.BUG


@dataclass
class Case:
    name: str
    make: Callable[..., ProcessingStep[Any]]  # (next, fn, retry) -> step
    item: Callable[[int], Any]
    numbers: Callable[[list[Any]], list[int]]  # the Recorder's items -> the inputs' numbers
    task: bool = False  # runs a function: errors and retries apply


def _chunk(i: int) -> list[Chunk]:
    # one insert of one range; flushes of two ranges: items 0,1 are flush 0; 2,3 flush 1; ...
    c = Chunk(OffsetRange(T, 0, i, i), [Rec(i)], replay=False)
    c.flush_id, c.flush_size = i // 2, 2
    return [c]


def _retry(retry: Retry | None) -> dict[str, Any]:
    return {} if retry is None else {"retry": retry}


def _bounded(retry: Retry | None) -> dict[str, Any]:
    """The case's retry as a ``BoundedRetry`` (the forwarder's and the exporter's), with room for
    every retry the contract makes and no jitter, so its delays are the plain doubling."""
    if retry is None:
        return {}
    return {"retry": BoundedRetry(retry.classify, retry.initial_s, retry.max_s, on_failure=retry.on_failure,
                                  give_up=retry.give_up, on_recover=retry.on_recover, max_retries=50,
                                  rand=lambda: 1.0)}


class Completing:
    """A ``Pending`` finished on another thread, as librdkafka reports deliveries."""

    def __init__(self, fn: Callable[[Any], Any], item: Any) -> None:
        self.fn, self.item = fn, item
        self.again()

    def again(self) -> None:
        self.thread_result: list[Any] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.thread_result.append((True, self.fn(self.item)))
        except Exception as exc:  # noqa: BLE001 - handed to the step, which raises or retries it
            self.thread_result.append((False, exc))

    def done(self) -> bool:
        return bool(self.thread_result)

    def result(self) -> Any:
        ok, value = self.thread_result[0]
        if not ok:
            raise value
        return value


CASES = [
    Case("RunTask", lambda nxt, fn, retry: RunTask(fn, nxt, **_retry(retry)), lambda i: i, list, task=True),
    Case("FlatMap", lambda nxt, fn, retry: FlatMap(lambda x: [fn(x), fn(x) + 0.5], nxt, **_retry(retry)),
         lambda i: i, lambda out: [int(x) for x in out[::2]], task=True),
    Case("RunTaskInThreads", lambda nxt, fn, retry: RunTaskInThreads(fn, nxt, concurrency=3, max_pending=4,
                                                                     **_retry(retry)),
         lambda i: i, list, task=True),
    Case("AwaitCompletion", lambda nxt, fn, retry: AwaitCompletion(lambda x: Completing(fn, x), nxt, max_pending=3,
                                                                  **_retry(retry)),
         lambda i: i, list, task=True),
    Case("Reduce(ListBatcher)", lambda nxt, fn, retry: Reduce(ListBatcher(3, 60.0), nxt), lambda i: i,
         lambda out: [x for batch in out for x in batch]),
    Case("Reduce(RangeBatcher)", lambda nxt, fn, retry: Reduce(
        RangeBatcher([(T, 0)], {}, FlushPolicy(3, 60.0, 60.0, 60.0), lambda _t, _n: False, 3), nxt),
         lambda i: [Rec(i)], lambda out: [m.offset() for f in out for c in f.chunks for m in c.msgs]),
    Case("Reduce(FlushGrouper)", lambda nxt, fn, retry: Reduce(FlushGrouper(), nxt), _chunk,
         lambda out: [c.range.start for f in out for c in f.chunks]),
    Case("RunTask(BoundedRetry)", lambda nxt, fn, retry: RunTask(fn, nxt, **_bounded(retry)), lambda i: i, list,
         task=True),
    Case("Reduce(SpanBatcher)", lambda nxt, fn, retry: Reduce(SpanBatcher(3, 60.0), nxt),
         lambda i: Decoded(T, 0, i, {"n": i}), lambda out: [e["n"] for b in out for e in b.events]),
]
IDS = [c.name for c in CASES]
TASKS = [c for c in CASES if c.task]


def feed(step: ProcessingStep[Any], items: list[Any], tries: int = 2000) -> None:
    """Submits each item, polling while the step refuses it (what a driver does)."""
    for item in items:
        for _ in range(tries):
            try:
                step.submit(item)
                break
            except MessageRejected:
                step.poll()
                time.sleep(0.001)
        else:
            pytest.fail("the step never took the item back")


def settle(step: ProcessingStep[Any], until: Callable[[], bool], tries: int = 2000) -> None:
    for _ in range(tries):
        step.poll()
        if until():
            return
        time.sleep(0.001)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forwards_everything_it_takes_once_and_in_order_and_join_flushes_and_joins_the_next(case):
    rec = Recorder()
    step = case.make(rec, lambda x: x, None)
    feed(step, [case.item(i) for i in range(10)])
    step.close()
    step.join()
    assert case.numbers(rec.items) == list(range(10))
    assert rec.closed and rec.joined and not rec.terminated


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_full_next_step_makes_it_reject_then_it_takes_again_after_poll_and_loses_nothing(case):
    rec = Recorder()
    rec.full = True
    step = case.make(rec, lambda x: x, None)
    taken = 0
    for i in range(50):
        try:
            step.submit(case.item(i))
        except MessageRejected:
            break
        taken += 1
        step.poll()
    else:
        pytest.fail("the step kept taking items its next step refused")
    assert taken < 50
    with pytest.raises(MessageRejected):  # refused means nothing was taken: it stays refused
        step.submit(case.item(taken))
    rec.full = False
    more = 6 - taken % 2  # whole flushes of two for the FlushGrouper
    feed(step, [case.item(i) for i in range(taken, taken + more)])
    step.close()
    step.join()
    assert case.numbers(rec.items) == list(range(taken + more))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_submit_after_close_is_a_driver_bug(case):
    step = case.make(Recorder(), lambda x: x, None)
    step.close()
    with pytest.raises(StepClosed):
        step.submit(case.item(0))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_terminate_drops_what_was_not_forwarded_and_terminates_the_next(case):
    rec = Recorder()
    rec.full = True
    step = case.make(rec, lambda x: x, None)
    for i in range(3):
        try:
            step.submit(case.item(i))
        except MessageRejected:
            break
        step.poll()
    step.terminate()
    rec.full = False
    step.poll()
    assert rec.items == [] and rec.terminated
    with pytest.raises(StepClosed):
        step.submit(case.item(2))


@pytest.mark.parametrize("case", TASKS, ids=[c.name for c in TASKS])
def test_a_bug_in_the_task_propagates_as_raised_and_is_not_retried(case):
    calls = []

    def fn(x):
        calls.append(x)
        if x == 3:
            raise KeyError("tenant_id")
        return x

    rec = Recorder()
    step = case.make(rec, fn, Retry(transient_only, 0.001, 0.002))
    with pytest.raises(KeyError, match="tenant_id"):
        feed(step, list(range(6)))
        step.close()
        step.join()
    assert calls.count(3) == 1
    assert 3 not in case.numbers(rec.items) and all(n < 3 for n in case.numbers(rec.items))


@pytest.mark.parametrize("case", TASKS, ids=[c.name for c in TASKS])
def test_a_task_without_a_retry_raises_even_a_transient_error(case):
    step = case.make(Recorder(), lambda x: 1 // 0 if x == 1 else x, None)
    with pytest.raises(ZeroDivisionError):
        feed(step, list(range(3)))
        step.close()
        step.join()


@pytest.mark.parametrize("case", TASKS, ids=[c.name for c in TASKS])
def test_a_transient_error_is_retried_with_backoff_the_step_refuses_meanwhile_and_order_holds(case):
    failures = {2: 3}  # item 2 fails three times, then succeeds
    seen: list[tuple[str, ErrorClass, float]] = []
    recovered = []

    def fn(x):
        if failures.get(x, 0) > 0:
            failures[x] -= 1
            raise ConnectionError("clickhouse down")
        return x

    retry = Retry(transient_only, 0.01, 0.02, on_failure=lambda what, exc, kind, delay: seen.append((str(exc), kind, delay)),
                  on_recover=lambda: recovered.append(1))
    rec = Recorder()
    step = case.make(rec, fn, retry)
    feed(step, list(range(8)))
    step.close()
    step.join()
    assert case.numbers(rec.items) == list(range(8))
    assert [k for _e, k, _d in seen] == [ErrorClass.TRANSIENT] * 3
    assert [d for _e, _k, d in seen] == [0.01, 0.02, 0.02]  # doubling, capped at max_s
    assert not retry.failing and recovered == [1]


@pytest.mark.parametrize("case", TASKS, ids=[c.name for c in TASKS])
def test_a_retry_given_up_abandons_the_item_and_forwards_nothing_after_it(case):
    stop = threading.Event()

    def fn(x):
        if x == 1:
            stop.set()
            raise ConnectionError("down")
        return x

    rec = Recorder()
    step = case.make(rec, fn, Retry(transient_only, 0.01, 0.02, give_up=stop.is_set))
    with pytest.raises(Abandoned):
        feed(step, list(range(4)))
        step.close()
        step.join()
    assert all(n < 1 for n in case.numbers(rec.items))


def test_the_thread_step_runs_tasks_at_once_but_forwards_in_the_order_they_came():
    gate = threading.Event()
    running = []

    def fn(x):
        running.append(x)
        if x == 0:
            gate.wait(5)  # the first is the slowest
        return x

    rec = Recorder()
    step = RunTaskInThreads(fn, rec, concurrency=3, max_pending=3)
    feed(step, [0, 1, 2])
    settle(step, lambda: len(running) == 3)
    assert sorted(running) == [0, 1, 2] and rec.items == []  # 1 and 2 done, held behind 0
    with pytest.raises(MessageRejected):
        step.submit(3)
    gate.set()
    settle(step, lambda: len(rec.items) == 3)
    assert rec.items == [0, 1, 2]
    step.close()
    step.join()


def test_join_returns_at_its_timeout_and_terminate_then_drops_the_rest():
    gate = threading.Event()
    rec = Recorder()
    step = RunTaskInThreads(lambda x: gate.wait(5) and x, rec, concurrency=1, max_pending=2)
    feed(step, [1])
    step.close()
    t0 = time.monotonic()
    step.join(timeout=0.05)
    assert time.monotonic() - t0 < 4 and rec.items == [] and not rec.joined
    step.terminate()
    gate.set()
    assert rec.items == [] and rec.terminated


def test_a_flush_is_forwarded_only_once_all_its_ranges_are_in():
    rec = Recorder()
    step = Reduce(FlushGrouper(), rec)
    step.submit(_chunk(0))
    step.poll()
    assert rec.items == []
    step.submit(_chunk(1))
    step.poll()
    assert len(rec.items) == 1 and isinstance(rec.items[0], Flush) and rec.items[0].id == 0
    assert [c.range.start for c in rec.items[0].chunks] == [0, 1]


def test_the_terminal_step_calls_its_function_and_refuses_after_close():
    got: list[int] = []
    end = Terminal(got.append)
    end.submit(1)
    end.poll()
    end.close()
    end.join()
    with pytest.raises(StepClosed):
        end.submit(2)
    assert got == [1]


def test_a_pool_given_to_the_thread_step_outlives_it_and_its_queued_calls_are_cancelled():
    from concurrent.futures import ThreadPoolExecutor

    gate = threading.Event()
    ran: list[int] = []
    pool = ThreadPoolExecutor(1)
    try:
        step = RunTaskInThreads(lambda x: (gate.wait(5), ran.append(x)) and x, Recorder(), concurrency=1,
                                max_pending=3, executor=pool)
        feed(step, [1, 2, 3])
        step.terminate()
        gate.set()
        assert pool.submit(lambda: 7).result(timeout=5) == 7  # still usable by the next chain
        assert ran == [1]  # the running call finished; the queued ones never ran
    finally:
        pool.shutdown()
