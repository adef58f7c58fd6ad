"""Fair sharing for /v1/sql: per-tenant limits with 429, and routes that never wait behind SQL."""
from __future__ import annotations

import asyncio
import inspect
import statistics
import threading
import time

import pytest
from fastapi.testclient import TestClient

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.errors import ApiError
from agentstream.api.routes import sql as sql_route
from agentstream.api.settings import ApiSettings
from agentstream.api.sql.fairness import TenantLimiter

from api_fleet import RunBuilder, insert_runs

# Each row sleeps 0.5 s (ClickHouse caps one block's sleep at 3 s): a query that holds its
# connection for ~2 s without burning the CPU the other tests need.
HEAVY = "SELECT sum(sleepEachRow(0.5)) FROM (SELECT * FROM events LIMIT 4)"


def _holder(lim: TenantLimiter):
    """An event, and a coroutine that takes a slot for a tenant and keeps it until the event."""
    release = asyncio.Event()

    async def hold(tenant: str) -> None:
        async with lim.slot(tenant):
            await release.wait()

    return release, hold


def test_limiter_queues_then_refuses_with_retry_after():
    async def scenario():
        lim = TenantLimiter(per_tenant=1, queue=1, total=4, wait_s=5, retry_after_s=2.5)
        release, hold = _holder(lim)
        first = asyncio.create_task(hold("a"))
        await asyncio.sleep(0)
        queued = asyncio.create_task(hold("a"))
        await asyncio.sleep(0)
        assert lim.running["a"] == 1 and lim.waiting["a"] == 1
        with pytest.raises(ApiError) as refused:
            async with lim.slot("a"):
                pass
        assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "3"}
        # Another tenant is not held up by a's queue.
        async with lim.slot("b"):
            assert lim.running["b"] == 1
        release.set()
        await asyncio.gather(first, queued)
        assert not lim.running and not lim.waiting

    asyncio.run(scenario())


def test_limiter_times_out_a_queued_query_and_caps_the_total():
    async def scenario():
        lim = TenantLimiter(per_tenant=2, queue=2, total=2, wait_s=0.05, retry_after_s=1)
        release, hold = _holder(lim)
        holders = [asyncio.create_task(hold(t)) for t in ("a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as timed_out:
            async with lim.slot("c"):
                pass
        assert timed_out.value.status == 429 and "in time" in timed_out.value.message
        release.set()
        await asyncio.gather(*holders)

    asyncio.run(scenario())


def test_limiter_survives_a_new_event_loop():
    lim = TenantLimiter(per_tenant=1, queue=0, total=1, wait_s=1, retry_after_s=1)

    async def once():
        async with lim.slot("a"):
            pass

    asyncio.run(once())
    asyncio.run(once())  # a second loop, as when an app is served again
    assert not lim.running


def test_sql_runs_apart_from_the_routes():
    """Structurally: SQL waits on the event loop, runs on its own threads and connections."""
    assert inspect.iscoroutinefunction(sql_route.post_sql)
    src = inspect.getsource(sql_route.post_sql)
    assert "run_in_executor(\n                svc.executor" in src


@pytest.fixture
def fair_app(ch, tmp_path):
    keys = tmp_path / "keys.json"
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers="", sql_max_concurrent_per_tenant=2,
                           sql_max_queued_per_tenant=1, sql_pool_size=4)
    app = create_app(settings, client=ch)
    return app, keys


def test_routes_do_not_wait_behind_heavy_sql(fair_app, ch, unique):
    app, keys = fair_app
    a, b = "fair-a-" + unique, "fair-b-" + unique
    insert_runs(ch, [RunBuilder(a).end() for _ in range(4)] + [RunBuilder(b).end() for _ in range(2)])
    key_a = {"Authorization": "Bearer " + add_key(keys, a, scopes=["read"], name="a")}
    key_b = {"Authorization": "Bearer " + add_key(keys, b, scopes=["read"], name="b")}
    state = app.state.agentstream
    with TestClient(app, raise_server_exceptions=False) as api:
        svc = sql_route.service(state)
        # Separate pools: different Db objects, and never the same connection.
        assert svc.runner.db is not state.db
        with state.db.lease() as route_conn, svc.runner.db.lease() as sql_conn:
            assert route_conn is not sql_conn
        # B's latency on this machine right now, with nothing of A's running.
        baseline = []
        for _ in range(10):
            t0 = time.perf_counter()
            api.get("/v1/runs?limit=1", headers=key_b)
            baseline.append(time.perf_counter() - t0)
        answers: list[int] = []

        def heavy():
            answers.append(api.post("/v1/sql", json={"sql": HEAVY}, headers=key_a).status_code)

        threads = [threading.Thread(target=heavy) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while (svc.limiter.running.get(a, 0), svc.limiter.waiting.get(a, 0)) != (2, 1) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        # two of a's queries run, the third is queued
        assert (svc.limiter.running.get(a), svc.limiter.waiting.get(a)) == (2, 1)
        # A fourth of a's queries: over its queue of 1 -> 429 with Retry-After.
        r = api.post("/v1/sql", json={"sql": HEAVY}, headers=key_a)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
        assert r.json()["error"]["code"] == "sql_rate_limited"
        took = []
        while svc.limiter.running.get(a, 0) and len(took) < 40:
            t0 = time.perf_counter()
            rb = api.get("/v1/runs?limit=1", headers=key_b)
            took.append(time.perf_counter() - t0)
            assert rb.status_code == 200, rb.text
        for t in threads:
            t.join()
    assert answers == [200, 200, 200]
    assert took, "the heavy queries ended before b asked anything"
    p99 = sorted(took)[max(0, int(len(took) * 0.99) - 1)]
    print(f"\nb's GET /v1/runs while a ran 3 heavy queries: n={len(took)} "
          f"median={statistics.median(took) * 1000:.0f} ms p99={p99 * 1000:.0f} ms "
          f"(alone: worst {max(baseline) * 1000:.0f} ms)")
    # A generous correctness bound on "does not queue": one heavy query alone takes ~2 s, so
    # waiting behind even one would pass 2 s. Under 1 s as the issue asks; on a machine so busy
    # that B alone is slow, B alone plus 1 s (never more than 2 s).
    assert p99 < max(1.0, min(max(baseline) + 1.0, 2.0))
