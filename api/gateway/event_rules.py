"""What the Event contract's schema cannot say and the gateway still refuses (``out_of_range``,
``invalid_digest``, ``unknown_rule``): each rule is one the rest of the pipeline holds too, so an
event accepted here is one the processors pass and the sink stores, and nothing a client sends
reaches a field meant for something else.

- usage figures (schemas/usage_numbers.py): a negative or NaN token count or cost would pay a
  run's budget back or poison every sum over costs, a huge count wraps UInt64 sums, and a
  duration of -1e308 or infinity broke every reader converting it to microseconds;
- stored ranges (schemas/stored_ranges.py): longs in the contract, narrower in the events table;
- digest fields: keyed hex HMACs, checked by format, never text;
- a redaction summary names only what the product writes (schemas/redaction_summary.py);
- a FEEDBACK says a bounded label, never free text (schemas/feedback_values.py).
"""
from __future__ import annotations

from typing import Any

from agentstream.schemas.digests import is_digest_shaped
from agentstream.schemas.feedback_values import feedback_problem
from agentstream.schemas.redaction_summary import is_summary_name
from agentstream.schemas.stored_ranges import ATTEMPT_MAX, SEQ_MAX
from agentstream.schemas.usage_numbers import (DURATION_MS_MAX, TOKENS_MAX, is_cost, is_duration_ms,
                                               is_token_count)

Issue = dict[str, str]


def issue(path: str, reason: str, message: str) -> Issue:
    return {"field": path, "reason": reason, "message": message}


def rule_issues(out: dict[str, Any]) -> list[Issue]:
    """Every rule's issues with a record the schema check passed."""
    return (_digest_issues(out) + _summary_issues(out) + usage_issues(out) + _stored_range_issues(out)
            + _feedback_issues(out))


def _feedback_issues(out: dict[str, Any]) -> list[Issue]:
    """A user's comment sent as a feedback "value" would be stored where a label is promised;
    the message names the allowed labels, never the value."""
    payload = out.get("payload")
    if out.get("kind") != "FEEDBACK" or not isinstance(payload, dict):
        return []
    problem = feedback_problem(payload.get("feedback_type"), payload.get("value"))
    return [] if problem is None else [issue("payload.value", "invalid_feedback", problem)]


def _llm_of(out: dict[str, Any]) -> dict[str, Any] | None:
    payload = out.get("payload")
    llm = payload.get("llm") if isinstance(payload, dict) else None
    return llm if isinstance(llm, dict) else None


def usage_issues(out: dict[str, Any]) -> list[Issue]:
    """An LLM call's token counts are 0..TOKENS_MAX and its cost finite and >= 0, and every
    duration finite and 0..DURATION_MS_MAX (schemas/usage_numbers.py): a negative or NaN figure
    would pay a run's budget back or poison every sum over costs, a huge count wraps the
    tenant's UInt64 sums, and an infinite latency fails every read of the run."""
    issues = _duration_issues(out)
    llm = _llm_of(out)
    if llm is None:
        return issues
    issues += [issue(f"payload.llm.{k}", "out_of_range", f"a token count is a whole number 0 to {TOKENS_MAX}")
               for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
               if type(llm.get(k)) is int and not is_token_count(llm[k])]
    cost = llm.get("cost_usd")
    if type(cost) is float and not is_cost(cost):
        issues.append(issue("payload.llm.cost_usd", "out_of_range", "a cost is a finite number >= 0"))
    return issues


# The contract's durations in ms: (kind, payload record or None, field).
DURATION_FIELDS = (("STEP", None, "latency_ms"), ("RUN_END", None, "duration_ms"),
                   ("STEP", "approval", "approval_latency_ms"))


def _duration_issues(out: dict[str, Any]) -> list[Issue]:
    payload = out.get("payload")
    if not isinstance(payload, dict):
        return []
    issues = []
    for kind, record, name in DURATION_FIELDS:
        sub = payload.get(record) if record else payload
        v = sub.get(name) if out.get("kind") == kind and isinstance(sub, dict) else None
        # bool is an int too, but the schema check already refused it as a double
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not is_duration_ms(float(v)):
            path = f"payload.{record}.{name}" if record else f"payload.{name}"
            issues.append(issue(path, "out_of_range",
                                f"a duration is a finite number of ms from 0 to {DURATION_MS_MAX:.0f} (30 days)"))
    return issues


def _stored_range_issues(out: dict[str, Any]) -> list[Issue]:
    """Integers the contract carries as longs and the events table keeps narrower
    (schemas/stored_ranges.py): accepted here, the sink would dead-letter the record."""
    issues = []
    seq = out.get("seq")
    if type(seq) is int and not 0 <= seq <= SEQ_MAX:
        issues.append(issue("seq", "out_of_range", f"seq counts from 0 to {SEQ_MAX}"))
    payload = out.get("payload")
    attempt = payload.get("attempt") if out.get("kind") == "STEP" and isinstance(payload, dict) else None
    if type(attempt) is int and not 0 <= attempt <= ATTEMPT_MAX:
        issues.append(issue("payload.attempt", "out_of_range", f"a step's attempt is 0 to {ATTEMPT_MAX}"))
    return issues


# Every digest field of the contract: (payload record, field). Each is a keyed hex HMAC the SDK
# made of what it stands for (the LLM request, the tool's arguments, the approved action), so it
# is checked by format: anything else is text a client put where no content may go.
DIGEST_FIELDS = (("llm", "request_digest"), ("tool", "args_digest"), ("approval", "action_digest"))


def _digest_issues(out: dict[str, Any]) -> list[Issue]:
    """Each digest field holds a digest: checked by format, never scanned."""
    payload = out.get("payload")
    if not isinstance(payload, dict):
        return []
    issues = []
    for record, name in DIGEST_FIELDS:
        sub = payload.get(record)
        v = sub.get(name) if isinstance(sub, dict) else None
        if type(v) is str and not is_digest_shaped(v):
            issues.append(issue(f"payload.{record}.{name}", "invalid_digest",
                                "a digest is 16 to 128 hex characters (the keyed HMAC-SHA256 of what it stands for)"))
    return issues


def _summary_issues(out: dict[str, Any]) -> list[Issue]:
    """A redaction summary a client sends names only what the product writes: the processors'
    rules and ``dropped_attribute:<reason>`` (schemas/redaction_summary.py). Its keys would be
    stored as sent; the message never quotes one."""
    red = out.get("redaction")
    counts = red.get("rule_counts") if isinstance(red, dict) else None
    if isinstance(counts, dict) and not all(type(k) is str and is_summary_name(k) for k in counts):
        return [issue("redaction.rule_counts", "unknown_rule",
                      "rule_counts names only the product's redaction rules and dropped_attribute:<reason>")]
    return []
