"""The redaction engine: scan every string of an event, apply the policy's action per category,
then check the result again. Any error or leftover match raises ``RedactionError``; the caller
quarantines the event (fail closed), it never passes it on.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from typing import Any, Callable, Iterable, Mapping, cast

from agentstream.schemas.redaction_summary import is_dropped_name

from .escapes import decoded, unglued
from .fields import ID_FIELDS, IdChecker, apply_capture, effective_mode, filter_attributes
from .findings import Finding, disjoint
from .folding import folded
from .keywords import assigned_secret
from .multipattern import compile_any
from .rules import CATEGORIES, PREFILTER_PATTERNS, RULES, Rule, is_uuid

ACTIONS = ("mask", "hash", "drop")
DEFAULT_ACTIONS: Mapping[str, str] = {c: "mask" for c in CATEGORIES}

# Identifiers are joined on downstream. run_id is the Kafka key: every event of a run is keyed,
# partitioned, detected and stopped by it, so a secret or a phone number there quarantines the
# event. Any other envelope id that holds one (a messaging bot's session_id is its user's number:
# ``whatsapp:+1…``) is replaced whole by its keyed pseudonym: the same id gives the same pseudonym
# in every event, so a session still groups and a redelivered event keeps its event_id, and the
# number is not recoverable without the key. Names (tenant, agent, version…) are scanned as
# text; ids (fields.ID_FIELDS, at any depth) by their format.
KEY_ID = "run_id"
NAME_FIELDS = ("tenant_id", "agent_id", "agent_version", "environment", "sdk_version", "policy_version")
ENVELOPE_IDS = ("event_id", "run_id", "session_id", "parent_run_id", "parent_step_id")
IDENTIFIER_FIELDS = NAME_FIELDS + ENVELOPE_IDS
# Fields that are an enum wherever they appear never carry free text; skipping them saves work on
# every event. ``status`` is not here: it is an enum in Step and RunEnd but free text in
# CommandAck. tests/contract checks this set against the schema.
SKIP_FIELDS = frozenset(("kind", "capture_mode", "step_kind", "failure_type", "redaction"))

# Map fields: their keys are the user's, so a key that happens to be "kind" is still scanned, and
# an entry is an assignment: its value is judged with its key (``db.password`` → any value is a
# secret), not as bare text, where "Tr0ub4dor3" alone matches no rule.
MAP_FIELDS = frozenset(("attributes",))
# What the key-aware judgement of an entry (keywords.assigned_secret) counts as: the rules that
# judge the same name in text, so a summary names no rule the engine does not have.
PAIR_RULES = {"secret": ("sensitive_assignment", "credential_assignment"),
              "national_id": ("national_id_assignment", "national_id")}
DEFAULT_MAX_CHARS = 256 * 1024
# What ``token`` writes (bench/redaction_scoring.py reads the same shapes).
OWN_TOKEN = re.compile(r"\[REDACTED:[a-z_]+\]|\[[a-z_]+:hmac:[0-9a-f]{16}\]")
# Verdict cache: tenant ids, agent ids, tool names, routes and attribute values repeat on almost
# every event. ``scan`` is a pure function of the text (the rule set is fixed per Redactor; the
# policy only decides what to do with the findings), so a verdict can be reused safely.
CACHE_MAX_CHARS = 512
CACHE_MAX_ENTRIES = 200_000


class RedactionError(Exception):
    """Redaction could not make the event safe; ``reason`` goes into the quarantine headers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Drop:
    __slots__ = ()


DROP = _Drop()


@functools.cache
def nullable_string_fields() -> frozenset[str]:
    """Field names that are ``["null", "string"]`` wherever they appear in the Event schema, so a
    dropped value can become null; other dropped strings become a placeholder."""
    from agentstream.schemas import EVENT, load_catalog

    nullable: set[str] = set()
    required: set[str] = set()

    def walk(t: Any) -> None:
        if isinstance(t, list):
            for b in t:
                walk(b)
        elif isinstance(t, dict):
            if t.get("type") == "record":
                for f in t["fields"]:
                    ft = f["type"]
                    if isinstance(ft, list) and "null" in ft and "string" in ft:
                        nullable.add(f["name"])
                    elif ft == "string":
                        required.add(f["name"])
                    walk(ft)
            elif t.get("type") in ("array", "map"):
                walk(t.get("items") or t.get("values"))

    walk(json.loads(load_catalog().latest(EVENT).text))
    return frozenset(nullable - required)


