"""What librdkafka's delivery reports leave for a delivery, from whichever thread served them.

A tracer's producer handle is shared by the process's tracers of one configuration
(``shared_producer.py``), so a report may run on another tracer's thread. Here it only counts
the record resolved and leaves what failed; the delivery's own thread takes it from there
(``Delivery.settle``), so the delivery's state keeps one writer.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger("agentstream.producer")

# librdkafka/Kafka error codes that refuse the record itself: too large for message.max.bytes
# or the broker (MSG_SIZE_TOO_LARGE 10, RECORD_LIST_TOO_LARGE 18, INVALID_MSG_SIZE 4), malformed
# (INVALID_MSG 2, INVALID_RECORD 87, _BAD_MSG -199), an argument librdkafka refuses
# (_INVALID_ARG -186) or a serializer failing (-161/-162). No outage ends these: spooling such a
# record and replaying it first blocked every later record of the spool for good. Everything
# else (timeouts, transport, all brokers down, purges, fatal states) is an outage: spool it.
PERMANENT_CODES = frozenset({10, 18, 4, 2, 87, -199, -186, -161, -162})
_LOG_EVERY_S = 10.0


def is_permanent(err: Any) -> bool:
    """Whether a delivery error refuses the record for good (never an outage: a fatal
    producer error is one, the producer is recreated)."""
    try:
        return err.code() in PERMANENT_CODES and not err.fatal()
    except Exception:  # noqa: BLE001 - an error object we cannot read: assume an outage
        return False


def produce_refused(exc: BaseException) -> bool:
    """Whether ``produce()`` raising ``exc`` refuses this record (drop it) rather than says the
    producer cannot take records now (``BufferError``: queue full; a fatal error: outage)."""
    if isinstance(exc, BufferError):
        return False
    if isinstance(exc, (TypeError, ValueError)):  # an argument librdkafka's binding refuses
        return True
    err = exc.args[0] if exc.args else None
    return hasattr(err, "code") and is_permanent(err)


class Rejections:
    """Counts records refused for good, logging at most every 10 s (a stream of oversized
    events must not become a stream of log lines)."""

    def __init__(self) -> None:
        self.count = 0
        self._logged = 0
        self._next_log = 0.0

    def add(self, why: Any, size: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self._next_log:
            log.error("agentstream: Kafka refused %d record(s) for good (last: %s, %d bytes); "
                      "dropped, counted in stats()['rejected']", self.count - self._logged, why,
                      size)
            self._logged = self.count
            self._next_log = now + _LOG_EVERY_S


class Reports:
    """A delivery's records in flight, and the failures and broker errors reported for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0             # records handed to librdkafka (the delivery's thread only)
        self._resolved = 0        # ... of which librdkafka reported delivered or failed
        # (w, key, value, err) of a failed record; w is None for one sent online (numbered when
        # taken); err says whether it failed for good (``is_permanent``) or for an outage
        self.failed: deque[tuple[int | None, bytes, bytes, Any]] = deque()
        self.broker_down: deque[bool] = deque()  # one per broker error: was it fatal?
        self._late: Callable[[], None] | None = None

    def in_flight(self) -> int:
        """The delivery's records librdkafka holds (not the shared handle's whole queue)."""
        return self.sent - self._resolved

    def on_report(self, err: Any, msg: Any, w: int | None = None) -> None:
        """A record's delivery report (``on_delivery``), on whichever thread polled."""
        with self._lock:
            self._resolved += 1
            if err is None:
                return
            self.failed.append((w, msg.key() or b"", msg.value() or b"", err))
            if self._late is not None:
                self._late()

    def on_error(self, err: Any) -> None:
        """librdkafka's error callback (a shared handle's reaches every owner), any thread."""
        from confluent_kafka import KafkaError

        if err.fatal():
            self.broker_down.append(True)
        elif err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.broker_down.append(False)

    def after_close(self, settle: Callable[[], None]) -> None:
        """The delivery's thread is gone: a failure reported from now on is settled (spooled)
        at once, on the reporting thread, by ``settle``."""
        with self._lock:
            self._late = settle

    def reopen(self) -> None:
        """The delivery is open again (events after ``close``): its thread settles again."""
        with self._lock:
            self._late = None
