"""A token-level first look at analyst SQL: clear 4xx answers before anything is parsed.

Not the wall (that is the syntax-tree rewrite in api/sql/rewrite.py and ClickHouse's own query
tree check in api/sql/tree_check.py): this gives early, specific answers for one statement,
SELECT/WITH/DESCRIBE/SHOW COLUMNS only, and INTO OUTFILE outside string literals.
FORMAT and SETTINGS clauses are left to the tree (rewrite.py refuses them wherever they stand):
whether the word is a clause or a column's name depends on where it stands, and a token look
refused columns and aliases named ``format`` or ``settings``. Its lexer knows every ClickHouse string form, ``$$heredoc$$`` and ``$tag$...$tag$``
included, so a clause cannot hide from it inside something it would misread as code, and a
keyword inside a real string literal stays data.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .sql.rejections import SqlRejected

__all__ = ["SqlRejected", "Token", "lex", "strip_statement", "check_tokens"]


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, quoted, number, punct
    text: str


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|$))
  | (?P<heredoc>\$\$.*?(?:\$\$|\Z)|\$(?P<tag>[A-Za-z_]\w*)\$.*?(?:\$(?P=tag)\$|\Z))
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
        if kind == "tag":
            kind = "heredoc"
        if kind == "heredoc":
            kind = "string"
        if kind in ("ws", "comment"):
            continue
        out.append(Token(kind, m.group()))
    return out


def strip_statement(sql: str) -> str:
    """Drops trailing semicolons and whitespace (one statement may end with ';')."""
    return re.sub(r"[\s;]+\Z", "", sql)


_ALLOWED_FIRST = {"SELECT", "WITH", "DESCRIBE", "DESC", "SHOW"}


def check_tokens(tokens: list[Token]) -> str:
    """Rejects what must never reach ClickHouse; returns the statement's first keyword."""
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
        if w == "INTO" and i + 1 < len(words) and words[i + 1] == "OUTFILE":
            raise SqlRejected("sql_output_forbidden", "INTO OUTFILE is not allowed")
    return first.text.upper()
