"""What a FEEDBACK event may say: bounded values, never free text.

The Event contract carries ``feedback_type`` and ``value`` as strings, documented as bounded
(``user_rating``: positive or negative; ``negative_signal``: one of a fixed set of triage
selectors). The SDK only ever sends those; the gateway refuses anything else, since a free-text
"value" is a user's comment stored where the contract promises a label.
"""
from __future__ import annotations

from typing import Any

FEEDBACK_VALUES = frozenset({"positive", "negative"})
NEGATIVE_SIGNALS = frozenset({"repeated_question", "user_reformulated_request",
                              "conversation_abandoned", "human_takeover", "response_ignored",
                              "response_copied"})
VALUES_BY_TYPE = {"user_rating": FEEDBACK_VALUES, "negative_signal": NEGATIVE_SIGNALS}


def feedback_problem(feedback_type: Any, value: Any) -> str | None:
    """None when (``feedback_type``, ``value``) is a bounded feedback, else what is wrong."""
    allowed = VALUES_BY_TYPE.get(feedback_type) if isinstance(feedback_type, str) else None
    if allowed is None:
        return f"feedback_type is one of {sorted(VALUES_BY_TYPE)}"
    if value.__class__ is not str or value not in allowed:
        return f"a {feedback_type} value is one of {sorted(allowed)}"
    return None
