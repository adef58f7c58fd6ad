"""A request does request work only: no dependency graph, signature or route is built per request.

FastAPI rebuilds a route's whole dependency graph (``get_dependant``: ``inspect.signature``,
annotations, a pydantic field per parameter) on every request as soon as the app holds a single
``dependency_overrides`` entry. The dashboard used one to add cookie sessions to the API's
``principal``; this file pins that the graph is built once, at app build, and that the cookie
sessions behave exactly as before (keys first, the session otherwise, CSRF on cookie writes,
tenant scoping).
"""
from __future__ import annotations

import fastapi.dependencies.utils as fastapi_deps
import pytest

from agentstream.api.auth import add_key
from agentstream.api.dashboard.sessions import COOKIE_NAME, CSRF_HEADER

from api_fleet import RunBuilder, insert_runs


def _run(tenant: str) -> RunBuilder:
    r = RunBuilder(tenant)
    r.llm("think", 40.0, input_tokens=10, output_tokens=3, cost=0.001)
    r.tool("search", 5.0)
    return r.end()


@pytest.fixture
def two_tenants(ch, keys_file, tenant):
    """Our tenant's run and another tenant's, with a read+write key each."""
    other = tenant + "-other"
    mine, theirs = _run(tenant), _run(other)
    insert_runs(ch, [mine, theirs])
    return {"mine": mine.run_id, "theirs": theirs.run_id, "other": other,
            "other_key": add_key(keys_file, other, scopes=["read", "write"])}


