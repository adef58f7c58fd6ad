"""``ChainDriver``: the Kafka side of a small consumer built as a chain of steps (schemas/steps.py),
for the consumers that have nothing else to drive (the alert forwarder, the OTLP exporter; the
sink and the raw loop have drivers of their own, with ledgers and metrics servers around them).

It reads, hands each ``consume()`` batch to the chain's head, lets the chain work, pauses the
partitions while the chain retries an outage or has refused a batch for more than
``blocked_pause_s`` (the consumer keeps polling, so it stays in its group), and rebuilds the
chain on every assignment: give ``on_assign``/``on_revoke`` to ``Consumer.subscribe``. On a
revocation the chain finishes and commits what it took within ``revoke_join_s``; what is left
goes uncommitted to the next owner. The consumer is duck-typed (confluent-kafka's), so this
module needs no client library.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol

from .consumer_errors import ConsumerCrash
from .steps import Abandoned, HeldBatch, MessageRejected, ProcessingStep

log = logging.getLogger("agentstream.steps.driver")

PARTITION_EOF = -191  # librdkafka's _PARTITION_EOF: informative, never an error
# Before the first assignment, ``idle_for`` starts counting this much later: a group join takes
# seconds (half the session timeout, more on a busy broker) and is not an empty topic.
JOIN_GRACE_S = 30.0


def describe_batch(msgs: list[Any]) -> str:
    """A ``consume()`` batch's coordinates for errors: its first record and its size."""
    if not msgs:
        return "an empty batch"
    m = msgs[0]
    return f"{m.topic()}[{m.partition()}] offsets from {m.offset()} ({len(msgs)} records)"


def hand_over_and_join(head: ProcessingStep[list[Any]], held: list[Any], timeout: float | None) -> None:
    """Submits ``held`` (records read and not yet taken) to ``head``, polling while it refuses,
    then closes and joins the chain, all within ``timeout``; the caller terminates it after."""
    end = None if timeout is None else time.monotonic() + timeout
    while held and (end is None or time.monotonic() < end):
        try:
            head.submit(held)
            held = []
        except MessageRejected:
            head.poll()
            time.sleep(0.002)
    head.close()
    head.join(None if end is None else max(0.0, end - time.monotonic()))


def drop_chain(head: ProcessingStep[list[Any]] | None, held: HeldBatch, join: bool,
               timeout: float | None = None) -> None:
    """A chain's end (a revocation, a stop): ``join``, the records read (those it refused too)
    are handed over and finished first, within ``timeout``; then it is terminated and the rest
    dropped, uncommitted."""
    records = held.take()
    if head is None:
        return
    if join:
        hand_over_and_join(head, records, timeout)
    head.terminate()


def pump(held: HeldBatch, head: ProcessingStep[list[Any]]) -> None:
    """One turn of a driver: the held records offered to the chain, the chain polled, and
    offered again (the poll may have made room)."""
    held.offer(head)
    head.poll()
    held.offer(head)


class StepChain(Protocol):
    """One assignment's chain: ``head`` takes ``consume()`` batches; ``failing`` while one of its
    steps retries an outage."""

    @property
    def head(self) -> ProcessingStep[list[Any]]: ...

    @property
    def failing(self) -> bool: ...


