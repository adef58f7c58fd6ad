"""/v1/sql: a SETTINGS clause is refused wherever it stands, a name ``settings`` is just a name;
``SAMPLE k OFFSET m`` runs as ClickHouse reads it (a slice of the sample), never as a row OFFSET."""
from __future__ import annotations

import pytest

from agentstream.api.sql.rejections import SqlRejected
from agentstream.api.sql.rewrite import TENANT_PARAM, parse_one, scope_query
from agentstream.api.sql_guard import check_tokens, lex

READABLE = {"events", "runs", "alerts"}

# Columns, aliases and tables that are merely called settings: ClickHouse answers them.
SETTINGS_NAMES = [
    "SELECT 1 AS settings",
    "SELECT 1 AS SETTINGS",
    "SELECT settings FROM (SELECT 1 AS settings)",
    "SELECT `settings` FROM (SELECT 1 AS settings)",
    "SELECT \"settings\" FROM (SELECT 1 AS \"settings\")",
    "SELECT settings FROM (SELECT 1 AS settings) ORDER BY settings",
    "SELECT settings FROM (SELECT 1 AS settings) ORDER BY settings DESC",
    "SELECT s.settings FROM (SELECT 1 AS settings) AS s",
    "SELECT settings.x FROM (SELECT 1 AS x) AS settings",
    "SELECT settings, count() AS n FROM (SELECT 1 AS settings) GROUP BY settings",
    "SELECT settings FROM (SELECT 1 AS settings) WHERE settings = 1",
    "WITH settings AS (SELECT 1 AS settings) SELECT settings FROM settings",
    "SELECT 1 AS settings -- SETTINGS readonly = 0",
    "SELECT 'SETTINGS readonly = 0' = '' AS settings",
]

# Every real SETTINGS clause: top level, nested, after comments and newlines, with a trailing
# ';', next to FORMAT, on a set operation, in a CTE, a scalar subquery, IN, a JOIN, a table function.
SETTINGS_CLAUSES = [
    "SELECT * FROM events SETTINGS readonly = 0",
    "SELECT 1 SETTINGS max_threads = 1",
    "SELECT 1 settings max_threads = 1",
    "SELECT 1 AS settings SETTINGS max_threads = 1",
    "SELECT settings FROM (SELECT 1 AS settings) SETTINGS max_threads = 1",
    "SELECT 1\nSETTINGS\n  readonly = 0;",
    "SELECT 1 /* c */ SETTINGS -- x\n readonly = 0 ;  ",
    "SELECT 1 SETTINGS readonly = 0, max_threads = 1",
    "SELECT 1 SETTINGS additional_table_filters = {'events': '1'}",
    "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)",
    "SELECT * FROM (SELECT * FROM events SETTINGS additional_table_filters = {})",
    "WITH x AS (SELECT 1 SETTINGS readonly = 0) SELECT * FROM x",
    "SELECT (SELECT 1 SETTINGS readonly = 0) AS s",
    "SELECT * FROM events WHERE 1 IN (SELECT 1 SETTINGS readonly = 0)",
    "SELECT * FROM events AS e JOIN (SELECT 1 AS x SETTINGS readonly = 0) AS y ON 1 = 1",
    "SELECT 1 UNION ALL SELECT 2 SETTINGS readonly = 0",
    "SELECT count() FROM events SETTINGS max_threads = 1 FORMAT JSON",
    "SELECT 1 FORMAT JSON SETTINGS readonly = 0",
    "SELECT 1 LIMIT 1 SETTINGS readonly = 0",
    "SELECT * FROM events LIMIT 1 BY run_id SETTINGS readonly = 0",
    "SELECT * FROM numbers(3) SETTINGS readonly = 0",
    "SELECT $$a$$ SETTINGS readonly = 0",
    "SELECT $t$x$t$ SETTINGS readonly = 0",
    "(SELECT 1 SETTINGS readonly = 0)",
]