def _login(api, key: str) -> str:
    r = api.post("/ui/login", data={"api_key": key, "next": "/ui"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.cookies.get(COOKIE_NAME)
    assert cookie
    return cookie


def test_no_dependency_graph_is_built_per_request(app, api, key, auth, two_tenants, monkeypatch):
    assert not app.dependency_overrides  # any entry makes FastAPI rebuild every graph per request
    calls: list[object] = []
    real = fastapi_deps.get_dependant

    def counting(*args, **kwargs):
        calls.append(kwargs.get("call"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fastapi_deps, "get_dependant", counting)
    mine = two_tenants["mine"]
    for path in (f"/v1/runs/{mine}", "/v1/runs?limit=5", f"/v1/runs/{mine}/timeline",
                 "/v1/stats", f"/v1/runs/{two_tenants['theirs']}", "/v1/runs/?limit=0"):
        assert api.get(path, headers=auth).status_code in (200, 404, 422)
    assert api.get(f"/v1/runs/{mine}").status_code == 401
    cookie = _login(api, key)
    api.cookies.clear()
    assert api.get(f"/v1/runs/{mine}", cookies={COOKIE_NAME: cookie}).status_code == 200
    assert calls == []


def test_cookie_session_reads_its_tenant_only(api, key, two_tenants):
    cookie = _login(api, key)
    api.cookies.clear()
    jar = {COOKIE_NAME: cookie}
    got = api.get(f"/v1/runs/{two_tenants['mine']}", cookies=jar)
    assert got.status_code == 200 and got.json()["run"]["run_id"] == two_tenants["mine"]
    theirs = api.get(f"/v1/runs/{two_tenants['theirs']}", cookies=jar)
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    listed = {r["run_id"] for r in api.get("/v1/runs", cookies=jar).json()["items"]}
    assert two_tenants["mine"] in listed and two_tenants["theirs"] not in listed


def test_an_api_key_wins_over_the_cookie(api, key, two_tenants):
    """A request with both is the key's tenant; a bad key is refused even with a good cookie."""
    cookie = _login(api, key)
    api.cookies.clear()
    jar = {COOKIE_NAME: cookie}
    other = {"X-API-Key": two_tenants["other_key"]}
    assert api.get(f"/v1/runs/{two_tenants['theirs']}", cookies=jar, headers=other).status_code == 200
    assert api.get(f"/v1/runs/{two_tenants['mine']}", cookies=jar, headers=other).status_code == 404
    bad = api.get(f"/v1/runs/{two_tenants['mine']}", cookies=jar,
                  headers={"Authorization": "Bearer ask_not-a-real-key-at-all-000000"})
    assert bad.status_code == 401 and bad.json()["error"]["message"] == "invalid API key"
    empty_bearer = api.get(f"/v1/runs/{two_tenants['mine']}", cookies=jar,
                           headers={"Authorization": "Bearer "})
    assert empty_bearer.status_code == 200  # no credentials sent: the session answers


@pytest.mark.parametrize("cookie", ["", "garbage", "e30.AAAA", "x" * 2000])
def test_a_bad_or_missing_cookie_is_the_apis_own_401(api, two_tenants, cookie):
    r = api.get(f"/v1/runs/{two_tenants['mine']}", cookies={COOKIE_NAME: cookie} if cookie else None)
    assert r.status_code == 401
    assert r.json()["error"] == {"code": "unauthorized", "details": None,
                                 "message": "missing API key: send 'Authorization: Bearer <key>'"}
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_cookie_writes_need_the_csrf_header_and_key_writes_do_not(api, key, two_tenants):
    cookie = _login(api, key)
    api.cookies.clear()
    jar = {COOKIE_NAME: cookie}
    body = {"rules": []}
    r = api.put("/v1/alerts/routing", json=body, cookies=jar)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_header_missing"
    with_header = api.put("/v1/alerts/routing", json=body, cookies=jar, headers={CSRF_HEADER: "1"})
    assert with_header.status_code != 403, with_header.text
    by_key = api.put("/v1/alerts/routing", json=body, headers={"X-API-Key": key})
    assert by_key.status_code == with_header.status_code, by_key.text


def test_read_only_keys_are_refused_writes(api, keys_file, tenant):
    ro = add_key(keys_file, tenant, scopes=["read"])
    r = api.put("/v1/alerts/routing", json={"rules": []}, headers={"X-API-Key": ro})
    assert r.status_code == 403 and r.json()["error"]["message"] == "this key has no 'write' scope"


def test_openapi_names_the_key_schemes_and_no_request_parameter(api):
    doc = api.get("/openapi.json").json()
    assert set(doc["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    op = doc["paths"]["/v1/runs/{run_id}"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["run_id"]
    assert op["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunDetail"}


def test_metrics_count_every_answer_by_route_template(app, api, auth, two_tenants):
    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/test-boom", boom)
    mine = two_tenants["mine"]
    assert api.get(f"/v1/runs/{mine}", headers=auth).status_code == 200
    assert api.get(f"/v1/runs/{mine}").status_code == 401
    assert api.get("/v1/no-such-thing", headers=auth).status_code == 404
    r = api.get("/v1/test-boom", headers=auth)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    text = api.get("/metrics").text
    for route, status in [("/v1/runs/{run_id}", 200), ("/v1/runs/{run_id}", 401),
                          ("unmatched", 404), ("/v1/test-boom", 500)]:
        assert f'agentstream_api_requests_total{{method="GET",route="{route}",status="{status}"}} 1.0' in text
    assert 'agentstream_api_request_seconds_count{method="GET",route="/v1/runs/{run_id}"} 2.0' in text
    assert mine not in text  # ids never become labels


@pytest.mark.parametrize("path", ["/v1/runs/{mine}", "/v1/runs?limit=5&agent=agent-a&since=2020-01-01",
                                  "/v1/runs/{mine}/timeline"])
def test_a_hot_read_takes_one_threadpool_hop_its_query(api, auth, two_tenants, monkeypatch, path):
    """Only the route's own blocking work (ClickHouse) goes to a worker thread: a plain ``def``
    dependency or a re-validated response model would each add a hop, and under load each hop
    waits for a free thread behind the reads holding them."""
    import fastapi.dependencies.utils as fastapi_utils
    import fastapi.routing as fastapi_routing

    hops: list[str] = []

    def counting(real):
        async def hop(func, *args, **kwargs):
            hops.append(getattr(func, "__name__", repr(func)))
            return await real(func, *args, **kwargs)
        return hop

    import agentstream.api.routes.runs as runs_routes

    # the run read is an async route handing its read to the pool itself (store/run_misses.py)
    for module in (fastapi_utils, fastapi_routing, runs_routes):
        monkeypatch.setattr(module, "run_in_threadpool", counting(module.run_in_threadpool))
    r = api.get(path.format(mine=two_tenants["mine"]), headers=auth)
    assert r.status_code == 200, r.text
    assert hops == ["_run_response" if path == "/v1/runs/{mine}" else "_run_sync_endpoint"], hops


def test_every_response_says_how_long_the_server_took(api, auth, two_tenants):
    """``Server-Timing: app;dur=<ms>``: what the server spent to the headers, so a client (or
    bench/e2e.py) can tell it apart from the network and its own waiting."""
    import re

    for path, headers, status in [(f"/v1/runs/{two_tenants['mine']}", auth, 200), ("/v1/runs/nope", auth, 404),
                                  ("/v1/runs/x", {}, 401), ("/healthz", {}, 200)]:
        r = api.get(path, headers=headers)
        assert r.status_code == status
        m = re.fullmatch(r"app;dur=(\d+\.\d)", r.headers.get("server-timing", ""))
        assert m and 0.0 <= float(m.group(1)) < 10_000, (path, r.headers)
