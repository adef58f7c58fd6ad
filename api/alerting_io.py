"""The query API's view of alert routing, silences and acknowledgements (schemas/alerting.py):
a thread tails the compacted policies topic into an ``AlertingBook``; writes go through the
``KafkaWriter`` and are folded into the book at once, so a client reads its own write.

Started on first use (the read-only routes never need a broker): listing alerts with their
state starts it, and waits for it to catch up, only when a broker is configured.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from agentstream.schemas.alerting import AlertingBook, is_alerting_key

from .errors import ApiError
from .kafka_io import PoliciesTail
from .settings import ApiSettings

log = logging.getLogger("agentstream.api.alerting")


class AlertingCache(PoliciesTail):
    group_id = "agentstream-api-alerting"

    def __init__(self, settings: ApiSettings) -> None:
        self.book = AlertingBook()
        super().__init__(settings)

    def apply(self, msg: Any) -> None:
        if not is_alerting_key(msg.key()):
            return
        with self._lock:
            if not self.book.apply(msg.key(), msg.value()):
                log.warning("skipping malformed alerting record at %s offset %s", self.topic, msg.offset())

    def read(self, fn: Callable[[AlertingBook], Any], wait_s: float | None = None) -> Any:
        """``fn(book)`` under the lock, after the first catch-up (a 503 if it does not come)."""
        if not self.caught_up.wait(self.settings.kafka_timeout_s if wait_s is None else wait_s):
            raise ApiError(503, "kafka_unavailable", f"{self.topic} could not be read in time")
        with self._lock:
            return fn(self.book)

    def remember(self, key: bytes, value: bytes | None) -> None:
        with self._lock:
            self.book.apply(key, value)
