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
import re

DIGEST_HEX_CHARS = 64


def end_user_digest(key: bytes, end_user_id: str) -> str:
    if not key:
        raise ValueError("an end-user digest needs a non-empty key")
    canonical = json.dumps(end_user_id, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


# A keyed digest on the wire is lowercase or uppercase hex, 16 to 128 characters (the SDK and the
# gateway write 64): the format is checked at the edges instead of the text being scanned, so a
# client cannot pass content through a digest field.
DIGEST_FORMAT = re.compile(r"[0-9a-fA-F]{16,128}")


def is_digest_shaped(value: str) -> bool:
    return DIGEST_FORMAT.fullmatch(value) is not None
