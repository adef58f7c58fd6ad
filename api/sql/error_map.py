"""ClickHouse errors of analyst queries as a stable code and a generic message.

ClickHouse's exception texts quote the values they failed on ("Cannot parse string 'x' as
UInt8"), the query, and server details. None of that text is returned: the answer is built from
the numeric error code alone, plus identifiers that occur verbatim in the caller's own query.
So an error answers the same for any row values, and never hands a value back.
"""
from __future__ import annotations

import logging
import re

from ..errors import ApiError

log = logging.getLogger("agentstream.api.sql")

# code -> (api code, message); grouped by what the caller can do about it
_GROUPS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "value": ("sql_value_error",
              "a value could not be converted or is out of range in an expression; use the "
              "*OrNull / *OrZero variants of conversion functions, or guard the expression",
              (6, 25, 26, 27, 32, 38, 41, 69, 70, 72, 76, 130, 131, 190, 321, 407, 441, 457, 1001)),
    "division": ("sql_value_error", "division by zero in an expression; guard the divisor "
                 "(for example nullIf(x, 0)) or use the / operator on Float64",
                 (153,)),
    "throw": ("sql_throw", "throwIf raised an error for a row of the query", (395,)),
    "type": ("sql_type_error", "a function got an argument of the wrong type or count; check "
             "the column types with DESCRIBE <table>",
             (34, 35, 42, 43, 44, 53, 386, 387)),
    "identifier": ("sql_unknown_identifier", "the query names a column, alias or function that "
                   "does not exist here; see DESCRIBE <table>", (16, 46, 47, 10, 36)),
    "structure": ("sql_invalid_query", "the query is not valid: check aggregation (GROUP BY), "
                  "ambiguous or duplicate names, and IN / UNION column counts",
                  (20, 49, 51, 179, 184, 215, 258, 352, 354, 403, 419, 525)),
    "unsupported": ("sql_unsupported", "the query uses a clause this table does not support "
                    "(for example SAMPLE on a table without a sampling key)",
                    (1, 48, 141, 182, 344)),
    "syntax": ("sql_syntax", "ClickHouse could not parse the query", (62,)),
    "readonly": ("sql_not_select", "read-only: /v1/sql runs SELECT queries only", (164,)),
    "table": ("sql_forbidden_table", "the query reads a table that is not readable through /v1/sql",
              (60, 81)),
}
_LIMITS = {158: "rows read", 396: "result rows or bytes", 159: "execution time", 241: "memory",
           160: "execution speed", 307: "bytes read", 394: "execution time"}
UNAVAILABLE_CODES = {209, 210, 202, 999, 1002}
_BY_CODE = {c: (api_code, msg) for api_code, msg, codes in _GROUPS.values() for c in codes}
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]{0,63})`")


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    m = re.match(r"(?:.*?)Code: (\d+)\.", str(exc)[:200])
    return int(m.group(1)) if m else None


def map_sql_error(exc: BaseException, caller_sql: str) -> ApiError:
    code = error_code(exc)
    # Logged server-side in full (an operator may need it); never part of the answer.
    log.info("analyst query failed (code %s): %s", code, str(exc)[:2000])
    if code is None:
        if _is_connection_error(exc):
            return ApiError(503, "clickhouse_unavailable", "ClickHouse is unavailable; retry later")
        return ApiError(400, "sql_result_unsupported",
                        "the result could not be returned as JSON; convert unusual column types "
                        "with toString() or finalizeAggregation()")
    if code in UNAVAILABLE_CODES:
        return ApiError(503, "clickhouse_unavailable", "ClickHouse is unavailable; retry later")
    details: dict[str, object] = {"clickhouse_code": code}
    if code in _LIMITS:
        return ApiError(400, "sql_limit_exceeded",
                        f"the query exceeded the {_LIMITS[code]} limit; narrow it with a time range, "
                        f"LIMIT or fewer columns", details)
    api_code, message = _BY_CODE.get(code, ("sql_error", "ClickHouse rejected the query"))
    if api_code == "sql_unknown_identifier":
        names = _names_from_caller(str(exc), caller_sql)
        if names:
            details["names"] = names
            message += f" ({', '.join(names)})"
    return ApiError(400, api_code, message, details)


def _names_from_caller(text: str, caller_sql: str) -> list[str]:
    # An identifier is echoed only if the caller typed it: it cannot carry a stored value.
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", caller_sql))
    out = []
    for name in _BACKTICKED.findall(text.split("\n")[0][:500]):
        if name in words and name not in out:
            out.append(name)
    return out[:3]


def _is_connection_error(exc: BaseException) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, (OperationalError, ConnectionError, TimeoutError))
