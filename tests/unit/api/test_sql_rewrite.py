"""The pure parts of /v1/sql isolation: the tree rewrite, the query-tree check, error mapping."""
from __future__ import annotations

import re

import pytest

from agentstream.api.sql.describe import aggregate_hint, describe_target
from agentstream.api.sql.error_map import map_sql_error
from agentstream.api.sql.rejections import SqlRejected
from agentstream.api.sql.rewrite import TENANT_PARAM, parse_one, scope_query
from agentstream.api.sql.tree_check import check_query_tree, parse_query_tree, quote_constant
from agentstream.api.sql_guard import lex

READABLE = {"events", "runs", "alerts"}
FILTER = f'PREWHERE "tenant_id" = {{{TENANT_PARAM}: String}}'


def scoped(q: str) -> str:
    return scope_query(q, READABLE, "default").sql


def test_every_table_reference_becomes_the_tenant_subquery():
    sql = scoped("SELECT e.run_id FROM events e JOIN `runs` AS r USING (run_id) "
                 "WHERE r.run_id IN (SELECT run_id FROM default.alerts)")
    assert sql.count(FILTER) == 3
    assert 'FROM "default"."events"' in sql and 'FROM "default"."alerts"' in sql
    # nothing else reads a table: every FROM is a subquery or a scoped table
    assert all(t.startswith('"default".') for t in re.findall(r"(?:FROM|JOIN)\s+([^\s(]\S*)", sql))


def test_prewhere_moves_into_where_and_final_sample_into_the_subquery():
    sql = scoped("SELECT count() FROM runs FINAL SAMPLE 1/2 PREWHERE throwIf(x = 1) = 0 WHERE y")
    assert sql.count("PREWHERE") == 1 and FILTER in sql
    assert "FINAL" in sql.split(FILTER)[0] and "SAMPLE" in sql.split(FILTER)[0]
    assert "WHERE (throwIf(x = 1) = 0) AND (y)" in sql


def test_ctes_are_not_tables_but_their_bodies_are_scoped():
    sql = scoped("WITH x AS (SELECT * FROM events) SELECT * FROM x, x AS y")
    assert sql.count(FILTER) == 1


def test_cte_scoping_follows_clickhouse():
    # A CTE body sees earlier CTEs, not itself: ``events`` inside is the table, outside the CTE.
    q = scope_query("WITH events AS (SELECT * FROM events WHERE seq = 0) SELECT count() FROM events",
                    READABLE, "default")
    assert q.tables == ("events",) and q.sql.endswith("SELECT count() FROM events")
    q = scope_query("WITH a AS (SELECT * FROM runs), b AS (SELECT * FROM a) SELECT * FROM b, alerts",
                    READABLE, "default")
    assert sorted(q.tables) == ["alerts", "runs"]
    # the innermost WITH wins
    q = scope_query("WITH runs AS (SELECT 1) SELECT * FROM (WITH x AS (SELECT 2) SELECT * FROM runs)",
                    READABLE, "default")
    assert q.tables == ()


def test_database_qualified_columns_lose_the_database():
    assert "default.events.run_id" not in scoped("SELECT default.events.run_id FROM default.events")
    with pytest.raises(SqlRejected):
        scoped("SELECT system.tables.name FROM events")


@pytest.mark.parametrize("q,code", [
    ("SELECT * FROM system.tables", "sql_forbidden_table"),
    ("SELECT * FROM other.events", "sql_forbidden_table"),
    ("SELECT * FROM events_avro_staging", "sql_forbidden_table"),
    ("SELECT * FROM numbers(1)", "sql_table_function"),
    ("SELECT * FROM events SETTINGS readonly = 0", "sql_settings_forbidden"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)", "sql_settings_forbidden"),
    ("SELECT $$a$$ SETTINGS readonly = 0", "sql_settings_forbidden"),
    ("SELECT 1 FORMAT JSON", "sql_output_forbidden"),
    ("SELECT hostName()", "sql_function_forbidden"),
    ("SELECT FULLHOSTNAME()", "sql_function_forbidden"),
    ("SELECT dictGetString('d', 'a', 1)", "sql_function_forbidden"),
    ("SELECT __getScalar('x')", "sql_function_forbidden"),
    ("SELECT {x:String}", "sql_parameters"),
    ("SELECT 1 AS `a\n      JOIN TREE`", "sql_unsupported"),
    ("SELECT 1 AS \"a\tb\"", "sql_unsupported"),
    ("SELECT 1; SELECT 2", "sql_multiple_statements"),
    ("DROP TABLE events", "sql_not_select"),
    ("SELECT (", "sql_syntax"),
])
def test_rejections(q, code):
    with pytest.raises(SqlRejected) as e:
        scoped(q)
    assert e.value.code == code and e.value.status == 400


def test_what_runs_is_generated_from_the_tree():
    # A string literal stays a literal: it is re-quoted by the generator, never spliced.
    sql = scoped("SELECT 'x'' SETTINGS readonly=0 --' AS s, $$FORMAT$$ AS f FROM events")
    assert parse_one(sql).args.get("settings") is None
    assert sql.count(FILTER) == 1


def _tree(table_line: str, prewhere: list[str]) -> list[str]:
    return ["QUERY id: 0", "  PROJECTION COLUMNS", "    n UInt64", "  JOIN TREE",
            "    QUERY id: 3, alias: __table1, is_subquery: 1", "      JOIN TREE",
            f"        {table_line}", *prewhere]


