"""A cheap test over a raw record's bytes: may the redaction engine change anything in it?

``may_need_redaction(raw)`` is a SUPERSET trigger for the byte pass-through hot path: it is True
whenever ``Redactor.redact_event`` would change a string of the record (a rule match, a content
attribute key dropped, a free value too long). False means the original bytes may go on as they
are. Why it holds by construction: Avro strings are contiguous UTF-8 in the record, and

- every rule runs only on strings that match one of ``rules.PREFILTER_PATTERNS`` (ASCII, no
  lookarounds; the engine checks them the same way, over the string's UTF-8); the same patterns
  over the record's bytes match wherever they match one of its strings;
- an attribute is dropped for its key only if the key holds one of ``content_trigger_words()``;
- a free value is dropped for its length only if it holds ``LONG_TEXT_RUN``, and as prose only if
  it holds ``PROSE_RUN`` (a superset of the verdict's own test), the same patterns here.

Two strings are left out of the scan: an Event's ``event_id`` and ``run_id`` (its first and sixth
fields, behind plain strings only), when each is exactly a canonical lower-case UUID. The engine
never changes or quarantines such an id (its scan exempts 36-character UUIDs, and no token rule
can match hex groups of at most 12 characters), while random UUIDs hold digit runs shaped like
phone numbers: with both scanned, ~6.6% of clean records took the full path, none now.

Not visible in bytes: ``payload.content`` (a preview or reference) is stripped by the tenant's
capture mode, not by its text. A caller that passes bytes through must still send a record whose
content branch is set to the engine unless the tenant's mode is REDACTED.
"""
from __future__ import annotations

import re
import struct
from typing import Any

from agentstream.schemas import EVENT
from agentstream.schemas.attribute_keys import LONG_TEXT_RUN, PROSE_RUN, content_trigger_words
from agentstream.schemas.catalog import load_catalog

from .multipattern import compile_any
from .rules import PREFILTER_PATTERNS

PATTERNS: tuple[str, ...] = PREFILTER_PATTERNS + (
    "(?i:" + "|".join(sorted(content_trigger_words())) + ")", LONG_TEXT_RUN, PROSE_RUN)

_any_match = compile_any(PATTERNS)

def _leading_strings(fields: list[dict[str, Any]]) -> int:
    """How many of the record's first fields are plain strings, up to and including run_id."""
    n = 0
    for f in fields:
        if f["type"] != "string":
            return 0
        n += 1
        if f["name"] == "run_id":
            return n
    return 0


# Confluent framing (magic 0, 4-byte schema id) of every Event version that starts with plain
# string fields from event_id to run_id, and how many there are.
_LEADING: dict[bytes, int] = {
    struct.pack(">bI", 0, v.id): n for v in load_catalog().versions(EVENT)
    if v.parsed["fields"][0]["name"] == "event_id" and (n := _leading_strings(v.parsed["fields"]))}
_CANONICAL_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _string_end(raw: bytes, pos: int) -> int:
    """The end of the Avro string at ``pos`` (zigzag varint length, then the bytes), or -1."""
    shift = length = 0
    while pos < len(raw):
        b = raw[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            n = (length >> 1) ^ -(length & 1)
            return pos + n if 0 <= n and pos + n <= len(raw) else -1
        shift += 7
        if shift > 28:
            return -1
    return -1


def may_need_redaction(raw: bytes) -> bool:
    """True unless the engine would surely leave every string of ``raw`` as it is."""
    if not _any_match(raw):
        return False  # most records: one scan, nothing found
    count = _LEADING.get(raw[:5])
    if count is None:
        return True
    # event_id is field 0 and run_id field count-1; a canonical UUID in either is skipped
    ends, pos = [], 5
    for _ in range(count):
        end = _string_end(raw, pos)
        if end < 0:
            return True
        ends.append((pos, end))
        pos = end
    (_, id_end), (run_len_at, run_end) = ends[0], ends[-1]
    first = id_end if id_end == 6 + 36 and _CANONICAL_UUID.fullmatch(raw, 6, id_end) else 5
    if run_end - run_len_at == 37 and _CANONICAL_UUID.fullmatch(raw, run_end - 36, run_end):
        return _any_match(raw[first:run_len_at]) or _any_match(raw[run_end:])
    return _any_match(raw[first:])
