"""No stored row makes a read route answer 5xx. Ingest bounds event times now, but rows written
before, or by a producer that bypasses the gateway, can hold any time ClickHouse stores: the
routes must still answer (the issue's case: ts_us = 2**62, stored as year 9999, made run detail,
timeline and SQL answer 503 and put the run at the top of every listing)."""
from __future__ import annotations

import pytest

from api_fleet import RunBuilder, insert_runs, now_us

YEAR_9999_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z, DateTime64's last second
EPOCH_US = 0


def absurd_runs(tenant: str) -> list[RunBuilder]:
    far = RunBuilder(tenant, "agent-x", "v9", run_id=f"far-{tenant}", start_us=YEAR_9999_US - 10_000_000)
    far.tool("search", 5.0)
    far.llm("think", 7.0, input_tokens=10, output_tokens=2, cost=0.001)
    far.end("SUCCESS")
    # a normal run with one step whose clock jumped to year 9999
    mixed = RunBuilder(tenant, "agent-x", "v9", run_id=f"mixed-{tenant}", start_us=now_us() - 60_000_000)
    mixed.tool("search", 5.0)
    mixed.t = YEAR_9999_US - 1_000_000
    mixed.tool("search", 3.0)
    mixed.end("SUCCESS")
    early = RunBuilder(tenant, "agent-x", "v8", run_id=f"early-{tenant}", start_us=EPOCH_US + 1_000_000)
    early.tool("search", 5.0)
    early.end("FAILURE")
    normal = RunBuilder(tenant, "agent-x", "v8", run_id=f"ok-{tenant}", start_us=now_us() - 120_000_000)
    normal.tool("search", 5.0)
    normal.end("SUCCESS")
    return [far, mixed, early, normal]


RAW_2_62 = 2**62  # what ts_us = 2**62 becomes through the sink: DateTime64 keeps the raw
# value (it only displays as 9999-12-31), so every reader converting it must cope


def insert_raw_time_run(ch, tenant: str, run_id: str, raw_us: int, step_raw_us: int | None = None) -> None:
    """A run whose stored times are raw microsecond values, as the sink's Avro view writes them
    (fromUnixTimestamp64Micro of the event's ts_us and started_us)."""
    step_raw_us = raw_us if step_raw_us is None else step_raw_us
    rows = [(0, "RUN_START", raw_us, raw_us, "", "", "", 0.0, "", 0.0),
            (1, "STEP", step_raw_us, step_raw_us, "s-1", "TOOL", "search", 5.0, "", 0.0),
            (2, "RUN_END", step_raw_us + 10_000, raw_us, "", "", "", 0.0, "SUCCESS", 10.0)]
    values = ", ".join(
        f"('{tenant}', fromUnixTimestamp64Micro(toInt64({ts}), 'UTC'), "
        f"fromUnixTimestamp64Micro(toInt64({st}), 'UTC'), '{run_id}-{seq}', 'agent-x', 'v9', 'prod',"
        f" '{run_id}', {seq}, '{kind}', '{sid}', '{sk}', '{name}', {lat}, 'OK', '{rs}', {dur}, '{{}}')"
        for seq, kind, ts, st, sid, sk, name, lat, rs, dur in rows)
    ch.command("INSERT INTO events (tenant_id, ts, started_ts, event_id, agent_id, agent_version,"
               " environment, run_id, seq, kind, step_id, step_kind, name, latency_ms, status,"
               f" run_status, duration_ms, payload) VALUES {values}")


@pytest.fixture
def absurd(ch, tenant):
    runs = absurd_runs(tenant)
    insert_runs(ch, runs)
    insert_raw_time_run(ch, tenant, f"raw62-{tenant}", RAW_2_62)
    insert_raw_time_run(ch, tenant, f"rawmix-{tenant}", now_us() - 30_000_000, RAW_2_62)
    insert_raw_time_run(ch, tenant, f"rawneg-{tenant}", -5)
    return runs + [_Ref(f"raw62-{tenant}"), _Ref(f"rawmix-{tenant}"), _Ref(f"rawneg-{tenant}")]


class _Ref:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


def test_no_read_route_answers_5xx_on_absurd_stored_times(api, auth, absurd, tenant):
    run_ids = [r.run_id for r in absurd]
    paths = ["/v1/runs", "/v1/runs?limit=2", "/v1/runs?agent=agent-x", "/v1/stats",
             "/v1/compare?agent=agent-x&a=v8&b=v9", "/v1/alerts"]
    for rid in run_ids:
        paths += [f"/v1/runs/{rid}", f"/v1/runs/{rid}/timeline"]
    for path in paths:
        r = api.get(path, headers=auth)
        assert r.status_code < 500, (path, r.status_code, r.text[:500])
    for rid in run_ids:
        r = api.post("/v1/sql", headers=auth, json={"sql": f"SELECT * FROM events WHERE run_id = '{rid}'"})
        assert r.status_code < 500, (rid, r.status_code, r.text[:500])
        r = api.post("/v1/sql", headers=auth, json={"sql": f"SELECT * FROM runs WHERE run_id = '{rid}'"})
        assert r.status_code < 500, (rid, r.status_code, r.text[:500])


def test_the_issues_run_answers_with_its_steps(api, auth, absurd, tenant):
    """ts_us = 2**62 as the sink stores it: run detail, timeline and SQL answer 200 (times
    clamped to 9999-12-31), and the run's steps are all there."""
    for rid in (f"raw62-{tenant}", f"rawmix-{tenant}"):  # (1969 rows may be gone: TTL)
        detail = api.get(f"/v1/runs/{rid}", headers=auth)
        assert detail.status_code == 200, (rid, detail.text[:500])
        assert [s["name"] for s in detail.json()["steps"]] == ["search"], detail.json()
        tl = api.get(f"/v1/runs/{rid}/timeline", headers=auth)
        assert tl.status_code == 200, (rid, tl.text[:500])
        assert len(tl.json()["spans"]) == 1
        sql = api.post("/v1/sql", headers=auth,
                       json={"sql": f"SELECT ts, started_ts FROM events WHERE run_id = '{rid}'"})
        assert sql.status_code == 200 and len(sql.json()["rows"]) == 3, sql.text[:500]


def test_clamping_keeps_normal_times_exact():
    from types import SimpleNamespace

    from agentstream.api.db import clamped_times

    class T:
        def __init__(self, name):
            self.name = name

    res = SimpleNamespace(column_names=["a", "b", "c", "d"],
                          column_types=[T("DateTime64(6, 'UTC')"), T("DateTime('UTC')"),
                                        T("Date"), T("String")],
                          result_rows=[(1_700_000_000_123_456, 1_700_000_000, 19_000, "x"),
                                       (2**62, 2**40, 2**31, "y"), (-5, -1, 0, "z")])
    rows = clamped_times(res).result_rows
    assert rows[0][0].isoformat() == "2023-11-14T22:13:20.123456+00:00"
    assert rows[0][1].isoformat() == "2023-11-14T22:13:20+00:00"
    assert rows[0][2].isoformat() == "2022-01-08T00:00:00"
    assert rows[1][0].year == rows[1][1].year == rows[1][2].year == 9999
    assert rows[2][0].year == 1970 and rows[2][0].tzinfo is not None
    assert [r[3] for r in rows] == ["x", "y", "z"]