GOOD_PREWHERE = [
    "      PREWHERE",
    "        FUNCTION id: 10, function_name: equals, function_type: ordinary, result_type: UInt8",
    "          ARGUMENTS",
    "            LIST id: 11, nodes: 2",
    "              COLUMN id: 12, column_name: tenant_id, result_type: LowCardinality(String), source_id: 9",
    "              CONSTANT id: 13, constant_value: 'acme', constant_value_type: String",
]


def check(lines, tenant="acme"):
    check_query_tree(parse_query_tree(lines), tenant, READABLE, "default")


def test_query_tree_accepts_only_tables_behind_the_tenant_prewhere():
    check(_tree("TABLE id: 9, alias: __table2, table_name: default.events", GOOD_PREWHERE))
    with pytest.raises(SqlRejected):  # another tenant's constant
        check(_tree("TABLE id: 9, alias: __table2, table_name: default.events", GOOD_PREWHERE), "globex")
    with pytest.raises(SqlRejected):  # the filter is on another table's column
        check(_tree("TABLE id: 8, alias: __table2, table_name: default.events", GOOD_PREWHERE))
    with pytest.raises(SqlRejected):  # no PREWHERE
        check(_tree("TABLE id: 9, alias: __table2, table_name: default.events", []))
    with pytest.raises(SqlRejected):  # a table that is not readable
        check(_tree("TABLE id: 9, alias: __table2, table_name: system.tables", GOOD_PREWHERE))
    with pytest.raises(SqlRejected):
        check(_tree("TABLE_FUNCTION id: 9, alias: __table2, table_function_name: numbers", []))


def test_query_tree_table_inside_an_expression_fails_closed():
    # ``x IN events``: ClickHouse reads the table as a set; it sits under a function's arguments.
    lines = _tree("TABLE id: 9, alias: __table2, table_name: default.events", GOOD_PREWHERE)
    lines[3:3] = ["  WHERE", "    FUNCTION id: 20, function_name: in, function_type: ordinary",
                  "      ARGUMENTS", "        LIST id: 21, nodes: 2",
                  "          TABLE id: 22, alias: __table9, table_name: default.alerts"]
    with pytest.raises(SqlRejected):
        check(lines)


def test_query_tree_spoofed_projection_names_cannot_vouch_for_a_table():
    # A caller-chosen alias shows up as a projection line; it must not become structure.
    lines = _tree("TABLE id: 9, alias: __table2, table_name: default.events", [])
    lines[2:2] = ["    PREWHERE UInt8", "    JOIN TREE String"]
    with pytest.raises(SqlRejected):
        check(lines)
    assert quote_constant("a'b\\c") == "'a\\'b\\\\c'"


def test_denied_function_in_the_resolved_tree():
    lines = _tree("TABLE id: 9, alias: __table2, table_name: default.events", GOOD_PREWHERE)
    lines.insert(3, "      FUNCTION id: 3, function_name: fullHostName, function_type: ordinary")
    with pytest.raises(SqlRejected) as e:
        check(lines)
    assert e.value.code == "sql_function_forbidden"


class FakeChError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {text}")
        self.code = code


@pytest.mark.parametrize("code,text,api_code", [
    (6, "Cannot parse string 'globex | 804f0adc' as UInt8: syntax error", "sql_value_error"),
    (395, "Value passed to 'throwIf' function is non-zero: globex secret", "sql_throw"),
    (153, "Division by zero", "sql_value_error"),
    (43, "Illegal type String of argument 'globex' of function plus", "sql_type_error"),
    (159, "Timeout exceeded: elapsed 10 s", "sql_limit_exceeded"),
    (999999, "Something about 'globex'", "sql_error"),
])
def test_errors_are_mapped_without_their_text(code, text, api_code):
    err = map_sql_error(FakeChError(code, text), "SELECT 1")
    assert err.status == 400 and err.code == api_code
    assert "globex" not in err.message and "globex" not in str(err.details)


def test_unknown_identifiers_are_named_only_if_the_caller_typed_them():
    exc = FakeChError(47, "Unknown expression identifier `nope` in scope SELECT `globex_secret`")
    err = map_sql_error(exc, "SELECT nope FROM events")
    assert err.code == "sql_unknown_identifier" and err.details["names"] == ["nope"]
    assert "globex" not in err.message


def test_client_side_failures_are_4xx_not_503():
    assert map_sql_error(ValueError("cannot decode column"), "SELECT 1").status == 400


def test_describe_targets_and_hints():
    assert describe_target(lex("DESCRIBE TABLE default.events"), "default") == "events"
    assert describe_target(lex("SHOW COLUMNS FROM `runs`"), "default") == "runs"
    assert describe_target(lex("SHOW FIELDS IN alerts FROM default"), "default") == "alerts"
    assert describe_target(lex("SELECT 1"), "default") is None
    for q in ("SHOW TABLES", "DESCRIBE system.tables", "SHOW COLUMNS FROM tables FROM system",
              "DESCRIBE events, runs", "DESCRIBE (SELECT 1)"):
        with pytest.raises(SqlRejected):
            describe_target(lex(q), "default")
    assert aggregate_hint("s", "AggregateFunction(uniq, String)").startswith(
        "aggregate state: read it with uniqMerge(s)")
    assert aggregate_hint("x", "UInt64") == ""
