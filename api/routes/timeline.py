"""GET /v1/runs/{run_id}/timeline: waterfall data."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from ..auth import Principal
from ..db import Db
from ..deps import get_db, require_read
from ..errors import ERROR_RESPONSES, not_found
from ..models import RunStatus, model_response
from ..store.timeline import run_timeline
from .runs import RUN_ID

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERROR_RESPONSES)


class Span(BaseModel):
    span_id: str
    parent_span_id: str
    seq: int
    kind: str
    name: str
    status: str
    start_ms: float
    duration_ms: float
    end_ms: float
    depth: int
    attempt: int
    retry_of: str
    retry_root: str
    retried: bool
    is_wait: bool
    wait_ms: float | None = None
    approval_decision: str | None = None
    handoff_to_run_id: str | None = None


class Marker(BaseModel):
    kind: str
    at_ms: float
    label: str
    span_id: str


class ChildRun(BaseModel):
    run_id: str
    agent_id: str
    status: RunStatus
    start_ms: float
    duration_ms: float | None = None


class Timeline(BaseModel):
    run_id: str
    status: RunStatus
    started_us: int
    duration_ms: float
    wait_ms: float
    spans: list[Span]
    markers: list[Marker]
    child_runs: list[ChildRun]


@router.get("/{run_id:path}/timeline", response_model=Timeline, summary="Waterfall of one run",
            description="Spans are steps, offsets in ms from the run's start; depth comes from "
                        "parent_step_id; retries point at the attempt they retry (retry_of) and "
                        "the first attempt (retry_root); approval steps are waits (wait_ms is the "
                        "human wait). Child runs are runs whose parent_run_id is this run.")
def get_timeline(run_id: str = RUN_ID, who: Principal = Depends(require_read),
                 db: Db = Depends(get_db)) -> Response:
    t = run_timeline(db, who.tenant_id, run_id)
    if t is None:
        raise not_found("run", run_id)
    return model_response(Timeline(**t))
