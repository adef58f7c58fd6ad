"""Keyed digests the contract carries instead of raw identifiers (Event v2's ``end_user_id``).

An end-user id identifies a person, so it never travels raw: the SDK and the ingest gateway both
send ``HMAC-SHA256(key, canonical JSON of the id)`` as lowercase hex. The canonical JSON of a
string is the string in double quotes with JSON escapes and UTF-8 kept as is, which is what the
SDK's keyed digest of tool arguments (``producer/capture.py``) makes of a string, so an SDK and
a gateway configured with the same key give one user the same digest (a test checks both).
"""
from __future__ import annotations

import hashlib
import hmac
import json

DIGEST_HEX_CHARS = 64


def end_user_digest(key: bytes, end_user_id: str) -> str:
    if not key:
        raise ValueError("an end-user digest needs a non-empty key")
    canonical = json.dumps(end_user_id, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
