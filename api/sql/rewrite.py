"""Scopes analyst SQL to one tenant by rewriting its syntax tree (the first wall of /v1/sql).

The caller's text is parsed with sqlglot's ClickHouse dialect and only SQL generated from the
rewritten tree is ever executed, so what runs is exactly what was checked: a clause the parser
did not understand is a parse error (rejected), never text passed through.

Every table reference becomes ``(SELECT * FROM db.t PREWHERE tenant_id = {agentstream_tenant:String})``
with the tenant bound as a query parameter. PREWHERE is the first read step of a MergeTree scan:
no other column of another tenant's row is read, and every expression of the caller's (WHERE,
JOIN ON, a pushed-down filter, a function that throws) runs above that subquery. The caller's
own PREWHERE cannot stay (ClickHouse allows it on tables only), so it moves into WHERE.
FINAL and SAMPLE move into the subquery, which is where ClickHouse accepts them, ``SAMPLE k OFFSET m``
whole: sqlglot reads its OFFSET as the SELECT's row offset, a different query.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from .functions import check_function_name
from .rejections import SqlRejected, forbidden_table

TENANT_PARAM = "agentstream_tenant"
DIALECT = "clickhouse"

# Statement kinds that are not a query. Checked on every node, so a nested one is caught too.
_NOT_QUERY = tuple(getattr(exp, n) for n in (
    "Command", "Insert", "Create", "Drop", "Alter", "Delete", "Update", "Merge", "Set", "Use",
    "Describe", "Show", "Pragma", "TruncateTable", "Kill", "Transaction", "Commit", "Rollback",
    "Cache", "Uncache", "Refresh", "Analyze", "Grant", "Revoke", "Copy", "Attach", "Detach",
    "Export", "LoadData",
) if hasattr(exp, n))
_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery)
# What a FROM may read: a table (a table function is refused with the tables), FINAL on one,
# a subquery.
_SOURCES = (exp.Table, exp.Final, exp.Subquery)
# Arguments of a table reference the rewrite carries into the subquery or keeps on it. Any other
# (time travel, hints, pivots, partitions ...) is refused rather than guessed at.
_TABLE_ARGS = {"this", "db", "catalog", "alias", "sample"}


@dataclass(frozen=True)
class ScopedQuery:
    sql: str  # generated from the rewritten tree: the only text that reaches ClickHouse
    tables: tuple[str, ...]  # the readable tables it reads, each through the tenant subquery
    # Items of the outermost projection, a ``*`` counted once: a lower bound on the result's
    # columns, known before ClickHouse expands anything.
    width: int = 0


def parse_one(sql: str) -> exp.Expression:
    try:
        trees = [t for t in sqlglot.parse(sql, read=DIALECT) if isinstance(t, exp.Expression)]
    except (ParseError, TokenError) as exc:
        raise SqlRejected("sql_syntax", f"the query could not be parsed: {_parse_message(exc)}") from exc
    if not trees:
        raise SqlRejected("sql_empty", "the query is empty")
    if len(trees) > 1:
        raise SqlRejected("sql_multiple_statements", "only one statement is allowed per request")
    return trees[0]


def _parse_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors:
        e = errors[0]
        return f"{e.get('description', 'invalid syntax')} at line {e.get('line')}, column {e.get('col')}"
    return str(exc).split("\n")[0][:200]


# Databases every ClickHouse has, whether or not the catalog listed them.
BUILTIN_DATABASES = frozenset({"system", "information_schema"})


def scope_query(sql: str, readable: Collection[str], database: str,
                databases: Collection[str] = ()) -> ScopedQuery:
    """The caller's query, rewritten so every table it reads is the tenant's rows only.
    ``databases``: the server's database names (a name qualified by one is a table)."""
    try:
        return _scope_query(sql, readable, database, databases)
    except RecursionError:
        # sqlglot parses and prints recursively: a few thousand nested brackets, NOTs or
        # subqueries (well under the length limit) exhausted the stack and answered 500.
        raise SqlRejected("sql_too_deep", "the query nests too deeply (brackets, NOTs, function calls or "
                          "subqueries inside each other); flatten it") from None


