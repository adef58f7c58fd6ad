"""GET /v1/drift: per agent version, the recent window against the baseline before it."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from ..auth import Principal
from ..db import Db
from ..deps import AppState, PageParams, get_db, get_state, page_params, require_read
from ..errors import ERROR_RESPONSES
from ..store.compare import drift
from .compare import CohortSummary, Tests

router = APIRouter(prefix="/v1/drift", tags=["drift"], responses=ERROR_RESPONSES)


class DriftRow(BaseModel):
    agent_id: str
    agent_version: str
    window: CohortSummary
    baseline: CohortSummary
    tests: Tests
    drifted: bool
    drifted_on: list[str]


class DriftPage(BaseModel):
    items: list[DriftRow]
    next_cursor: str | None = None


@router.get("", response_model=DriftPage, summary="Behaviour drift per agent version",
            description="Compares runs started in the last `window_hours` with the "
                        "`baseline_hours` before them: failure rate, latency, cost and tool mix. "
                        "Detector findings of type drift are at /v1/alerts?alert_type=drift.")
def get_drift(
    agent: str | None = Query(None, max_length=256),
    version: str | None = Query(None, max_length=256),
    window_hours: float = Query(24.0, gt=0, le=24 * 90),
    baseline_hours: float = Query(168.0, gt=0, le=24 * 365),
    who: Principal = Depends(require_read),
    page: PageParams = Depends(page_params),
    db: Db = Depends(get_db),
    state: AppState = Depends(get_state),
) -> DriftPage:
    s = state.settings
    items, next_cursor = drift(db, who.tenant_id, agent, version, window_hours, baseline_hours,
                               page.limit, page.cursor, s.stats_sample_size, s.significance_alpha)
    return DriftPage(items=items, next_cursor=next_cursor)
