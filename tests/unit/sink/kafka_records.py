"""A stand-in for a consumed confluent_kafka.Message (schemas/kafka_message.KafkaMessage) for the
sink's and the steps' unit tests: the accessors batching, storing and dead-lettering use."""
from __future__ import annotations

EVENTS = "agentstream.events"


class Rec:
    """Offset ``offset`` of ``topic``[``partition``]; its timestamp is ``ts + offset`` ms."""

    def __init__(self, offset: int, partition: int = 0, ts: int = 1000, topic: str = EVENTS) -> None:
        self._o, self._p, self._ts, self._t = offset, partition, ts, topic

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts + self._o)

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"