def _scope_query(sql: str, readable: Collection[str], database: str,
                 databases: Collection[str]) -> ScopedQuery:
    tree = parse_one(sql)
    if not isinstance(tree, _QUERY_ROOTS):
        kind = type(tree).__name__.upper()
        raise SqlRejected("sql_not_select",
                          f"{kind} statements are not allowed: /v1/sql runs read-only SELECT queries",
                          {"statement": kind})
    _check_nodes(tree, database, {d.lower() for d in (*databases, *BUILTIN_DATABASES, database)})
    _keep_sample_offsets(tree, sql)
    _relocate_prewhere(tree)
    _attach_final_sample(tree)
    read: list[str] = []
    # Collected first: replacing while walking would revisit the subqueries we insert.
    for table in list(tree.find_all(exp.Table)):
        if _is_cte_reference(table):
            continue  # its body's tables are rewritten where they stand
        read.append(_scope_table(table, readable, database))
    return ScopedQuery(tree.sql(dialect=DIALECT), tuple(read), _width(tree))


def _width(tree: exp.Expression) -> int:
    node = tree
    while isinstance(node, (exp.SetOperation, exp.Subquery)):
        node = node.this  # a set operation's columns are its first query's
    return len(node.expressions) if isinstance(node, exp.Select) else 0


def _is_cte_reference(table: exp.Table) -> bool:
    """Whether ``table`` names a CTE in scope, as ClickHouse resolves names: the innermost WITH
    first; a CTE body sees the CTEs listed before it, not itself (``WITH events AS (SELECT *
    FROM events ...)`` reads the table). Misjudging fails closed: the query-tree check then
    finds a table read outside the tenant subquery."""
    if table.args.get("db") or table.args.get("catalog") or not isinstance(table.this, exp.Identifier):
        return False
    passed: set[int] = set()  # ids of the nodes between the table and the current ancestor
    node: exp.Expr | None = table
    while node is not None:
        passed.add(id(node))
        with_ = node.args.get("with_") if isinstance(node, _QUERY_ROOTS) else None
        if with_ is not None:
            ctes = list(with_.expressions)
            inside = next((i for i, c in enumerate(ctes) if id(c) in passed), None)
            visible = ctes[:inside] if inside is not None else ctes
            # ``WITH 1 AS events`` (or ``WITH (SELECT ...) AS events``) names a value, not a
            # table: ClickHouse reads ``FROM events`` as the table. Taken for a CTE, the
            # table went unscoped and another tenant's rows answered a scalar subquery.
            if any(c.alias_or_name == table.name and not c.args.get("scalar") for c in visible):
                return True
        node = node.parent
    return False


def _check_nodes(tree: exp.Expression, database: str, databases: set[str]) -> None:
    for node in tree.walk():
        if isinstance(node, _NOT_QUERY):
            raise SqlRejected("sql_not_select", "only SELECT queries run through /v1/sql")
        if node.args.get("settings"):
            raise SqlRejected("sql_settings_forbidden",
                              "SETTINGS clauses are not allowed; limits are set by the server")
        if node.args.get("format") is not None and isinstance(node, _QUERY_ROOTS):
            raise SqlRejected("sql_output_forbidden",
                              "FORMAT clauses are not allowed; results are returned as JSON")
        if isinstance(node, exp.Into) or node.args.get("into") is not None:
            raise SqlRejected("sql_output_forbidden", "INTO is not allowed")
        if isinstance(node, exp.Identifier) and any(ord(ch) < 32 or ord(ch) == 127 for ch in node.name):
            # ClickHouse prints names raw in EXPLAIN output: a line break in one would forge
            # lines of the query tree the second wall reads.
            raise SqlRejected("sql_unsupported", "names with control characters (line breaks, "
                              "tabs ...) are not supported")
        if isinstance(node, exp.From) and not isinstance(node.this, _SOURCES):
            # e.g. ``ARRAY JOIN (SELECT ... FROM events)``: sqlglot reads that FROM's table as a
            # column, so it was never scoped. Only a table or a subquery is a source.
            raise SqlRejected("sql_unsupported", f"FROM {node.this.sql(DIALECT)[:80]} is not read as a table "
                              "here; name a table, or a subquery in brackets")
        if isinstance(node, exp.In) and (node.args.get("field") is not None or (
                len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Column))):
            # ClickHouse reads ``x IN name`` and ``x IN (name)`` as the table ``name`` (sqlglot: a
            # column), and builds that set while analysing the query, before any check of ours.
            raise SqlRejected("sql_unsupported", "IN takes a list of values or a subquery: write "
                              "x IN (SELECT ... FROM t), not x IN t")
        if isinstance(node, exp.Placeholder):
            raise SqlRejected("sql_parameters", "query parameters ({name:Type}) are not supported")
        if isinstance(node, exp.Func) and not isinstance(node.parent, exp.Table):
            # (a function in table position is a table function: refused with the tables)
            check_function_name(_function_name(node))
        if isinstance(node, exp.Column):
            _unqualify_database(node, database, databases)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name
    return node.sql_name()


