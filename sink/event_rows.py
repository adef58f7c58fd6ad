"""The direct path: Event records go into ``events`` as RowBinary rows mapped in C, no staging view.

The staging tables (migrations 0005/0006) let ClickHouse read the sink's Avro containers and map
them with a view; ClickHouse analyses that view's ~850-function query again for every insert,
~75 ms of a ~140 ms insert, plus ~4 µs a row (``python bench/sink_cpu.py --anatomy-reps 2``).
``_eventrows.c`` does the mapping of sink/rows.py ``event_row()`` itself, at about a microsecond
a row, into ``events_direct`` (migration 0013): a Null table of the same columns whose view
passes the rows to ``events`` as they are. Not into ``events`` itself: its LowCardinality
columns, read from RowBinary a value at a time, cost ~3-4 µs a row more than the view's cast of
whole columns.

Exact by construction, or not used:
- the C reader follows exactly two writer schemas, Event v1 and v2, chosen by the parsing
  canonical form's hash (the same hashes as the staging tables');
- it writes exactly the ``events`` columns in ``EVENT_COLUMNS``, with the types in
  ``EVENT_TYPES``; the sink asks ClickHouse once whether the landing table has them (``takes``),
  and a table that differs (or is missing) keeps the staging path;
- a record it cannot map as ``event_row()`` would (or that Python would read differently)
  refuses the whole container with ValueError, and the range is redone in Python, which stores
  or dead-letters each record with its reason (tests/unit/sink/test_event_rows.py compares the
  two over generated records of every branch and shape, and the attacks: truncations, flips).

A range records its path in the ledger (``WIRE_DIRECT``), so a replay after a crash takes it
again: its insert carries the same token into the same tables, and deduplicates.
"""
from __future__ import annotations

import sys

from agentstream.schemas.run_keys import split_run_keys

from .rows import EVENT_COLUMNS

try:
    from ._eventrows import event_rows as _event_rows
except ImportError:  # not built (no compiler): the fast path keeps the staging views
    _event_rows = None  # type: ignore[assignment]  # optional extension

# The C writes fixed-width numbers in the host's order, and RowBinary's is little-endian.
AVAILABLE = _event_rows is not None and sys.byteorder == "little"

TABLE = "events_direct"  # migration 0013: a Null table, its view into events
# The ledger's ``avro`` column: how a range's records went in (0: Python rows; 1: the staging
# views, as an Avro container or its RowBinary; 2: this path).
WIRE_PYTHON, WIRE_STAGED, WIRE_DIRECT = 0, 1, 2

# sha256 of the parsing canonical form of the two Event writer schemas the C reader follows
# (containers.STAGED_SCHEMAS stages the same two)
EVENT_V1 = "b35d70f3b8e9d1c79ac11256aebdd8ad32c1a54ce1a74a7da09bfe712654e3ef"  # id 1
EVENT_V2 = "0adefaa84bc0414db748e93370f7969702abbcc6c259a59fa30ff7a9e6a44490"  # id 5
# -> whether it is Event v2
SCHEMA_VERSION: dict[str, bool] = {EVENT_V1: False, EVENT_V2: True}

_STRINGS = ("tenant_id", "event_id", "agent_id", "agent_version", "environment", "run_id", "session_id",
            "parent_run_id", "parent_step_id", "end_user_id", "kind", "step_id", "step_kind", "name", "status",
            "retry_of", "provider", "request_model", "request_digest", "tool_name", "args_digest", "failure_type",
            "failure_code", "decision_type", "selected", "reason_code", "signal_type", "signal_code",
            "run_status", "outcome", "payload", "capture_mode", "policy_version")
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    **{c: ("String", "LowCardinality(String)") for c in _STRINGS},
    "ts": ("DateTime64(6, 'UTC')",), "started_ts": ("DateTime64(6, 'UTC')",), "seq": ("UInt32",),
    "latency_ms": ("Float64",), "attempt": ("UInt16",), "input_tokens": ("UInt64",),
    "output_tokens": ("UInt64",), "cache_read_tokens": ("UInt64",), "cache_write_tokens": ("UInt64",),
    "cost_usd": ("Float64",), "candidates": ("Array(String)",), "confidence": ("Nullable(Float64)",),
    "signal_value": ("Nullable(Bool)",), "duration_ms": ("Float64",),
    "attributes": ("Map(String, String)",), "redaction_counts": ("Map(String, UInt64)",),
    "retention_days": ("UInt16",),
}
assert set(EVENT_TYPES) == set(EVENT_COLUMNS)


def takes(columns: list[tuple[str, str]]) -> bool:
    """Whether a table with these (name, type) columns takes the rows this path writes."""
    have = {name: " ".join(t.split()) for name, t in columns}
    return all(have.get(c) in EVENT_TYPES[c] for c in EVENT_COLUMNS)


def rows(body: bytes, count: int, v2: bool) -> bytes:
    """``count`` framed records (sink_head, the Event, retention, mark: containers.py) as
    RowBinary rows of ``EVENT_COLUMNS``; ValueError says which record does not map and why."""
    assert _event_rows is not None
    return _event_rows(body, count, v2)


def rows_and_runs(body: bytes, count: int, v2: bool) -> tuple[bytes, set[bytes]]:
    """``rows()``, and the runs those rows belong to as schemas/run_keys.py keys."""
    assert _event_rows is not None
    rows_, runs = _event_rows(body, count, v2, True)
    return rows_, split_run_keys(runs)
