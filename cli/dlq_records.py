"""What a dead-letter record says, for on-call: pure functions over a Kafka message (no I/O).

Every part that dead-letters (the processors' redaction stage, the sink) sends the ORIGINAL key
and bytes with the reason in ``DLQ_HEADERS``. Those bytes never passed redaction (they could not
be read, or could not be stored), so nothing here prints them: a record is shown by its headers,
its size and a digest of its key (the same key gives the same digest, so records of one run can
be told together). ``--show-keys`` prints keys as they are, for an operator allowed to see them.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from agentstream.schemas import DLQ_HEADERS
from agentstream.sink.dlq import reason_kind

_BY_HEADER = {v: k for k, v in DLQ_HEADERS.items()}
REASON_MAX = 300


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(raw)


def key_label(key: bytes | None, show: bool) -> str:
    """The key as printed: a digest by default (``k:<12 hex>``), the key itself with ``show``
    (non-UTF-8 keys as hex), ``-`` for none."""
    if key is None:
        return "-"
    if not show:
        return "k:" + hashlib.sha256(key).hexdigest()[:12]
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + key.hex()


def dlq_record(msg: Any, show_keys: bool = False) -> dict[str, Any]:
    """One DLQ record's metadata (never its value). Missing headers read as empty: a record a
    foreign producer put on the topic still prints."""
    headers = {_BY_HEADER.get(k, k): _text(v) for k, v in (msg.headers() or [])}
    ts_type, ts_ms = msg.timestamp()
    when = (dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")
            if ts_type and ts_ms > 0 else "")
    reason = headers.get("reason", "")
    source_partition = headers.get("source_partition", "")
    source_offset = headers.get("source_offset", "")
    value = msg.value()
    return {
        "time": when,
        "dlq_partition": msg.partition(),
        "dlq_offset": msg.offset(),
        "stage": headers.get("stage", "") or "unknown",
        "source_topic": headers.get("source_topic", ""),
        "source_partition": int(source_partition) if source_partition.isdigit() else None,
        "source_offset": int(source_offset) if source_offset.isdigit() else None,
        "reason_kind": reason_kind(reason),
        "reason": reason[:REASON_MAX],
        "key": key_label(msg.key(), show_keys),
        "bytes": len(value) if value is not None else 0,
    }


def format_line(r: dict[str, Any]) -> str:
    src = f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']}" if r["source_topic"] else "?"
    return (f"{r['time'] or '-'}  {r['stage']:<10} {src:<34} {r['key']:<16} {r['bytes']:>7} B  "
            f"{r['reason']}")


@dataclass
class Group:
    """Records of one (stage, source topic, reason kind)."""

    count: int = 0
    bytes: int = 0
    first: str = ""
    last: str = ""
    example: str = ""
    sources: set[int] = field(default_factory=set)


class Summary:
    """Counts dead letters by where they came from and why, over what was read."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str], Group] = {}
        self.total = 0

    def add(self, r: dict[str, Any]) -> None:
        g = self.groups.setdefault((r["stage"], r["source_topic"], r["reason_kind"]), Group())
        g.count += 1
        g.bytes += r["bytes"]
        if r["time"]:
            g.first = min(g.first or r["time"], r["time"])
            g.last = max(g.last, r["time"])
        if not g.example:
            g.example = r["reason"]
        if r["source_partition"] is not None:
            g.sources.add(r["source_partition"])
        self.total += 1

    def rows(self) -> list[dict[str, Any]]:
        """Largest group first."""
        out = [{"stage": s, "source_topic": t, "reason_kind": k, "count": g.count, "bytes": g.bytes,
                "first": g.first, "last": g.last, "source_partitions": sorted(g.sources), "example": g.example}
               for (s, t, k), g in self.groups.items()]
        return sorted(out, key=lambda r: (-r["count"], r["stage"], r["source_topic"], r["reason_kind"]))

    def render(self) -> str:
        if not self.total:
            return "the dead-letter topic holds no records"
        lines = [f"{self.total} dead-lettered records", "",
                 f"{'count':>8}  {'stage':<10} {'source topic':<26} {'reason':<14} first / last"]
        for r in self.rows():
            lines.append(f"{r['count']:>8}  {r['stage']:<10} {r['source_topic']:<26} {r['reason_kind']:<14} "
                         f"{r['first'] or '-'} / {r['last'] or '-'}")
            lines.append(f"{'':>10}e.g. {r['example'][:160]}")
        return "\n".join(lines)
