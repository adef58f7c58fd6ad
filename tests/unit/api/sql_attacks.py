"""Hostile /v1/sql queries: leak primitives placed on every syntactic path, and escape attempts.

A *probe* is an expression that would hand back, or answer a yes/no question about, another
tenant's row if it ever saw one: a failing cast that quotes the value, throwIf, an integer
division by zero, a count. A *placement* puts a probe somewhere a query can put an expression
(PREWHERE, WHERE, JOIN ON, USING, subqueries, CTEs, UNION, ARRAY JOIN, FINAL, SAMPLE, windows,
lambdas, aliases, qualified and quoted names). Every probe is written against a tenant literal
``{v}`` (the victim) and ``{c}`` (a canary value in the victim's rows), so the same query can be
asked with the victim present and with a tenant that does not exist: the answers must match.
"""
from __future__ import annotations

from dataclasses import dataclass

# ``{q}`` is the table qualifier the placement needs ("" or "b.").
PROBES = {
    "cast_leak": "toUInt8(if({q}tenant_id = '{a}', '1', concat({q}tenant_id, '|', toString({q}{col})))) = 1",
    "throw_oracle": "throwIf({q}tenant_id = '{v}') = 0",
    "throw_canary": "throwIf({q}tenant_id = '{v}' AND positionCaseInsensitive(toString({q}{col}), '{c}') > 0) = 0",
    "div_oracle": "intDiv(1, toUInt8({q}tenant_id != '{v}')) >= 0",
    "date_leak": "toDate(if({q}tenant_id = '{a}', '2020-01-01', {q}tenant_id)) > '1970-01-02'",
    "count_oracle": "{q}tenant_id = '{v}'",
    "like_canary": "toString({q}{col}) LIKE '%{c}%' OR {q}tenant_id = '{v}'",
    "sleep_oracle": "if({q}tenant_id = '{v}', sleep(0.5), 0) = 0",
}

