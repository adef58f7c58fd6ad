"""The 4xx every /v1/sql check raises: a stable code, a message built only from the caller's input."""
from __future__ import annotations

from typing import Collection

from ..errors import ApiError


class SqlRejected(ApiError):
    def __init__(self, code: str, message: str, details: object = None) -> None:
        super().__init__(400, code, message, details)


def forbidden_table(name: str, readable: Collection[str] | None = None) -> SqlRejected:
    readable = sorted(readable or ())
    hint = f"; readable tables: {readable}" if readable else ""
    return SqlRejected("sql_forbidden_table", f"table {name} is not readable through /v1/sql{hint}",
                       {"table": name, "readable": readable})
