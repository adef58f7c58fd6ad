"""Text as a terminal, a word processor or another script shows it: a second view the rules scan,
with a map back to the original offsets (as ``escapes.decoded`` has), so that a token hidden by
how its text was typeset is found and redacted where it stands.

What hid tokens from the rules (each seen in a red-team pass over the live stack):

- ANSI escape sequences, which CLI tools and ``git`` put around their output: in
  ``\\x1b[31mghp_…`` the ``m`` that ends the colour code is a letter glued to the token, so no rule
  anchored at a token boundary fires;
- letters of other scripts glued to a token: ``密钥是AKIA…，令牌eyJ…`` (CJK has no spaces between
  words, and to ``re`` a CJK character is a word character);
- invisible characters inside a token: zero-width spaces and joiners, word joiners, BOMs, soft
  hyphens (Unicode's format characters, category Cf), C0 controls, combining marks;
- fullwidth forms (``ｇｈｐ＿…``), which read as the ASCII letters they stand for.

The view: an escape sequence and every letter, digit or mark of another script become a blank,
as a terminal shows the one and as a reader parts a token from the script around it (a NUL was
tried: the key-aware rules read it as part of a value, so ``ssn=303240050`` glued to a colour
code or a CJK word went unseen); format characters, controls and combining marks are deleted;
fullwidth forms become their ASCII letters. Other non-ASCII characters (no-break and thin
spaces, dashes, symbols) stay as they are: the rules already read them where they stand, and as
blanks they made phone numbers of card look-alikes grouped by narrow no-break spaces.
The original text is still scanned as it is: the view only adds findings.

Every character the view deletes or rewrites, and the escape character, is in ``PREFILTER`` (the
byte prefilter's patterns): a record holding one takes the full path, where the engine scans the
view, so the pass-through path never lets through what the view would find. A CJK neighbour is
not in it: a token glued to one still trips the token's own pattern, and the engine's scan of
that string builds the view.
"""
from __future__ import annotations

import re
import unicodedata

_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?")
# C0 controls other than tab and line breaks (a NUL inside a string is not here: the byte
# prefilter's text separates strings with NULs, so it cannot see one), and DEL.
_CONTROLS = "".join(chr(c) for c in (*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F) if c != 0x1B)
_FORMAT = "".join(chr(c) for c in (*range(0x80, 0x10000), *range(0xE0000, 0xE0080))
                  if unicodedata.category(chr(c)) == "Cf")
_COMBINING = "".join(chr(c) for c in range(0x300, 0x370))
_DELETED = frozenset(_CONTROLS + _FORMAT + _COMBINING + "\x00")
_FULLWIDTH = {c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = " "  # the ideographic space: the blank of fullwidth text
# Anything that asks for the slow walk: an escape, a deleted character.
_NEEDS_WALK = re.compile("[" + re.escape("\x1b" + "".join(sorted(_DELETED))) + "]")

# The byte prefilter's patterns: literal characters (their UTF-8 bytes are what Hyperscan matches,
# and ``re`` matches the same characters), no class over non-ASCII ranges.
PREFILTER: tuple[str, ...] = (
    r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]",
    "|".join(re.escape(c) for c in _FORMAT + _COMBINING + "".join(chr(c) for c in _FULLWIDTH)),
)


def _viewed(code: int) -> str:
    """A non-ASCII character as the view shows it."""
    full = _FULLWIDTH.get(code)
    if full is not None:
        return full
    c = chr(code)
    return " " if unicodedata.category(c)[0] in "LNM" else c


class _Table(dict[int, str]):
    """``str.translate``'s table for the one-to-one part of the view (remembered as it is met: a
    text holds few distinct characters)."""

    def __missing__(self, code: int) -> str:
        v = self[code] = _viewed(code)
        return v


_TABLE = _Table({c: chr(c) for c in range(0x80)})


def folded(text: str) -> tuple[str, list[int] | None] | None:
    """(the view, ``starts``) or None when the view would equal ``text``. ``starts`` maps as in
    ``escapes.decoded`` (a span ``[s, e)`` of the view came from ``[starts[s], starts[e])``);
    None when the view is character for character (nothing deleted), so offsets are the same."""
    if _NEEDS_WALK.search(text) is None:
        # nothing to delete or unescape: only non-ASCII characters can change, one for one
        return None if text.isascii() else (text.translate(_TABLE), None)
    out: list[str] = []
    starts: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\x1b":
            m = _ESCAPE.match(text, i)
            out.append(" ")
            starts.append(i)
            i = m.end() if m is not None and m.end() > i else i + 1
            continue
        if c in _DELETED:
            i += 1
            continue
        code = ord(c)
        out.append(c if code < 0x80 else _TABLE[code])
        starts.append(i)
        i += 1
    starts.append(n)
    return "".join(out), starts
