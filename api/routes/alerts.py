"""GET /v1/alerts (paged) and GET /v1/alerts/stream (server-sent events of new alerts).

The stream polls ClickHouse (``alerts_poll_interval_s``) rather than consuming the alerts topic:
what it sends is exactly what /v1/alerts will list, it needs no broker, and it resumes from
``Last-Event-ID`` after a reconnect. Latency is the sink's flush interval plus one poll.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..auth import Principal
from ..db import Db
from ..deps import AppState, PageParams, TimeRange, get_db, get_state, page_params, require_read, time_range, to_us
from ..errors import ERROR_RESPONSES, ApiError
from ..pagination import decode_cursor, encode_cursor
from ..store.alerts import AlertFilters, alerts_after, list_alerts, server_now_us, state_condition

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=ERROR_RESPONSES)


class Alert(BaseModel):
    alert_id: str
    alert_type: str
    severity: str
    agent_id: str
    agent_version: str
    run_id: str
    title: str
    evidence: dict[str, str]
    detected_us: int
    inserted_us: int
    state: Literal["open", "acknowledged", "resolved"] | None = Field(
        None, description="lifecycle state; null when no broker is configured (it lives on the policies topic)")
    state_by: str = ""
    state_at_us: int | None = None
    state_note: str = ""
    silenced_by: str | None = Field(None, description="id of an active silence matching the alert")


def with_lifecycle(rows: list[dict], tenant: str, state: AppState) -> list[dict]:
    """The rows with their lifecycle state and active silence, when a broker is configured."""
    from .alert_lifecycle import alerting_if_configured

    cache = alerting_if_configured(state)
    if cache is None:
        return rows
    now = int(time.time() * 1_000_000)

    def fold(book):
        t = book.tenant(tenant)
        out = []
        for r in rows:
            st = t.states.get(r["alert_id"])
            sil = book.silenced_by({**r, "tenant_id": tenant}, now)
            out.append({**r, "state": st.state if st else "open", "state_by": st.by if st else "",
                        "state_at_us": st.at_us if st else None, "state_note": st.note if st else "",
                        "silenced_by": sil.silence_id if sil else None})
        return out

    try:
        # A listing never fails because the policies topic is slow or down: the alerts come back
        # with state null (the state filter, which needs the states, does fail with a 503).
        return cache.read(fold, wait_s=2.0)
    except ApiError:
        return rows


def ids_by_state(tenant: str, state: AppState) -> dict[str, list[str]]:
    from .alert_lifecycle import alerting

    def fold(book):
        out: dict[str, list[str]] = {"acknowledged": [], "resolved": []}
        for aid, st in book.tenant(tenant).states.items():
            if st.state in out:
                out[st.state].append(aid)
        return out

    return alerting(state).read(fold)


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = None


async def alert_filters(
    alert_type: str | None = Query(None, max_length=128),
    severity: str | None = Query(None, pattern="^(INFO|WARNING|CRITICAL)$"),
    agent: str | None = Query(None, max_length=256),
    run_id: str | None = Query(None, max_length=256),
    tr: TimeRange = Depends(time_range),
) -> AlertFilters:
    return AlertFilters(alert_type, severity, agent, run_id, tr.since_us, tr.until_us)


@router.get("", response_model=AlertPage, summary="Detector alerts, newest first")
def get_alerts(who: Principal = Depends(require_read), f: AlertFilters = Depends(alert_filters),
               page: PageParams = Depends(page_params), db: Db = Depends(get_db),
               lifecycle: Literal["open", "acknowledged", "resolved"] | None = Query(
                   None, alias="state", description="only alerts in this lifecycle state"),
               state: AppState = Depends(get_state)) -> AlertPage:
    where = ""
    params: dict[str, Any] = {}
    if lifecycle is not None:
        where = state_condition(lifecycle, ids_by_state(who.tenant_id, state), params)
    items, next_cursor = list_alerts(db, who.tenant_id, f, page.limit, page.cursor, where, params)
    return AlertPage(items=with_lifecycle(items, who.tenant_id, state), next_cursor=next_cursor)


@router.get(
    "/stream", summary="Server-sent events: new alerts as they are stored",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`event: alert` frames; `id` is a resume cursor"}},
    description="Starts at the newest alert (or `from_time`, or the `Last-Event-ID` header of a "
                "reconnecting client). Filters as /v1/alerts. `max_events`/`max_seconds` end the "
                "stream early (for scripts).")
async def stream_alerts(
    request: Request,
    who: Principal = Depends(require_read),
    alert_type: str | None = Query(None, max_length=128),
    severity: str | None = Query(None, pattern="^(INFO|WARNING|CRITICAL)$"),
    agent: str | None = Query(None, max_length=256),
    from_time: datetime | None = Query(None, description="replay alerts stored since then"),
    max_events: int | None = Query(None, ge=1, le=100_000),
    max_seconds: float | None = Query(None, gt=0, le=86_400),
    last_event_id: str | None = Header(None, max_length=2048),
    state: AppState = Depends(get_state),
) -> StreamingResponse:
    f = AlertFilters(alert_type, severity, agent)
    db, s = state.db, state.settings
    resume: tuple[int, str] | None = None
    key = decode_cursor("alert-stream", last_event_id, (int, str))
    if key is not None:
        ts, aid = key
        start, resume = ts, (ts, aid)
    elif from_time is not None:
        try:
            start = to_us(from_time)
        except (OverflowError, ValueError, OSError) as exc:
            raise ApiError(422, "validation_error", f"from_time out of range: {exc}") from exc
    else:
        start = await asyncio.to_thread(server_now_us, db)

    async def frames() -> AsyncIterator[str]:
        state.metrics.sse_clients.inc()
        sent: OrderedDict[str, None] = OrderedDict()
        cursor, count = start, 0
        began = last_beat = time.monotonic()
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    rows = await asyncio.to_thread(alerts_after, db, who.tenant_id, f, cursor)
                except ApiError as exc:
                    yield f"event: error\ndata: {json.dumps({'code': exc.code, 'message': exc.message})}\n\n"
                    rows = []
                for row in rows:
                    cursor = max(cursor, row["inserted_us"])
                    if row["alert_id"] in sent:
                        continue
                    if resume is not None and (row["inserted_us"], row["alert_id"]) <= resume:
                        continue  # sent on the connection the client resumes
                    sent[row["alert_id"]] = None
                    if len(sent) > 10_000:
                        sent.popitem(last=False)
                    count += 1
                    ident = encode_cursor("alert-stream", [row["inserted_us"], row["alert_id"]])
                    yield f"id: {ident}\nevent: alert\ndata: {json.dumps(row)}\n\n"
                    if max_events is not None and count >= max_events:
                        return
                now = time.monotonic()
                if max_seconds is not None and now - began >= max_seconds:
                    return
                if now - last_beat >= s.sse_heartbeat_s:
                    last_beat = now
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(s.alerts_poll_interval_s)
        finally:
            state.metrics.sse_clients.dec()

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
