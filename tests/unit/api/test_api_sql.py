"""/v1/sql: tenant scope, read-only, limits; every escape attempt gets a clear 4xx."""
from __future__ import annotations

import pytest

from agentstream.api.sql_guard import check_tokens, lex

from api_fleet import RunBuilder, insert_alerts, insert_runs


@pytest.fixture
def two_tenants(ch, tenant, unique):
    other = "victim-" + unique
    mine = RunBuilder(tenant, run_id="mine-" + unique)
    mine.llm("x", 10, 5, 5, 0.5)
    mine.end()
    theirs = RunBuilder(other, run_id="theirs-" + unique)
    theirs.llm("secret-step", 10, 7, 7, 0.7)
    theirs.end()
    insert_runs(ch, [mine, theirs])
    insert_alerts(ch, other, [{"title": "victim alert " + unique}])
    return other


def sql(api, auth, q, **kw):
    return api.post("/v1/sql", json={"sql": q, **kw}, headers=auth)


def test_select_sees_only_own_rows(api, auth, tenant, two_tenants):
    r = sql(api, auth, "SELECT DISTINCT tenant_id FROM events")
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[tenant]]
    r = sql(api, auth, "SELECT run_id, sum(cost_usd) AS c FROM runs GROUP BY run_id;")
    assert r.status_code == 200 and len(r.json()["rows"]) == 1
    assert r.json()["columns"][1] == {"name": "c", "type": "Float64"}


@pytest.mark.parametrize("q", [
    "SELECT * FROM events WHERE tenant_id = '{other}'",
    "SELECT * FROM events WHERE tenant_id = '{other}' OR 1 = 1",
    "SELECT * FROM default.events WHERE tenant_id != ''",
    "SELECT * FROM runs FINAL WHERE tenant_id = '{other}'",
    "SELECT * FROM runs_mv",
    "SELECT * FROM alerts WHERE tenant_id = '{other}'",
    "SELECT e.* FROM events e JOIN runs r ON e.run_id = r.run_id WHERE r.tenant_id = '{other}'",
    "SELECT * FROM events WHERE run_id IN (SELECT run_id FROM runs WHERE tenant_id = '{other}')",
    "WITH x AS (SELECT * FROM events) SELECT * FROM x WHERE tenant_id = '{other}'",
    "SELECT (SELECT groupArray(tenant_id) FROM events) AS leak",
    "SELECT * FROM (SELECT * FROM events UNION ALL SELECT * FROM events) WHERE tenant_id = '{other}'",
])
def test_other_tenants_rows_never_come_back(api, auth, two_tenants, q):
    r = sql(api, auth, q.format(other=two_tenants))
    assert r.status_code in (200, 400), r.text
    assert two_tenants not in r.text and "secret-step" not in r.text


@pytest.mark.parametrize("q,code", [
    ("DROP TABLE events", "sql_not_select"),
    ("INSERT INTO events (tenant_id) VALUES ('x')", "sql_not_select"),
    ("ALTER TABLE events DELETE WHERE 1", "sql_not_select"),
    ("TRUNCATE TABLE events", "sql_not_select"),
    ("CREATE TABLE pwn (x Int8) ENGINE = Memory", "sql_not_select"),
    ("OPTIMIZE TABLE events FINAL", "sql_not_select"),
    ("SYSTEM FLUSH LOGS", "sql_not_select"),
    ("SET readonly = 0", "sql_not_select"),
    ("SHOW TABLES", "sql_not_select"),
    ("EXPLAIN SELECT 1", "sql_not_select"),
    ("SELECT 1; DROP TABLE events", "sql_multiple_statements"),
    ("SELECT * FROM system.tables", "sql_forbidden_table"),
    ("SELECT * FROM system.query_log", "sql_forbidden_table"),
    ("SELECT * FROM events WHERE run_id IN (SELECT name FROM system.tables)", "sql_forbidden_table"),
    ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "sql_forbidden_table"),
    ("SELECT * FROM schema_migrations", "sql_forbidden_table"),
    ("SELECT * FROM sink_batches", "sql_forbidden_table"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "sql_table_function"),
    ("SELECT * FROM url('http://127.0.0.1:1/x', 'CSV')", "sql_table_function"),
    ("SELECT * FROM remote('127.0.0.1', default.events)", "sql_table_function"),
    ("SELECT * FROM numbers(10)", "sql_table_function"),
    ("SELECT * FROM merge('default', '.*')", "sql_table_function"),
    ("SELECT * FROM events WHERE run_id IN (SELECT * FROM s3('http://x/y', 'CSV'))", "sql_table_function"),
    ("SELECT file('/etc/passwd')", "sql_function_forbidden"),
    ("SELECT dictGet('d', 'x', 1)", "sql_function_forbidden"),
    ("SELECT hostName()", "sql_function_forbidden"),
    ("SELECT * FROM events SETTINGS additional_table_filters = {}", "sql_settings_forbidden"),
    ("SELECT * FROM events SETTINGS readonly = 0", "sql_settings_forbidden"),
    ("SELECT 1 INTO OUTFILE '/tmp/x'", "sql_output_forbidden"),
    ("SELECT 1 FORMAT TabSeparated", "sql_output_forbidden"),
    ("SELECT 1 AS format FORMAT TabSeparated", "sql_output_forbidden"),
    ("SELECT e.format FROM (SELECT 1 AS format) AS e FORMAT JSON", "sql_output_forbidden"),
    # a column called format is a name, not the clause (the lexer refused these before)
    ("SELECT t.format AS format FROM (SELECT 1 AS format) AS t ORDER BY t.format DESC", None),
    ("SELECT t.format FROM (SELECT 1 AS format) AS t ORDER BY t.format ASC", None),
    ("SELECT t.format AS format FROM (SELECT 1 AS format) AS t ORDER BY format DESC", None),
    ("SELECT 1 format JSON", "sql_output_forbidden"),
    ("SELECT 1 /* x */ FORMAT\nJSON;", "sql_output_forbidden"),
    ("SELECT * FROM nope_table", "sql_forbidden_table"),
    ("SELEC 1", "sql_not_select"),
    ("SELECT (", "sql_syntax"),
    ("SELECT * FROM events) UNION ALL (SELECT * FROM system.tables", "sql_syntax"),
    ("SELECT 1) UNION ALL SELECT name FROM system.tables WHERE (1", "sql_syntax"),
    ("SELECT 1) UNION ALL SELECT toString(count()) FROM schema_migrations WHERE (1", "sql_syntax"),
    ("SELECT 1 --", None),
])
def test_escape_attempts_get_clear_4xx(api, auth, q, code):
    r = sql(api, auth, q)
    if code is None:
        assert r.status_code == 200 and r.json()["rows"] == [[1]]
        return
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]


