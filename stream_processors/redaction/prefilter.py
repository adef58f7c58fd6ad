"""A cheap test, before any decode: may the redaction engine change anything in a record?

The byte pass-through hot path asks it of every raw record; it must be a SUPERSET trigger: True
whenever ``Redactor.redact_event`` would change a string of the record (a rule match, a content
attribute dropped, a free value too long, a string over the scan limit). False means the
original bytes may go on as they are.

What it looks at: the record's TEXT, as the field reader walks it by its writer schema
(``EventReader.read_text``): every string value and map key, each ended by a NUL; never the
bytes of longs, doubles, booleans, enums or the Avro framing between fields, which the engine
never reads as text (random UUID, double and varint bytes used to trip it: ~30% of the real
SDK's clean records took the full path). Why it holds by construction:

- every rule runs only on strings that match one of ``RULE_PATTERNS`` (ASCII or non-ASCII
  literals, and checked at import to hold no anchor, word boundary or lookaround: a match inside
  a string is a match in any text that contains the string); a string with escapes (``%40``,
  ``\\u5bc6``, ``+`` in a query value) is judged decoded too, and those escapes are patterns;
  each string is in the text verbatim, so the patterns match the text wherever they match one of
  its strings. A match across two strings (through the NUL) only sends one more record down
  the full path;
- a string value that is exactly a UUID (8-4-4-4-12 hex digits) is left out of the text: the
  engine exempts exactly these (``rules.is_uuid``, in its scan and its id check), and no
  attribute verdict can fire on 36 characters without a space. Map keys are always in;
- an attribute is dropped for its key only if the key holds one of ``content_trigger_words()``,
  and for its value only if it holds ``LONG_TEXT_RUN`` or ``PROSE_RUN``: the engine applies
  these to the top-level ``attributes`` map only, so ``ATTRIBUTE_PATTERNS`` scan only the
  attributes' text (a four-word failure message is not an attribute, and is no longer a trip);
- a string longer than the engine's ``max_chars`` (in bytes, so at least as often as in
  characters) is a trip: the engine quarantines it;
- an attribute's value is judged with its key (``keywords.assigned_secret``) only when the key
  names a credential, which it does only through a ``TRIGGER`` word, one of ``RULE_PATTERNS``: a
  record with such a key always trips them, and the key's string is judged by its name (a UUID
  value is not in the text to be paired with it; the name alone decides);
- a text the rule patterns trip may still be cleared by the engine's own verdict on each of its
  strings (``text_may_need_redaction`` says how).

Not visible in the text: ``payload.content`` (stripped by the tenant's capture mode, not by its
text) and a set ``redaction`` summary; the caller sends such records to the engine.
"""
from __future__ import annotations

from bisect import bisect_left
from re import _parser as sre_parse  # type: ignore[attr-defined]  # re's own parser (sre_parse: deprecated)
from typing import Any, Protocol

from agentstream.schemas.attribute_keys import (LONG_TEXT_RUN, MAX_FREE_VALUE_CHARS, PROSE_RUN, content_trigger_words,
                                                credential_key)

from .multipattern import compile_any, compile_ends
from .rules import PREFILTER_PATTERNS

RULE_PATTERNS: tuple[str, ...] = PREFILTER_PATTERNS
ATTRIBUTE_PATTERNS: tuple[str, ...] = (
    "(?i:" + "|".join(sorted(content_trigger_words())) + ")", LONG_TEXT_RUN, PROSE_RUN)
PATTERNS: tuple[str, ...] = RULE_PATTERNS + ATTRIBUTE_PATTERNS


def context_free(pattern: str) -> bool:
    """No anchor, word boundary or lookaround anywhere in ``pattern``: whether it matches at a
    place depends only on the bytes it consumes, not on what stands around the string."""
    def walk(items: Any) -> bool:
        for op, arg in items:
            name = str(op)
            if name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF", "GROUPREF_EXISTS"):
                return False
            if isinstance(arg, tuple):
                for part in arg:
                    if isinstance(part, sre_parse.SubPattern) and not walk(part):
                        return False
                    if isinstance(part, list) and not all(walk(p) for p in part
                                                          if isinstance(p, sre_parse.SubPattern)):
                        return False
            elif isinstance(arg, sre_parse.SubPattern) and not walk(arg):
                return False
        return True
    return walk(sre_parse.parse(pattern))


_NOT_CONTEXT_FREE = [p for p in PATTERNS if not context_free(p)]
if _NOT_CONTEXT_FREE:  # the superset argument above would not hold: refuse to start
    raise ImportError(f"prefilter patterns must be context-free, not {_NOT_CONTEXT_FREE[0][:80]!r}")

_any_match = compile_any(PATTERNS)
_rule_match = compile_any(RULE_PATTERNS)
_attribute_match = compile_any(ATTRIBUTE_PATTERNS)
# Past this many pattern matches in one record's text, judging each string costs more than the
# full path: take it.
MAX_JUDGED_MATCHES = 64
_rule_ends = compile_ends(RULE_PATTERNS, MAX_JUDGED_MATCHES)
# Past this many match ends in one batch's texts, ``batch_rule_hits`` leaves the batch to the
# per-text scan (a batch of digit runs would otherwise cost a Python call per match).
MAX_BATCH_MATCHES = 4096
_batch_ends = compile_ends(RULE_PATTERNS, MAX_BATCH_MATCHES)


def rule_patterns_match(text: bytes) -> bool:
    """Whether any rule pattern matches in ``text``: the per-text scan ``batch_rule_hits`` stands in for."""
    return _rule_match(text)


