"""``DESCRIBE <table>`` and ``SHOW COLUMNS FROM <table>`` for the tenant's readable tables.

Answered from the table's own definition (``DESCRIBE TABLE db.t`` issued by the API with a
validated name), never by letting the caller's statement reach ClickHouse or system tables.
Aggregate-state columns carry a hint naming the -Merge combinator that reads them.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Collection

from ..sql_guard import Token
from .rejections import SqlRejected, forbidden_table

COLUMNS = [{"name": "name", "type": "String"}, {"name": "type", "type": "String"},
           {"name": "hint", "type": "String"}]


def describe_target(tokens: list[Token], database: str) -> str | None:
    """The table a DESCRIBE / SHOW COLUMNS statement names, or None for any other statement."""
    words = [t.text.upper() if t.kind == "word" else t.text for t in tokens]
    if not words or words[0] not in ("DESCRIBE", "DESC", "SHOW"):
        return None
    if words[0] == "SHOW":
        if len(words) < 3 or words[1] not in ("COLUMNS", "FIELDS") or words[2] not in ("FROM", "IN"):
            raise SqlRejected("sql_not_select", "of the SHOW statements only SHOW COLUMNS FROM "
                              "<table> is supported; /v1/sql otherwise runs SELECT queries")
        rest, db_words = tokens[3:], None
        for i, t in enumerate(rest):
            if t.kind == "word" and t.text.upper() in ("FROM", "IN"):
                rest, db_words = rest[:i], rest[i + 1:]
                break
        name = _name(rest)
        if db_words is not None:
            db = _name(db_words)
            if db != database:
                raise forbidden_table(f"{db}.{name}")
        return name
    rest = tokens[1:]
    if rest and rest[0].kind == "word" and rest[0].text.upper() == "TABLE":
        rest = rest[1:]
    name = _name(rest)
    db, dot, table = name.rpartition(".")
    if dot and db != database:
        raise forbidden_table(name)
    return table if dot else name


def _name(tokens: list[Token]) -> str:
    parts, expect_name = [], True
    for t in tokens:
        if expect_name and t.kind in ("word", "quoted"):
            parts.append(t.text[1:-1] if t.kind == "quoted" else t.text)
            expect_name = False
        elif not expect_name and t.text == ".":
            expect_name = True
        else:
            raise SqlRejected("sql_syntax", "expected DESCRIBE <table> or SHOW COLUMNS FROM <table>")
    if not parts or expect_name or len(parts) > 2:
        raise SqlRejected("sql_syntax", "expected DESCRIBE <table> or SHOW COLUMNS FROM <table>")
    return ".".join(parts)


def aggregate_hint(column: str, ch_type: str) -> str:
    """How to read an aggregate-state column (``AggregateFunction(f(params), T)``), else ''."""
    m = re.match(r"AggregateFunction\((\w+)(\([^)]*\))?,", ch_type)
    if not m:
        return ""
    return f"aggregate state: read it with {m.group(1)}Merge{m.group(2) or ''}({column}) " \
           f"(or finalizeAggregation({column})) in a GROUP BY query"


def describe(table: str, readable: Collection[str], database: str,
             fetch: Callable[[str], list[tuple[Any, ...]]]) -> dict[str, Any]:
    if table not in readable:
        raise forbidden_table(table, readable)
    ident = f"`{database.replace('`', '``')}`.`{table.replace('`', '``')}`"
    rows = [[r[0], r[1], aggregate_hint(r[0], r[1])] for r in fetch(f"DESCRIBE TABLE {ident}")]
    return {"columns": COLUMNS, "rows": rows, "row_count": len(rows), "next_cursor": None,
            "elapsed_ms": 0.0}