@pytest.mark.parametrize("q", SETTINGS_NAMES)
def test_a_name_settings_is_not_the_clause(q):
    check_tokens(lex(q))  # the token look leaves the word to the tree
    out = parse_one(scope_query(q, READABLE, "default").sql)
    assert not any(n.args.get("settings") for n in out.walk())


@pytest.mark.parametrize("q", SETTINGS_CLAUSES)
def test_every_settings_clause_is_refused_by_the_tree(q):
    with pytest.raises(SqlRejected) as e:
        scope_query(q.rstrip(" ;\n"), READABLE, "default")
    assert e.value.code == "sql_settings_forbidden"


def sql(api, auth, q):
    return api.post("/v1/sql", json={"sql": q}, headers=auth)


@pytest.mark.parametrize("q", SETTINGS_NAMES)
def test_names_settings_answer_through_the_api(api, auth, q):
    r = sql(api, auth, q)
    assert r.status_code == 200, r.text
    assert len(r.json()["rows"]) == 1


@pytest.mark.parametrize("q", SETTINGS_CLAUSES)
def test_settings_clauses_are_400_through_the_api(api, auth, q):
    r = sql(api, auth, q)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "sql_settings_forbidden", err
    assert "SETTINGS" in err["message"]


# ---- SAMPLE k OFFSET m ------------------------------------------------------------------------

def test_sample_offset_stays_with_the_sample():
    out = scope_query("SELECT count() FROM events SAMPLE 1/2 OFFSET 1/2", READABLE, "default").sql
    inner, _, outer = out.rpartition(")")
    assert "SAMPLE 1 / 2 OFFSET 1 / 2" in inner and "OFFSET" not in outer, out
    for q in ("SELECT * FROM events AS e SAMPLE 0.1 /* c */ OFFSET\n0.5 WHERE seq > 0 ORDER BY seq",
              "SELECT * FROM events AS e FINAL SAMPLE 0.1 OFFSET 0.5 WHERE seq > 0 ORDER BY seq",
              "SELECT e.seq FROM events AS e SAMPLE 0.1 OFFSET 0.5 JOIN runs AS r USING (run_id)"):
        out = scope_query(q, READABLE, "default").sql
        assert out.count("OFFSET") == 1 and out.index("OFFSET 0.5") < out.index("PREWHERE"), out


@pytest.mark.parametrize("q", [
    "SELECT * FROM events SAMPLE 1/2 LIMIT 3 OFFSET 1",
    "SELECT * FROM events SAMPLE 1/2 ORDER BY seq LIMIT 3 OFFSET 2",
    "SELECT * FROM events SAMPLE 1/2 WHERE seq > 0 OFFSET 2",
    "SELECT * FROM (SELECT * FROM events SAMPLE 1/2) OFFSET 2",
])
def test_a_row_offset_after_a_sample_stays_a_row_offset(q):
    out = scope_query(q, READABLE, "default").sql
    assert out.rstrip().endswith(("OFFSET 1", "OFFSET 2")), out
    assert "SAMPLE 1 / 2 OFFSET" not in out


@pytest.mark.parametrize("q", [
    "SELECT * FROM events SAMPLE 1/2 OFFSET 1/2 LIMIT 3 OFFSET 1",  # two OFFSETs: sqlglot refuses
    "SELECT * FROM events SAMPLE 1/2 OFFSET seq",
    "SELECT * FROM events SAMPLE 1/2 OFFSET (1/2)",
    "SELECT * FROM events SAMPLE 1/2 OFFSET -1",
    "SELECT * FROM events SAMPLE 1/2 OFFSET 'x'",
    "SELECT * FROM events SAMPLE 1/2 OFFSET 1/2/3",
])
def test_a_sample_offset_that_is_not_a_ratio_is_refused(q):
    with pytest.raises(SqlRejected) as e:
        scope_query(q, READABLE, "default")
    assert e.value.code in ("sql_unsupported", "sql_syntax")
    if e.value.code == "sql_unsupported":
        assert "SAMPLE" in e.value.message and "OFFSET" in e.value.message


