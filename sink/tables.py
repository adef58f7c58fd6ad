"""Which topic goes to which table, and the Python (fallback) conversion of a range's records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from agentstream.schemas import ALERT, EVENT, Codec, DecodeError

from .dlq import Rejected
from .retention import RetentionBook
from .rows import ALERT_COLUMNS, EVENT_COLUMNS, RowError, alert_row, event_row


@dataclass(frozen=True)
class TableSpec:
    logical_topic: str
    table: str
    schema_name: str
    columns: tuple[str, ...]
    mapper: Callable[[dict[str, Any], int], tuple[Any, ...]]
    retention: str  # which RetentionBook lookup stamps its rows
    # What identifies a record's row (a primary-key prefix and the record's id, both columns and
    # fields): a replayed range stores only the records whose key the table lacks (replay_repair).
    key_fields: tuple[str, ...]
    tenant_field: str = "tenant_id"


TABLE_SPECS: dict[str, TableSpec] = {
    "events": TableSpec("events", "events", EVENT, EVENT_COLUMNS, event_row, "events_days",
                        ("tenant_id", "run_id", "event_id")),
    "alerts": TableSpec("alerts", "alerts", ALERT, ALERT_COLUMNS, alert_row, "alerts_days",
                        ("tenant_id", "alert_id")),
}


def convert(spec: TableSpec, codec: Codec, book: RetentionBook, msgs: list[Any]
            ) -> tuple[list[tuple[Any, ...]], list[Rejected]]:
    """Decodes and maps each record; what fails becomes a ``Rejected`` with the reason."""
    rows: list[tuple[Any, ...]] = []
    bad: list[Rejected] = []
    days_for = getattr(book, spec.retention)
    for m in msgs:
        value = m.value()
        try:
            record = codec.decode_as(spec.schema_name, value)
            rows.append(spec.mapper(record, days_for(record.get(spec.tenant_field) or "")))
        except (DecodeError, RowError) as exc:
            bad.append(Rejected(m.topic(), m.partition(), m.offset(), m.key(), value, exc.reason))
    return rows, bad
