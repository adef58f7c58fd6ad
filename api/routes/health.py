"""Liveness, readiness and Prometheus metrics; no authentication."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from ..deps import AppState, get_state
from ..errors import ERROR_RESPONSES

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    clickhouse: str
    tables: list[str] = []


def _check(state: AppState) -> Health:
    if not state.db.ping():
        return Health(status="degraded", clickhouse="unavailable")
    try:
        tables = sorted(state.db.table_names() & {"events", "runs", "alerts"})
    except Exception:  # noqa: BLE001 - reported as not ready, never raised
        tables = []
    ready = {"events", "runs", "alerts"} <= set(tables)
    return Health(status="ok" if ready else "degraded", clickhouse="ok", tables=tables)


@router.get("/health", response_model=Health, summary="Service and ClickHouse status")
def health(state: AppState = Depends(get_state)) -> Health:
    return _check(state)


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz() -> Health:
    return Health(status="ok", clickhouse="unchecked")


@router.get("/readyz", response_model=Health, responses={503: ERROR_RESPONSES[503]},
            summary="Readiness: ClickHouse reachable and the tables exist")
def readyz(response: Response, state: AppState = Depends(get_state)) -> Health:
    h = _check(state)
    if h.status != "ok":
        response.status_code = 503
    return h


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(state: AppState = Depends(get_state)) -> Response:
    return state.metrics.render()
