"""GET /v1/sessions (paged, with totals) and GET /v1/sessions/{session_id} (its runs in order)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from ..auth import Principal
from ..db import Db
from ..deps import PageParams, TimeRange, get_db, page_params, require_read, time_range
from ..errors import ERROR_RESPONSES, not_found
from ..models import Run
from ..store.sessions import SessionFilters, list_sessions, session_detail

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=ERROR_RESPONSES)


class Session(BaseModel):
    session_id: str
    status: str = Field(description="RUNNING if a run is live, else FAILURE if a run did not succeed, else SUCCESS")
    run_count: int
    running_runs: int
    failed_runs: int
    started_us: int = Field(description="first run's start")
    last_us: int = Field(description="last event of any run")
    duration_ms: float = Field(description="wall time from the first run's start to the last event")
    run_duration_ms: float = Field(description="sum of the ended runs' durations")
    step_count: int
    llm_calls: int
    tool_calls: int
    failure_count: int = Field(description="FAILURE events over the session's runs")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    agents: list[str] = Field(description="agent ids of the session's runs (up to 16)")


class SessionPage(BaseModel):
    items: list[Session]
    next_cursor: str | None = None


class SessionDetail(BaseModel):
    session: Session
    runs: list[Run] = Field(description="the session's runs, oldest first")
    truncated: bool = Field(False, description="the session has more runs than listed")


@router.get("", response_model=SessionPage, summary="Sessions, most recently active first")
def get_sessions(
    who: Principal = Depends(require_read),
    agent: str | None = Query(None, max_length=256, description="sessions with a run of this agent"),
    min_cost_usd: float | None = Query(None, ge=0, le=1e12),
    tr: TimeRange = Depends(time_range),
    page: PageParams = Depends(page_params),
    db: Db = Depends(get_db),
) -> SessionPage:
    f = SessionFilters(agent, tr.since_us, tr.until_us, min_cost_usd)
    items, next_cursor = list_sessions(db, who.tenant_id, f, page.limit, page.cursor)
    return SessionPage(items=items, next_cursor=next_cursor)


@router.get("/{session_id:path}", response_model=SessionDetail,
            summary="One session: its runs in start order, with totals")
def get_session(
    session_id: str = Path(..., min_length=1, max_length=256),
    who: Principal = Depends(require_read),
    max_runs: int = Query(1000, ge=1, le=10_000),
    db: Db = Depends(get_db),
) -> SessionDetail:
    detail = session_detail(db, who.tenant_id, session_id, max_runs)
    if detail is None:
        raise not_found("session", session_id)
    return SessionDetail(**detail)
