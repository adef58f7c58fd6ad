"""Error classes shared by the consumers (sink, processors): what a failure means for the loop.

Three classes, as in arroyo and Snuba's consumers:

- INVALID: the record itself is bad (undecodable, refused by the mapper or a detector). It goes
  to the DLQ with its reason and the loop goes on; ``DlqRatioGuard`` stops the consumer when most
  records of a window are invalid, because that is a misconfiguration (a wrong registry, a
  producer writing another format), not bad luck, and dead-lettering everything would hide it.
- TRANSIENT: the broker or the database is unavailable or overloaded. The same call is retried
  with backoff; nothing is committed meanwhile.
- BUG: anything else. Retrying the same input gives the same exception, so the consumer crashes
  with the coordinates of what it was working on, and nothing past them is committed.

Only the Kafka side lives here (both consumers read Kafka); the sink adds ClickHouse's codes.
"""
from __future__ import annotations

import enum
from collections import deque
from typing import Any


class ErrorClass(enum.Enum):
    INVALID = "invalid"
    TRANSIENT = "transient"
    BUG = "bug"


class ConsumerCrash(RuntimeError):
    """A failure the consumer must not retry: a bug, or a DLQ ratio over its limit. The message
    names the offending record or range (topic, partition, offsets)."""


class DlqRatioExceeded(ConsumerCrash):
    pass


# librdkafka error codes that clear up by themselves: transport and broker availability,
# coordinator moves and rebalances, timeouts, a full local queue. (KafkaError.retriable() covers
# the broker's own retriable flag; librdkafka's local codes carry no such flag.)
KAFKA_TRANSIENT_CODES = frozenset({
    -195,  # _TRANSPORT
    -192,  # _MSG_TIMED_OUT
    -187,  # _ALL_BROKERS_DOWN
    -185,  # _TIMED_OUT
    -184,  # _QUEUE_FULL
    -180,  # _WAIT_COORD
    5,     # LEADER_NOT_AVAILABLE
    6,     # NOT_LEADER_FOR_PARTITION
    7,     # REQUEST_TIMED_OUT
    8,     # BROKER_NOT_AVAILABLE
    13,    # NETWORK_EXCEPTION
    14,    # COORDINATOR_LOAD_IN_PROGRESS
    15,    # COORDINATOR_NOT_AVAILABLE
    16,    # NOT_COORDINATOR
    19,    # NOT_ENOUGH_REPLICAS
    20,    # NOT_ENOUGH_REPLICAS_AFTER_APPEND
    27,    # REBALANCE_IN_PROGRESS
})


def kafka_error_class(exc: BaseException) -> ErrorClass | None:
    """TRANSIENT for a retriable Kafka error, BUG for any other Kafka error, None when ``exc``
    is not a Kafka error. Duck-typed on ``KafkaException.args[0]`` (a ``KafkaError``), so this
    module needs no client library."""
    if isinstance(exc, BufferError):  # the producer's local queue is full
        return ErrorClass.TRANSIENT
    err: Any = exc.args[0] if exc.args else None
    if not (hasattr(err, "code") and hasattr(err, "retriable") and hasattr(err, "fatal")):
        return None
    if err.fatal():
        return ErrorClass.BUG
    if err.retriable() or err.code() in KAFKA_TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    return ErrorClass.BUG


def network_error_class(exc: BaseException) -> ErrorClass | None:
    """TRANSIENT for OS-level network failures and timeouts; None otherwise."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ErrorClass.TRANSIENT
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError,
                                                          IsADirectoryError, NotADirectoryError)):
        return ErrorClass.TRANSIENT
    return None


class DlqRatioGuard:
    """Counts records and dead letters over a sliding window of at least ``window`` records
    (whole batches) and trips when at least ``min_records`` are in it and more than
    ``max_ratio`` of them were dead-lettered. ``max_ratio`` >= 1 never trips."""

    def __init__(self, max_ratio: float, window: int, min_records: int) -> None:
        if window < 1 or min_records < 1:
            raise ValueError("window and min_records must be at least 1")
        self.max_ratio = max_ratio
        self.window = window
        self.min_records = min_records
        self._batches: deque[tuple[int, int]] = deque()
        self.total = 0
        self.bad = 0

    def observe(self, total: int, bad: int, where: str) -> None:
        """Adds one batch; raises ``DlqRatioExceeded`` naming ``where`` when the ratio trips."""
        if total <= 0:
            return
        if bad > total or bad < 0:
            raise ValueError(f"bad={bad} out of total={total}")
        self._batches.append((total, bad))
        self.total += total
        self.bad += bad
        while len(self._batches) > 1 and self.total - self._batches[0][0] >= self.window:
            n, b = self._batches.popleft()
            self.total -= n
            self.bad -= b
        if self.total >= self.min_records and self.bad > self.max_ratio * self.total:
            raise DlqRatioExceeded(
                f"{self.bad} of the last {self.total} records were dead-lettered (limit "
                f"{self.max_ratio:.0%}), the latest in {where}: stopping rather than dead-lettering "
                "the whole stream; check the producers' format and the schema registry, then restart "
                "(nothing from this batch on was committed)")
