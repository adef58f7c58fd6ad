"""The integer ranges the ``events`` table stores, judged alike by every part that meets them.

The Avro contract carries ``seq`` and a step's ``attempt`` as longs, but the table keeps them as
``UInt32`` and ``UInt16``: a record outside those ranges decodes fine and is then dead-lettered
by the sink (``RowError``), after the agent or the gateway's client was told it was accepted.
So the gateway refuses such a field (``out_of_range``), the SDK never emits one (an attempt
number it cannot store is counted as a failure and the step keeps its default), and the sink's
mappers (Python and C) keep the same bounds for records written by anything else.
"""
from __future__ import annotations

from typing import Any

SEQ_MAX = 4_294_967_295      # events.seq UInt32
ATTEMPT_MAX = 65_535         # events.attempt UInt16


def step_attempt(v: Any) -> int | None:
    """``v`` as a step's attempt number (a whole number in 1..ATTEMPT_MAX), or None."""
    if v.__class__ is not int:  # bool, float, str, anything else: not an attempt number
        return None
    return v if 1 <= v <= ATTEMPT_MAX else None
