"""The sink's error classes (see ``agentstream.schemas.consumer_errors``): which failures of a
ClickHouse or Kafka call are retried, and which crash the sink.

A record ClickHouse or the mapper refuses never reaches here: the writer turns it into a dead
letter (``containers.DATA_ERROR_CODES``, ``tables.convert``). What reaches here failed a whole
call, and is either an outage to wait out or a bug to stop on.
"""
from __future__ import annotations

import re

from agentstream.schemas.consumer_errors import ErrorClass, kafka_error_class, network_error_class

# ClickHouse error codes that clear up without a change to the data or the code: the server or a
# replica unavailable or overloaded, a table detached or not yet created on this replica (DDL ON
# CLUSTER still running), Keeper away, an insert whose status is unknown (its retry under the
# same dedup token is exactly what resolves it).
CLICKHOUSE_TRANSIENT_CODES = frozenset({
    3,     # UNEXPECTED_END_OF_FILE (connection cut mid-answer)
    60,    # UNKNOWN_TABLE (detached, or DDL not yet on this replica)
    81,    # UNKNOWN_DATABASE (same)
    159,   # TIMEOUT_EXCEEDED
    164,   # READONLY
    173,   # CANNOT_ALLOCATE_MEMORY
    202,   # TOO_MANY_SIMULTANEOUS_QUERIES
    203,   # NO_FREE_CONNECTION
    209,   # SOCKET_TIMEOUT
    210,   # NETWORK_ERROR
    225,   # NO_ZOOKEEPER
    236,   # ABORTED
    241,   # MEMORY_LIMIT_EXCEEDED
    242,   # TABLE_IS_READ_ONLY
    252,   # TOO_MANY_PARTS
    279,   # ALL_CONNECTION_TRIES_FAILED
    285,   # TOO_FEW_LIVE_REPLICAS
    319,   # UNKNOWN_STATUS_OF_INSERT
    394,   # QUERY_WAS_CANCELLED
    425,   # SYSTEM_ERROR
    439,   # CANNOT_SCHEDULE_TASK
    473,   # DEADLOCK_AVOIDED
    999,   # KEEPER_EXCEPTION
    1000,  # POCO_EXCEPTION
})

_CODE = re.compile(r"Code:\s*(\d+)")


def clickhouse_code(exc: BaseException) -> int | None:
    """The server error code of a clickhouse-connect error (its ``code``, else the message's
    ``Code: N``); None for anything else."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    if type(exc).__module__.startswith("clickhouse_connect"):
        m = _CODE.search(str(exc))
        return int(m.group(1)) if m else None
    return None


def classify(exc: BaseException) -> ErrorClass:
    """TRANSIENT or BUG for an exception out of a ClickHouse, Kafka or DLQ call."""
    if isinstance(exc, TransientError):
        return ErrorClass.TRANSIENT
    for by in (kafka_error_class, network_error_class):
        got = by(exc)
        if got is not None:
            return got
    module = type(exc).__module__
    if module.startswith("clickhouse_connect"):
        code = clickhouse_code(exc)
        if code is not None:
            return ErrorClass.TRANSIENT if code in CLICKHOUSE_TRANSIENT_CODES else ErrorClass.BUG
        # No server code: a transport failure inside the client (OperationalError and the
        # HTTP/chDB layers under it) — the server was not reached or did not answer.
        name = type(exc).__name__
        return ErrorClass.TRANSIENT if name in ("OperationalError", "StreamFailureError") else ErrorClass.BUG
    if module.startswith(("urllib3", "requests", "http.client")):
        return ErrorClass.TRANSIENT
    return ErrorClass.BUG


class TransientError(RuntimeError):
    """Raised by the sink's own calls for a failure that is an outage (a DLQ delivery that timed
    out), so that ``classify`` retries it."""