class Redactor:
    def __init__(self, hash_key: bytes, rules: Iterable[Rule] = RULES,
                 max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if not hash_key:
            raise ValueError("a non-empty hash key is required for keyed hashing")
        self.hash_key = hash_key
        self.rules = tuple(rules)
        self.max_chars = max_chars
        any_match = compile_any(PREFILTER_PATTERNS)
        # surrogatepass: a lone surrogate (JSON input can hold one) is scanned, not an error
        self._prefilter: Callable[[str], bool] = \
            lambda text: bool(any_match(text.encode("utf-8", "surrogatepass")))
        self._verdicts: dict[str, tuple[Finding, ...]] = {}
        self._ids = IdChecker(self.rules, self.scan, self._prefilter)
        self._rule_categories = {r.name: r.category for r in self.rules}

    # ---- text ----------------------------------------------------------------------------

    def scan(self, text: str) -> tuple[Finding, ...]:
        hit = self._verdicts.get(text)
        if hit is not None:
            return hit
        n = len(text)
        if n > self.max_chars:
            # A bounded-time guarantee matters more than scanning a megabyte blob: fail closed.
            raise RedactionError(f"text of {n} chars exceeds the {self.max_chars}-char scan limit")
        # A UUID (event ids, run ids) cannot hold a match of any rule (rules.is_uuid).
        found = () if not self._prefilter(text) or is_uuid(text) else self._scan_rules(text)
        if n <= CACHE_MAX_CHARS:
            if len(self._verdicts) >= CACHE_MAX_ENTRIES:
                self._verdicts.clear()  # cheaper than LRU bookkeeping on every hit
            self._verdicts[text] = found
        return found

    def check_id(self, value: str) -> str | None:
        """The rule an identifier's value matches, as the event walk judges an id field's (by
        its format: token rules for an id-shaped value, every rule otherwise), or None."""
        return self._ids.check(value)

    def cache_info(self) -> dict[str, int]:
        """The verdict cache's size and bound (as ``functools.lru_cache`` reports its own)."""
        return {"entries": len(self._verdicts), "max_entries": CACHE_MAX_ENTRIES, "max_chars": CACHE_MAX_CHARS}

    def cache_clear(self) -> None:
        self._verdicts.clear()

    def _findings(self, text: str) -> list[Finding]:
        return [Finding(rule, s, e) for rule in self.rules if rule.trigger(text) for s, e in rule.matches(text)]

    def _scan_rules(self, text: str) -> tuple[Finding, ...]:
        text = unglued(text)  # "\n4111…" in JSON: the escape read as a blank, offsets unchanged
        found = self._findings(text)
        dec = decoded(text)  # %-escapes, \uXXXX: judged decoded, redacted where they stand
        if dec is not None and self._prefilter(dec[0]):
            found += [Finding(f.rule, dec[1][f.start], dec[1][f.end]) for f in self._findings(dec[0])]
        # as a terminal or another script shows it (folding.py): found there, redacted here
        sources: list[tuple[str, list[int] | None]] = [(text, None)] if dec is None else [(text, None), dec]
        for src, starts in sources:
            view = folded(src)
            if view is None or not self._prefilter(view[0]):
                continue
            for f in self._findings(view[0]):
                s, e = (f.start, f.end) if view[1] is None else (view[1][f.start], view[1][f.end])
                found.append(Finding(f.rule, s, e) if starts is None else Finding(f.rule, starts[s], starts[e]))
        return disjoint(found)

    def token(self, category: str, value: str, action: str) -> str:
        if action == "hash":
            return f"[{self.pseudonym(category, value)}]"
        return f"[REDACTED:{category}]"

    def pseudonym(self, category: str, value: str) -> str:
        """``<category>:hmac:<16 hex>``: id-shaped, so it stands in for an id as well as in text."""
        digest = hmac.new(self.hash_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
        return f"{category}:hmac:{digest}"

    def redact_text(self, text: str, actions: Mapping[str, str],
                    counts: dict[str, int]) -> str | _Drop:
        findings = self.scan(text)
        if not findings:
            return text
        out: list[str] = []
        pos = 0
        dropped = False
        for f in findings:
            counts[f.rule.name] = counts.get(f.rule.name, 0) + 1
            action = actions.get(f.rule.category, "mask")
            if action not in ACTIONS:
                raise RedactionError(f"policy action {action!r} for {f.rule.category} is not one of {ACTIONS}")
            if action == "drop":
                dropped = True
                continue
            out.append(text[pos:f.start])
            out.append(self.token(f.rule.category, text[f.start:f.end], action))
            pos = f.end
        if dropped:
            return DROP
        out.append(text[pos:])
        return "".join(out)

    # ---- events --------------------------------------------------------------------------

    def redact_event(self, event: Mapping[str, Any], actions: Mapping[str, str], policy_version: str,
                     capture_mode: str = "METADATA_ONLY") -> dict[str, Any]:
        """A redacted copy of a decoded Event, with its ``redaction`` summary set.

        Invariant the hot path relies on: every change (rule hit, drop, capture policy) adds to
        ``rule_counts``, so empty counts mean the copy equals the input apart from the summary."""
        try:
            return self._redact_event(event, actions, policy_version, capture_mode)
        except RedactionError:
            raise
        except Exception as exc:  # any detector bug must fail closed
            # The message may quote the input, so only the type travels into headers and alerts.
            raise RedactionError(f"redaction raised {type(exc).__name__}") from exc

    def _redact_event(self, event: Mapping[str, Any], actions: Mapping[str, str], policy_version: str,
                      capture_mode: str) -> dict[str, Any]:
        for name in NAME_FIELDS:
            v = event.get(name)
            if isinstance(v, str) and v:
                hits = self.scan(v)
                if hits:
                    raise RedactionError(f"identifier field {name} matches rule {hits[0].rule.name}")
        counts: dict[str, int] = {}
        pseudonyms: dict[str, str] = {}
        for name in ENVELOPE_IDS:
            v = event.get(name)
            if isinstance(v, str) and v and (hit := self._ids.check(v)):
                if name == KEY_ID:
                    raise RedactionError(f"identifier field {name} matches rule {hit}")
                pseudonyms[name] = self.pseudonym(self._rule_categories[hit], v)
                counts[hit] = counts.get(hit, 0) + 1
        prior = event.get("redaction")
        if isinstance(prior, dict) and prior.get("rule_counts"):
            # what an edge (SDK, gateway) dropped before the record reached raw, by count; only
            # names the product writes: any other key is a producer's text, never stored
            for k, n in prior["rule_counts"].items():
                if is_dropped_name(k) and type(n) is int and n > 0:
                    counts[k] = counts.get(k, 0) + n
        attrs = event.get("attributes")
        if attrs:
            kept = filter_attributes(attrs, effective_mode(capture_mode, event.get("capture_mode")), counts)
            if kept is not attrs:
                event = {**event, "attributes": kept}
        payload = event.get("payload")
        if not counts and not (isinstance(payload, dict) and payload.get("content")) and not any(
                self._has_findings(v, () if name in MAP_FIELDS else SKIP_FIELDS, name in MAP_FIELDS)
                for name, v in event.items()
                if v is not None and name not in IDENTIFIER_FIELDS and name not in SKIP_FIELDS):
            # Fast path (most events): a read-only pass over cached verdicts found nothing, so
            # the rewriting walk below would return the event as it is.
            out = dict(event)
            out["redaction"] = {"policy_version": policy_version, "rule_counts": {}}
            return out
        changed: list[str] = []
        out = dict(event)
        nullable = nullable_string_fields()
        for name, v in event.items():
            if name in IDENTIFIER_FIELDS or name in SKIP_FIELDS or v is None:
                continue
            nv = self._walk(name, v, actions, counts, changed, nullable)
            if nv is not v:
                out[name] = nv
        payload = out.get("payload")
        if isinstance(payload, dict) and payload.get("content"):
            # the stricter of the tenant's mode and the event's own, as for attributes: an event
            # that says METADATA_ONLY and carries a preview kept it under a REDACTED tenant
            out["payload"] = apply_capture(payload, effective_mode(capture_mode, event.get("capture_mode")),
                                                 counts)
        for text in changed:  # post-check: what we wrote must be clean
            # (our own tokens aside: ``[email:hmac:<16 hex>]`` reads as key material to the
            # key-aware rule, and every event under the ``hash`` action was quarantined)
            leftover = self.scan(OWN_TOKEN.sub("[x]", text))
            if leftover:
                raise RedactionError(f"post-check: rule {leftover[0].rule.name} still matches after redaction")
        out.update(pseudonyms)
        out["redaction"] = {"policy_version": policy_version, "rule_counts": counts}
        return out

    def _has_findings(self, v: Any, skip: frozenset[str] | tuple[str, ...] = SKIP_FIELDS,
                      pairs: bool = False) -> bool:
        """Whether ``_walk`` would find anything under ``v`` (same fields and keys, no copies);
        ``pairs``: ``v`` is a map whose entries are judged as ``key=value`` too."""
        if type(v) is str:
            f = self._verdicts.get(v)
            return bool(self.scan(v) if f is None else f)
        if isinstance(v, dict):
            verdicts, scan = self._verdicts, self.scan
            for k, item in v.items():
                if k in skip or item is None:
                    continue
                t = type(item)
                if t is str and k in ID_FIELDS and skip and self._ids.id_shaped_and_clean(item):
                    continue
                if t is int or t is float or t is bool:
                    continue
                if pairs and t is str and type(k) is str and assigned_secret(k, item):
                    return True
                if type(k) is str:
                    f = verdicts.get(k)
                    if f is None:
                        f = scan(k)
                    if f:
                        return True
                if t is str:
                    f = verdicts.get(item)
                    if f is None:
                        f = scan(item)
                    if f:
                        return True
                elif self._has_findings(item):
                    return True
            return False
        if isinstance(v, list):
            return any(self._has_findings(item) for item in v)
        return isinstance(v, str) and bool(self.scan(v))  # str subclasses

    def _walk(self, name: str, v: Any, actions: Mapping[str, str], counts: dict[str, int],
              changed: list[str], nullable: frozenset[str]) -> Any:
        if isinstance(v, str):
            nv = self.redact_text(v, actions, counts)
            if nv is DROP:
                return None if name in nullable else "[DROPPED]"
            if nv is not v and nv != v:
                changed.append(cast(str, nv))
                return nv
            return v
        if isinstance(v, dict):
            new: dict[str, Any] | None = None
            skip = () if name in MAP_FIELDS else SKIP_FIELDS
            for k, item in v.items():
                if k in skip or item is None or isinstance(item, (int, float, bool)):
                    continue
                if k in ID_FIELDS and skip and isinstance(item, str) and self._ids.id_shaped_and_clean(item):
                    continue  # a step/call id: validated by format, not scanned as free text
                nk = self.redact_text(k, actions, counts) if isinstance(k, str) else k
                hit = assigned_secret(k, item) if not skip and isinstance(k, str) and isinstance(item, str) else None
                if hit is not None:
                    ni = self._redact_entry(hit, item, actions, counts, changed)
                else:
                    ni = self._walk(k, item, actions, counts, changed, nullable)
                if nk is not k or ni is not item:
                    if new is None:
                        new = dict(v)
                    if nk is not k:
                        new.pop(k, None)
                        if nk is DROP:
                            continue
                        nk = cast(str, nk)
                        changed.append(nk)
                        k = nk
                    if name == "attributes" and (ni is None or ni == "[DROPPED]"):
                        new.pop(k, None)  # a dropped map value removes the entry
                    else:
                        new[k] = ni
            return v if new is None else new
        if isinstance(v, list):
            items = []
            touched = False
            for item in v:
                ni = self._walk(name, item, actions, counts, changed, nullable)
                touched |= ni is not item
                if ni is not None and ni != "[DROPPED]":
                    items.append(ni)
            return items if touched else v
        return v

    def _redact_entry(self, hit: str, value: str, actions: Mapping[str, str], counts: dict[str, int],
                      changed: list[str]) -> str | None:
        """The whole value of a map entry whose key names a credential, as its category's action
        shows it (None: dropped, and the entry with it)."""
        rule, category = PAIR_RULES[hit]
        counts[rule] = counts.get(rule, 0) + 1
        action = actions.get(category, "mask")
        if action not in ACTIONS:
            raise RedactionError(f"policy action {action!r} for {category} is not one of {ACTIONS}")
        if action == "drop":
            return None
        out = self.token(category, value, action)
        changed.append(out)
        return out
