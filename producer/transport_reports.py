"""What librdkafka's delivery reports leave for a delivery, from whichever thread served them.

A tracer's producer handle is shared by the process's tracers of one configuration
(``shared_producer.py``), so a report may run on another tracer's thread. Here it only counts
the record resolved and leaves what failed; the delivery's own thread takes it from there
(``Delivery.settle``), so the delivery's state keeps one writer.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable


class Reports:
    """A delivery's records in flight, and the failures and broker errors reported for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0             # records handed to librdkafka (the delivery's thread only)
        self._resolved = 0        # ... of which librdkafka reported delivered or failed
        # (w, key, value) of a failed record; w is None for one sent online (numbered when taken)
        self.failed: deque[tuple[int | None, bytes, bytes]] = deque()
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
            self.failed.append((w, msg.key() or b"", msg.value() or b""))
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