def _unqualify_database(col: exp.Column, database: str, databases: set[str]) -> None:
    # ``default.events.run_id`` names the table, which is now a subquery aliased ``events``.
    if col.args.get("catalog") is not None:
        raise SqlRejected("sql_unsupported", "four-part column names are not supported")
    db = col.args.get("db")
    if db is None:
        _refuse_table_name(col, database, databases)
        return
    if db.name != database:
        raise forbidden_table(f"{db.name}.{col.table}")
    col.set("db", None)


def _refuse_table_name(col: exp.Column, database: str, databases: set[str]) -> None:
    """``system.one`` where a value belongs is a column to sqlglot and may be a table to ClickHouse
    (the second argument of an IN function, an IN's right side): never scoped, read while the query
    is analysed. Refused whatever reads it, so no future such position can open that door."""
    table = col.args.get("table")
    if table is None or table.name.lower() not in databases or col.find_ancestor(exp.Table):
        return  # (inside a table reference: a table function's argument, refused with it)
    name = f"{table.name}.{col.name}"
    if table.name.lower() != database.lower():
        raise forbidden_table(name)
    raise SqlRejected("sql_unsupported", f"{name} names a table where a value belongs; read it in a "
                      f"subquery: (SELECT ... FROM {col.name}), or alias the table if {table.name} is "
                      "meant as one", {"name": name})


def _selects_with(tree: exp.Expression, arg: str):
    """(select, its ``arg``) for every SELECT in the tree that has it; listed before any change."""
    for select in list(tree.find_all(exp.Select)):
        value = select.args.get(arg)
        if value is not None:
            yield select, value


def _relocate_prewhere(tree: exp.Expression) -> None:
    for select, pre in _selects_with(tree, "prewhere"):
        where = select.args.get("where")
        cond: exp.Expr = exp.paren(pre.this.copy())
        if where is not None:
            cond = exp.and_(cond, exp.paren(where.this.copy()))
        select.set("prewhere", None)
        select.set("where", exp.Where(this=cond))


def _positions(node: exp.Expression) -> list[int]:
    """Character offsets in the caller's text of the tokens ``node`` was parsed from (start and
    end of each leaf that kept them)."""
    out: list[int] = []
    for n in node.walk():
        meta = n._meta or {}
        if "start" in meta:
            out += [meta["start"], meta["end"]]
    return out


def _is_ratio(node: exp.Expression | None) -> bool:
    """ClickHouse's sample ratio: a number, or a number divided by a number, nothing else."""
    def number(n: exp.Expression) -> bool:
        return isinstance(n, exp.Literal) and not n.is_string
    return node is not None and (number(node) or (
        isinstance(node, exp.Div) and number(node.this) and number(node.expression)))


