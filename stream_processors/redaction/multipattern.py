"""Many patterns, one pass: a Hyperscan database that answers "does any of them match?".

Python's ``re`` tries a sixty-word alternation at every position (~60 µs for a short string,
~3k raw records/s); Hyperscan compiles the set into one automaton and scans in C (~1 µs a call,
>400k records/s). Used for the engine's per-string prefilter and the raw-record prefilter, with
ASCII-only patterns without lookarounds, so that matching over UTF-8 bytes is matching over text.
"""
from __future__ import annotations

from typing import Callable, Sequence

import hyperscan


def _stop(*_: object) -> bool:
    return True  # the first match answers the question


def compile_any(patterns: Sequence[str]) -> Callable[[bytes], bool]:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[p.encode() for p in patterns], ids=list(range(len(patterns))),
               elements=len(patterns), flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(patterns))
    scan = db.scan

    def any_match(data: bytes) -> bool:
        try:
            # positional: the keyword cost ~0.3 µs a call (0.75 vs 0.45 µs for a 140-byte miss)
            scan(data, _stop)
        except hyperscan.ScanTerminated:
            return True
        return False

    return any_match


# The non-ASCII characters ``re`` folds to an ASCII letter under IGNORECASE without ASCII (a
# brute force over every code point on CPython 3.11; tests/unit/stream_processors/
# test_rule_triggers.py checks it), spelled as UTF-8 bytes for Hyperscan.
UNICODE_FOLDS = {"i": ("\u0130", "\u0131"), "k": ("\u212a",), "s": ("\u017f",)}


def words_trigger(words: tuple[str, ...], ascii_only: bool) -> Callable[[str], bool]:
    """Whether any of ``words`` is in the text case-insensitively: what ``re.search`` of
    ``(?ai)w1|w2|...`` (``ascii_only``) or ``(?i)w1|w2|...`` answers, from one Hyperscan pass.
    Why: ``re`` tries an alternation at every position (an eighty-word one: ~25 µs on a
    64-character hex digest where no word occurs), and a rule asks its trigger of every string
    that reaches it. Exact: a non-ASCII character's UTF-8 bytes (all >= 0x80) match no ASCII
    letter, and without ``ascii_only`` the few characters ``re`` folds to one are spelled out."""
    if not all(w.isascii() and w.replace("_", "").isalnum() for w in words):
        raise ValueError("words_trigger takes plain ASCII words")

    def letter(c: str) -> str:
        folds = () if ascii_only else UNICODE_FOLDS.get(c.lower(), ())
        spelled = ["".join(f"\\x{b:02x}" for b in f.encode()) for f in folds]
        return "(?:" + "|".join([c, *spelled]) + ")" if spelled else c

    match = compile_any(["(?i:" + "|".join("".join(letter(c) for c in w) for w in words) + ")"])
    return lambda s: match(s.encode("utf-8", "surrogatepass"))


def compile_which(patterns: Sequence[str]) -> Callable[[bytes], set[int]]:
    """The indexes of the patterns that match somewhere in ``data`` (each reported once)."""
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[p.encode() for p in patterns], ids=list(range(len(patterns))),
               elements=len(patterns), flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(patterns))
    scan = db.scan

    def which(data: bytes) -> set[int]:
        found: set[int] = set()
        scan(data, lambda i, *_: found.add(i))
        return found

    return which


def compile_ends(patterns: Sequence[str], limit: int) -> Callable[[bytes], list[int] | None]:
    """Where matches of any pattern end in ``data`` (every end, every pattern, in order, repeats
    possible), or None past ``limit`` of them (the caller then treats the data as suspect)."""
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[p.encode() for p in patterns], ids=list(range(len(patterns))),
               elements=len(patterns), flags=[0] * len(patterns))
    scan = db.scan

    def ends(data: bytes) -> list[int] | None:
        found: list[int] = []

        def on_match(_id: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
            found.append(end)
            return len(found) > limit  # True stops the scan

        try:
            scan(data, on_match)
        except hyperscan.ScanTerminated:
            return None
        return found

    return ends