PLACEMENTS = {
    "where": "SELECT count() FROM {t} WHERE {p}",
    "prewhere": "SELECT count() FROM {t} PREWHERE {p}",
    "prewhere_and_where": "SELECT count() FROM {t} AS x PREWHERE {p} WHERE 1 = 1",
    "where_and_cheap": "SELECT count() FROM {t} WHERE tenant_id != '' AND {p}",
    "where_column_first": "SELECT count() FROM {t} WHERE {col} != '' AND {p}",
    "where_or": "SELECT count() FROM {t} WHERE {p} OR {col} = 'none'",
    # A cheap condition on a small column first: ClickHouse's optimizer moves such a condition to
    # PREWHERE, and with it the probe, ahead of a WHERE-based tenant filter (it leaked that way).
    "where_small_column_first": "SELECT count() FROM {t} WHERE agent_id != '' AND {p}",
    "where_small_column_eq": "SELECT count() FROM {t} WHERE agent_id = agent_id AND {p}",
    "where_two_columns": "SELECT count() FROM {t} WHERE {col} != '' AND tenant_id != '' AND {p}",
    "final": "SELECT count() FROM {t} FINAL WHERE {p}",
    "final_prewhere": "SELECT count() FROM {t} FINAL PREWHERE {p}",
    "sample": "SELECT count() FROM {t} SAMPLE 1 / 2 WHERE {p}",
    "join_on": "SELECT count() FROM {t} AS a INNER JOIN {t} AS b ON a.tenant_id = b.tenant_id AND {pb}",
    "left_join_on": "SELECT count() FROM {t} AS a LEFT JOIN {t} AS b ON {pb}",
    "cross_join": "SELECT count() FROM {t} AS a, {t} AS b WHERE {pb}",
    "using": "SELECT count() FROM {t} AS a JOIN {t} AS b USING (tenant_id) WHERE {p}",
    "subquery": "SELECT count() FROM (SELECT * FROM {t} WHERE {p})",
    "subquery_prewhere": "SELECT count() FROM (SELECT * FROM {t} PREWHERE {p}) AS s",
    "cte": "WITH s AS (SELECT * FROM {t} WHERE {p}) SELECT count() FROM s",
    "cte_shadowing": "WITH {t} AS (SELECT * FROM {t} WHERE {p}) SELECT count() FROM {t}",
    "union": "SELECT count() FROM {t} WHERE {p} UNION ALL SELECT count() FROM {t} WHERE 1",
    "union_distinct": "SELECT 1 FROM {t} UNION DISTINCT SELECT 2 FROM {t} WHERE {p}",
    "in_subquery": "SELECT count() FROM {t} WHERE 1 IN (SELECT 1 FROM {t} WHERE {p})",
    "exists": "SELECT count() FROM {t} WHERE EXISTS (SELECT 1 FROM {t} WHERE {p})",
    "scalar_subquery": "SELECT (SELECT count() FROM {t} WHERE {p}) AS n",
    "array_join": "SELECT count() FROM {t} ARRAY JOIN [1, 2] AS n WHERE {p}",
    "array_join_expr": "SELECT count() FROM {t} ARRAY JOIN [toUInt8({p})] AS n",
    "window": "SELECT count() OVER (PARTITION BY {p}) AS w FROM {t} ORDER BY w LIMIT 1",
    "window_order": "SELECT max(n) FROM (SELECT row_number() OVER (ORDER BY {p}) AS n FROM {t})",
    "lambda": "SELECT sum(length(arrayFilter(x -> {p}, [1]))) FROM {t}",
    "select_alias": "SELECT {p} AS z FROM {t} ORDER BY z LIMIT 1",
    "alias_reuse": "SELECT ({p}) AS z, count() FROM {t} WHERE z GROUP BY z",
    "group_by": "SELECT count() FROM {t} GROUP BY {p} ORDER BY 1",
    "having": "SELECT count() FROM {t} HAVING max({p}) = 1",
    "order_by": "SELECT 1 FROM {t} ORDER BY {p} LIMIT 1",
    "count_if": "SELECT countIf({p}) FROM {t}",
    "qualified_db": "SELECT count() FROM default.{t} WHERE {p}",
    "double_quoted": 'SELECT count() FROM "{t}" WHERE {p}',
    "backquoted_db": "SELECT count() FROM `default`.`{t}` AS x WHERE {p}",
    "column_qualified": "SELECT count() FROM {t} AS x WHERE {px}",
    "nested_subqueries": "SELECT count() FROM (SELECT * FROM (SELECT * FROM {t}) WHERE {p})",
    "with_scalar": "WITH (SELECT count() FROM {t} WHERE {p}) AS n SELECT n",
    "parenthesized_from": "SELECT count() FROM ({t}) WHERE {p}",
    "limit_by": "SELECT count() FROM (SELECT * FROM {t} WHERE {p} LIMIT 1 BY tenant_id)",
    "global_in": "SELECT count() FROM {t} WHERE 1 GLOBAL IN (SELECT 1 FROM {t} WHERE {p})",
    "semi_join": "SELECT count() FROM {t} AS a LEFT SEMI JOIN {t} AS b ON a.tenant_id = b.tenant_id AND {pb}",
    "anti_join": "SELECT count() FROM {t} AS a LEFT ANTI JOIN {t} AS b ON a.tenant_id = b.tenant_id AND {pb}",
    "any_join": "SELECT count() FROM {t} AS a ANY INNER JOIN {t} AS b ON a.tenant_id = b.tenant_id AND {pb}",
    "intersect": "SELECT 1 FROM {t} WHERE {p} INTERSECT SELECT 1 FROM {t}",
    "except": "SELECT 1 FROM {t} EXCEPT SELECT 1 FROM {t} WHERE NOT ({p})",
    "qualify": "SELECT tenant_id FROM {t} QUALIFY max(toUInt8({p})) OVER () = 1 LIMIT 1",
    "window_frame": "SELECT sum(toUInt8({p})) OVER (ORDER BY tenant_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM {t} LIMIT 1",
    "nested_lambda": "SELECT sum(length(arrayMap(x -> arrayFilter(y -> {p}, [x]), [1]))) FROM {t}",
    "array_join_select": "SELECT count() FROM (SELECT arrayJoin([toUInt8({p})]) AS j FROM {t})",
    "scalar_cte_alias": "WITH '{v}' AS victim SELECT count() FROM {t} WHERE tenant_id = victim OR {p}",
    "tuple_untuple": "SELECT count() FROM {t} WHERE tupleElement(tuple({p}), 1)",
    "spaced_qualified": "SELECT count() FROM default . {t} WHERE {p}",
    "alias_final_prewhere": "SELECT count() FROM {t} AS {t} FINAL PREWHERE {p}",
    "having_subquery": "SELECT count() AS n FROM {t} HAVING n >= (SELECT count() FROM {t} WHERE {p})",
    # A value named like the table: ClickHouse's FROM still reads the table; the rewrite took it
    # for a CTE and left it unscoped (found by a probe: another tenant's values, bit by bit).
    "value_named_like_table": "WITH 1 AS {t} SELECT (SELECT count() FROM {t} WHERE {p}) AS n",
    "subquery_value_named_like_table": "WITH (SELECT 1) AS {t} SELECT (SELECT count() FROM {t} WHERE {p}) AS n",
    "nested_value_named_like_table": "SELECT (WITH 1 AS {t} SELECT (SELECT count() FROM {t} WHERE {p})) AS n",
    "value_named_like_table_in_where": "WITH 1 AS {t} SELECT 1 WHERE (SELECT count() FROM {t} WHERE {p}) >= 0",
    # sqlglot reads the FROM of a subquery under ARRAY JOIN as a column: it went unscoped.
    "array_join_subquery": "SELECT count() FROM {t} ARRAY JOIN (SELECT groupArray(toUInt8({p})) FROM {t}) AS x",
    "left_array_join_subquery": "SELECT count() FROM {t} LEFT ARRAY JOIN [1] AS y, "
                                "(SELECT groupArray(toUInt8({p})) FROM {t}) AS x",
}