def batch_rule_hits(texts: list[bytes]) -> list[bool] | None:
    """For each text, False when no rule pattern matches in it, from ONE Hyperscan pass over the
    texts joined by NULs (None past ``MAX_BATCH_MATCHES``: ask each text). True only says "scan
    this text on its own" (``text_may_need_redaction``'s ``rule_hit``).

    Why: a scan call per record cost ~0.5 µs of call overhead beside ~1 µs of matching (1.53 vs
    1.04 µs a record over 2,000 e2e records), and each call releases and retakes the GIL, which in
    the worker is a point where its other threads cut in. Exact: every match inside a text ends
    inside that text's span of the joined bytes, so a text none of whose span holds a match end
    has no match of its own (a match across texts, through the NUL, only marks one more text)."""
    if not texts:
        return []
    ends = _batch_ends(b"\0".join(texts))
    if ends is None:
        return None
    bounds = []
    at = 0
    for t in texts:
        at += len(t)
        bounds.append(at)  # the end of this text's span; its NUL follows
        at += 1
    hits = [False] * len(texts)
    n = len(texts)
    for end in ends:
        i = bisect_left(bounds, end)
        if i < n:
            hits[i] = True
    return hits


# The attribute verdict of an attributes' text, remembered: the same few maps (model, provider,
# route, temperature) come with most events, and the verdict is a function of the text alone.
_ATTRIBUTE_VERDICTS: dict[bytes, bool] = {}
ATTRIBUTE_CACHE_MAX_BYTES, ATTRIBUTE_CACHE_MAX_ENTRIES = 512, 4096


def _attributes_trip(attributes_text: bytes) -> bool:
    hit = _ATTRIBUTE_VERDICTS.get(attributes_text)
    if hit is None:
        hit = _attribute_match(attributes_text)
        if len(attributes_text) <= ATTRIBUTE_CACHE_MAX_BYTES:
            if len(_ATTRIBUTE_VERDICTS) >= ATTRIBUTE_CACHE_MAX_ENTRIES:
                _ATTRIBUTE_VERDICTS.clear()  # cheaper than LRU bookkeeping on every hit
            _ATTRIBUTE_VERDICTS[attributes_text] = hit
    return hit


class Engine(Protocol):
    """What the text test asks of ``Redactor``."""
    max_chars: int

    def scan(self, text: str) -> tuple[Any, ...]: ...

    def check_id(self, value: str) -> str | None: ...


def text_may_need_redaction(text: bytes, attributes_start: int, attributes_end: int, longest: int,
                            ends: bytes, engine: Engine, rule_hit: bool = True) -> bool:
    """The test over a record's text (``EventReader.read_text``): True unless ``engine`` would
    surely leave the record as it is. ``text[attributes_start:attributes_end]`` is the
    attributes' keys and values; ``longest`` the longest string's length in bytes; ``ends``
    each string's end offset in ``text`` (native uint32), bit 31 set for an id field's value.

    A text the rule patterns trip is then judged string by string, as the engine's walk judges
    it: an id field's value by ``check_id`` (token rules only for an id-shaped value; a unique
    call id costs ~11 µs, not the ~80 µs of every rule), any other string by ``scan`` (cached
    per string). Every change the engine makes to a string and every id it quarantines starts
    from a finding of one of these, so a record none of them flags goes on as its bytes; a
    call id or a hex digest that trips a pattern no longer costs a full decode and walk.
    ``rule_hit=False``: ``batch_rule_hits`` found no rule pattern in the text (the scan skipped).
    """
    if longest > engine.max_chars:
        return True
    if attributes_end > attributes_start and (
            _attributes_trip(text[attributes_start:attributes_end])
            or longest > MAX_FREE_VALUE_CHARS and _long_attribute(ends, attributes_start, attributes_end)):
        return True
    if not rule_hit or not _rule_match(text):
        return False
    match_ends = _rule_ends(text)
    if not match_ends:
        return True  # more matches than worth judging one by one (None): the full path
    bounds = memoryview(ends).cast("I")
    string_ends = [e & 0x7FFFFFFF for e in bounds]
    judged: set[int] = set()
    scan, check_id = engine.scan, engine.check_id
    for end in match_ends:
        # the string whose span holds the match's last byte: a match inside one string always
        # lands in it; one across a NUL lands in the later string, judged too (harmless)
        i = bisect_left(string_ends, end)
        if i >= len(string_ends) or i in judged:
            continue
        judged.add(i)
        start = string_ends[i - 1] + 1 if i else 0
        s = text[start:string_ends[i]].decode()
        if (check_id(s) is not None) if bounds[i] >> 31 else scan(s):
            return True
        if attributes_start <= start < attributes_end and credential_key(s) is not None:
            return True  # an attribute under a credential name: the engine judges its value
    return False


def _long_attribute(ends: bytes, start: int, end: int) -> bool:
    """Whether a key or value of the attributes (``text[start:end]``) is longer than a free value
    may be, in bytes (so at least as often as in characters): the engine drops such a value
    whatever it holds, controls included, which ``LONG_TEXT_RUN`` does not see across."""
    prev = -1
    for e in memoryview(ends).cast("I"):
        e &= 0x7FFFFFFF
        if e > start and e <= end and e - max(prev + 1, start) > MAX_FREE_VALUE_CHARS:
            return True
        prev = e
    return False


def may_need_redaction(data: bytes) -> bool:
    """Whether any prefilter pattern matches anywhere in ``data`` (a string's UTF-8): the
    patterns' own reach, which the tests hold against every secret class. The stage never asks it
    of a record: one the field reader cannot walk takes the full path."""
    return _any_match(data)
