"""Checks ClickHouse's own resolved query tree (``EXPLAIN QUERY TREE``) of the rewritten query.

The rewrite is only as good as the parser's reading of the query. This check asks ClickHouse how
it resolved the text that will run: every table it reads must be the single source of a query
whose PREWHERE is ``tenant_id = <the caller's tenant>`` on that very table. A table the parser
did not see (``x IN events`` names a table in ClickHouse, a column to sqlglot), a table function
or a denied function fails the check, so a disagreement between the two parsers fails closed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .functions import check_function_name
from .rejections import SqlRejected, forbidden_table

# The dummy one-row table behind a SELECT without FROM: it holds no data.
DUMMY_TABLE = "system.one"

_HEAD = re.compile(r"^([A-Z][A-Z_ ]*?)(?: id: (\d+)(?:, (.*))?)?$")
# Names of readable tables are plain identifiers; anything after them (", final: 1") is a flag.
_TABLE_NAME = re.compile(r"(?:^|, )table_name: ([^,\s]+)")
_FUNCTION_NAME = re.compile(r"^function_name: ([^,]+)")
_COLUMN = re.compile(r"^column_name: (.+?), result_type: .*, source_id: (\d+)$")
_CONSTANT = re.compile(r"^constant_value: (.*), constant_value_type: ")


@dataclass
class Node:
    kind: str
    ident: str | None
    attrs: str
    children: list["Node"] = field(default_factory=list)
    parent: "Node | None" = None


def parse_query_tree(lines: list[str]) -> Node:
    """Nodes of ``EXPLAIN QUERY TREE`` output (two-space indents; headers in capitals)."""
    root = Node("ROOT", None, "")
    stack: list[tuple[int, Node]] = [(-1, root)]
    for line in lines:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        m = _HEAD.match(line.strip())
        # Lines that are not headers (projection names and types) are leaves under their section.
        kind, ident, attrs = (m.group(1), m.group(2), m.group(3) or "") if m else ("TEXT", None, line.strip())
        while stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1]
        node = Node(kind, ident, attrs, parent=parent)
        parent.children.append(node)
        stack.append((depth, node))
    return root


def quote_constant(value: str) -> str:
    """How the query tree prints a String constant."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_query_tree(root: Node, tenant: str, readable: set[str], database: str) -> None:
    """Raises unless every table read is a readable table behind the caller's tenant PREWHERE."""
    allowed = {f"{database}.{t}" for t in readable}
    for node in _walk(root):
        if node.kind == "TABLE_FUNCTION":
            raise SqlRejected("sql_table_function", "table functions are not allowed")
        if node.kind == "FUNCTION":
            m = _FUNCTION_NAME.match(node.attrs)
            if m:
                check_function_name(m.group(1), spelled_by_caller=False)
        if node.kind == "TABLE":
            m = _TABLE_NAME.search(node.attrs)
            name = m.group(1) if m else "?"
            if name == DUMMY_TABLE:
                continue
            if name not in allowed or not _tenant_scoped(node, tenant):
                raise forbidden_table(name.partition(".")[2] or name, readable)


def _tenant_scoped(table: Node, tenant: str) -> bool:
    join_tree = table.parent
    query = join_tree.parent if join_tree is not None else None
    if join_tree is None or join_tree.kind != "JOIN TREE" or len(join_tree.children) != 1:
        return False
    if query is None or query.kind != "QUERY":
        return False
    pre = [c for c in query.children if c.kind == "PREWHERE"]
    if len(pre) != 1 or len(pre[0].children) != 1:
        return False
    eq = pre[0].children[0]
    if eq.kind != "FUNCTION" or not eq.attrs.startswith("function_name: equals,"):
        return False
    lists = [a.children[0] for a in eq.children if a.kind == "ARGUMENTS" and len(a.children) == 1]
    args = lists[0].children if len(lists) == 1 and lists[0].kind == "LIST" else []
    if len(args) != 2 or {a.kind for a in args} != {"COLUMN", "CONSTANT"}:
        return False
    col, const = (args[0], args[1]) if args[0].kind == "COLUMN" else (args[1], args[0])
    cm, km = _COLUMN.match(col.attrs), _CONSTANT.match(const.attrs)
    return bool(cm and km and cm.group(1) == "tenant_id" and cm.group(2) == table.ident
                and km.group(1) == quote_constant(tenant))


def result_columns(root: Node) -> list[str]:
    """``name Type`` lines of the outermost query's PROJECTION COLUMNS."""
    query = next((c for c in root.children if c.kind in ("QUERY", "UNION")), None)
    if query is None:
        return []
    section = next((c for c in query.children if c.kind == "PROJECTION COLUMNS"), None)
    return [c.attrs for c in section.children] if section is not None else []


def _walk(node: Node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)
