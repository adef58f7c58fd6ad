"""The plain records the batch core works on, free of any Kafka client's message type."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class InRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    timestamp_ms: int | None = None


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    # Set only where the partition must follow another topic's (state changelogs); None lets
    # the producer's key partitioner decide.
    partition: int | None = None


@dataclass(slots=True)
class Redacted:
    """One event that made it through redaction, with where it came from (for alert evidence)."""

    event: dict[str, Any]
    source: InRecord