@dataclass(frozen=True)
class Probe:
    name: str
    sql: str


def place(placement: str, probe: str, table: str, column: str, attacker: str, victim: str,
          canary: str) -> str:
    def p(q: str) -> str:
        return PROBES[probe].format(q=q, col=column, a=attacker, v=victim, c=canary)

    return PLACEMENTS[placement].format(t=table, p=p(""), pb=p("b."), px=p("x."), col=column, v=victim)


_EVERY_PLACEMENT = ("cast_leak", "throw_canary", "throw_oracle")
_FIRST_TABLE = _EVERY_PLACEMENT[:2]
_SOME_PLACEMENTS = ("where", "prewhere", "join_on", "subquery", "cte", "window", "lambda", "final")


def corpus(tables: dict[str, str], attacker: str, victim: str, canary: str) -> list[Probe]:
    """``tables`` maps each readable table to a column holding the canary. The first table gets
    every placement with the two sharpest probes and the other probes at the main placements;
    every other table gets every placement with one of three probes (alternating)."""
    out = []
    names = sorted(tables)

    def add(t: str, placement: str, probe: str) -> None:
        out.append(Probe(f"{t}:{placement}:{probe}",
                         place(placement, probe, t, tables[t], attacker, victim, canary)))

    for i, t in enumerate(names):
        for j, placement in enumerate(PLACEMENTS):
            if i == 0:
                for probe in _FIRST_TABLE:
                    add(t, placement, probe)
            else:
                add(t, placement, _EVERY_PLACEMENT[(i + j) % 3])
        if i == 0:
            for placement in _SOME_PLACEMENTS:
                for probe in PROBES:
                    if probe not in _FIRST_TABLE:
                        add(t, placement, probe)
    return out


