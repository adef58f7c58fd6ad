"""The hot path's Event reader: only the fields the detectors and the redaction stage read.

Why not a full decode: fastavro's ``schemaless_reader`` cost ~28 µs of CPU per SDK event here,
and a generated Python reader of every field still ~16 µs, against a per-event budget of 25 µs
for a 40k events/s worker. The detectors read a dozen of an event's ~40 fields, and two of its
attribute keys. So each writer schema is compiled, at first sight of its id, into a program
(``_fieldreader_ops``) that keeps the ``DETECTOR_FIELDS`` and skips the rest, run by the C
interpreter (``_fieldreader.c``) or, where it is not built, by its Python twin (the same program
turned into straight-line Python, ``_fieldreader_py.py``).

What the dict holds: exactly ``Codec.decode``'s values for the selected fields (the newest
schema's defaults for selected fields an older writer lacks, so ``llm.request_digest`` is
``None`` on v1 records); a map keeps only the selected keys. A unit test runs the detectors on
these dicts and on full decodes over generated events and checks they find the same things, and
another records every field the detectors and the stage touch: a new field read is a test
failure until it is added below.

It never decides what is valid: any record it cannot read exactly to its last byte is ``None``
and the caller takes the full path (fastavro, which DLQs what it cannot read). Skipped strings
are still checked to be UTF-8, so the full decode is never less strict than the bytes passed on.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.loop_repeats import DIGEST_ATTR, RESULT_DIGEST_ATTR

from ._fieldreader_ops import Selection, compile_program
from ._fieldreader_py import PyReader
from .detectors.runs import PROGRESS_ATTR
from .redaction.fields import ID_FIELDS

try:
    from . import _fieldreader as _c  # type: ignore[attr-defined]
except ImportError:  # not built (no compiler at install time): the Python twin
    _c = None

REDACTION_FIELD = "redaction"
ATTRIBUTES_FIELD = "attributes"  # read_text delimits its text: the attribute verdicts apply there only
log = logging.getLogger("agentstream.processors.reader")

# Read by chain.detect/_fleet_delta, detectors/runs.py, detectors/governance.py and the redaction
# stage's pass-through (payload.content: a preview takes the full path; ts_us and
# payload.started_us: a far-future time takes it too, to be clamped). Payload fields apply to
# every branch that has them (Step, RunEnd, Decision share the union).
DETECTOR_FIELDS: dict[str, Selection] = {
    "tenant_id": True, "agent_id": True, "agent_version": True, "run_id": True, "parent_run_id": True,
    "seq": True, "ts_us": True, "kind": True,
    "attributes": (PROGRESS_ATTR, DIGEST_ATTR, RESULT_DIGEST_ATTR),
    "payload": {
        "step_id": True, "step_kind": True, "name": True, "status": True, "latency_ms": True,
        "started_us": True,
        "attempt": True, "retry_of": True, "content": True,
        "llm": {"request_model": True, "request_digest": True, "input_tokens": True, "output_tokens": True,
                "cost_usd": True},
        "tool": {"tool_name": True, "args_digest": True},
        "handoff": {"to_agent_id": True, "to_run_id": True},
        "approval": {"action_digest": True, "decision": True, "approval_latency_ms": True},
        "duration_ms": True, "cost_usd": True, "step_count": True,
        "decision_type": True, "selected": True, "reason_code": True,
    },
}


class Reader(Protocol):
    def read(self, data: bytes, start: int) -> "tuple[dict[str, Any], int] | None": ...

    def read_text(self, data: bytes, start: int
                  ) -> "tuple[dict[str, Any], int, bytes, int, int, int, bytes] | None": ...


def compile_reader(writer: dict[str, Any], newest: dict[str, Any], selection: Selection | None = None,
                   native: bool = True) -> Reader:
    """A reader of Event records written with ``writer`` (a fastavro-parsed or JSON schema);
    ``native=False`` forces the Python twin (the tests run both)."""
    prog = compile_program(writer, DETECTOR_FIELDS if selection is None else selection, newest, REDACTION_FIELD,
                           ATTRIBUTES_FIELD, ID_FIELDS)
    if native and _c is not None:
        return _c.Reader(prog.bodies, prog.names, prog.consts, prog.top)  # type: ignore[no-any-return]
    return PyReader(prog)


class _Unreadable:
    """The reader ``_for`` would not give: what ``EventReader._last`` holds before a first read."""

    def read(self, data: bytes, start: int) -> None:
        return None

    def read_text(self, data: bytes, start: int) -> None:
        return None


_NO_READER = _Unreadable()


class EventReader:
    """``read(data)`` → (the selected fields of an Event, offset of its ``redaction`` field) for a
    framed Event record, or None when this reader cannot read it exactly (take the full path).
    Readers are compiled per writer schema id on first sight; they hold no state between calls."""

    def __init__(self, codec: Codec, selection: Selection | None = None, native: bool = True) -> None:
        self.codec = codec
        self.newest = json.loads(codec.catalog.latest(EVENT).text)
        self.selection: Selection = DETECTOR_FIELDS if selection is None else selection
        self.native = native
        self._readers: dict[int, Reader | None] = {}
        # The last framing (magic byte + schema id) read and its reader: a stream's records come
        # with one or two writer ids, and ``bytes.startswith`` answers without the slice, the int
        # and the dict lookup ``_for`` pays (~0.5 µs of the hot path's ~3.5 µs read).
        self._last: tuple[bytes, Reader] = (b"\x01", _NO_READER)  # _for refuses a first byte but 0
        if native and _c is None:
            log.warning("the C field reader (stream_processors/_fieldreader.c) is not built: events are read by "
                        "its Python twin, ~5x slower per event; install with a C compiler present")

    @property
    def is_native(self) -> bool:
        return self.native and _c is not None

    def _reader(self, sid: int) -> Reader | None:
        writer = self.codec.resolver.schema_for_id(sid)
        if not isinstance(writer, dict) or writer.get("name") != EVENT:
            return None
        return compile_reader(writer, self.newest, self.selection, self.native)

    def _for(self, data: bytes | None) -> Reader | None:
        if data is None or len(data) < 6 or data[0] != 0:
            return None
        sid = int.from_bytes(data[1:5], "big")
        try:
            return self._readers[sid]
        except KeyError:
            try:
                r = self._reader(sid)
            except Exception:  # noqa: BLE001 - an unknown id or an unreadable schema: full path
                r = None
            self._readers[sid] = r
            return r

    def read(self, data: bytes | None) -> tuple[dict[str, Any], int] | None:
        r = self._for(data)
        return None if r is None else r.read(data, 5)  # type: ignore[arg-type]

    def read_text(self, data: bytes | None) -> tuple[dict[str, Any], int, bytes, int, int, int, bytes] | None:
        """``read``'s pair + the record's text in the same walk: (event, redaction offset, text,
        attributes' text start, end, longest string in bytes, each string's end offset). The text
        is every string value and map key, each ended by a NUL, UUID values left out; an id
        field's (``redaction.fields.ID_FIELDS``) end has bit 31 set (redaction/prefilter.py)."""
        last = self._last
        if data is not None and data.startswith(last[0]) and len(data) >= 6:
            return last[1].read_text(data, 5)
        r = self._for(data)
        if r is None:
            return None
        self._last = (data[:5], r)  # type: ignore[index]  # _for read 5 bytes of it
        return r.read_text(data, 5)  # type: ignore[arg-type]
