"""Request dependencies: the app's state, the caller (tenant principal), paging and time range.

They are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in the
threadpool, one hop per dependency per request (four on a run read), each waiting for a free
worker thread behind the ClickHouse reads holding them. These do no blocking I/O beyond a stat of
the keys file, so they run on the event loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .auth import KeyStore, Principal
from .db import Db
from .errors import ApiError
from .settings import ApiSettings


@dataclass
class AppState:
    """Everything a route needs, built once by ``create_app`` and kept on ``app.state``."""

    settings: ApiSettings
    db: Db
    keys: KeyStore
    metrics: Any = None
    kafka: Any = None  # KafkaWriter, created on first write
    policies: Any = None  # PolicyCache, started on first policy read
    # Runs a tenant does not have (store/run_misses.py): only where the process sees every insert
    run_misses: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    # Who a request without an API key is, from something else it carries (the dashboard's
    # session cookie, api/dashboard); None when it carries nothing valid. It may raise ApiError.
    # A hook on the state rather than ``app.dependency_overrides``: with any override present
    # FastAPI rebuilds every route's dependency graph on every request.
    keyless_principal: Callable[[Request], Principal | None] | None = None


async def get_state(request: Request) -> AppState:
    return request.app.state.agentstream


async def get_db(state: AppState = Depends(get_state)) -> Db:
    return state.db


async def get_settings(state: AppState = Depends(get_state)) -> ApiSettings:
    return state.settings


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <tenant API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the tenant API key")


async def principal(
    request: Request,
    state: AppState = Depends(get_state),
    creds: HTTPAuthorizationCredentials | None = Security(_bearer),
    x_api_key: str | None = Security(_api_key),
) -> Principal:
    # A key, when one is sent, decides alone (a bad key is a 401 whatever else comes with it).
    if creds is None and not x_api_key and state.keyless_principal is not None:
        who = state.keyless_principal(request)
        if who is not None:
            return who
    key = creds.credentials if creds is not None else x_api_key
    if not key:
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    who = state.keys.verify(key)
    if who is None:
        raise ApiError(401, "unauthorized", "invalid API key",
                       headers={"WWW-Authenticate": "Bearer"})
    return who


async def require_read(who: Principal = Depends(principal)) -> Principal:
    if not who.has("read"):
        raise ApiError(403, "forbidden", "this key has no 'read' scope")
    return who


async def require_write(who: Principal = Depends(principal)) -> Principal:
    if not who.has("write"):
        raise ApiError(403, "forbidden", "this key has no 'write' scope")
    return who


@dataclass
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    state: AppState = Depends(get_state),
    limit: int | None = Query(None, ge=1, le=10_000, description="page size"),
    cursor: str | None = Query(None, max_length=2048, description="next_cursor of the previous page"),
) -> PageParams:
    s = state.settings
    return PageParams(min(limit or s.page_size_default, s.page_size_max), cursor)


def to_us(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1_000_000)


@dataclass
class TimeRange:
    since_us: int | None
    until_us: int | None


async def time_range(
    since: datetime | None = Query(None, description="inclusive lower bound (ISO 8601, UTC if no zone)"),
    until: datetime | None = Query(None, description="exclusive upper bound (ISO 8601)"),
) -> TimeRange:
    try:
        lo, hi = to_us(since), to_us(until)
    except (OverflowError, ValueError, OSError) as exc:
        raise ApiError(422, "validation_error", f"time out of range: {exc}") from exc
    if lo is not None and hi is not None and hi < lo:
        raise ApiError(422, "validation_error", "until is before since")
    return TimeRange(lo, hi)
