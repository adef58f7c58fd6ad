"""POST /v1/sql: read-only analyst SQL over the caller's rows."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ..auth import Principal
from ..deps import AppState, get_state, require_read
from ..errors import ERROR_RESPONSES, ApiError
from ..sql.fairness import TenantLimiter
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


class SqlService:
    """The runner, its per-tenant limiter and its own threads: SQL never takes a worker thread
    or a ClickHouse connection from the API's other routes."""

    def __init__(self, state: AppState) -> None:
        st = state.settings
        self.runner = SqlRunner(state.extras.get("sql_db") or state.db, st)
        self.limiter = TenantLimiter(st.sql_max_concurrent_per_tenant, st.sql_max_queued_per_tenant,
                                     st.sql_pool_size, st.sql_queue_wait_s,
                                     retry_after_s=min(st.sql_max_execution_time_s, st.sql_queue_wait_s))
        self.executor = ThreadPoolExecutor(max_workers=max(1, st.sql_pool_size),
                                           thread_name_prefix="agentstream-sql")


def service(state: AppState) -> SqlService:
    svc = state.extras.get("sql")
    if svc is None:
        svc = state.extras["sql"] = SqlService(state)
    return svc


@router.post("", response_model=SqlResult, summary="Run a read-only SELECT over your tenant's rows",
             responses={429: {"description": "Too many SQL queries of this tenant at once; see Retry-After"}},
             description=(
                 "Tables: events, runs (aggregate: use FINAL or GROUP BY run_id), alerts and every "
                 "rollup table with a tenant_id column; `DESCRIBE <table>` and `SHOW COLUMNS FROM "
                 "<table>` describe them. Every table reference is rewritten into a subquery that "
                 "reads only the caller's rows before any expression of the query runs (PREWHERE "
                 "moves into WHERE; FINAL and SAMPLE into that subquery). DDL, DML, SETTINGS, "
                 "FORMAT, table functions, system tables, other databases and host-revealing "
                 "functions are rejected with 400; ClickHouse errors come back as a stable code and "
                 "a generic message, never a row value. Each tenant runs a bounded number of "
                 "queries at once (429 with Retry-After beyond its queue). Limits: rows per page, "
                 "execution time for the whole request, memory, rows read, result bytes and result "
                 "columns (see the server settings); IN in function-call form (globalIn(x, t)) is "
                 "refused: write x IN (SELECT ...)."))
async def post_sql(body: SqlRequest, who: Principal = Depends(require_read),
                   state: AppState = Depends(get_state)) -> SqlResult:
    svc = service(state)
    try:
        async with svc.limiter.slot(who.tenant_id):
            result = await asyncio.get_running_loop().run_in_executor(
                svc.executor, svc.runner.run, who.tenant_id, body.sql, body.limit, body.cursor)
    except ApiError as exc:
        if exc.status in (400, 429):
            state.metrics.sql_rejected.labels(exc.code).inc()
        raise
    return SqlResult(**result)
