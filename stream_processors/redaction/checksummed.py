"""Numbers a checksum validates: payment card numbers (Luhn, issuer prefix, length) and IBANs
(country length, mod-97). The checksum is what lets a loose digit pattern through: a random
16-digit run passes Luhn one time in ten and a card prefix less often, a Luhn-failing order id
never.

Card numbers are grouped as people and documents write them: 4-4-4-4 (and 4-4-4-4-3 for 19
digits), Amex 4-6-5, Diners 4-6-4, or one run. Between the groups, whatever separates groups in
the text that carried it: a space, a dash, a dot, and the characters typesetting and word
processors put there instead (no-break, thin, narrow no-break, figure and en spaces; en dash,
non-breaking hyphen, minus sign). One separator KIND per number (spaces, dashes or dots: a word
processor mixes a no-break space with a plain one, never a space with a dot), so ``1234.5678-…``
is not read as one number.
"""
from __future__ import annotations

import re
from typing import Iterator

# The separators, by kind: characters for the rule's regex; the byte prefilter spells each one as
# a literal (a character class over UTF-8 would match single bytes of a multi-byte character).
SPACES = (" ", "\u00a0", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009",
          "\u200a", "\u202f", "\u205f", "\u3000")
DASHES = ("-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2212")
_KINDS = ("[" + "".join(SPACES) + "]{1,2}", "[" + re.escape("".join(DASHES)) + "]", r"\.")  # (two blanks: a table)


def _grouped(sep: str) -> str:
    # 4-4-4-4 (or 4-4-4-2..7) with an optional fifth group of 3 (19 digits); 4-6-4/5
    return (rf"\d{{4}}{sep}\d{{4}}{sep}\d{{4}}{sep}\d{{2,7}}(?:{sep}\d{{3}}(?!\d))?"
            rf"|\d{{4}}{sep}\d{{6}}{sep}\d{{4,5}}")


_DASH_CLASS = re.escape("".join(DASHES))
# token boundaries: not inside a word, a dotted number or a dashed id ("ord-4111…-3", "v1.4111…")
CARD = re.compile(rf"(?<![\w.{_DASH_CLASS}])(?:\d{{14,19}}|" + "|".join(_grouped(k) for k in _KINDS)
                  + rf")(?![\w{_DASH_CLASS}]|\.\d)", re.ASCII)
# The byte prefilter's card shapes: three 4-digit groups apart by any one separator above.
_ANY_SEP = "(?:" + "|".join(re.escape(c) for c in SPACES + DASHES + (".",)) + ")"
PREFILTER = (r"\d{14}", rf"\d{{4}}{_ANY_SEP}{{1,2}}\d{{4}}{_ANY_SEP}{{1,2}}\d{{4}}",
             rf"\d{{4}}{_ANY_SEP}{{1,2}}\d{{6}}{_ANY_SEP}{{1,2}}\d{{4}}")

_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|35|6011|65|64[4-9]|62)")
_NOT_DIGIT = re.compile(r"\D")


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_number_ok(candidate: str) -> bool:
    digits = _NOT_DIGIT.sub("", candidate)
    # 13-digit Visa numbers are long retired; 13 digits starting with 4 are mostly EAN barcodes
    if not 14 <= len(digits) <= 19 or len(set(digits)) < 2:
        return False
    return bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)


def find_cards(text: str) -> Iterator[tuple[int, int]]:
    for m in CARD.finditer(text):
        s, e = m.span()
        if card_number_ok(m.group(0)):
            yield s, e
        elif e - s > 20 and text[e - 4] in SPACES:
            # 4-4-4-4 then a blank and a group of 3 that is not the card's: "4111 1111 1111 1111 123"
            # (a CVV); after a dash or a dot the group is part of the number, as the boundary says
            cut = e - 4
            while not text[cut - 1].isdigit():
                cut -= 1
            if card_number_ok(text[s:cut]):
                yield s, cut


IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}


def iban_ok(raw: str) -> bool:
    iban = raw.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    num = "".join(str(int(c, 36)) for c in moved)
    return int(num) % 97 == 1


IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def find_ibans(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    while (m := IBAN.search(text, pos)) is not None:
        # the country fixes the length: cut the match there (it may run on into the next word
        # or the next IBAN), then check the digits
        want, n, end = IBAN_LENGTHS.get(m.group(0)[:2]), 0, m.start()
        for i in range(m.start(), m.end()):
            if text[i] != " ":
                n += 1
            if n == want:
                end = i + 1
                break
        if want and n == want and (end == len(text) or not text[end].isalnum()) and iban_ok(text[m.start():end]):
            yield m.start(), end
            pos = end
        else:
            pos = m.start() + 1
