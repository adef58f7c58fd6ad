"""The dashboard, served by the query API process on the API's tenant auth.

``mount_dashboard(app, settings)`` adds:

- ``/ui/login`` (API key → signed session cookie), ``/ui/logout``;
- the pages under ``/ui`` (fleet, runs, run detail, compare, alerts, drift, policies);
- ``/ui/static`` (local assets only: no CDN, the charting library is vendored);
- ``/ui/api/...`` JSON the /v1 API does not serve (fleet trend series, consumer lag);
- cookie authentication for the /v1 API: the API's ``principal`` accepts the API key headers
  exactly as before, or else (``AppState.keyless_principal``, set here) a dashboard session
  cookie. So the dashboard's data calls run the same routes, with the same tenant scoping, as any
  API client.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from agentstream.api import deps
from agentstream.api.auth import Principal
from agentstream.api.errors import ApiError

from . import pages
from .lag import LagReader, tenant_view
from .queries import DRIFT_METRICS, drift_series, fleet_series, version_distributions
from .sessions import COOKIE_NAME, CSRF_HEADER, Session, SessionManager

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _secret(settings: Any) -> str | None:
    s = settings.dashboard_session_secret
    if s is None:
        return None
    return s.get_secret_value() if hasattr(s, "get_secret_value") else str(s)


def _safe_next(url: str | None) -> str:
    # Only paths inside the dashboard: never an open redirect to another site.
    if not url or not url.startswith("/ui") or url.startswith("//") or "\\" in url:
        return "/ui"
    return url


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={
        "Content-Security-Policy": pages.CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})


def mount_dashboard(app: FastAPI, settings: Any) -> None:
    sessions = SessionManager(
        settings.api_keys_file, _secret(settings),
        max_age_s=settings.dashboard_session_hours * 3600,
        secure_cookie=settings.dashboard_secure_cookie,
    )
    lag = LagReader(settings.bootstrap_servers, settings.topic_prefix, settings.kafka_client_conf or {})
    app.state.dashboard_sessions = sessions

    def session_principal(request: Request) -> Principal | None:
        """The dashboard session of a request that sent no API key (None: the API's own 401)."""
        session = sessions.verify(request.cookies.get(COOKIE_NAME))
        if session is None:
            return None
        if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "1":
            raise ApiError(403, "csrf_header_missing",
                           f"cookie-authenticated writes must send the {CSRF_HEADER} header")
        return session.principal

    app.state.agentstream.keyless_principal = session_principal

    def current_session(request: Request) -> Session | None:
        return sessions.verify(request.cookies.get(COOKIE_NAME))

    def require_session(request: Request) -> Session:
        s = current_session(request)
        if s is None:
            raise ApiError(401, "unauthorized", "log in at /ui/login")
        return s

    def login_redirect(request: Request) -> RedirectResponse:
        nxt = request.url.path + (("?" + request.url.query) if request.url.query else "")
        return RedirectResponse("/ui/login?next=" + _quote(nxt), status_code=303)

    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("/login")
    def login_form(request: Request, next: str = Query("/ui", max_length=2048)) -> Response:
        if current_session(request):
            return RedirectResponse(_safe_next(next), status_code=303)
        return _html(pages.login_html(next_url=_safe_next(next)))

    @router.post("/login")
    async def login(request: Request) -> Response:
        body = (await request.body())[:8192].decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        nxt = _safe_next(form.get("next"))
        result = sessions.login(form.get("api_key", ""))
        if result is None:
            return _html(pages.login_html("That key is not valid (or has no read scope).", nxt), 401)
        cookie, _ = result
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(value=cookie, **sessions.cookie_kwargs(request.url.scheme == "https"))
        return resp

    @router.post("/logout")
    def logout() -> Response:
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(COOKIE_NAME, path="/")
        return resp

    def page(name: str, title: str):
        def handler(request: Request) -> Response:
            s = current_session(request)
            if s is None:
                return login_redirect(request)
            return _html(pages.page_html(name, title, s.tenant_id))
        return handler

    for path, name, title in [("", "fleet", "Fleet"), ("/", "fleet", "Fleet"), ("/runs", "runs", "Runs"),
                              ("/compare", "compare", "Compare"), ("/alerts", "alerts", "Alerts"),
                              ("/drift", "drift", "Drift"), ("/policies", "policies", "Policies"),
                              ("/diff", "diff", "Diff runs"), ("/sessions", "sessions", "Sessions"),
                              ("/costs", "costs", "Costs")]:
        router.add_api_route(path, page(name, title), methods=["GET"], response_class=HTMLResponse)

    @router.get("/runs/{run_id:path}")
    def run_page(request: Request, run_id: str, db=Depends(deps.get_db)) -> Response:
        s = current_session(request)
        if s is None:
            return login_redirect(request)
        from agentstream.api.store.runs import get_run

        # The same answer for an unknown id and another tenant's: never confirm it exists.
        if len(run_id) > 256 or get_run(db, s.tenant_id, run_id) is None:
            return _html(pages.not_found_html(s.tenant_id, f"Run {run_id!r}"), 404)
        return _html(pages.page_html("run", f"Run {run_id}", s.tenant_id, {"run-id": run_id}))

    @router.get("/sessions/{session_id:path}")
    def session_page(request: Request, session_id: str, db=Depends(deps.get_db)) -> Response:
        s = current_session(request)
        if s is None:
            return login_redirect(request)
        # The same answer for an unknown id and another tenant's: never confirm it exists.
        if len(session_id) > 256 or not db.rows(
                "SELECT 1 FROM runs WHERE tenant_id = {t:String} AND session_id = {s:String} LIMIT 1",
                {"t": s.tenant_id, "s": session_id}):
            return _html(pages.not_found_html(s.tenant_id, f"Session {session_id!r}"), 404)
        return _html(pages.page_html("session", f"Session {session_id}", s.tenant_id, {"session-id": session_id}))

    @router.get("/api/whoami")
    def whoami(s: Session = Depends(require_session)) -> dict:
        return {"tenant_id": s.tenant_id, "scopes": sorted(s.principal.scopes)}

    @router.get("/api/fleet/series")
    def series(s: Session = Depends(require_session), db=Depends(deps.get_db),
               window_s: int | None = Query(None, ge=60, le=7 * 86400)) -> dict:
        return fleet_series(db, s.tenant_id, window_s)

    @router.get("/api/compare/distributions")
    def distributions(s: Session = Depends(require_session), db=Depends(deps.get_db),
                      agent: str = Query(..., min_length=1, max_length=256),
                      a: str = Query(..., min_length=1, max_length=256),
                      b: str = Query(..., min_length=1, max_length=256)) -> dict:
        return version_distributions(db, s.tenant_id, agent, [a, b])

    @router.get("/api/drift/series")
    def drift_metric(s: Session = Depends(require_session), db=Depends(deps.get_db),
                     agent: str = Query(..., min_length=1, max_length=256),
                     version: str | None = Query(None, max_length=256),
                     metric: str = Query("failure_rate", max_length=64),
                     window_s: int | None = Query(None, ge=600, le=7 * 86400)) -> dict:
        if metric not in DRIFT_METRICS:
            raise ApiError(400, "bad_metric", f"metric must be one of {sorted(DRIFT_METRICS)}")
        return drift_series(db, s.tenant_id, agent, version, metric, window_s)

    @router.get("/api/lag")
    def consumer_lag(s: Session = Depends(require_session)) -> dict:
        # Offsets count every tenant's records: a session sees only whether the pipeline keeps up.
        return tenant_view(lag.read())

    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> Response:
        # HTML for a person browsing the dashboard; the API's JSON error model everywhere else.
        if request.url.path.startswith("/ui") and not request.url.path.startswith(("/ui/api", "/ui/static")):
            s = current_session(request)
            return _html(pages.not_found_html(s.tenant_id if s else None, "That page"), 404)
        detail = getattr(exc, "detail", None)
        return JSONResponse({"error": {"code": "not_found", "message": detail if isinstance(detail, str) else "not found",
                                       "details": None}}, status_code=404)


def _quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="/")
