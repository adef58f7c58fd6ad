"""GET /v1/compare: two versions of one agent side by side, with significance."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from ..auth import Principal
from ..db import Db
from ..deps import AppState, TimeRange, get_db, get_state, require_read, time_range
from ..errors import ERROR_RESPONSES
from ..store.compare import compare_versions

router = APIRouter(prefix="/v1/compare", tags=["compare"], responses=ERROR_RESPONSES)


class TestResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    test: str
    statistic: float | None = None
    p_value: float | None = None
    significant: bool


class CohortSummary(BaseModel):
    runs: int
    finished_runs: int
    failures: int
    failure_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    cost_usd: float
    cost_per_run_usd: float | None = None
    tokens_per_run: float | None = None


class VersionSummary(CohortSummary):
    version: str


class ToolShare(BaseModel):
    tool: str
    a_calls: int
    b_calls: int
    a_share: float | None = None
    b_share: float | None = None


class Tests(BaseModel):
    failure_rate: TestResult
    latency_mann_whitney: TestResult
    latency_ks: TestResult
    cost_mann_whitney: TestResult
    tool_mix_chi_square: TestResult


class Comparison(BaseModel):
    agent: str
    a: VersionSummary
    b: VersionSummary
    tool_mix: list[ToolShare]
    tests: Tests
    alpha: float


@router.get("", response_model=Comparison, summary="Compare two versions of an agent",
            description="Failure rate (two-proportion z-test), latency (Mann-Whitney U and "
                        "Kolmogorov-Smirnov), cost per run (Mann-Whitney U) and tool mix "
                        "(chi-square). A test with too little data has p_value null.")
def get_compare(
    agent: str = Query(..., min_length=1, max_length=256),
    a: str = Query(..., min_length=1, max_length=256, description="baseline version"),
    b: str = Query(..., min_length=1, max_length=256, description="candidate version"),
    environment: str | None = Query(None, max_length=256),
    tr: TimeRange = Depends(time_range),
    who: Principal = Depends(require_read),
    db: Db = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Comparison:
    s = state.settings
    return Comparison(**compare_versions(db, who.tenant_id, agent, a, b, environment, tr.since_us,
                                         tr.until_us, s.stats_sample_size, s.significance_alpha))
