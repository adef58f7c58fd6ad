"""Runs: listing with filters, and one run in full."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..db import Db
from ..deps import AppState, PageParams, TimeRange, get_db, get_state, page_params, require_read, time_range
from ..errors import ERROR_RESPONSES, bad_request, not_found
from ..models import RunDetail, RunPage, RunStatus, model_response
from ..store.runs import RunFilters, list_runs, run_detail
from ..store.search import SearchFilters, parse_attribute

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERROR_RESPONSES)

RUN_ID = Path(..., min_length=1, max_length=256, description="the run id")


# The filter dependencies parse only: async, so no threadpool hop each (api/deps.py).
async def search_filters(
    session: str | None = Query(None, min_length=1, max_length=256, description="session_id"),
    attribute: list[str] = Query([], max_length=1024,
                                 description="key=value of an event attribute; repeat to AND several"),
    failure_type: str | None = Query(None, max_length=128, description="a FAILURE event's type"),
    failure_code: str | None = Query(None, max_length=256, description="a FAILURE event's code"),
    tool: str | None = Query(None, max_length=256, description="a TOOL step's tool_name"),
    model: str | None = Query(None, max_length=256, description="an LLM step's request_model"),
    end_user: str | None = Query(None, min_length=1, max_length=256,
                                 description="end_user_id as stored (the SDK's keyed hash, never raw)"),
    min_cost_usd: float | None = Query(None, ge=0, le=1e12, description="run cost at least this"),
    min_latency_ms: float | None = Query(None, ge=0, le=1e12,
                                         description="run duration at least this (ended runs only)"),
) -> SearchFilters:
    if len(attribute) > 16:
        raise bad_request("validation_error", "at most 16 attribute filters")
    try:
        pairs = [parse_attribute(a) for a in attribute]
    except ValueError as exc:
        raise bad_request("validation_error", str(exc)) from exc
    return SearchFilters(session, pairs, failure_type, failure_code, tool, model, end_user,
                         min_cost_usd, min_latency_ms)


async def run_filters(
    agent: str | None = Query(None, max_length=256, description="agent_id"),
    version: str | None = Query(None, max_length=256, description="agent_version"),
    status: RunStatus | None = Query(None),
    environment: str | None = Query(None, max_length=256),
    tr: TimeRange = Depends(time_range),
    search: SearchFilters = Depends(search_filters),
) -> RunFilters:
    return RunFilters(agent, version, status.value if status else None, environment,
                      tr.since_us, tr.until_us, search)


@router.get("", response_model=RunPage, summary="List runs, newest first")
def get_runs(
    who: Principal = Depends(require_read),
    filters: RunFilters = Depends(run_filters),
    page: PageParams = Depends(page_params),
    db: Db = Depends(get_db),
) -> Response:
    items, next_cursor = list_runs(db, who.tenant_id, filters, page.limit, page.cursor)
    return model_response(RunPage(items=items, next_cursor=next_cursor))


@router.get("/{run_id:path}", response_model=RunDetail,
            summary="One run with its steps in order, failures, decisions and signals")
async def get_run(
    run_id: str = RUN_ID,
    who: Principal = Depends(require_read),
    state: AppState = Depends(get_state),
) -> Response:
    # async, the read in the threadpool: a run known missing (store/run_misses.py) is answered
    # on the event loop, without a thread hop or a query
    misses = state.run_misses
    if misses is not None:
        key = misses.key(who.tenant_id, run_id)
        if misses.missing(key):
            raise not_found("run", run_id)
        snapshot = misses.snapshot()
    response = await run_in_threadpool(_run_response, state.db, who.tenant_id, run_id)
    if response is None:
        if misses is not None:
            misses.remember(key, snapshot)
        raise not_found("run", run_id)
    return response


def _run_response(db: Db, tenant: str, run_id: str) -> Response | None:
    detail = run_detail(db, tenant, run_id)
    return None if detail is None else model_response(RunDetail(**detail))
