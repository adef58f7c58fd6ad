"""Opaque cursors for keyset pagination.

A cursor is base64url JSON of the last row's sort key, tagged with the listing it belongs to so a
cursor from /v1/runs cannot be replayed against /v1/alerts. It is not signed: the tenant filter is
applied on every query, so a forged cursor can only move the caller within its own data.
"""
from __future__ import annotations

import base64
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from .errors import ApiError

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(kind: str, key: list[Any]) -> str:
    raw = json.dumps({"k": kind, "v": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None, types: tuple[type, ...]) -> list[Any] | None:
    """The sort key in ``cursor``; raises a 400 if it is not a cursor of this listing."""
    if cursor is None or cursor == "":
        return None
    try:
        pad = "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(cursor + pad))
        if not isinstance(data, dict) or data.get("k") != kind:
            raise ValueError("cursor of another listing")
        key = data["v"]
        if not isinstance(key, list) or len(key) != len(types):
            raise ValueError("wrong key length")
        for value, typ in zip(key, types):
            if not isinstance(value, typ) or isinstance(value, bool):
                raise ValueError("wrong key type")
            if isinstance(value, str):
                value.encode("utf-8")  # a lone surrogate ("\ud800" in the JSON) is no key we wrote
        return key
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_cursor", "cursor is not valid for this listing",
                       {"reason": str(exc)}) from exc


def page_of(kind: str, rows: list[dict[str, Any]], limit: int, key_fields: list[str]) -> tuple[list[dict[str, Any]], str | None]:
    """Rows were fetched with LIMIT limit+1; the extra row tells us there is a next page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(kind, [last[f] for f in key_fields])
