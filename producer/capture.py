"""Capture policy: what content (if any) may leave the agent, and keyed digests of arguments.

``metadata_only`` (default): no content at all. ``redacted``: a short preview that passed this
small local redactor (the processors run the full rule set downstream); if anything forbidden
survives, the preview is dropped (fail closed). ``secure_reference``: the content goes to a
store the agent team controls and only an opaque reference travels; without a store, nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Callable

from agentstream.schemas.attribute_keys import attribute_verdict, split_attributes
from agentstream.schemas.letter_pairs import random_letters
from agentstream.schemas.redaction_summary import PREVIEW_CHARS

MODES = {"metadata_only": "METADATA_ONLY", "redacted": "REDACTED",
         "secure_reference": "SECURE_REFERENCE"}

# Ordered: specific key formats before the generic rules. The processors redact again with the
# full rule set; this checker only has to fail closed, so it errs toward taking too much of a
# 160-character preview: any credential name's value, and any long token a machine drew.
# A long stem anywhere in a name (db_password, apiToken); a short one only as a whole part of it
# (pw, api_key, apiKey, x-auth), not inside a word ("mapping", "keyboard", "author").
_CRED_NAME = (r"\w*(?:password|passwd|passphrase|passcode|passwort|kennwort|contrase[ñn]a|senha|wachtwoord|"
              r"secret|token|credential|apikey)\w*|mot de passe|(?:\w*[_-])?(?:pwd|pw|pin|key|auth)(?:[_-]\w*)?s?")
_CRED_CAMEL = r"[a-z]+(?:Pwd|Pin|Key|Auth)"  # case-sensitive: apiKey, dbPwd; not "monkey"
# words that say something about a credential ("the token is expired"): the preview keeps them
_ABOUT = frozenset(("expired", "invalid", "missing", "required", "incorrect", "wrong", "valid", "revoked",
                    "not", "none", "null", "empty", "set", "unset", "optional", "changed", "rotated", "too",
                    "hidden", "masked", "redacted", "below", "above", "locked", "case", "changeme", "n/a"))
# names of things about a credential, not the credential: secret_name, token_type, password_policy
_ABOUT_NAME = re.compile(r"(?i)[_.-](?:name|id|type|count|tokens|limit|usage|length|policy|path|file|url|arn|ttl|expiry|expires)\b")
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("url_credentials", re.compile(r"://[^\s:/@]+:[^\s@/]+@")),
    # webhook URLs are credentials whole; a bot token "<bot id>:<35 chars>" holds a colon
    ("webhook", re.compile(r"https?://\S*(?:/api/webhooks/|\.webhook\.office\.com/|hooks\.slack\.com/)\S+")),
    ("bot_token", re.compile(r"(?:(?<=/bot)|\b)\d{8,10}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")),
    # the value after a credential name in any syntax or sentence ("pw: maple", "the password is
    # tangerine", "api_key":"…"); "the password is incorrect" loses a word of its preview too
    ("credential", re.compile(r"(?:(?P<flag>--)|(?P<tag><))?\b(?:(?i:" + _CRED_NAME + ")|" + _CRED_CAMEL + r")\b[\"']?"
                              r"(?:[ \t]+(?:for|of|on|f[üu]r|de|para|pour|voor)[ \t]+(?:\S+[ \t]+){0,2}?\S+)?"
                              r"(?:(?(flag)[ \t]+|(?!))|(?(tag)>|(?!))|(?:\s*(?:\b(?:is|was|will be|to|ist|es|est|é|"
                              r"är|on|lautet)\b|[:=]|=>)){1,2})\s*[\"'`]?(?P<v>[^\s\"'`,;<]{3,})")),
    # a long value right after a credential word in a sentence ("client secret XDFIBOP…", "the key
    # ZyXw…"): prose words are shorter
    ("credential_word", re.compile(r"(?i)\b\w*(?:password|passphrase|secret|token|credential|key)s?[ \t]+"
                                   r"(?P<v>[A-Za-z0-9+/_=.~-]{16,})")),
    # any long token with letters and digits a machine drew (vendor keys of every format: dapi…,
    # ATATT3…, glpat-…, Discord bot tokens): mixed case, or many letter/digit alternations; a
    # UUID, a hex digest or "claude-3-5-sonnet-20241022" is neither
    ("token", re.compile(r"(?<![A-Za-z0-9_+/.~$-])[A-Za-z0-9_+/.~$-]{20,}={0,2}")),
    ("hf_token", re.compile(r"\b(?:hf|api_org)_[A-Za-z]{34}\b")),
    ("card_number", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
    ("phone", re.compile(r"(?<!\w)\+?\d[\d ().-]{8,}\d(?!\w)")),
]
# a hex digest or a UUID names a thing; a vendor prefix glued to hex ("fc-", "dapi") is not hex
_HEX_ID = re.compile(r"[0-9a-fA-F]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ALTERNATION = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _machine_token(tok: str) -> bool:
    if _HEX_ID.fullmatch(tok) or not any(c.isalpha() for c in tok):
        return False
    if not any(c.isdigit() for c in tok):
        return random_letters(tok)
    mixed = any(c.isupper() for c in tok) and any(c.islower() for c in tok)
    return mixed or len(_ALTERNATION.findall(tok)) >= 4


def _findings(name: str, rx: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    if name == "token":
        return [m.span() for m in rx.finditer(text) if _machine_token(m.group(0))]
    if name == "credential_word":
        return [m.span("v") for m in rx.finditer(text)]
    if name == "credential":
        return [m.span("v") for m in rx.finditer(text) if m.group("v").lower() not in _ABOUT
                and not _ABOUT_NAME.search(text, m.start(), m.start("v"))
                and not (m.group("v")[:1] in "/~" and m.group(0)[:3].lower() == "pwd")]  # PWD=/home/…
    return [m.span() for m in rx.finditer(text)]


_VERDICTS: dict[tuple[str, str, str], str | None] = {}
_VERDICTS_MAX = 8192
_VERDICT_VALUE_MAX = 64  # longer values rarely repeat: not worth remembering
_UNSEEN = object()


def allowed_attributes(attrs: dict[str, Any] | None, wire_mode: str) -> dict[str, Any] | None:
    """The attributes a capture mode lets leave the agent (schemas/attribute_keys.py, the list
    the gateway and the processors apply too): under metadata_only and secure_reference, content
    keys (prompts, messages, tool arguments…) are dropped, and so are long free values under
    metadata_only. How many were dropped travels as ``agentstream.attributes_dropped``, never
    what. Runs on the transport thread, not the agent's."""
    if not attrs or wire_mode == "REDACTED":
        return attrs  # (split_attributes keeps everything under redacted: the processors redact)
    # Agents send the same few attributes with the same values on event after event; their
    # verdicts are remembered (a pure function of key, value and mode), so an event whose
    # attributes are all known keepers costs a lookup each instead of the rules.
    get = _VERDICTS.get
    for k, v in attrs.items():
        if k.__class__ is not str:
            break
        text = v if v.__class__ is str or isinstance(v, str) else str(v)  # as split_attributes
        if len(text) > _VERDICT_VALUE_MAX:
            break
        memo = (k, text, wire_mode)
        verdict = get(memo, _UNSEEN)
        if verdict is _UNSEEN:
            verdict = attribute_verdict(k, text, wire_mode)
            if len(_VERDICTS) >= _VERDICTS_MAX:
                _VERDICTS.clear()
            _VERDICTS[memo] = verdict
        if verdict is not None:
            break
    else:
        return attrs
    kept, dropped = split_attributes(attrs, wire_mode)
    if dropped:
        kept["agentstream.attributes_dropped"] = str(sum(dropped.values()))
    return kept


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for name, rx in _RULES:
        spans = _findings(name, rx, text)
        if spans:
            counts[name] = len(spans)
            for s, e in reversed(spans):
                text = text[:s] + f"[{name.upper()}]" + text[e:]
    return text, counts