# Escape attempts that must be refused outright (a 4xx, whatever the victim holds).
ESCAPES = [
    "SELECT * FROM system.tables",
    "SELECT * FROM system.parts",
    "SELECT * FROM system.query_log",
    "SELECT * FROM system.one, system.numbers",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM INFORMATION_SCHEMA.COLUMNS",
    "SELECT * FROM runs_mv",
    "SELECT * FROM events_avro_staging",
    "SELECT * FROM schema_migrations",
    "SELECT * FROM sink_batches",
    "SELECT * FROM other_db.events",
    "SELECT count() FROM events WHERE (tenant_id, ts) IN events",
    "SELECT count() FROM events WHERE run_id IN alerts",
    "SELECT count() FROM events WHERE run_id IN (alerts)",
    # ClickHouse builds an ``IN <table>`` set while analysing the query, before the tree check.
    "SELECT (SELECT throwIf('UTC' IN system.time_zones))",
    "SELECT 0 IN system.one",
    "SELECT x FROM events ARRAY JOIN (SELECT groupArray(1) FROM events) AS x",
    "WITH 1 AS sink_batches SELECT (SELECT count() FROM sink_batches)",
    "WITH 1 AS schema_migrations SELECT (SELECT count() FROM schema_migrations)",
    "SELECT * FROM view(SELECT * FROM default.events)",
    "SELECT * FROM merge('default', '^events$')",
    "SELECT * FROM remote('127.0.0.1', default.events)",
    "SELECT * FROM cluster('default', default.events)",
    "SELECT * FROM numbers(3)",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV')",
    "SELECT * FROM s3('http://127.0.0.1:9/x', 'CSV')",
    "SELECT * FROM input('x String')",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM mergeTreeIndex('default', 'events')",
    "SELECT * FROM events AS e JOIN system.tables AS t ON 1",
    "SELECT (SELECT groupArray(name) FROM system.tables)",
    "SELECT joinGet('default.events', 'run_id', 1)",
    "SELECT dictGet('d', 'x', toUInt64(1))",
    "SELECT hasColumnInTable('default', 'events', 'tenant_id')",
    "SELECT file('/etc/passwd')",
    "SELECT hostName()",
    "SELECT fullHostName()",
    "SELECT FQDN()",
    "SELECT version()",
    "SELECT uptime()",
    "SELECT getMacro('shard')",
    "SELECT currentDatabase()",
    "SELECT currentUser()",
    "SELECT getSetting('readonly')",
    "SELECT tcpPort()",
    "SELECT buildId()",
    "SELECT serverUUID()",
    "SELECT * FROM events SETTINGS readonly = 0",
    "SELECT * FROM (SELECT * FROM events SETTINGS additional_table_filters = {}) ",
    "SELECT $$x$$ SETTINGS readonly = 0",
    "SELECT $t$x$t$ SETTINGS readonly = 0",
    "SELECT 1 FORMAT TabSeparated",
    "SELECT * FROM (SELECT 1 FORMAT JSON)",
    "SELECT 1 INTO OUTFILE '/tmp/agentstream-pwn'",
    "SELECT 1; SELECT * FROM system.tables",
    "SELECT 1 /* ; */ ; DROP TABLE events",
    "DROP TABLE events",
    "INSERT INTO events (tenant_id) VALUES ('x')",
    "ALTER TABLE events DELETE WHERE 1",
    "TRUNCATE TABLE alerts",
    "CREATE TABLE pwn ENGINE = Memory AS SELECT * FROM events",
    "SYSTEM FLUSH LOGS",
    "SET readonly = 0",
    "SHOW TABLES",
    "SHOW CREATE TABLE events",
    "DESCRIBE system.tables",
    "SHOW COLUMNS FROM tables FROM system",
    "EXPLAIN SELECT * FROM events",
    "KILL QUERY WHERE 1",
    "SELECT * FROM events WHERE tenant_id = {agentstream_tenant:String}",
    "SELECT * FROM events e FINAL SAMPLE 1/2 OFFSET 1/2",
    "SELECT * FROM `default.events`",
    "SELECT * FROM default.`events` AS e, `system`.`one` AS o, `system`.tables AS t",
    "SELECT * FROM events WHERE run_id GLOBAL IN alerts",
    "SELECT * FROM events AS e PASTE JOIN system.tables AS t",
    "SELECT * FROM events ASOF JOIN system.parts AS p ON 1 = 1 AND e.ts >= p.modification_time",
    "SELECT * FROM events WHERE (SELECT count() FROM system.tables) > 0",
    "WITH (SELECT groupArray(name) FROM system.tables) AS t SELECT t",
    "SELECT * FROM events UNION ALL SELECT * FROM system.tables",
    "SELECT * FROM loop(events)",
    "SELECT * FROM generateRandom('a String')",
    "SELECT * FROM dictionary('d')",
    "SELECT * FROM events -- comment\n SETTINGS readonly = 0",
    "SELECT * FROM events /* SETTINGS */ SETTINGS readonly = 0",
    "SELECT * FROM events WHERE 1 = 1 FORMAT Native",
    "SELECT getServerSetting('path')",
    "SELECT filesystemCapacity()",
    "SELECT __getScalar('x')",
    "SELECT dictHas('d', 1)",
    "SELECT joinGetOrNull('default.events', 'run_id', 1)",
    # a line break in a name would forge lines of ClickHouse's EXPLAIN output
    "SELECT 1 AS `x\n    JOIN TREE\n      TABLE id: 9, table_name: default.events`",
    "SELECT count() FROM events AS `e\nPREWHERE`",
    # IN in call form reads its second argument as a table, unscoped, while the query is analysed
    "SELECT (SELECT throwIf(globalIn('UTC', system.time_zones)))",
    "SELECT count() FROM events WHERE globalIn(run_id, runs)",
    "SELECT count() FROM events WHERE NOTNULLIN(run_id, alerts)",
    "SELECT toString(`system`.`one`)",
    "SELECT currentQueryID()",
    "SELECT logTrace('x')",
]
