"""The shape of an identifier (event, run, session, step, parent, call ids): one token of id
characters. Ids are validated by this format at the edges (the gateway rejects others with a
4xx) and in the processors, instead of being scanned as free text: the digit run in
``run_7a52225967589722`` is part of an id, not a payment card."""
from __future__ import annotations

import re

ID_FORMAT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=#-]{0,255}")


def is_id_shaped(value: str) -> bool:
    return ID_FORMAT.fullmatch(value) is not None