def residual_findings(text: str) -> list[str]:
    # the placeholders a redaction wrote are not findings ("password: [CREDENTIAL]" stays a name
    # followed by a value-shaped "[CREDENTIAL]")
    return [name for name, rx in _RULES
            if any(not (text[s] == "[" and text.find("]", s) == e - 1) for s, e in _findings(name, rx, text))]


# One encoder for every call: ``json.dumps`` with options builds a new JSONEncoder each time,
# which was most of a digest's cost. ``encode`` keeps no state between calls (thread-safe).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str)


_enc_str = json.encoder.encode_basestring  # what _CANONICAL writes a str with (ensure_ascii off)


def _canonical_text(value: Any) -> str:
    """``_CANONICAL.encode(value)``, with the two shapes digests mostly get (a str; a flat dict
    of str to str, e.g. tool arguments) written directly: about half the cost, the same text."""
    if value.__class__ is str:
        return _enc_str(value)
    if value.__class__ is dict:
        for k, v in value.items():
            if k.__class__ is not str or v.__class__ is not str:
                return _CANONICAL.encode(value)
            if len(value) == 1:  # one argument: nothing to sort or join
                return "{" + _enc_str(k) + ":" + _enc_str(v) + "}"
        return "{" + ",".join([_enc_str(k) + ":" + _enc_str(v) for k, v in sorted(value.items())]) + "}"
    return _CANONICAL.encode(value)


