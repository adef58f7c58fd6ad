"""The query API application factory."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .auth import KeyStore
from .db import Db, connect, sibling_factory
from .deps import AppState
from .errors import install_error_handlers
from .metrics import ApiMetrics, install_metrics
from .settings import ApiSettings

from .routes import (alert_lifecycle, alerts, compare, costs, drift, feedback, health, policies, runs,
                     sessions, sql, stats, timeline)
from .routes import export, run_ops, topology, whoami

log = logging.getLogger("agentstream.api")

# Included in this order. Run and session ids may hold "/" (schemas/id_format.py), so their routes
# take ``{run_id:path}``: ``runs`` (``/v1/runs/{run_id:path}``, which matches any tail) comes after
# every ``/v1/runs/{run_id:path}/<tail>`` route (timeline, run_ops, topology), or it would take
# "x/timeline" for a run id. An id that itself ends in "/timeline" (or another tail) is read as
# that tail of the run before it.
ROUTERS = [health, timeline, sessions, stats, costs, compare, alerts, alert_lifecycle, drift, sql,
           policies, feedback, run_ops, export, topology, whoami, runs]

DESCRIPTION = """\
Read API over agentstream's ClickHouse tables. Every request needs a tenant API key
(`Authorization: Bearer <key>` or `X-API-Key: <key>`) and sees only that tenant's data.

Errors always have the shape `{"error": {"code", "message", "details"}}`. Listings are
paginated with an opaque `cursor`: pass the previous page's `next_cursor` until it is null.
"""


DOCS_ASSETS = "/docs/assets"


def install_offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its JS and CSS served from the swagger-ui-bundle package, so the
    page works on a machine without internet (FastAPI's default loads them from a CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    openapi_url = app.openapi_url
    if openapi_url is None:  # the schema is not served (docs disabled): no page to show it
        return
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()


def create_app(settings: ApiSettings | None = None, client: Any = None, run_misses: Any = None) -> FastAPI:
    """Builds the app. ``client`` is a clickhouse-connect client to use instead of connecting to
    ``settings.clickhouse_dsn`` (the embedded stack shares its chDB client; tests pass theirs).
    ``run_misses`` (store/run_misses.py) only from a caller that tells it of every insert into
    ``events``: the embedded process, where the sink runs beside the API."""
    settings = settings or ApiSettings()
    password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None
    factory = sibling_factory(client) if client is not None else (
        lambda: connect(settings.clickhouse_dsn, password))
    db = Db(client, factory, pool_size=settings.clickhouse_pool_size)
    # /v1/sql gets connections of its own: the routes' pool never waits behind ad-hoc SQL.
    sql_factory = factory
    if settings.sql_clickhouse_dsn:
        sql_factory = partial(connect, settings.sql_clickhouse_dsn, None)
    sql_db = Db(None if sql_factory else client, sql_factory, pool_size=settings.sql_pool_size)
    state = AppState(settings=settings, db=db, keys=KeyStore(settings.api_keys_file),
                     metrics=ApiMetrics(), run_misses=run_misses)
    state.extras["sql_db"] = sql_db
    if run_misses is not None:
        state.metrics.watch_run_misses(run_misses)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        for resource in (state.policies, state.kafka, state.extras.get("alerting")):
            if resource is not None:
                resource.close()

    app = FastAPI(
        title="agentstream query API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is our own route below (assets from the package, no CDN); ReDoc needs a CDN
        # script no pinned package ships, so it is not offered.
        docs_url=None,
        redoc_url=None,
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
    if settings.docs_enabled:
        install_offline_docs(app)
    from .dashboard import mount_dashboard

    mount_dashboard(app, settings)
    build_routes_now(app.router.routes)
    return app


def build_routes_now(routes: list[Any]) -> None:
    """Builds each included router's routes (their dependency graphs, parameter fields, response
    fields) now. FastAPI 0.165 builds them on the first request that reaches each router: ~250
    graphs of ``inspect.signature`` and pydantic fields inside a user's request, and inside the
    first readiness probe's time budget. Later requests reuse them (cached until routes change)."""
    for route in routes:
        for build in ("effective_candidates", "effective_low_priority_routes"):
            built = getattr(route, build, None)
            if callable(built):
                build_routes_now(list(built()))
