"""``ChainDriver`` (schemas/step_driver.py), the driver of the alert forwarder and the OTLP
exporter, and ``BoundedRetry`` (schemas/step_retry.py), their retry of a third party's endpoint:
with a recorded consumer and a chain of real steps, no broker."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from agentstream.schemas.consumer_errors import ConsumerCrash, ErrorClass
from agentstream.schemas.step_driver import ChainDriver
from agentstream.schemas.step_retry import (BoundedRetry, RetryLater, backoff_delay, parse_retry_after,
                                            transient_attempt)
from agentstream.schemas.step_threads import RunTaskInThreads
from agentstream.schemas.steps import Abandoned, FlatMap, ProcessingStep, Retry, RunTask, Terminal


class Err:
    def __init__(self, code: int, fatal: bool = False) -> None:
        self._code, self._fatal = code, fatal

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return f"error {self._code}"


class Msg:
    def __init__(self, offset: int, err: Err | None = None) -> None:
        self.n, self._err = offset, err

    def error(self) -> Err | None:
        return self._err


class Consumer:
    """Hands out the scripted ``consume()`` batches; records every call."""

    def __init__(self, batches: list[list[Msg]]) -> None:
        self.batches, self.calls = list(batches), []

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        self.calls.append("consume")
        return self.batches.pop(0) if self.batches else []

    def assignment(self) -> list[str]:
        return ["p0"]

    def pause(self, parts: list[str]) -> None:
        self.calls.append("pause")

    def resume(self, parts: list[str]) -> None:
        self.calls.append("resume")


@dataclass
class Chain:
    head: ProcessingStep[list[Any]]
    retry: Retry

    @property
    def failing(self) -> bool:
        return self.retry.failing


class Built:
    """Makes chains of real steps: FlatMap(each record) -> RunTask(work, retried) -> Terminal(done);
    with a ``gate``, the work runs on a thread (RunTaskInThreads, one at a time) and waits for it:
    a chain that is busy, not failing."""

    def __init__(self, fail: dict[int, int] | None = None, gate: threading.Event | None = None) -> None:
        self.fail, self.gate = dict(fail or {}), gate
        self.done: list[tuple[int, int]] = []  # (chain number, record)
        self.chains = 0
        self.driver: ChainDriver | None = None

    def __call__(self) -> Chain:
        self.chains += 1
        number = self.chains

        def work(m: Msg) -> int:
            if self.gate is not None:
                self.gate.wait(5)
            if self.fail.get(m.n, 0) > 0:
                self.fail[m.n] -= 1
                raise RetryLater("down")
            return m.n

        assert self.driver is not None
        retry = Retry(transient_attempt, 0.001, 0.002, give_up=self.driver.give_up)
        end = Terminal(lambda n: self.done.append((number, n)))
        task: ProcessingStep[Msg] = RunTask(work, end, retry) if self.gate is None else \
            RunTaskInThreads(work, end, concurrency=1, max_pending=1, retry=retry)
        return Chain(FlatMap(lambda msgs: msgs, task), retry)


def driver_for(built: Built, consumer: Consumer, **kw: Any) -> ChainDriver:
    d = ChainDriver(built, batch_size=10, wait_s=0.0, **kw)
    d.consumer = consumer
    built.driver = d
    return d


def test_records_reach_the_chain_in_order_and_each_assignment_gets_a_new_chain():
    built = Built()
    c = Consumer([[Msg(0), Msg(1)], [Msg(2)]])
    d = driver_for(built, c)
    d.on_assign(c, [])
    assert d.turn() == 2 and d.turn() == 1
    d.on_revoke(c, [])
    d.on_assign(c, [])
    c.batches.append([Msg(3)])
    d.turn()
    d.finish(join=True)
    assert built.done == [(1, 0), (1, 1), (1, 2), (2, 3)] and built.chains == 2


def test_while_the_chain_retries_an_outage_the_driver_reads_nothing_more_pauses_and_resumes_after():
    built = Built(fail={1: 3})
    c = Consumer([[Msg(0), Msg(1), Msg(2)], [Msg(3)]])
    d = driver_for(built, c)
    d.on_assign(c, [])
    d.turn()
    assert "pause" in c.calls and built.done == [(1, 0)]
    for _ in range(2000):
        d.turn()
        if len(built.done) == 4:
            break
        time.sleep(0.001)
    assert [n for _c, n in built.done] == [0, 1, 2, 3]
    assert c.calls.index("resume") > c.calls.index("pause") and d.paused_seconds > 0


def test_a_batch_the_chain_refuses_is_held_not_read_again_and_the_partitions_pause_after_a_while():
    gate = threading.Event()
    built = Built(gate=gate)
    c = Consumer([[Msg(0)], [Msg(1)], [Msg(2)]])
    d = driver_for(built, c, blocked_pause_s=0.02)
    d.on_assign(c, [])
    d.turn()  # 0 taken: its work waits on the gate
    d.turn()  # 1 taken by the head, which cannot hand it on
    d.turn()  # 2 read and refused: held
    consumed = c.calls.count("consume")
    for _ in range(200):
        d.turn()
        if "pause" in c.calls:
            break
    assert len(d.held) == 1 and not d.chain.failing
    assert c.calls.count("consume") == consumed  # blocked: nothing read until the pause
    assert d.blocked_seconds > 0
    gate.set()
    for _ in range(2000):
        d.turn()
        if len(built.done) == 3:
            break
        time.sleep(0.001)
    assert [n for _c, n in built.done] == [0, 1, 2] and "resume" in c.calls


def test_a_revocation_joins_the_chain_and_gives_up_a_retry_when_its_time_is_up():
    built = Built(fail={1: 10**6})
    c = Consumer([[Msg(0), Msg(1)]])
    d = driver_for(built, c, revoke_join_s=0.05)
    d.on_assign(c, [])
    d.turn()
    d.on_revoke(c, [])  # 1 never succeeds: left uncommitted to the next owner
    assert built.done == [(1, 0)] and d.chain is None


def test_a_fatal_consumer_error_crashes_and_partition_eof_is_not_an_error():
    built = Built()
    c = Consumer([[Msg(0), Msg(-1, Err(-191))], [Msg(1, Err(-150, fatal=True))]])
    d = driver_for(built, c)
    d.on_assign(c, [])
    assert d.turn() == 1
    with pytest.raises(ConsumerCrash, match="fatally"):
        d.turn()


def test_finish_without_join_drops_what_was_read_uncommitted():
    gate = threading.Event()
    built = Built(gate=gate)
    c = Consumer([[Msg(0)], [Msg(1)]])
    d = driver_for(built, c)
    d.on_assign(c, [])
    d.turn()
    d.turn()
    d.stopping = True
    d.finish(join=False)
    gate.set()
    assert built.done == [] and d.chain is None and len(d.held) == 0


# ---- BoundedRetry ---------------------------------------------------------------------------

def test_backoff_doubles_with_jitter_up_to_its_cap_and_retry_after_wins_capped():
    assert [backoff_delay(n, 0.5, 3.0, rand=lambda: 0.0) for n in range(5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert [backoff_delay(n, 0.5, 3.0, rand=lambda: 1.0) for n in range(3)] == [0.5, 1.0, 2.0]
    assert backoff_delay(0, 0.5, 3.0, retry_after=2.0) == 2.0
    assert backoff_delay(0, 0.5, 3.0, retry_after=120.0) == 3.0


@pytest.mark.parametrize("value,seconds", [("5", 5.0), (" 7 ", 7.0), ("0", 0.0), (None, None), ("", None),
                                           ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("-1", None), ("1.5", None)])
def test_retry_after_is_read_as_whole_seconds_and_anything_else_falls_back_to_the_backoff(value, seconds):
    assert parse_retry_after(value) == seconds


def test_bounded_retry_gives_up_loudly_after_max_retries_and_raises_a_bug_at_once():
    seen: list[tuple[ErrorClass, float]] = []
    r = BoundedRetry(transient_attempt, 0.1, 1.0, on_failure=lambda _w, _e, k, d: seen.append((k, d)),
                     max_retries=2, exhausted=lambda what, exc: TimeoutError(f"{what} still down: {exc}"),
                     rand=lambda: 1.0)
    assert r.failed("item", RetryLater("503"), 0) == 0.1 and r.failing
    assert r.failed("item", RetryLater("429", retry_after=0.5), 1) == 0.5
    with pytest.raises(TimeoutError, match="item still down: 503"):
        r.failed("item", RetryLater("503"), 2)
    with pytest.raises(KeyError):
        r.failed("item", KeyError("bug"), 0)
    assert [k for k, _d in seen] == [ErrorClass.TRANSIENT] * 3 + [ErrorClass.BUG]


def test_bounded_retry_abandons_when_told_to_give_up():
    r = BoundedRetry(transient_attempt, 0.1, 1.0, give_up=lambda: True)
    with pytest.raises(Abandoned):
        r.failed("item", RetryLater("503"), 0)


def test_idle_time_counts_from_the_last_record_or_assignment_never_through_a_group_join():
    built = Built()
    c = Consumer([])
    d = driver_for(built, c)
    d.turn()
    assert d.idle_for() == 0.0  # joining the group: not idle yet
    d.on_assign(c, [])
    time.sleep(0.02)
    before = d.idle_for()
    assert before > 0
    c.batches.append([Msg(0)])
    d.turn()
    assert d.idle_for() < before
    d.on_revoke(c, [])
    time.sleep(0.05)
    waited = d.idle_for()
    d.on_assign(c, [])  # a rebalance starts the count again
    assert d.idle_for() < waited
