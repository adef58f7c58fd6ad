"""POST /v1/sql: read-only analyst SQL over the caller's rows."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ..auth import Principal
from ..deps import AppState, get_state, require_read
from ..errors import ERROR_RESPONSES, ApiError
from ..store.sql import SqlRunner

router = APIRouter(prefix="/v1/sql", tags=["sql"], responses=ERROR_RESPONSES)


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(..., min_length=1, max_length=100_000,
                     examples=["SELECT agent_id, count() FROM runs GROUP BY agent_id"])
    limit: int | None = Field(None, ge=1, le=100_000, description="rows per page (capped by the server)")
    cursor: str | None = Field(None, max_length=2048, description="next_cursor of the previous page")


class SqlColumn(BaseModel):
    name: str
    type: str


class SqlResult(BaseModel):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    row_count: int
    next_cursor: str | None = None
    elapsed_ms: float


def _runner(state: AppState) -> SqlRunner:
    runner = state.extras.get("sql")
    if runner is None:
        runner = state.extras["sql"] = SqlRunner(state.db, state.settings)
    return runner


@router.post("", response_model=SqlResult, summary="Run a read-only SELECT over your tenant's rows",
             description=(
                 "Tables: events, runs (aggregate: use FINAL or GROUP BY run_id), alerts and any "
                 "rollup table with a tenant_id column. Every table read is filtered to the "
                 "caller's tenant. DDL, DML, SETTINGS, FORMAT, table functions, system tables and "
                 "other databases are rejected with 400. Limits: rows per page, execution time, "
                 "memory and rows read (see the server settings)."))
def post_sql(body: SqlRequest, who: Principal = Depends(require_read),
             state: AppState = Depends(get_state)) -> SqlResult:
    try:
        result = _runner(state).run(who.tenant_id, body.sql, body.limit, body.cursor)
    except ApiError as exc:
        if exc.status == 400:
            state.metrics.sql_rejected.labels(exc.code).inc()
        raise
    return SqlResult(**result)
