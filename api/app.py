"""The query API application factory."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .auth import KeyStore
from .db import Db, connect
from .deps import AppState
from .errors import install_error_handlers
from .metrics import ApiMetrics, install_metrics
from .settings import ApiSettings

log = logging.getLogger("agentstream.api")

from .routes import alerts, compare, drift, feedback, health, policies, runs, sql, stats, timeline

# Included in this order (timeline before nothing that shadows /v1/runs/{run_id}/timeline).
ROUTERS = [health, runs, timeline, stats, compare, alerts, drift, sql, policies, feedback]

DESCRIPTION = """\
Read API over agentstream's ClickHouse tables. Every request needs a tenant API key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`) and sees only that tenant's data.

Errors always have the shape `{"error": {"code", "message", "details"}}`. Listings are
paginated with an opaque `cursor`: pass the previous page's `next_cursor` until it is null.
"""


def create_app(settings: ApiSettings | None = None, client: Any = None) -> FastAPI:
    """Builds the app. ``client`` is a clickhouse-connect client to use instead of connecting to
    ``settings.clickhouse_dsn`` (the embedded stack shares its chDB client; tests pass theirs)."""
    settings = settings or ApiSettings()
    password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None
    db = Db(client) if client is not None else Db(factory=lambda: connect(settings.clickhouse_dsn, password))
    state = AppState(settings=settings, db=db, keys=KeyStore(settings.api_keys_file),
                     metrics=ApiMetrics())

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        for resource in (state.policies, state.kafka):
            if resource is not None:
                resource.close()

    app = FastAPI(
        title="agentstream query API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.agentstream = state
    install_error_handlers(app)
    install_metrics(app, state.metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "PUT", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
        )
    for module in ROUTERS:
        app.include_router(module.router)
    from .dashboard import mount_dashboard

    mount_dashboard(app, settings)
    return app
