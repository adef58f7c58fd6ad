"""The query API's two Kafka paths: writing policies/feedback, and tailing the policies topic.

Both are created on first use, so the read routes never need a broker.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from agentstream.schemas import (PARTITIONER, POLICY, Codec, DecodeError, SchemaIdMismatch, make_resolver,
                                 topic_name)
from agentstream.schemas.alerting import is_alerting_key
from agentstream.schemas.offset_gaps import GapCounts, OffsetGapGuard, consumer_seek, start_positions
from .errors import ApiError
from .settings import ApiSettings

log = logging.getLogger("agentstream.api.kafka")

# Every policies tail of the process (the policy and the alerting caches, of every app built)
# counts into one, exported as ``agentstream_api_policies_offset_gap*`` (api/metrics.py).
POLICY_GAP_COUNTS = GapCounts()  # each app's own registry exports it (api/metrics.py)


def _codec(settings: ApiSettings) -> Codec:
    """The codec of the Kafka paths; a Schema Registry that does not hold agentstream's schema
    ids refuses them with a 503 naming the mismatch (never records framed with other ids)."""
    try:
        return Codec(resolver=make_resolver(settings.schema_registry_url))
    except SchemaIdMismatch as exc:
        raise ApiError(503, "schema_registry_mismatch", f"{exc}; run `agentstream schemas register`",
                       {"problems": exc.problems}) from None


def _require_broker(settings: ApiSettings) -> None:
    if not settings.bootstrap_servers:
        raise ApiError(503, "kafka_not_configured",
                       "no Kafka broker is configured (AGENTSTREAM_API_BOOTSTRAP_SERVERS)")


class KafkaWriter:
    """Produces one record and waits for the broker's ack, so a 2xx means it is durable."""

    def __init__(self, settings: ApiSettings, metrics: Any = None) -> None:
        from confluent_kafka import Producer

        _require_broker(settings)
        self.settings = settings
        self.metrics = metrics
        self.codec = _codec(settings)
        self.producer = Producer({
            "bootstrap.servers": settings.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": int(settings.kafka_timeout_s * 1000),
            # commands keyed by run_id go where the run's events went (one partitioner everywhere)
            "partitioner": PARTITIONER,
            **settings.kafka_client_conf,
        })

    def topic(self, logical: str) -> str:
        return topic_name(logical, self.settings.topic_prefix)

    def write(self, logical: str, key: str, schema: str, record: dict[str, Any]) -> None:
        try:
            value = self.codec.encode(schema, record)
        except Exception as exc:  # an invalid record is the caller's bad input
            raise ApiError(400, "invalid_record", f"record does not fit {schema}: {exc}") from exc
        self.write_bytes(logical, key.encode(), value)

    def write_bytes(self, logical: str, key: bytes, value: bytes | None) -> None:
        """Produces an already-encoded value (None: a tombstone) and waits for the ack."""
        from confluent_kafka import KafkaException

        topic = self.topic(logical)
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def on_delivery(err, _msg) -> None:
            outcome["err"] = err
            done.set()

        try:
            self.producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        except (KafkaException, BufferError) as exc:
            self._count(topic, "error")
            raise ApiError(503, "kafka_unavailable", f"could not produce to {topic}: {exc}") from exc
        deadline = time.monotonic() + self.settings.kafka_timeout_s + 1
        while not done.is_set() and time.monotonic() < deadline:
            self.producer.poll(0.05)
        if not done.is_set() or outcome.get("err") is not None:
            self._count(topic, "error")
            reason = outcome.get("err") or "no acknowledgement in time"
            raise ApiError(503, "kafka_unavailable", f"{topic} did not acknowledge: {reason}")
        self._count(topic, "ok")

    def _count(self, topic: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.kafka_writes.labels(topic, result).inc()

    def close(self) -> None:
        self.producer.flush(2.0)


class PoliciesTail:
    """Reads the whole compacted policies topic from the start in a thread, handing each record
    to ``apply`` (subclasses fold it into their view, under ``self._lock``).

    No consumer group: every API replica reads the whole (small) topic. It never stops at the
    high watermark (the embedded broker reports it short); "caught up" means one poll found
    nothing new.

    The API and the CLI write policies at once, and on the embedded broker a fetch can then skip
    a batch (schemas/offset_gaps.py): the tail reads through an ``OffsetGapGuard`` (``gaps``),
    which seeks a partition back over a jump and reads it again; its counts are the process's
    ``POLICY_GAP_COUNTS`` (on the API's /metrics).
    """

    group_id = "agentstream-api-policies"  # required by librdkafka; never committed

    def __init__(self, settings: ApiSettings) -> None:
        from confluent_kafka import Consumer

        _require_broker(settings)
        self.settings = settings
        self.codec = _codec(settings)
        self.topic = topic_name("policies", settings.topic_prefix)
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **settings.kafka_client_conf,
        })
        self.gaps = OffsetGapGuard.from_settings(settings, POLICY_GAP_COUNTS)
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"api-{self.group_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        try:
            meta = self.consumer.list_topics(self.topic, timeout=self.settings.kafka_timeout_s)
            topic = meta.topics.get(self.topic)  # absent, or without partitions yet: read 0
            parts = sorted(topic.partitions or {}) if topic is not None else []
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts or [0]])
        except KafkaException as exc:  # reported through caught_up never being set
            log.warning("cannot read %s: %s", self.topic, exc)
            return
        self.gaps.assign(start_positions(self.consumer, [TopicPartition(self.topic, p) for p in parts or [0]],
                                         timeout=self.settings.kafka_timeout_s))
        seek = consumer_seek(self.consumer)
        while not self._stop.is_set():
            msg = self.consumer.poll(0.5)
            if msg is None:
                self.caught_up.set()
                continue
            for m in self.gaps.admit([msg], seek):
                if m.error() is None:
                    self.apply(m)

    def apply(self, msg: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001 - closing at shutdown: nothing left to report to
            pass


class PolicyCache(PoliciesTail):
    """Latest policy per tenant, from tailing the compacted policies topic in a thread."""

    def __init__(self, settings: ApiSettings) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        super().__init__(settings)

    def apply(self, msg: Any) -> None:
        if is_alerting_key(msg.key()):
            return  # alert routing/silence/state records: api/alerting_io.py reads those
        tenant = (msg.key() or b"").decode(errors="replace")
        if msg.value() is None:
            with self._lock:  # tombstone: the tenant's policy was deleted
                self.policies.pop(tenant, None)
            return
        try:
            record = self.codec.decode_as(POLICY, msg.value())
        except DecodeError as exc:
            log.warning("undecodable policy at %s offset %s: %s", self.topic, msg.offset(), exc.reason)
            return
        self.remember(record)

    def remember(self, record: dict[str, Any]) -> None:
        with self._lock:
            current = self.policies.get(record["tenant_id"])
            if current is None or record.get("updated_us", 0) >= current.get("updated_us", 0):
                self.policies[record["tenant_id"]] = record

    def get(self, tenant: str) -> dict[str, Any] | None:
        with self._lock:
            return self.policies.get(tenant)
