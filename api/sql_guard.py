"""Static checks of analyst SQL for /v1/sql, separate from execution so they are unit-testable.

Defense in depth; the last layer is the one that matters:
1. ``lex`` + ``check_tokens``: one statement, starting with SELECT/WITH, no SETTINGS/FORMAT/
   INTO OUTFILE (clear 4xx before ClickHouse sees anything).
2. ``check_ast`` over ClickHouse's own ``EXPLAIN AST`` of the query: no table functions, no
   denied functions, no tables outside the tenant-scoped set, no other databases.
3. At execution (store/sql.py): ``readonly=1`` (no writes, no SETTINGS overrides, no table
   functions) and ``additional_table_filters`` giving EVERY table the server knows a filter:
   tenant tables ``tenant_id = <caller>``, everything else ``0``. That is applied at the storage
   read, inside subqueries, joins, views and IN, so a query that slipped past 1 and 2 still
   reads only the caller's rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ApiError


class SqlRejected(ApiError):
    def __init__(self, code: str, message: str, details: object = None) -> None:
        super().__init__(400, code, message, details)


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, quoted, number, punct
    text: str


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|$))
  | (?P<string>'(?:[^'\\]|\\.|'')*'?)
  | (?P<quoted>"(?:[^"\\]|\\.|"")*"?|`(?:[^`\\]|\\.|``)*`?)
  | (?P<number>\d[\w.]*)
  | (?P<word>[A-Za-z_][\w$]*)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def lex(sql: str) -> list[Token]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "punct"
        if kind in ("ws", "comment"):
            continue
        out.append(Token(kind, m.group()))
    return out


def strip_statement(sql: str) -> str:
    """Drops trailing semicolons and whitespace (one statement may end with ';')."""
    return re.sub(r"[\s;]+\Z", "", sql)


_ALLOWED_FIRST = {"SELECT", "WITH"}


def check_tokens(tokens: list[Token]) -> set[str]:
    """Rejects what must never reach ClickHouse; returns CTE-like names (``name AS (``)."""
    if not tokens:
        raise SqlRejected("sql_empty", "the query is empty")
    if any(t.kind == "punct" and t.text == ";" for t in tokens):
        raise SqlRejected("sql_multiple_statements", "only one statement is allowed per request")
    first = next((t for t in tokens if not (t.kind == "punct" and t.text == "(")), tokens[0])
    if first.kind != "word" or first.text.upper() not in _ALLOWED_FIRST:
        raise SqlRejected(
            "sql_not_select",
            f"{first.text.upper()} statements are not allowed: /v1/sql runs read-only SELECT queries",
            {"statement": first.text.upper()},
        )
    words = [t.text.upper() if t.kind == "word" else None for t in tokens]
    for i, w in enumerate(words):
        if w == "SETTINGS":
            raise SqlRejected("sql_settings_forbidden",
                              "SETTINGS clauses are not allowed; limits are set by the server")
        if w == "INTO" and i + 1 < len(words) and words[i + 1] == "OUTFILE":
            raise SqlRejected("sql_output_forbidden", "INTO OUTFILE is not allowed")
        if w == "FORMAT" and i + 1 < len(tokens) and tokens[i + 1].kind == "word" and (
            i + 2 >= len(tokens) or tokens[i + 2].text != "("
        ):
            raise SqlRejected("sql_output_forbidden",
                              "FORMAT clauses are not allowed; results are returned as JSON")
    ctes = set()
    for i in range(len(tokens) - 2):
        if words[i + 1] == "AS" and tokens[i + 2].text == "(" and tokens[i].kind in ("word", "quoted"):
            ctes.add(tokens[i].text.strip('`"'))
    return ctes


# Scalar functions that read outside the query's tables or disclose the host. Table functions
# (file, url, remote, s3, numbers, ...) are rejected wherever they appear as a table.
DENIED_FUNCTIONS = {
    "file", "hascolumnintable", "catboostevaluate", "modelevaluate", "naivebayesclassifier",
    "evalmlmethod", "showcertificate", "getclienthttpheader", "getserversetting", "getsetting",
    "getsettingordefault", "getmacro", "addresstoline", "addresstolinewithinlines",
    "addresstosymbol", "demangle", "trap", "filesystemavailable", "filesystemcapacity",
    "filesystemunreserved", "hostname", "fqdn", "uptime", "serveruuid", "tcpport",
    "getserverport", "displayname", "getoskernelversion", "buildid", "zookeepersessionuptime",
    "globalvariable", "currentprofiles", "currentroles", "enabledroles", "defaultroles",
}
DENIED_PREFIXES = ("dict", "joinget")
FORBIDDEN_NODES = ("Explain", "Insert", "Create", "Alter", "Drop", "Rename", "System",
                   "Optimize", "Kill", "Grant", "Revoke", "Use", "Watch", "Delete", "Update",
                   "Undrop", "Backup", "Check", "Describe", "ShowTables", "Transaction")
SYSTEM_DATABASES = {"system", "information_schema"}


@dataclass
class AstNode:
    kind: str
    arg: str
    parent: "AstNode | None"


def parse_explain_ast(lines: list[str]) -> list[AstNode]:
    """Nodes of ``EXPLAIN AST`` output (one node per line, nesting by one-space indents)."""
    nodes: list[AstNode] = []
    stack: list[tuple[int, AstNode]] = []
    for line in lines:
        depth = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if not body:
            continue
        kind, _, arg = body.partition(" ")
        arg = re.sub(r"\s*\((?:children \d+|alias [^)]*)\)\s*", " ", arg).strip()
        while stack and stack[-1][0] >= depth:
            stack.pop()
        node = AstNode(kind, arg, stack[-1][1] if stack else None)
        nodes.append(node)
        stack.append((depth, node))
    return nodes


def _denied_function(name: str) -> bool:
    low = name.lower()
    return low in DENIED_FUNCTIONS or low.startswith(DENIED_PREFIXES)


def check_ast(nodes: list[AstNode], readable: set[str], ctes: set[str], database: str) -> None:
    """Rejects table functions, denied functions and tables outside ``readable``."""
    for n in nodes:
        # "Set" nodes are the client's own SETTINGS (clickhouse-connect's chDB backend appends
        # them to the query text); the user's SETTINGS keyword was rejected by check_tokens.
        if n.kind.startswith(FORBIDDEN_NODES):
            raise SqlRejected("sql_not_select", f"{n.kind} is not allowed: only SELECT queries run")
        if n.kind == "Function":
            name = n.arg.split(" ")[0]
            if n.parent is not None and n.parent.kind == "TableExpression":
                raise SqlRejected("sql_table_function",
                                  f"table function {name}() is not allowed; query the tables "
                                  f"{sorted(readable)}", {"function": name})
            if _denied_function(name):
                raise SqlRejected("sql_function_forbidden", f"function {name}() is not allowed",
                                  {"function": name})
        if n.kind in ("TableIdentifier", "Identifier"):
            ident = n.arg.split(" ")[0].replace("`", "").replace('"', "")
            db, dot, table = ident.rpartition(".")
            if n.kind == "Identifier":
                # Identifiers are usually columns (alias.column); only a database prefix matters.
                if dot and db.lower() in SYSTEM_DATABASES:
                    raise _forbidden_table(ident, readable)
                continue
            if dot and db != database:
                raise _forbidden_table(ident, readable)
            if table not in readable and table not in ctes:
                raise _forbidden_table(ident, readable)


def _forbidden_table(name: str, readable: set[str]) -> SqlRejected:
    return SqlRejected(
        "sql_forbidden_table",
        f"table {name} is not readable through /v1/sql; readable tables: {sorted(readable)}",
        {"table": name, "readable": sorted(readable)},
    )


def quote_filter_literal(value: str) -> str:
    """A ClickHouse expression equal to ``value`` with no quoting hazards (hex of UTF-8)."""
    return f"unhex('{value.encode('utf-8').hex()}')"


def table_filters(tenant: str, tenant_tables: set[str], other_tables: set[str]) -> str:
    """The ``additional_table_filters`` map: tenant rows only, and nothing from any other table."""
    cond = _escape(f"tenant_id = {quote_filter_literal(tenant)}")
    items = [f"'{_escape(t)}': '{cond}'" for t in sorted(tenant_tables)]
    items += [f"'{_escape(t)}': '0'" for t in sorted(other_tables)]
    return "{" + ", ".join(items) + "}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
