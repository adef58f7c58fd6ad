"""Fields the engine treats by their role, not as free text: identifiers and attributes.

Identifiers (event, run, session, step, parent, call ids) are joined on downstream; they are
validated by FORMAT: a token of id characters passes without the free-text rules (a digit run in
``run_7a52225967589722`` is not a card), and only token-shaped secret formats (API keys, JWTs,
PEM, bearer tokens, credentials in URLs) are looked for, since those are whole tokens by
construction, phone numbers written as contacts (``whatsapp:+1…``), which bots use as ids, and
card numbers, IBANs and national ids standing whole in an id (``ID_PII_RULES``).
An id that is not id-shaped (spaces, ``@``…) is scanned as text. In run_id either finding
quarantines the event (the Kafka key: it cannot be rewritten without breaking the run); another
envelope id that fails is replaced by its keyed pseudonym (``Redactor.pseudonym``), and an id
nested in a payload that fails is redacted like any text.

Attributes follow the shared allow-list (``schemas/attribute_keys.py``) under the stricter of the
tenant's capture mode and the event's own: content keys and over-long free values are dropped,
counted as ``dropped_attribute:<reason>`` in ``redaction.rule_counts`` (never the value).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, cast

from agentstream.schemas.attribute_keys import split_attributes
from agentstream.schemas.id_format import ID_FORMAT
from agentstream.schemas.redaction_summary import PREVIEW_CHARS

from .rules import is_uuid

ID_FIELDS = frozenset(("event_id", "run_id", "session_id", "parent_run_id", "parent_step_id", "step_id",
                       "retry_of", "to_run_id", "call_id", "command_id", "interaction_id"))
# Rules whose matches are whole tokens of a documented format: the ones an id can hold.
TOKEN_CATEGORIES = frozenset(("api_key", "jwt", "private_key", "bearer_token", "url_credentials"))
# And PII an id is made of: a phone number written as a contact (``whatsapp:+14155550132``,
# ``tel:…``, ``chat:+44…``), the sender's number a messaging bot keys its sessions by; a card
# number grouped as printed, an IBAN, a US SSN or a UK NINO as the whole id or after a ``word:``
# prefix (a support bot's ``session_id`` is the caller's account, ``ssn:219-09-3420``). Each rule
# wants a checksum or a fixed shape between token boundaries (not after ``_``, ``-`` or ``.``),
# which no random, counter or hex id has: ``run_7a52225967589722`` and
# ``ord-4111111111111111-3`` stay ids, and so does a bare digit run (``_card_in_id``).
ID_PII_RULES = frozenset(("contact_uri", "payment_card", "iban", "us_ssn", "uk_nino"))
_STRICTNESS = {"REDACTED": 0, "SECURE_REFERENCE": 1, "METADATA_ONLY": 2}


def _card_in_id(number: str) -> bool:
    """A card number as an id only when grouped as printed (``4232-8280-1407-2785``). An
    ungrouped run is ambiguous: one random 16-digit id in ~25 passes Luhn with a card prefix, and
    numeric ids (sequences, snowflakes) are common, so such an id stays an id (a run id would be
    quarantined, and its run lost, for a number that is most likely not a card)."""
    return not number.isdigit()


def effective_mode(tenant_mode: str, event_mode: Any) -> str:
    """The stricter of the two: an SDK that promised metadata_only keeps that promise even where
    the tenant would allow previews; a tenant's stricter mode wins over what the SDK sent."""
    ev = event_mode if event_mode in _STRICTNESS else "METADATA_ONLY"
    t = tenant_mode if tenant_mode in _STRICTNESS else "METADATA_ONLY"
    return t if _STRICTNESS[t] >= _STRICTNESS[ev] else ev


class IdChecker:
    """``check(name, value)`` returns the name of the rule an id matches, or None."""

    def __init__(self, rules: Iterable[Any], scan_text: Callable[[str], tuple[Any, ...]],
                 prefilter: Callable[[str], bool]) -> None:
        self.token_rules = tuple(r for r in rules if (r.category in TOKEN_CATEGORIES or r.name in ID_PII_RULES)
                                 and getattr(r, "in_ids", True))
        self.scan_text = scan_text
        # every rule's match passes the engine's prefilter: one search clears most ids at once
        self.prefilter = prefilter

    def _token_hit(self, value: str) -> str | None:
        if not self.prefilter(value) or is_uuid(value):  # the exemption the byte prefilter shares
            return None
        for rule in self.token_rules:
            if rule.trigger(value):
                for s, e in rule.matches(value):
                    if rule.name != "payment_card" or _card_in_id(value[s:e]):
                        return cast(str, rule.name)
        return None

    def check(self, value: str) -> str | None:
        if ID_FORMAT.fullmatch(value):
            return self._token_hit(value)
        hits = self.scan_text(value)
        return hits[0].rule.name if hits else None

    def id_shaped_and_clean(self, value: str) -> bool:
        """An id nested in a payload (step_id, call_id…) that may skip the free-text rules."""
        return ID_FORMAT.fullmatch(value) is not None and self._token_hit(value) is None


def filter_attributes(attrs: dict[str, Any], mode: str, counts: dict[str, int]) -> dict[str, Any]:
    """The attributes a capture mode keeps (the same dict when nothing is dropped)."""
    kept, dropped = split_attributes(attrs, mode)
    for k, n in dropped.items():
        counts[k] = counts.get(k, 0) + n
    return kept


def apply_capture(payload: dict[str, Any], capture_mode: str, counts: dict[str, int]) -> dict[str, Any]:
    """A step's ``content`` as ``capture_mode`` allows it (the caller passes the stricter of the
    tenant's mode and the event's): no preview unless REDACTED, and then at most
    ``PREVIEW_CHARS``; no reference under METADATA_ONLY. What is removed is counted."""
    content = payload["content"]
    new = dict(content)
    if capture_mode == "REDACTED":
        preview = new.get("preview")
        if not isinstance(preview, str) or len(preview) <= PREVIEW_CHARS:
            return payload
        # a preview is a glimpse, as the SDK cuts it; a longer one is a producer's prompt
        new["preview"] = preview[:PREVIEW_CHARS]
        counts["capture_policy"] = counts.get("capture_policy", 0) + 1
        return {**payload, "content": new}
    if new.get("preview") is not None:
        new["preview"] = None
        counts["capture_policy"] = counts.get("capture_policy", 0) + 1
    if capture_mode == "METADATA_ONLY" and new.get("reference") is not None:
        new["reference"] = None
        counts["capture_policy"] = counts.get("capture_policy", 0) + 1
    return {**payload, "content": new}
