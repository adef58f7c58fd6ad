"""Fleet statistics per agent and version."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from ..auth import Principal
from ..db import Db
from ..deps import PageParams, get_db, page_params, require_read
from ..errors import ERROR_RESPONSES
from ..models import StatsPage
from ..store.runs import RunFilters
from ..store.stats import fleet_stats
from .runs import run_filters

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=ERROR_RESPONSES)


@router.get("", response_model=StatsPage,
            summary="Per agent and version: runs, failure rate, latency p50/p95/p99, tokens, cost")
def get_stats(
    who: Principal = Depends(require_read),
    filters: RunFilters = Depends(run_filters),
    page: PageParams = Depends(page_params),
    db: Db = Depends(get_db),
) -> StatsPage:
    items, next_cursor = fleet_stats(db, who.tenant_id, filters, page.limit, page.cursor)
    return StatsPage(items=items, next_cursor=next_cursor)
