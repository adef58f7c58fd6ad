"""The shape of an identifier (event, run, session, step, parent, call ids): one token of id
characters. Ids are validated by this format at the edges (the gateway rejects others with a
4xx) and in the processors, instead of being scanned as free text: the digit run in
``run_7a52225967589722`` is part of an id, not a payment card."""
from __future__ import annotations

import re

ID_FORMAT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=#-]{0,255}")


def is_id_shaped(value: str) -> bool:
    return ID_FORMAT.fullmatch(value) is not None


# What the sink stores and the SDK sends as an id: at most this many bytes of UTF-8, with no ASCII
# blank or control character. Looser than ``ID_FORMAT`` (the gateway's edge rule): a run id in
# another script (``run-é``) is readable through the API's routes, while a run id holding a
# newline or 10 KB long, written around the gateway, was stored and then could not be read.
STORABLE_ID_MAX_BYTES = 1024


def is_storable_id(value: str) -> bool:
    """Empty is not judged here (the caller says whether an id is required)."""
    if len(value) > STORABLE_ID_MAX_BYTES or len(value.encode("utf-8", "surrogatepass")) > STORABLE_ID_MAX_BYTES:
        return False
    return not any(c <= " " or c == "\x7f" for c in value)
