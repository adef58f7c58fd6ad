"""The JSON batch of ``POST /v1/ingest``: parse, validate each event, encode the valid ones."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentstream.schemas import EVENT, Codec, EncodeError

from .errors import GatewayError
from .validation import EventValidator, Issue, issue


@dataclass
class PreparedBatch:
    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (run_id key, value)
    event_ids: list[str] = field(default_factory=list)  # of records, same order
    indexes: list[int] = field(default_factory=list)  # position in the request, same order
    rejected: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def parse_events(body: bytes, max_events: int) -> list[Any]:
    """The events of a body: ``{"events": [...]}`` or a bare JSON array."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    events = doc.get("events") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise GatewayError(400, "invalid_batch",
                           'expected {"events": [...]} or a JSON array of events')
    if not events:
        raise GatewayError(400, "empty_batch", "the batch holds no events")
    if len(events) > max_events:
        raise GatewayError(400, "batch_too_large",
                           f"{len(events)} events in one batch; the limit is {max_events}",
                           {"max_batch_events": max_events, "events": len(events)})
    return events


def record_too_large(event_id: str, size: int, limit: int) -> Issue:
    return issue("", "record_too_large",
                 f"event {event_id} encodes to {size} bytes; Kafka takes at most {limit} bytes a"
                 " record, so no retry can deliver it: shorten its largest fields")


def prepare(events: list[Any], tenant_id: str, validator: EventValidator, codec: Codec,
            max_record_bytes: int | None = None) -> PreparedBatch:
    out = PreparedBatch(total=len(events))
    now_us = time.time_ns() // 1000
    for i, raw in enumerate(events):
        record, issues = validator.validate(raw, tenant_id, now_us)
        if record is not None:
            try:
                value = codec.encode(EVENT, record)
            except EncodeError as exc:
                issues = [issue("", "encode_error", str(exc))]
            else:
                size = len(value) + len(record["run_id"].encode())
                if max_record_bytes is not None and size > max_record_bytes:
                    out.rejected.append(_rejection(
                        i, record, [record_too_large(record["event_id"], size, max_record_bytes)]))
                    continue
                out.records.append((record["run_id"].encode(), value))
                out.event_ids.append(record["event_id"])
                out.indexes.append(i)
                continue
        out.rejected.append(_rejection(i, raw, issues))
    return out


def refusal_for(rejected: list[dict[str, Any]]) -> tuple[int, str, str]:
    """Status, code and message when no event of a batch is valid: a reason all rejections share
    is the answer's code (413 when the records are too large: resending cannot help)."""
    reasons = {r["reason"] for r in rejected}
    first = rejected[0]["errors"][0]["message"] if rejected and rejected[0]["errors"] else ""
    if reasons == {"record_too_large"}:
        return 413, "record_too_large", first
    if reasons == {"out_of_range"}:
        return 400, "out_of_range", first
    return 400, "invalid_events", "no event of the batch is valid"


def _rejection(index: int, raw: Any, issues: list[Issue]) -> dict[str, Any]:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return {"index": index, "event_id": event_id if isinstance(event_id, str) else None,
            "reason": issues[0]["reason"], "errors": issues}
