"""Text as URLs, forms and JSON carry it: percent-escapes (``+`` as a blank in a query value) and
JSON's ``\\uXXXX`` escapes decoded for JUDGING, with a map back to the original offsets, so that
what a rule finds in the decoded text is redacted where it stands in the original:
``email=jane.doe%40example.com``, ``phone=%2B1%20415%20555%200132``,
``next=https%3A%2F%2Fuser%3Apass%40host``, a redirect encoded twice (``%2540``), and
``"\\u5bc6\\u7801\\uff1aAbc123"`` (``密码：Abc123`` as ``json.dumps`` writes it by default). The rules
stay as they are: they see the text a browser or a JSON reader would show.

The engine runs the rules over the decoded text only when the original holds something to decode,
and the patterns below are in the byte prefilter: a record that holds neither is passed on as its
bytes, exactly as before.
"""
from __future__ import annotations

import codecs
import re

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNICODE = re.compile(r"\\u[0-9A-Fa-f]{4}")
_ANY = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}")
# "+" is a blank in a query or form value (after "name=" in a run without blanks), and "%2B" a plus
_QUERY_PLUS = re.compile(r"[A-Za-z0-9_.\[\]%-]=[^\s&#]*\+")
PREFILTER = (r"%[0-9A-Fa-f]{2}", r"\\u[0-9A-Fa-f]{4}", r"[A-Za-z0-9_.\[\]%-]=[^\s&#\x00]*\+")
_ROUNDS = 3  # a value encoded into a URL that is itself encoded into another: %2540 -> %40 -> @
_RUN_ENDS = frozenset(" \t\r\n\x0b\x0c\"'`<>")


def _query_pluses(text: str) -> set[int]:
    """Where a "+" follows an "=" in its run of non-blank characters (one pass)."""
    if "+" not in text or _QUERY_PLUS.search(text) is None:
        return set()
    out, assigned = set(), False
    for i, c in enumerate(text):
        if c in _RUN_ENDS:
            assigned = False
        elif c == "=":
            assigned = True
        elif c == "+" and assigned:
            out.add(i)
    return out


def _unicode_escape(text: str, i: int, out: list[str], starts: list[int]) -> int:
    """The character of ``\\uXXXX`` at ``i`` (a surrogate pair as one), mapped to ``i``; the end."""
    code = int(text[i + 2:i + 6], 16)
    end = i + 6
    if 0xD800 <= code < 0xDC00 and _UNICODE.match(text, end):
        low = int(text[end + 2:end + 6], 16)
        if 0xDC00 <= low < 0xE000:
            code, end = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00), end + 6
    out.append("\ufffd" if 0xD800 <= code < 0xE000 else chr(code))  # a lone surrogate reads as nothing
    starts.append(i)
    return end


def _decode_once(text: str, pluses: set[int]) -> tuple[str, list[int]]:
    out: list[str] = []
    starts: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and _UNICODE.match(text, i):
            i = _unicode_escape(text, i, out, starts)
            continue
        if c == "%" and _PERCENT.match(text, i):
            # a run of escapes is UTF-8 bytes: each character maps to the escape that began it
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            pending = i
            while i < n and text[i] == "%" and _PERCENT.match(text, i):
                chars = decoder.decode(bytes((int(text[i + 1:i + 3], 16),)))
                i += 3
                for ch in chars:
                    out.append(ch)
                    starts.append(pending)
                if chars:
                    pending = i
            for ch in decoder.decode(b"", final=True):  # a character cut short: U+FFFD
                out.append(ch)
                starts.append(pending)
            continue
        out.append(" " if i in pluses else c)
        starts.append(i)
        i += 1
    starts.append(n)
    return "".join(out), starts


# JSON's blank escapes glued to a token: in "…\\n4111 1111…" or "…\\nsk-proj-…" the escape's
# "n" is a letter to every rule anchored at a token boundary (\b, a lookbehind), and a value at the
# start of a line of JSON-encoded output was stored as sent. Read as a blank of the same width,
# a space then the character itself, so every offset holds and nothing needs mapping back.
_GLUED_BLANK = re.compile(r"\\([nrt])(?=[A-Za-z0-9+(])")
_BLANKS = {"n": " \n", "r": " \r", "t": " \t"}


def unglued(text: str) -> str:
    """``text`` with each ``\\n``/``\\r``/``\\t`` escape before a token read as a blank (same
    length, same offsets): what the rules scan."""
    if "\\" not in text:
        return text
    return _GLUED_BLANK.sub(lambda m: _BLANKS[m.group(1)], text)


def decoded(text: str) -> tuple[str, list[int]] | None:
    """(the decoded text, ``starts``): ``starts[i]`` is where the source of decoded character ``i``
    begins in ``text``, and ``starts[len(decoded)] == len(text)``, so a span ``[s, e)`` of the
    decoded text came from ``[starts[s], starts[e])``. None when there is nothing to decode."""
    pluses = _query_pluses(text)
    if not pluses and ("%" not in text and "\\u" not in text or _ANY.search(text) is None):
        return None
    out, starts = _decode_once(text, pluses)
    for _ in range(_ROUNDS - 1):
        if _ANY.search(out) is None:
            break
        out, inner = _decode_once(out, set())  # a "+" decoded from %2B is a plus
        starts = [starts[j] for j in inner]
    return out, starts