@pytest.mark.parametrize("q,name", [
    ("SELECT * FROM numbers(10)", "numbers"),
    ("SELECT * FROM generate_series(1, 3)", "generate_series"),  # sqlglot parses these two as
    ("SELECT * FROM format(CSV, 'a')", "format"),                # typed functions, not by name
])
def test_a_refused_table_function_is_named(api, auth, q, name):
    err = sql(api, auth, q).json()["error"]
    assert err["code"] == "sql_table_function"
    assert f"table function {name}() is not allowed" in err["message"], err


def test_limits(api, auth, ch, tenant, settings, app):
    settings.sql_max_execution_time_s = 0.5
    r = sql(api, auth, "SELECT count() FROM events WHERE sleepEachRow(0.3) = 0 OR 1")
    # Either the sleep is cut by the time limit or the rows of the tenant were too few to matter.
    assert r.status_code in (200, 400)
    runs = [RunBuilder(tenant) for _ in range(3)]
    insert_runs(ch, runs)
    r = sql(api, auth, "SELECT sleep(1) FROM events")
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_limit_exceeded"
    settings.sql_max_execution_time_s = 10
    settings.sql_max_memory_bytes = 5_000_000
    r = sql(api, auth, "SELECT groupArray(repeat(run_id, 1000)) FROM events, (SELECT arrayJoin(range(20000)) AS n) AS t")
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_limit_exceeded", r.text


def test_rows_are_paged_and_capped(api, auth, ch, tenant, settings):
    settings.sql_max_rows = 5
    runs = [RunBuilder(tenant) for _ in range(8)]
    insert_runs(ch, runs)
    q = "SELECT run_id FROM events WHERE kind = 'RUN_START' ORDER BY run_id"
    got, cursor = [], None
    for _ in range(5):
        body = sql(api, auth, q, limit=100, **({"cursor": cursor} if cursor else {})).json()
        assert body["row_count"] <= 5
        got += [r[0] for r in body["rows"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert got == sorted(r.run_id for r in runs)
    first = sql(api, auth, q).json()
    r = sql(api, auth, "SELECT 1", cursor=first["next_cursor"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


def test_lexer():
    assert check_tokens(lex("WITH a AS (SELECT 1), `b` AS (SELECT 2) SELECT * FROM a")) == "WITH"
    assert check_tokens(lex("SELECT ';' AS semi, 'SETTINGS' -- SETTINGS\n")) == "SELECT"
    assert check_tokens(lex("SELECT $$ SETTINGS $$, $t$ ' $$ $t$ AS x")) == "SELECT"
    assert [t.kind for t in lex("SELECT $$a'b$$ x")] == ["word", "string", "word"]


def test_sql_requires_key(api):
    assert api.post("/v1/sql", json={"sql": "SELECT 1"}).status_code == 401
    r = api.post("/v1/sql", json={"sql": "SELECT 1", "bogus": 1}, headers={"X-API-Key": "x" * 30})
    assert r.status_code in (401, 422)
