"""The far-future rule for event times on the Kafka path: clamp to the processing time, and flag.

Every stored time of an event (the envelope's ``ts_us``; STEP's and RUN_END's ``started_us``,
which become the ``started_ts`` column run lists order by) is the agent's clock. A year-9999
time would sort its run above every real one, put its row in a partition of its own and outlive
its retention (the TTL is ``ts + retention_days``). The ingest gateway refuses such an event with
``out_of_range`` because it has a caller to answer; records the SDK writes straight to Kafka have
none, and dead-lettering them would let one agent with a broken clock trip the DLQ ratio guard
and stop the processors for every tenant. So a time more than ``max_event_ahead_s`` after the
processing time (default a day, the gateway's bound) becomes the processing time, and the
attribute ``CLAMP_ATTR`` keeps what was sent (``ts_us=253402300799000000``, comma-separated per
field) so the event stays queryable and the skew visible. Past times are left as sent: a late
replay from the SDK's spool is a real event time, and it sorts below the live runs.

Pure: the caller passes the time; no clock is read here.
"""
from __future__ import annotations

from typing import Any

CLAMP_ATTR = "agentstream.clamped_future_time"


def future_times(event: dict[str, Any], horizon_us: int) -> list[tuple[str, int]]:
    """(field path, value) of each stored time of ``event`` after ``horizon_us``."""
    out = []
    ts = event.get("ts_us")
    if ts is not None and ts > horizon_us:
        out.append(("ts_us", ts))
    payload = event.get("payload")
    if isinstance(payload, tuple):  # fastavro's (branch name, record) form
        payload = payload[1]
    started = payload.get("started_us") if isinstance(payload, dict) else None
    if started is not None and started > horizon_us:
        out.append(("payload.started_us", started))
    return out


def has_future_time(event: dict[str, Any], horizon_us: int) -> bool:
    """Whether ``future_times(event, horizon_us)`` names any time: the question the byte
    pass-through asks of every record, without building the list."""
    ts = event.get("ts_us")
    if ts is not None and ts > horizon_us:
        return True
    payload = event.get("payload")
    if isinstance(payload, tuple):
        payload = payload[1]
    started = payload.get("started_us") if isinstance(payload, dict) else None
    return started is not None and started > horizon_us


def clamp_future_times(event: dict[str, Any], now_us: int, max_ahead_s: float) -> str | None:
    """Sets each time of ``event`` more than ``max_ahead_s`` after ``now_us`` to ``now_us``;
    returns the sent values as ``CLAMP_ATTR``'s text, or None when every time was in range (the
    event is then untouched). The caller flags the event with ``flag_clamped`` after redaction:
    the flag's digits are ours, not the agent's, and must not be scanned as its text."""
    late = future_times(event, now_us + int(max_ahead_s * 1_000_000))
    if not late:
        return None
    payload = event["payload"]
    if isinstance(payload, tuple):
        payload = payload[1]
    for path, _ in late:
        if path == "ts_us":
            event["ts_us"] = now_us
        else:
            payload["started_us"] = now_us
    return ",".join(f"{path}={value}" for path, value in late)


def flag_clamped(event: dict[str, Any], flag: str) -> None:
    event["attributes"] = {**(event.get("attributes") or {}), CLAMP_ATTR: flag}