class ChainDriver:
    """Drives ``build()``'s chain with ``consumer`` (set it before the first ``turn``).

    What callers may rely on: records reach the chain in the order read, each once per
    assignment; nothing is read while the chain refuses a batch; a fatal consumer error is a
    ``ConsumerCrash``; ``finish(join=True)`` hands the chain everything read and waits for it,
    ``finish(join=False)`` drops it uncommitted. ``blocked_seconds`` and ``paused_seconds``
    measure the backpressure; ``give_up`` is what the chain's retries should stop on;
    ``idle_for`` is how long nothing came (for a consumer that stops when a topic runs dry)."""

    def __init__(self, build: Callable[[], StepChain], batch_size: int, wait_s: float,
                 revoke_join_s: float = 30.0, blocked_pause_s: float = 1.0) -> None:
        self.build, self.batch_size, self.wait_s = build, batch_size, wait_s
        self.revoke_join_s, self.blocked_pause_s = revoke_join_s, blocked_pause_s
        self.consumer: Any = None
        self.chain: StepChain | None = None
        self.held = HeldBatch()
        self.stopping = False
        self.blocked_seconds = 0.0
        self.paused_seconds = 0.0
        self._paused_at: float | None = None
        self._revoke_deadline: float | None = None
        self._started_at = time.monotonic()
        self._last_read_at = 0.0
        self._assigned_at: float | None = None
        # For the probes (schemas/consumer_probes.py): the loop's heartbeat, and the partitions
        # held (None until the group's first assignment; empty when it gave this member none).
        self.last_turn_at = self._started_at
        self.assigned: tuple[str, ...] | None = None

    def idle_for(self) -> float:
        """Seconds without a record read, counted from the latest assignment at the earliest (a
        rebalance is not idleness), and from ``JOIN_GRACE_S`` after the start before one."""
        if self._assigned_at is None:
            since = max(self._last_read_at, self._started_at + JOIN_GRACE_S)
        else:
            since = max(self._last_read_at, self._assigned_at)
        return max(0.0, time.monotonic() - since)

    def give_up(self) -> bool:
        """True once the consumer is stopping or a revocation's time is up."""
        return self.stopping or (self._revoke_deadline is not None and time.monotonic() >= self._revoke_deadline)

    # ---- rebalance callbacks (called inside consume()) ------------------------------------

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.drop(join=False)
        self._unpause()
        self.chain = self.build()
        self._assigned_at = time.monotonic()
        self.assigned = tuple(_name(tp) for tp in partitions)
        log.info("assigned %s: a new chain", _names(partitions))

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("revoked %s: committing what the chain finishes within %.0fs", _names(partitions),
                 self.revoke_join_s)
        self._revoke_deadline = time.monotonic() + self.revoke_join_s
        self.assigned = ()
        try:
            self.drop(join=True, timeout=self.revoke_join_s)
        except Abandoned:
            log.warning("revoked while retrying: what was not committed goes to the next owner")
        finally:
            self._revoke_deadline = None
            self.drop(join=False)
            self._unpause()

    # ---- the loop -------------------------------------------------------------------------

    def turn(self) -> int:
        """One turn: read unless the chain refuses what was read, offer it, poll the chain, and
        pause or resume. Returns how many records were read."""
        self.last_turn_at = time.monotonic()
        read = 0
        if self.held and self._paused_at is None:
            t0 = time.perf_counter()
            time.sleep(0.002)  # the chain is behind: give it time without reading more
            self.blocked_seconds += time.perf_counter() - t0
        else:
            # paused, consume() only serves the group (rebalances): a short wait
            msgs = self.consumer.consume(self.batch_size, 0.05 if self._paused_at is not None else self.wait_s)
            records = [m for m in msgs if m.error() is None or self._consumer_error(m.error())]
            read = len(records)
            if records:
                self.held.add(records)
                self._last_read_at = time.monotonic()
        chain = self.chain
        if chain is None:
            return read
        pump(self.held, chain.head)
        want = chain.failing or self.held.blocked_for() > self.blocked_pause_s
        if want and self._paused_at is None:
            self._pause()
        elif not want:
            self._unpause()
        return read

    @property
    def failing(self) -> bool:
        """True while the chain retries an outage (a destination or backend down)."""
        return self.chain is not None and self.chain.failing

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def finish(self, join: bool, timeout: float | None = None) -> None:
        """``join``: the chain takes and finishes everything read first; then it is dropped."""
        try:
            self.drop(join=join, timeout=timeout)
        finally:
            self.drop(join=False)

    def drop(self, join: bool, timeout: float | None = None) -> None:
        drop_chain(self.chain.head if self.chain is not None else None, self.held, join, timeout)
        self.chain = None

    @staticmethod
    def _consumer_error(err: Any) -> bool:
        if err.fatal():
            raise ConsumerCrash(f"consumer failed fatally: {err}")
        if err.code() != PARTITION_EOF:
            log.warning("consumer error: %s", err)
        return False

    def _pause(self) -> None:
        try:
            self.consumer.pause(self.consumer.assignment())
        except Exception as exc:  # noqa: BLE001 - a consumer closing or rebalancing: pausing is best effort
            log.debug("pause failed: %s", exc)
            return
        self._paused_at = time.perf_counter()

    def _unpause(self) -> None:
        if self._paused_at is None:
            return
        self.paused_seconds += time.perf_counter() - self._paused_at
        self._paused_at = None
        try:
            self.consumer.resume(self.consumer.assignment())
        except Exception as exc:  # noqa: BLE001 - after a revocation there is nothing to resume
            log.debug("resume failed: %s", exc)


def _name(tp: Any) -> str:
    return f"{getattr(tp, 'topic', '?')}[{getattr(tp, 'partition', '?')}]"


def _names(partitions: list[Any]) -> str:
    return ", ".join(_name(tp) for tp in partitions) or "nothing"
