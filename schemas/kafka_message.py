"""The part of a consumed Kafka message the parts rely on, as a Protocol.

confluent-kafka's ``Message`` satisfies it once it is known to be a record (``error()`` is
None: offset and timestamp are then set); typing against this keeps the strictly typed modules
(the sink's ledger) independent of the client library and lets unit tests pass plain objects.
"""
from __future__ import annotations

from typing import Any, Protocol


class KafkaMessage(Protocol):
    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int: ...

    def timestamp(self) -> tuple[int, int]:
        """(timestamp type, milliseconds since the epoch)."""
        ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> list[tuple[str, bytes]] | None: ...

    def error(self) -> Any: ...