def canonical_json(value: Any) -> bytes:
    """Stable bytes for a JSON-like value: sorted keys, no whitespace, non-JSON types as str.
    A lone surrogate is kept as its own bytes (``surrogatepass``), not replaced: two file names
    that differ only there must not digest alike (the loop detector would see a repeat)."""
    return _canonical_text(value).encode("utf-8", "surrogatepass")


class CapturePolicy:
    def __init__(self, mode: str, policy_version: str, digest_key: bytes,
                 content_store: Callable[[str], str] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"capture_mode must be one of {sorted(MODES)}, not {mode!r}")
        self.mode = mode
        self.wire_mode = MODES[mode]
        self.policy_version = policy_version
        # Keyed once; each digest copies the keyed state instead of re-deriving it from the key.
        mac = hmac.new(digest_key, digestmod=hashlib.sha256)
        # CPython's HMAC keeps that state in an OpenSSL object with the same copy/update/
        # hexdigest methods; copying it directly skips the Python wrapper's three calls, half
        # a digest's cost. The wrapper itself where there is no such object.
        self._mac = getattr(mac, "_hmac", None) or mac
        self.content_store = content_store
        self.blocked = 0

    def digest(self, value: Any) -> str:
        """HMAC-SHA256 of the canonical JSON of ``value`` under the tenant's protected key."""
        mac = self._mac.copy()
        mac.update(canonical_json(value))
        return mac.hexdigest()

    def digest_total(self, value: Any) -> str:
        """``digest``, for any value: what canonical JSON cannot write (mixed or tuple keys,
        cycles, deep nesting, a raising ``__str__``) is digested in its ``total_canonical``
        form. JSON-able values keep ``digest``'s bytes, the gateway's digest of them."""
        try:
            return self.digest(value)
        except Exception:  # noqa: BLE001 - not JSON-able as it is (or a __str__ raised)
            pass
        try:
            text = _CANONICAL.encode(["<total>", total_canonical(value)])
        except Exception:  # noqa: BLE001 - e.g. an int past Python's 4300-digit str limit
            text = _CANONICAL.encode(["<total>", f"<{type(value).__name__}>"])
        mac = self._mac.copy()
        mac.update(text.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()

    def project(self, content: Any) -> dict[str, str | None] | None:
        """The ``content`` record a step may carry under this policy, or None."""
        if self.mode == "metadata_only" or content is None:
            return None
        text = content if isinstance(content, str) else canonical_json(content).decode()
        if self.mode == "redacted":
            redacted, _ = redact_text(text)
            preview = redacted[:PREVIEW_CHARS]
            if residual_findings(preview):
                self.blocked += 1  # fail closed: nothing rather than something unsafe
                return None
            return {"preview": preview, "reference": None}
        if self.content_store is None:
            self.blocked += 1
            return None
        return {"preview": None, "reference": str(self.content_store(text))}


_DEPTH_MAX = 64  # deeper than any action a person approves; json's C encoder recursed to death


def total_canonical(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """``value`` as plain JSON data for any object, for what ``canonical_json`` cannot write:
    mixed-type dict keys (``{1: "refund", "amount": 5}``, sorted by (type name, text) so they
    digest deterministically), tuple or None keys, cycles, nesting deeper than ``_DEPTH_MAX``,
    objects whose ``str`` raises. A JSON-able value never comes here (``digest_total`` tries
    ``canonical_json`` first), so its digest stays the gateway's (``span_digest.keyed``)."""
    if value is None or value.__class__ in (str, int, float, bool):
        return value
    if _depth >= _DEPTH_MAX:
        return "<deep>"
    if id(value) in _seen:
        return "<cycle>"
    seen = _seen | {id(value)}
    if isinstance(value, dict):
        items = [(_key_text(k), total_canonical(v, _depth + 1, seen)) for k, v in list(value.items())]
        items.sort(key=lambda kv: kv[0])
        return [["<dict>"]] + [[k[1], v] for k, v in items]  # a list: keeps this order as written
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [total_canonical(v, _depth + 1, seen) for v in list(value)]
        if isinstance(value, (set, frozenset)):
            items.sort(key=_safe_text)
        return items
    return _safe_text(value)


def _safe_text(value: Any) -> str:
    try:
        return value if value.__class__ is str else str(value)
    except Exception:  # noqa: BLE001 - an object whose __str__ raises: its type stands in
        return f"<{type(value).__name__}>"


def _key_text(k: Any) -> tuple[str, str]:
    return (type(k).__name__, _safe_text(k))
