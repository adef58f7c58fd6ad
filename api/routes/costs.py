"""GET /v1/costs: spend and tokens (input, output, cached) grouped by model, agent, version,
provider, day or end user, from the daily cost rollup."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..auth import Principal
from ..db import Db
from ..deps import TimeRange, get_db, require_read, time_range
from ..errors import ERROR_RESPONSES, bad_request
from ..store.costs import DIMENSIONS, cost_report, parse_group_by

router = APIRouter(prefix="/v1/costs", tags=["costs"], responses=ERROR_RESPONSES)


class CostRow(BaseModel):
    group: dict[str, str] = Field(description="the value of each group_by dimension")
    calls: int = Field(description="LLM steps")
    input_tokens: int
    output_tokens: int
    cached_tokens: int = Field(description="input tokens read from the provider's prompt cache")
    cache_write_tokens: int
    total_tokens: int = Field(description="input + output")
    cost_usd: float


class CostReport(BaseModel):
    group_by: list[str]
    items: list[CostRow]
    totals: CostRow
    truncated: bool = Field(False, description="more groups than `limit`")


@router.get("", response_model=CostReport, summary="Cost and tokens grouped by one to three dimensions")
def get_costs(
    who: Principal = Depends(require_read),
    group_by: str = Query("model", max_length=64,
                          description=f"comma-separated, up to 3 of {'|'.join(DIMENSIONS)}; "
                                      "e.g. day,model for a per-day chart stacked by model"),
    agent: str | None = Query(None, max_length=256),
    limit: int = Query(1000, ge=1, le=10_000),
    tr: TimeRange = Depends(time_range),
    db: Db = Depends(get_db),
) -> CostReport:
    try:
        dims = parse_group_by(group_by)
    except ValueError as exc:
        raise bad_request("validation_error", str(exc)) from exc
    return CostReport(**cost_report(db, who.tenant_id, dims, tr.since_us, tr.until_us, agent, limit))
