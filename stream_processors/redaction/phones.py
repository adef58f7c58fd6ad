"""Phone numbers through Google's libphonenumber (the ``phonenumbers`` package).

Hand-written patterns miss most of the world's formats (``+44 (0)7584 054850``, ``+55 21
90647-9096``, ``+49 176 5775604``). Here a loose candidate pattern finds digit runs with the
punctuation phones use, and libphonenumber decides: an international number (``+CC…``) must be a
valid number of its country; a national number (no ``+``) is only taken next to a phone-ish name
(``phone:``, ``tel=``, ``CALLBACK_NUMBER=``, "call me on"), valid in one of the regions below.
Timestamps, prices, versions and order ids do not parse as valid numbers of any plan.
"""
from __future__ import annotations

import re
from typing import Iterator

import phonenumbers

from .multipattern import words_trigger

# Regions tried for a national number named as a phone; the countries most agent fleets serve.
NATIONAL_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "ES", "IT", "NL", "MX", "JP", "AU", "CA", "PL",
                    "SE", "CH", "IE", "ZA", "NG", "KE", "PH", "ID", "SG", "KR", "AR", "CO", "TR", "PT")
# "+CC…" or the "00CC…" international prefix most of the world dials
_INTL = re.compile(r"(?<![\w+])(?:\+[ \t]?|(?<![:.])00[ \t]?)[1-9][\d \t().\-/]{5,22}\d(?!\w)")
PHONE_CONTEXT_SOURCE = (
    r"(?i:phone|tel|telephone|mobile|cell|fax|callback|call[ _-]?back|whatsapp|sms|contact[ _-]?number"
    # other languages' words, by an ASCII stem (teléfono, Telefonnummer, número, Handy, celular…)
    r"|fono|numero|mero|nummer|celular|handy|movil|portable|cellulare"
    r"|msisdn|call(?: me)?(?: on| at)?|ring|text(?: me)?(?: on| at)?|dial|number)"
    r"[\w\\\"' \t]{0,24}?[:= \t>\"'.]{1,3}[ \t]*\\{0,3}[\"']?\(?\d[\d \t().\-/]{5,20}\d"
)
# A word every match of ``_CONTEXT`` holds (each alternative of its context group contains one:
# "telephone" holds "tel", "callback" and "call me on" "call", "numero" "mero", "cellulare"
# "cell", "contact number" "contact", "text me" "text"): without one, the costly search
# (a case-insensitive alternation behind a lookbehind, at every position) cannot match.
CONTEXT_WORDS = ("phone", "tel", "mobile", "cell", "fax", "call", "whatsapp", "sms", "contact", "fono", "mero",
                 "nummer", "celular", "handy", "movil", "portable", "msisdn", "ring", "text", "dial", "number")
_CONTEXT_WORD = words_trigger(CONTEXT_WORDS, ascii_only=False)  # (?i:...) without re.ASCII: Unicode folds
_CONTEXT = re.compile(
    r"(?<![A-Za-z])" +  # "ring" in "string", "tel" in "hotel" are no context
    PHONE_CONTEXT_SOURCE.replace(r"\(?\d[\d \t().\-/]{5,20}\d", r"(?P<num>\(?\d[\d \t().\-/]{5,20}\d)")
    + r"(?![\w])")


def _shortened(cand: str, min_digits: int) -> Iterator[str]:
    """The candidate, then without its last group, while it keeps ``min_digits`` digits: the loose
    pattern may run into the next number ("+353 855 230309 19:29", "655 75 3217 2026-01"). At most
    four tries: each is a libphonenumber parse, and a 256 KiB run of digit groups must stay cheap."""
    for _ in range(4):
        cand = cand.rstrip(" \t.-/(")
        if sum(c.isdigit() for c in cand) < min_digits:
            return
        yield cand
        cut = max(cand.rfind(c) for c in " \t-./(")
        if cut <= 0:
            return
        cand = cand[:cut]


def _ends_clean(text: str, end: int) -> bool:
    """A number ends a token: not "…800 11" of "11:12:01" nor "…3217 2026" of "2026-01-03"."""
    if end >= len(text):
        return True
    nxt = text[end]
    if nxt.isalnum() or nxt in ":-/_":
        return False
    return not (nxt == "." and end + 1 < len(text) and text[end + 1].isdigit())


def _valid(candidate: str, region: str | None) -> bool:
    try:
        n = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(n)


def find_phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _INTL.finditer(text):
        # the loose pattern may run into the next number ("+353 855 230309 19:29"): try the
        # candidate, then without its last group, down to two groups
        cand = m.group(0)
        lead = 0
        if cand.startswith("00"):
            lead = 2 + (cand[2] in " \t")
            cand = "+" + cand[lead:]
            lead -= 1  # "+" stands for the two zeros (and a space)
        for c in _shortened(cand, 7):
            if _ends_clean(text, m.start() + lead + len(c)) and _valid(c, None):
                yield m.start(), m.start() + lead + len(c)
                break
    if not _CONTEXT_WORD(text):
        return
    for m in _CONTEXT.finditer(text):
        for c in _shortened(m.group("num"), 7):
            if _ends_clean(text, m.start("num") + len(c)) and sum(ch.isdigit() for ch in c) <= 15 and any(_valid(c, r) for r in NATIONAL_REGIONS):
                yield m.start("num"), m.start("num") + len(c)
                break


# A phone number written as a contact: a URI scheme that dials or messages it (RFC 3966 ``tel:``,
# ``sms:``, SIP, WhatsApp's ``whatsapp:`` and ``wa.me/``, ``callto:``…), or ``+`` and an E.164
# number right after an id's separator (``chat:+14155550132``). Bots key sessions by the sender's
# number, so these are identifiers as often as text: the rule also runs on id-shaped values
# (fields.py), where the free-text phone rules do not. The scheme says "phone", so a number
# without ``+`` counts too: international if it is valid so (WhatsApp writes ``14155550132``),
# else national in one of the regions above.
CONTACT_SCHEMES = ("tel", "sms", "smsto", "mms", "mmsto", "whatsapp", "wa", "sip", "sips", "callto", "facetime",
                   "facetime-audio", "skype", "viber", "signal", "imessage", "fax", "telprompt")
_SCHEMES = "|".join(sorted(CONTACT_SCHEMES, key=len, reverse=True))
CONTACT_PREFILTER = (rf"(?i:{_SCHEMES}):(?://)?\+?\d", r"wa\.me/\+?\d", r"[:/=]\+[1-9]\d{7}")
_CONTACT = re.compile(
    rf"(?<![A-Za-z0-9.+-])(?i:{_SCHEMES}):(?://)?(?P<num>\+?\d[\d().\-]{{5,20}}\d)(?![A-Za-z0-9])"
    r"|wa\.me/(?P<wa>\+?\d{7,15})(?![A-Za-z0-9])"
    r"|(?<=[:/=])(?P<e164>\+[1-9]\d{7,14})(?![A-Za-z0-9])", re.ASCII)  # (ASCII: as the prefilter folds case)


def find_contact_uris(text: str) -> Iterator[tuple[int, int]]:
    for m in _CONTACT.finditer(text):
        g = "num" if m.group("num") else "wa" if m.group("wa") else "e164"
        num = m.group(g)
        digits = re.sub(r"\D", "", num)
        if not 7 <= len(digits) <= 15:
            continue
        if num.startswith("+") or g == "wa":
            ok = _valid("+" + digits, None)
        else:
            ok = len(digits) >= 8 and _valid("+" + digits, None) or any(_valid(num, r) for r in NATIONAL_REGIONS)
        if ok:
            yield m.span(g)