@pytest.fixture
def sampled(ch, unique):
    """A tenant table with a sampling key (and FINAL): ``mixed`` holds two tenants, ``alone`` the first
    tenant's rows only, so a query on ``alone`` is what the tenant-scoped one must answer."""
    db = ch.command("SELECT currentDatabase()")
    names = {}
    for role in ("mixed", "alone"):
        names[role] = f"sampled_{role}_{unique.replace('-', '_')}"
        ch.command(f"CREATE TABLE {names[role]} (tenant_id String, k UInt64) ENGINE = ReplacingMergeTree "
                   "ORDER BY (tenant_id, intHash32(k)) SAMPLE BY intHash32(k)")
    ch.command(f"INSERT INTO {names['mixed']} SELECT if(number % 3 = 0, 'b', 'a'), number FROM numbers(3000)")
    ch.command(f"INSERT INTO {names['alone']} SELECT 'a', number FROM numbers(3000) WHERE number % 3 != 0")
    yield db, names
    for n in names.values():
        ch.command(f"DROP TABLE IF EXISTS {n}")


@pytest.mark.parametrize("tail", [
    "SAMPLE 1/2 OFFSET 1/2", "SAMPLE 0.25 OFFSET 0.5", "SAMPLE 1/2 OFFSET 1/2 WHERE k > 10 ORDER BY k LIMIT 5",
    "SAMPLE 1/2", "SAMPLE 1/2 ORDER BY k LIMIT 5 OFFSET 3",
    # ClickHouse reads FINAL before SAMPLE; the rewrite printed ``t SAMPLE k FINAL``, a syntax error
    "FINAL SAMPLE 1/2", "FINAL SAMPLE 1/2 OFFSET 1/2", "AS x FINAL SAMPLE 0.5 OFFSET 0.5 WHERE x.k > 10",
])
def test_sample_offset_answers_as_clickhouse_reads_it(ch, sampled, tail):
    db, names = sampled
    q = "SELECT count() AS n, sum(k) AS s FROM {t} " + tail
    if "ORDER BY" in tail:
        q = "SELECT k FROM {t} " + tail
    want = ch.query(q.format(t=names["alone"])).result_rows
    scoped = scope_query(q.format(t=names["mixed"]), {names["mixed"]}, db)
    got = ch.query(scoped.sql, parameters={TENANT_PARAM: "a"}).result_rows
    assert got == want and got, (scoped.sql, got, want)
    assert parse_one(scoped.sql) is not None


def test_final_sample_offset_runs_through_the_api_on_the_callers_rows(api, auth, ch, tenant, unique):
    """The whole path (rewrite, ClickHouse's query-tree check, execution) on a table with a
    sampling key: the caller's rows of the slice, nobody else's."""
    t = f"sampled_api_{unique.replace('-', '_')}"
    ch.command(f"CREATE TABLE {t} (tenant_id String, k UInt64) ENGINE = ReplacingMergeTree "
               "ORDER BY (tenant_id, intHash32(k)) SAMPLE BY intHash32(k)")
    try:
        ch.command(f"INSERT INTO {t} SELECT if(number % 3 = 0, 'other-{unique}', '{tenant}'), number "
                   "FROM numbers(3000)")
        for tail in ("FINAL SAMPLE 1/2 OFFSET 1/2", "SAMPLE 1/4 OFFSET 1/2", "FINAL SAMPLE 1/2"):
            r = sql(api, auth, f"SELECT count() AS n, sum(k) AS s FROM {t} {tail}")
            assert r.status_code == 200, (tail, r.text)
            want = ch.query(f"SELECT count(), sum(k) FROM {t} {tail} WHERE tenant_id = {{t:String}}",
                            parameters={"t": tenant}).result_rows
            assert [tuple(int(v) for v in row) for row in r.json()["rows"]] == [tuple(want[0])], tail
            assert want[0][0] > 0
    finally:
        ch.command(f"DROP TABLE IF EXISTS {t}")
