"""Dead-letter output: the original key and bytes, the reason in ``DLQ_HEADERS``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentstream.schemas import DLQ_HEADERS

from .errors import TransientError
from .metrics import DLQ

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

STAGE = "sink"


@dataclass(frozen=True)
class Rejected:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


def dlq_headers(r: Rejected) -> list[tuple[str, bytes]]:
    return [
        (DLQ_HEADERS["reason"], r.reason[:1000].encode()),
        (DLQ_HEADERS["stage"], STAGE.encode()),
        (DLQ_HEADERS["source_topic"], r.topic.encode()),
        (DLQ_HEADERS["source_partition"], str(r.partition).encode()),
        (DLQ_HEADERS["source_offset"], str(r.offset).encode()),
    ]


def reason_kind(reason: str) -> str:
    """A bounded metric label from a free-text reason."""
    return reason.split(":", 1)[0].split(" ", 1)[0][:32] or "unknown"


class DeadLetters:
    """Produces rejected records and flushes before the sink commits their offsets, so a
    record is never committed without being either stored or dead-lettered (at least once)."""

    def __init__(self, producer: Any, topic: str) -> None:
        # Any: confluent's stubs type produce's headers as a list of (str, str | bytes | None),
        # which the list of (str, bytes) ``dlq_headers`` returns is not (lists are invariant)
        self.producer = producer
        self.topic = topic
        self.sent = 0

    def send(self, rejected: list[Rejected], timeout: float = 30.0) -> None:
        if not rejected:
            return
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(str(err))

        for r in rejected:
            self.producer.produce(self.topic, key=r.key, value=r.value, headers=dlq_headers(r),
                                  on_delivery=on_delivery)
            DLQ.labels(r.topic, reason_kind(r.reason)).inc()
        remaining = self.producer.flush(timeout)
        if remaining or errors:
            # The DLQ topic's broker is unavailable: retried like any outage (the records were
            # accepted by Kafka once, so neither size nor format is why).
            raise TransientError(f"DLQ delivery failed ({remaining} undelivered): {errors[:3]}")
        self.sent += len(rejected)
