"""Alert lifecycle and routing records on the compacted ``policies`` topic: the contract between
the query API (which writes them), ``agentstream alerts`` (which writes them too) and the alert
forwarder (which obeys them).

Each record has its own key, so compaction keeps the latest of each and a tombstone deletes it:

- ``\\0alerting\\0<tenant>\\0routing``           the tenant's routing rules (one document)
- ``\\0alerting\\0<tenant>\\0silence\\0<id>``     one silence
- ``\\0alerting\\0<tenant>\\0state\\0<alert_id>`` one alert's acknowledgement or resolution

Keys start with a NUL byte, which no tenant key (the tenant id itself) starts with, so every
reader of the topic tells them from tenant policies by the key alone, before decoding. Values
are JSON (``{"v": 1, ...}``), validated here on write *and* on read: a malformed record is
skipped by readers, never half applied.

Matching is pure and lives here, so the API's listing ("is this alert silenced?") and the
forwarder's decision agree by construction.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

KEY_PREFIX = b"\x00alerting\x00"
SEVERITIES = ("INFO", "WARNING", "CRITICAL")
STATES = ("open", "acknowledged", "resolved")
DESTINATION_KINDS = ("webhook", "slack", "pagerduty")
MAX_RULES = 100
MAX_TEXT = 512
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class AlertingError(ValueError):
    """A record that does not fit the contract; the message says which field and why."""


def is_alerting_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(KEY_PREFIX)


def make_key(tenant: str, kind: str, ident: str = "") -> bytes:
    if not tenant or "\x00" in tenant:
        raise AlertingError("tenant must be non-empty and hold no NUL")
    if kind not in ("routing", "silence", "state"):
        raise AlertingError(f"unknown record kind {kind!r}")
    if kind != "routing" and not ident:
        raise AlertingError(f"a {kind} record needs an id")
    if "\x00" in ident:
        raise AlertingError("ids hold no NUL")
    tail = kind if kind == "routing" else f"{kind}\x00{ident}"
    return KEY_PREFIX + f"{tenant}\x00{tail}".encode()


def parse_key(key: bytes) -> tuple[str, str, str] | None:
    """(tenant, kind, id) of an alerting key, or None."""
    if not is_alerting_key(key):
        return None
    parts = key[len(KEY_PREFIX):].decode("utf-8", errors="replace").split("\x00")
    if len(parts) == 2 and parts[1] == "routing":
        return parts[0], "routing", ""
    if len(parts) == 3 and parts[1] in ("silence", "state") and parts[2]:
        return parts[0], parts[1], parts[2]
    return None


def _text(doc: dict[str, Any], name: str, required: bool = False, limit: int = MAX_TEXT) -> str | None:
    v = doc.get(name)
    if v is None or v == "":
        if required:
            raise AlertingError(f"{name} is required")
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise AlertingError(f"{name} must be a string of at most {limit} characters")
    return v


def _int(doc: dict[str, Any], name: str) -> int:
    v = doc.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise AlertingError(f"{name} must be a non-negative integer (microseconds)")
    return v


@dataclass(frozen=True)
class Matcher:
    """Equality on each field given; an empty matcher matches every alert of the tenant."""

    alert_type: str | None = None
    agent_id: str | None = None
    severity: str | None = None

    @classmethod
    def from_doc(cls, doc: Any) -> "Matcher":
        if not isinstance(doc, dict):
            raise AlertingError("matcher must be an object")
        extra = set(doc) - {"alert_type", "agent_id", "severity"}
        if extra:
            raise AlertingError(f"unknown matcher fields {sorted(extra)}")
        sev = _text(doc, "severity")
        if sev is not None and sev not in SEVERITIES:
            raise AlertingError(f"severity must be one of {', '.join(SEVERITIES)}")
        return cls(_text(doc, "alert_type", limit=128), _text(doc, "agent_id", limit=256), sev)

    def matches(self, alert: dict[str, Any]) -> bool:
        return all(want is None or (alert.get(name) or "") == want
                   for name, want in (("alert_type", self.alert_type), ("agent_id", self.agent_id),
                                      ("severity", self.severity)))

    def to_doc(self) -> dict[str, Any]:
        return {k: v for k, v in (("alert_type", self.alert_type), ("agent_id", self.agent_id),
                                  ("severity", self.severity)) if v is not None}


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matcher: Matcher
    starts_us: int
    expires_us: int
    created_by: str = ""
    comment: str = ""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Silence":
        sid = _text(doc, "silence_id", required=True) or ""
        if not _ID.match(sid):
            raise AlertingError("silence_id must match [A-Za-z0-9._:-]{1,128}")
        s = cls(sid, Matcher.from_doc(doc.get("matcher") or {}), _int(doc, "starts_us"),
                _int(doc, "expires_us"), _text(doc, "created_by") or "", _text(doc, "comment") or "")
        if s.expires_us <= s.starts_us:
            raise AlertingError("expires_us must be after starts_us")
        return s

    def active(self, now_us: int) -> bool:
        return self.starts_us <= now_us < self.expires_us

    def silences(self, alert: dict[str, Any], now_us: int) -> bool:
        return self.active(now_us) and self.matcher.matches(alert)

    def to_doc(self) -> dict[str, Any]:
        return {"v": 1, "silence_id": self.silence_id, "matcher": self.matcher.to_doc(),
                "starts_us": self.starts_us, "expires_us": self.expires_us,
                "created_by": self.created_by, "comment": self.comment}


@dataclass(frozen=True)
class Destination:
    kind: str  # webhook | slack | pagerduty
    url: str
    routing_key: str = ""  # PagerDuty Events v2

    @classmethod
    def from_doc(cls, doc: Any) -> "Destination":
        if not isinstance(doc, dict):
            raise AlertingError("destination must be an object")
        kind = _text(doc, "kind", required=True)
        if kind not in DESTINATION_KINDS:
            raise AlertingError(f"destination kind must be one of {', '.join(DESTINATION_KINDS)}")
        url = _text(doc, "url", required=True, limit=2048) or ""
        if not re.match(r"^https?://[^\s/]+", url):
            raise AlertingError("destination url must be an http(s) URL")
        key = _text(doc, "routing_key", limit=128) or ""
        if kind == "pagerduty" and not key:
            raise AlertingError("a pagerduty destination needs a routing_key")
        return cls(kind, url, key)

    @property
    def dest_id(self) -> str:
        """Stable identity: the same destination in two rules is one destination."""
        return hashlib.sha256(f"{self.kind}\x00{self.url}\x00{self.routing_key}".encode()).hexdigest()[:16]

    def to_doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, **({"routing_key": self.routing_key} if self.routing_key else {})}

    def redacted(self) -> dict[str, Any]:
        """For listings: Slack and webhook URLs carry secrets in their path, keys are secrets."""
        m = re.match(r"^(https?://[^/]+)", self.url)
        return {"kind": self.kind, "url": (m.group(1) + "/…") if m else "…", "dest_id": self.dest_id,
                **({"routing_key": "…" + self.routing_key[-4:]} if self.routing_key else {})}


@dataclass(frozen=True)
class Rule:
    """Matches when the alert's type is in ``alert_types`` (any, if empty) and its severity is
    in ``severities`` (any, if empty)."""

    rule_id: str
    destination: Destination
    alert_types: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()

    @classmethod
    def from_doc(cls, doc: Any) -> "Rule":
        if not isinstance(doc, dict):
            raise AlertingError("a rule must be an object")
        rid = _text(doc, "rule_id", required=True) or ""
        if not _ID.match(rid):
            raise AlertingError("rule_id must match [A-Za-z0-9._:-]{1,128}")
        types, sevs = doc.get("alert_types") or [], doc.get("severities") or []
        if not isinstance(types, list) or not all(isinstance(t, str) and 0 < len(t) <= 128 for t in types):
            raise AlertingError(f"rule {rid}: alert_types must be a list of names")
        if not isinstance(sevs, list) or not all(s in SEVERITIES for s in sevs):
            raise AlertingError(f"rule {rid}: severities must be a list of {', '.join(SEVERITIES)}")
        return cls(rid, Destination.from_doc(doc.get("destination")), tuple(types), tuple(sevs))

    def matches(self, alert: dict[str, Any]) -> bool:
        return ((not self.alert_types or alert.get("alert_type") in self.alert_types)
                and (not self.severities or alert.get("severity") in self.severities))

    def to_doc(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "alert_types": list(self.alert_types),
                "severities": list(self.severities), "destination": self.destination.to_doc()}


def parse_rules(doc: dict[str, Any]) -> tuple[Rule, ...]:
    rules = doc.get("rules")
    if not isinstance(rules, list):
        raise AlertingError("rules must be a list")
    if len(rules) > MAX_RULES:
        raise AlertingError(f"at most {MAX_RULES} rules")
    parsed = tuple(Rule.from_doc(r) for r in rules)
    ids = [r.rule_id for r in parsed]
    if len(set(ids)) != len(ids):
        raise AlertingError("rule ids must be unique")
    return parsed


def routing_doc(rules: Iterable[Rule], updated_us: int) -> dict[str, Any]:
    return {"v": 1, "rules": [r.to_doc() for r in rules], "updated_us": updated_us}


@dataclass(frozen=True)
class AlertState:
    alert_id: str
    state: str  # acknowledged | resolved | open (re-opened)
    at_us: int
    by: str = ""
    note: str = ""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "AlertState":
        state = _text(doc, "state", required=True)
        if state not in STATES:
            raise AlertingError(f"state must be one of {', '.join(STATES)}")
        return cls(_text(doc, "alert_id", required=True, limit=256) or "", state or "",
                   _int(doc, "at_us"), _text(doc, "by") or "", _text(doc, "note", limit=2048) or "")

    def to_doc(self) -> dict[str, Any]:
        return {"v": 1, "alert_id": self.alert_id, "state": self.state, "at_us": self.at_us,
                "by": self.by, "note": self.note}


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def routing_decisions(rules: Iterable[Rule], alert: dict[str, Any]) -> list[Destination]:
    """Each distinct destination of the rules that match, in rule order."""
    out: dict[str, Destination] = {}
    for r in rules:
        if r.matches(alert):
            out.setdefault(r.destination.dest_id, r.destination)
    return list(out.values())


@dataclass
class TenantAlerting:
    rules: tuple[Rule, ...] = ()
    silences: dict[str, Silence] = field(default_factory=dict)
    states: dict[str, AlertState] = field(default_factory=dict)


class AlertingBook:
    """Every tenant's rules, silences and alert states, folded from the policies topic's
    alerting records in offset order (a later record of one key replaces the earlier one)."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantAlerting] = {}
        self.skipped = 0  # malformed records seen (readers log them; nothing is half applied)

    def tenant(self, tenant: str) -> TenantAlerting:
        return self.tenants.get(tenant) or TenantAlerting()

    def apply(self, key: bytes, value: bytes | None) -> bool:
        """Folds one record; False when it is not a well-formed alerting record."""
        parsed = parse_key(key)
        if parsed is None:
            return False
        tenant, kind, ident = parsed
        t = self.tenants.setdefault(tenant, TenantAlerting())
        if value is None:
            if kind == "routing":
                t.rules = ()
            else:
                (t.silences if kind == "silence" else t.states).pop(ident, None)
            return True
        try:
            doc = json.loads(value)
            if not isinstance(doc, dict) or doc.get("v") != 1:
                raise AlertingError("not a version 1 alerting document")
            if kind == "routing":
                t.rules = parse_rules(doc)
            elif kind == "silence":
                s = Silence.from_doc(doc)
                if s.silence_id != ident:
                    raise AlertingError("silence id differs from its key")
                t.silences[ident] = s
            else:
                st = AlertState.from_doc(doc)
                if st.alert_id != ident:
                    raise AlertingError("alert id differs from its key")
                t.states[ident] = st
        except (ValueError, TypeError):  # AlertingError and bad JSON alike
            self.skipped += 1
            return False
        return True

    def silenced_by(self, alert: dict[str, Any], now_us: int) -> Silence | None:
        for s in self.tenant(alert["tenant_id"]).silences.values():
            if s.silences(alert, now_us):
                return s
        return None

    def destinations(self, alert: dict[str, Any]) -> list[Destination]:
        return routing_decisions(self.tenant(alert["tenant_id"]).rules, alert)
