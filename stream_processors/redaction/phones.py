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

# Regions tried for a national number named as a phone; the countries most agent fleets serve.
NATIONAL_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "ES", "IT", "NL", "MX", "JP", "AU", "CA", "PL",
                    "SE", "CH", "IE", "ZA", "NG", "KE", "PH", "ID", "SG", "KR", "AR", "CO", "TR", "PT")
_INTL = re.compile(r"(?<![\w+])\+[ \t]?[1-9][\d \t().\-/]{5,22}\d(?!\w)")
PHONE_CONTEXT_SOURCE = (
    r"(?i:phone|tel|telephone|mobile|cell|fax|callback|call[ _-]?back|whatsapp|sms|contact[ _-]?number"
    r"|msisdn|call(?: me)?(?: on| at)?|ring|text(?: me)?(?: on| at)?|dial|number)"
    r"[\w\\\"' \t]{0,24}?[:=\s>\"']\s*\\{0,3}[\"']?\(?\d[\d \t().\-/]{5,20}\d"
)
_CONTEXT = re.compile(
    PHONE_CONTEXT_SOURCE.replace(r"\(?\d[\d \t().\-/]{5,20}\d", r"(?P<num>\(?\d[\d \t().\-/]{5,20}\d)")
    + r"(?![\w])")


def _valid(candidate: str, region: str | None) -> bool:
    try:
        n = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(n)


def find_phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _INTL.finditer(text):
        cand = m.group(0).rstrip(" \t.-/(")
        if _valid(cand, None):
            yield m.start(), m.start() + len(cand)
    for m in _CONTEXT.finditer(text):
        cand = m.group("num")
        digits = sum(c.isdigit() for c in cand)
        if digits < 7 or digits > 15:
            continue
        if any(_valid(cand, r) for r in NATIONAL_REGIONS):
            yield m.start("num"), m.end("num")