def _keep_sample_offsets(tree: exp.Expression, sql: str) -> None:
    """``SAMPLE k OFFSET m`` is one clause to ClickHouse (the slice of the sample space from m);
    sqlglot parses the OFFSET as the SELECT's row offset, so it goes back into the sample here,
    rendered from the two checked ratios. An OFFSET ClickHouse would take for the sample's that
    cannot be put back is refused, never run as something else."""
    samples = list(tree.find_all(exp.TableSample))
    if not samples:
        return
    tokens = sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)
    for sample in samples:
        spots = _positions(sample)
        if not spots:
            continue
        i = next((i for i, t in enumerate(tokens) if t.start > max(spots)), None)
        if i is None or tokens[i].token_type != TokenType.OFFSET:
            continue  # an OFFSET elsewhere is the row offset ClickHouse reads too
        select = sample.find_ancestor(exp.Select)
        offset = select.args.get("offset") if select is not None else None
        ratio = offset.expression if offset is not None else None
        size = sample.args.get("size")
        others = {k for k, v in sample.args.items() if v and k != "size"}
        start = min(_positions(ratio), default=-1) if ratio is not None else -1
        if (select is None or ratio is None or size is None or not _is_ratio(ratio) or not _is_ratio(size)
                or others or i + 1 >= len(tokens) or start != tokens[i + 1].start):
            raise SqlRejected("sql_unsupported", "SAMPLE ... OFFSET takes two ratios such as "
                              "SAMPLE 1/10 OFFSET 1/2 (numbers, or a number divided by a number)",
                              {"clause": "SAMPLE OFFSET"})
        select.set("offset", None)
        # sqlglot has no node for a sample offset; both ratios are checked number literals.
        sample.set("size", exp.var(f"{size.sql(dialect=DIALECT)} OFFSET {ratio.sql(dialect=DIALECT)}"))


def _attach_final_sample(tree: exp.Expression) -> None:
    # ``FROM t FINAL SAMPLE n``: sqlglot hangs the SAMPLE on the SELECT; it belongs to t.
    for select, sample in _selects_with(tree, "sample"):
        source = select.args.get("from_")
        table = source.this if source is not None else None
        if isinstance(table, exp.Final):
            table = table.this
        if not isinstance(table, exp.Table) or table.args.get("sample") is not None:
            raise SqlRejected("sql_unsupported", "SAMPLE applies to the table in FROM only")
        select.set("sample", None)
        table.set("sample", sample)


def _scope_table(table: exp.Table, readable: Collection[str], database: str) -> str:
    if not isinstance(table.this, exp.Identifier):
        # a function sqlglot knows by type (generate_series, format) has no .name: its SQL name
        name = (table.this.name or table.this.sql_name().lower()) if isinstance(table.this, exp.Func) \
            else table.this.sql(DIALECT)
        raise SqlRejected("sql_table_function",
                          f"table function {name}() is not allowed; query the tables {sorted(readable)}",
                          {"function": name})
    extra = {k for k, v in table.args.items() if v and k not in _TABLE_ARGS}
    if extra:
        raise SqlRejected("sql_unsupported",
                          f"table modifiers {sorted(extra)} are not supported on {table.name}")
    db = table.args.get("db")
    if table.args.get("catalog") is not None or (db is not None and db.name != database):
        raise forbidden_table(table.sql(DIALECT), readable)
    if table.name not in readable:
        raise forbidden_table(table.sql(DIALECT), readable)
    parent = table.parent
    final = isinstance(parent, exp.Final)
    target = parent if isinstance(parent, exp.Final) else table
    inner = exp.Table(this=exp.to_identifier(table.name, quoted=True),
                      db=exp.to_identifier(database, quoted=True))
    sample = table.args.get("sample")
    source: exp.Expression = inner
    if final and sample is not None:
        # ClickHouse reads ``t FINAL SAMPLE k``; sqlglot prints a Final around a sampled table as
        # ``t SAMPLE k FINAL`` (a syntax error), so the sample goes on a table around the Final.
        source = exp.Table(this=exp.Final(this=inner), sample=sample.copy())
    elif final:
        source = exp.Final(this=inner)
    elif sample is not None:
        inner.set("sample", sample.copy())
    tenant = exp.Placeholder(this=exp.var(TENANT_PARAM), kind=exp.DataType.build("String", dialect=DIALECT))
    sub = exp.Select(expressions=[exp.Star()], from_=exp.From(this=source),
                     prewhere=exp.PreWhere(this=exp.EQ(this=exp.column("tenant_id", quoted=True),
                                                       expression=tenant)))
    alias = table.args.get("alias")
    alias = alias.copy() if alias is not None else exp.TableAlias(
        this=exp.to_identifier(table.name, quoted=True))
    target.replace(exp.Subquery(this=sub, alias=alias))
    return table.name
