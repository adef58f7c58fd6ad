"""docs/tables.md is in sync with the migrations: applied to the session chDB by the sink's own
runner, every table's columns and types are exactly what the page lists, in order, every view
and internal table is named, and the page names nothing that does not exist."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentstream.sink.storage import apply_migrations

DOC = Path(__file__).resolve().parents[3] / "docs" / "tables.md"
HEADING = re.compile(r"^### `([a-z0-9_]+)`\s*$")
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| `([^`]+)` \| (.+) \|\s*$")
VIEW_ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (materialized view|Null table) \| (.+) \|\s*$")


def documented() -> tuple[dict[str, list[tuple[str, str, str]]], dict[str, str]]:
    tables: dict[str, list[tuple[str, str, str]]] = {}
    views: dict[str, str] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if m := HEADING.match(line):
            current = m.group(1)
            tables[current] = []
        elif line.startswith("## "):
            current = None
        elif current and (m := ROW.match(line)):
            tables[current].append(m.groups())
        elif m := VIEW_ROW.match(line):
            views[m.group(1)] = m.group(2)
    return tables, views


@pytest.fixture(scope="module")
def ch(chdb_client):
    apply_migrations(chdb_client)
    return chdb_client


def test_every_table_and_column_is_documented_with_its_type(ch):
    tables, views = documented()
    actual = {name: engine for name, engine in ch.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()").result_rows}
    real_tables = {n for n, e in actual.items() if e.endswith("MergeTree")}
    assert set(tables) == real_tables, "tables documented vs present differ"
    for name in sorted(real_tables):
        cols = [(r[0], r[1]) for r in ch.query(f"DESCRIBE TABLE {name}").result_rows]
        doc = [(c, t) for c, t, _ in tables[name]]
        missing = [c for c in cols if c not in doc]
        stale = [c for c in doc if c not in cols]
        assert not missing and not stale, f"{name}: undocumented {missing}, documented but absent {stale}"
        assert doc == cols, f"{name}: the page lists the columns in another order than DESCRIBE"
        assert all(len(meaning.strip()) > 3 for _, _, meaning in tables[name])
    others = {n: ("materialized view" if e == "MaterializedView" else "Null table")
              for n, e in actual.items() if n not in real_tables}
    assert views == others


def test_every_aggregate_state_says_how_to_merge_it(ch):
    tables, _ = documented()
    text = DOC.read_text()
    for name, cols in tables.items():
        for col, typ, meaning in cols:
            if typ.startswith("AggregateFunction("):
                fn = re.match(r"AggregateFunction\((\w+)", typ).group(1)
                assert f"{fn}Merge" in meaning and f"{fn}Merge" in text, (name, col)
            m = re.match(r"SimpleAggregateFunction\((\w+),", typ)
            if m:
                assert f"(`{m.group(1)}`" in meaning or f"`{m.group(1)}`" in meaning, (name, col, meaning)


def test_every_tenant_table_names_its_tenant_column(ch):
    tables, _ = documented()
    text = DOC.read_text()
    for name, cols in tables.items():
        section = text.split(f"### `{name}`", 1)[1].split("\n|", 1)[0]
        if any(c == "tenant_id" for c, _, _ in cols):
            assert "Tenant column: `tenant_id`" in section.replace("\n", " "), name
        else:
            assert "no tenant column" in section.replace("\n", " "), name


def test_the_recommended_quantile_is_the_one_the_api_uses():
    from agentstream.api.models import StatsPage
    from agentstream.api.store.stats import QUANTILE_FUNCTION

    assert StatsPage(items=[]).quantile_function == QUANTILE_FUNCTION == "quantileExact"
    assert f"**`{QUANTILE_FUNCTION}`**" in DOC.read_text()


def test_every_sql_example_on_the_page_runs(ch):
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        ch.query("\n".join(line.strip() for line in block.splitlines()))
