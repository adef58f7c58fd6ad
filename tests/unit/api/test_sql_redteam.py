"""/v1/sql red-team findings, each replayed as the attack it was.

1. IN in function-call form (``globalIn(x, t)``): sqlglot reads ``t`` as a column, so it was never
   scoped, and ClickHouse built the set from the whole table while answering EXPLAIN QUERY TREE:
   a yes/no oracle over other tenants' rows. Likewise a database-qualified name in an expression.
2. Functions that disclose the server (query ids, users, time zone) or write its log.
3. A result of many blocks grew past every memory limit on its way to JSON.
4. ``SELECT *,*,… FROM events``: a query tree of 400k lines parsed in Python, 100k columns.
"""
from __future__ import annotations

import time
from datetime import date

import pytest
from fastapi.testclient import TestClient

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings
from agentstream.api.sql.limits import Deadline
from agentstream.api.sql.rejections import SqlRejected

IN_FUNCTIONS = ["in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn",
                "globalNotNullIn", "inIgnoreSet", "globalNotNullInIgnoreSet"]
USER_COST_COLS = ["tenant_id", "day", "end_user_id", "agent_id", "request_model", "retention_days",
                  "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                  "cost_usd"]


def sql(api, auth, q, **kw):
    return api.post("/v1/sql", json={"sql": q, **kw}, headers=auth)


def code_of(r) -> str | int:
    return r.status_code if r.status_code == 200 else r.json()["error"]["code"]


@pytest.fixture
def victim_cost_row(ch, unique):
    """A row of another tenant whose every value the attacker knows: the oracle's target."""
    victim = "victim-" + unique
    ch.insert("cost_rollup_daily_user",
              [[victim, date(2024, 1, 1), "u", "a", "m", 30, 1, 1, 1, 1, 1, 1.0]],
              column_names=USER_COST_COLS)
    return victim


def _row_probe(fn: str, tenant: str) -> str:
    ones = ", ".join(["toUInt64(1)"] * 5)
    row = f"('{tenant}', toDate('2024-01-01'), 'u', 'a', 'm', toUInt16(30), {ones}, toFloat64(1))"
    return f"SELECT (SELECT throwIf({fn}({row}, cost_rollup_daily_user)))"


@pytest.mark.parametrize("fn", ["globalIn", "GLOBALIN", "in", "nullIn"])
def test_in_call_form_is_no_oracle_over_other_tenants_rows(api, auth, victim_cost_row, fn):
    hit = sql(api, auth, _row_probe(fn, victim_cost_row))
    miss = sql(api, auth, _row_probe(fn, "nobody"))
    assert code_of(hit) not in ("sql_throw", 200), hit.text
    assert (hit.status_code, hit.json()) == (miss.status_code, miss.json())


@pytest.mark.parametrize("fn", IN_FUNCTIONS + [f.upper() for f in IN_FUNCTIONS[1:4]] + ["GlobalIN"])
def test_every_in_function_spelling_is_refused(api, auth, fn):
    r = sql(api, auth, f"SELECT count() FROM events WHERE {fn}(run_id, runs)")
    if fn.lower() == "in":  # sqlglot cannot parse ``in(...)``: refused before anything runs
        assert r.status_code == 400 and code_of(r) == "sql_syntax", r.text
        return
    assert r.status_code == 400 and code_of(r) == "sql_function_forbidden", (fn, r.text)
    assert "IN (SELECT" in r.json()["error"]["message"]


@pytest.mark.parametrize("q", [
    "SELECT (SELECT throwIf(globalIn('UTC', system.time_zones)))",
    "SELECT (SELECT throwIf(globalIn('UTC', `system`.`time_zones`)))",
    "SELECT toString(system.one) AS x",
    "SELECT count() FROM events WHERE exists(system.one)",
    "SELECT INFORMATION_SCHEMA.tables",
    "SELECT information_schema.TABLES",
    "SELECT default.events",
    "SELECT count() FROM events WHERE tuple(run_id) = tuple(default.runs)",
    "SELECT arrayMap(x -> system.numbers, [1])",
])
def test_database_qualified_names_are_refused_in_expressions(api, auth, q):
    r = sql(api, auth, q)
    assert r.status_code == 400, r.text
    assert code_of(r) in ("sql_forbidden_table", "sql_unsupported", "sql_function_forbidden"), r.text


@pytest.mark.parametrize("q", [
    "SELECT count() FROM events WHERE run_id IN (SELECT run_id FROM runs)",
    "SELECT count() FROM events WHERE run_id GLOBAL NOT IN (SELECT run_id FROM runs)",
    "SELECT count() FROM events AS e WHERE e.run_id != ''",
    "SELECT default.events.run_id FROM default.events LIMIT 1",
    "SELECT t.x FROM (SELECT 1 AS x) AS t",
])
def test_ordinary_in_and_qualified_columns_still_run(api, auth, tenant, q):
    r = sql(api, auth, q)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("fn", [
    "pg_get_userbyid(1)", "pgGetUserById(1)", "pg_table_is_visible(1)", "currentQueryID()",
    "current_query_id()", "queryID()", "query_id()", "initial_query_start_time()",
    "getMaxTableNameLengthForDatabase('default')", "logTrace('x')", "timezone()", "timeZone()",
    "serverTimezone()", "connectionId()", "connection_id()", "currentHandler()",
    "currentRequestURL()", "session_user()", "authUser()", "currentProfiles()",
    "getClientHTTPHeader('x')", "aiGenerate('x')", "regionToName(1)",
    "naiveBayesClassifierWithProb('m', 'x')", "cutToFirstSignificantSubdomainCustom('a.b', 'l')",
])
def test_disclosing_and_logging_functions_are_refused(api, auth, fn):
    r = sql(api, auth, f"SELECT {fn}")
    assert r.status_code == 400 and code_of(r) == "sql_function_forbidden", (fn, r.text)


@pytest.fixture
def small_api(keys_file, ch, tenant):
    """The API with small result limits, so an oversized result is cheap to provoke."""
    s = ApiSettings(api_keys_file=keys_file, bootstrap_servers="", sql_max_result_bytes=2_000_000,
                    sql_max_columns=100)
    key = add_key(keys_file, tenant, scopes=["read"], name="small")
    with TestClient(create_app(s, client=ch), raise_server_exceptions=False) as api:
        yield api, {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("q", [
    # many blocks of one constant 100 kB string: ClickHouse counts a constant column once
    " UNION ALL ".join(["SELECT repeat('x', 100000) AS s FROM (SELECT arrayJoin(range(20)))"] * 4),
    # one block
    "SELECT repeat('x', 100000) AS s FROM (SELECT arrayJoin(range(100)))",
    # values that differ row by row: ClickHouse's own max_result_bytes counts these
    "SELECT toString(number) || repeat('y', 300) AS s FROM (SELECT arrayJoin(range(20000)) AS number)",
])
def test_an_oversized_result_is_refused_not_returned(small_api, q):
    api, auth = small_api
    r = sql(api, auth, q)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert err["code"] == "sql_limit_exceeded" and "result" in err["message"], err
    assert len(r.content) < 2000


def test_a_result_under_the_byte_limit_is_returned(small_api):
    api, auth = small_api
    r = sql(api, auth, "SELECT repeat('x', 1000) AS s FROM (SELECT arrayJoin(range(500)))")
    assert r.status_code == 200 and r.json()["row_count"] == 500


def test_too_many_columns_is_refused_before_running(small_api, ch):
    api, auth = small_api
    started = time.perf_counter()
    r = sql(api, auth, "SELECT " + ",".join(["*"] * 2000) + " FROM events LIMIT 1")
    elapsed = time.perf_counter() - started
    assert r.status_code == 400 and code_of(r) == "sql_too_many_columns", r.text[:300]
    assert elapsed < 3, elapsed
    r = sql(api, auth, "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(101)))
    assert r.status_code == 400 and code_of(r) == "sql_too_many_columns", r.text[:300]
    assert r.json()["error"]["details"]["max_columns"] == 100
    # the width only ClickHouse knows (stars over a subquery): refused from the query tree
    r = sql(api, auth, "SELECT *, * FROM (SELECT " + ", ".join(f"{i} AS c{i}" for i in range(60)) + ")")
    assert r.status_code == 400 and code_of(r) == "sql_too_many_columns", r.text[:300]
    r = sql(api, auth, "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(100)))
    assert r.status_code == 200, r.text[:300]


def test_many_stars_at_the_default_limits_answer_fast(api, auth):
    started = time.perf_counter()
    r = sql(api, auth, "SELECT " + ",".join(["*"] * 2000) + " FROM events LIMIT 1")
    assert r.status_code == 400 and code_of(r) == "sql_too_many_columns", r.text[:300]
    assert time.perf_counter() - started < 3


def test_the_deadline_bounds_the_whole_request():
    now = [100.0]
    d = Deadline(2.0, clock=lambda: now[0])
    assert d.remaining() == 2.0
    now[0] += 1.5
    assert d.remaining() == pytest.approx(0.5)
    d.check()
    now[0] += 0.6
    with pytest.raises(SqlRejected) as exc:
        d.check()
    assert exc.value.code == "sql_limit_exceeded" and "time" in exc.value.message


def test_a_request_past_its_deadline_is_refused(keys_file, ch, tenant):
    s = ApiSettings(api_keys_file=keys_file, bootstrap_servers="", sql_max_execution_time_s=0.001)
    key = add_key(keys_file, tenant, scopes=["read"], name="slow")
    with TestClient(create_app(s, client=ch), raise_server_exceptions=False) as api:
        r = sql(api, {"Authorization": f"Bearer {key}"}, "SELECT count() FROM events")
    assert r.status_code == 400 and code_of(r) == "sql_limit_exceeded", r.text
