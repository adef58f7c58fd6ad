"""The query API's view of alert routing, silences and acknowledgements (schemas/alerting.py):
a thread tails the compacted policies topic into an ``AlertingBook``; writes go through the
``KafkaWriter`` and are folded into the book at once, so a client reads its own write.

Started on first use (the read-only routes never need a broker): listing alerts with their
state starts it, and waits for it to catch up, only when a broker is configured.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from agentstream.schemas import topic_name
from agentstream.schemas.alerting import AlertingBook, is_alerting_key

from .errors import ApiError
from .settings import ApiSettings

log = logging.getLogger("agentstream.api.alerting")


class AlertingCache:
    def __init__(self, settings: ApiSettings) -> None:
        from confluent_kafka import Consumer

        if not settings.bootstrap_servers:
            raise ApiError(503, "kafka_not_configured",
                           "no Kafka broker is configured (AGENTSTREAM_API_BOOTSTRAP_SERVERS)")
        self.settings = settings
        self.topic = topic_name("policies", settings.topic_prefix)
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "agentstream-api-alerting",  # required by librdkafka; never committed
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **settings.kafka_client_conf,
        })
        self.book = AlertingBook()
        self.lock = threading.Lock()
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-alerting-cache", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        try:
            meta = self.consumer.list_topics(self.topic, timeout=self.settings.kafka_timeout_s)
            parts = sorted((meta.topics.get(self.topic).partitions or {}).keys()) or [0]
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
        except Exception as exc:  # noqa: BLE001 - reported through caught_up never being set
            log.warning("cannot read %s: %s", self.topic, exc)
            return
        while not self._stop.is_set():
            msg = self.consumer.poll(0.3)
            if msg is None:
                # Never "stop at the high watermark" (the embedded broker reports it short).
                self.caught_up.set()
                continue
            if msg.error() is not None or not is_alerting_key(msg.key()):
                continue
            with self.lock:
                if not self.book.apply(msg.key(), msg.value()):
                    log.warning("skipping malformed alerting record at %s offset %s",
                                self.topic, msg.offset())

    def read(self, fn: Callable[[AlertingBook], Any], wait_s: float | None = None) -> Any:
        """``fn(book)`` under the lock, after the first catch-up (a 503 if it does not come)."""
        if not self.caught_up.wait(self.settings.kafka_timeout_s if wait_s is None else wait_s):
            raise ApiError(503, "kafka_unavailable", f"{self.topic} could not be read in time")
        with self.lock:
            return fn(self.book)

    def remember(self, key: bytes, value: bytes | None) -> None:
        with self.lock:
            self.book.apply(key, value)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001
            pass
