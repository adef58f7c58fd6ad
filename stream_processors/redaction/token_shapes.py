"""Secret tokens found by their SHAPE, for vendors no rule names (``hf_…``, ``npm_…``, ``glpat-…``,
``lin_api_…``, ``SG.<22>.<43>``, ``SK`` + 32 hex, and the next vendor's format).

Vendors mint tokens the same way: a short lowercase prefix that names the issuer (and sometimes
a kind or environment: ``_pat_``, ``-prod-``), then a body a machine drew at random. So the rule is
the structure, not a list of vendors: prefix + separator(s) + a body that is long (≥ 20 chars
after the prefix) with one unbroken random run (≥ 14 chars), holds letters and digits, and has the
entropy of random text. Dotted tokens need two or more random segments. What turns look-alikes
away is structural too: words (``sentence-transformers``, snake_case names) have no digits or no
entropy; pod names and model names (``checkout-api-7d9f8b6c4d-x2kq9``, ``claude-3-5-sonnet-20241022``)
have no long random run; base64 blobs (data: URIs) hold no ``_``/``-`` so never start a prefix.
Provider OBJECT ids share the shape (``msg_01…``, ``call_…``, ``chatcmpl-…``, ``run_<hex>``):
their prefixes are nouns of things, listed below; a prefix missing from that list costs an
over-redacted id in free text, never a leaked secret.
"""
from __future__ import annotations

import math
import re
from typing import Iterator

from agentstream.schemas.letter_pairs import random_letters, shannon_bits

# Prefixes that name an object, a digest or a build artefact, not an issuer of credentials.
ID_NOUNS = frozenset((
    "run", "runs", "msg", "message", "call", "toolu", "tool", "chatcmpl", "cmpl", "resp", "response", "req",
    "request", "evt", "event", "cus", "cust", "customer", "sub", "pi", "pm", "ch", "in", "po",
    "prod", "price", "txn", "tx", "file", "asst", "thread", "batch", "job", "ftjob", "ft", "span", "trace",
    "step", "order", "ord", "inv", "invoice", "acct", "org", "proj", "project", "user", "usr", "team", "doc",
    "img", "image", "vs", "pod", "node", "build", "commit", "md5", "etag", "hash", "digest", "checksum",
    "rev", "ver", "version", "snap", "snapshot", "ckpt", "checkpoint", "model", "dataset", "ds", "exp",
    "item", "obj", "object", "rec", "record", "row", "task", "wf", "workflow", "id", "uid", "guid", "uuid",
    "ulid", "idem", "corr", "cid", "rid", "tid", "conv", "conversation", "chat", "gen", "generation",
    "comp", "completion", "emb", "cache", "blob", "att", "attachment", "upload", "note", "ticket", "issue",
    "pr", "ws", "workspace", "release", "artifact", "test", "tmp", "temp", "data", "chunk",
    "src", "card", "mcp", "agent", "sha", "msgbatch", "srvtoolu", "modr", "seti", "prj", "ftckpt",
    "assistant", "vector", "compl", "fc", "rs", "ci", "wfr",
))
_DIGEST_PREFIX = re.compile(r"(?:sha|md|blake|xxh|crc|murmur|fnv)\d*[a-z]?\d*$")

# Prefix, up to two short kind/env segments, then the rest of the token.
_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9_+\-.])(?P<pfx>[a-z][a-z0-9]{1,11}|[A-Z][A-Z0-9]{1,11})(?P<sep>[_-])(?P<rest>[A-Za-z0-9_-][A-Za-z0-9_+-]{18,254}={0,2})"
    r"(?![A-Za-z0-9_+=-])")
# A short uppercase issuer glued to 32+ lowercase hex (Twilio ``SK…``, ``AC…``); digests are one case.
_GLUED_HEX = re.compile(r"(?<![A-Za-z0-9_+/-])[A-Z]{2,4}[0-9a-f]{32,64}(?![A-Za-z0-9_+/-])")
# A short lowercase issuer, up to three short words, then one long random segment (``hvs.…``,
# ``dp.st.prd.…``); module paths and host names have no 24-char random segment.
_DOTTED_ONE = re.compile(
    r"(?<![A-Za-z0-9_.\-/])[a-z]{1,5}(?:\.[a-z]{2,5}){0,3}\.(?P<body>[A-Za-z0-9_-]{24,512})(?![A-Za-z0-9_.\-/])")
_DOTTED = re.compile(
    r"(?<![A-Za-z0-9_.\-/])[A-Za-z0-9]{2,12}(?:\.[A-Za-z0-9_-]{16,}){2,3}(?![A-Za-z0-9_.\-/])")

# Byte-prefilter triggers (ASCII, no lookarounds): every match of the rules above contains one.
# (the first two: a segment of 14+ after its separator; a segment of 8-13 between two separators,
# which a UUID's groups of 4 and a final 12 never are). Short bounded repeats on purpose: each
# costs the Hyperscan scan of every raw record (a window after "[a-z0-9][_-]" halved its rate).
PREFILTER = (r"[_+-][A-Za-z0-9]{14}", r"[_+-][A-Za-z0-9]{8,13}[_+-]", r"[A-Z]{2}[0-9a-f]{8}",
             r"\.[A-Za-z0-9_-]{16}[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{16}|\.[A-Za-z0-9_-]{24}")


def random_run(s: str, min_len: int) -> bool:
    """A run a machine drew: letters and digits, many distinct characters, no long word stretch."""
    if len(s) < min_len:
        return False
    digits = sum(c.isdigit() for c in s)
    letters = sum(c.isalpha() for c in s)
    if digits == 0 or letters == 0 or digits > 0.9 * len(s):
        return False
    # a random draw from ≥16 symbols has about log2(len) bits over short runs; words and repeats less
    return shannon_bits(s) >= min(3.0, math.log2(len(s)) - 1.0)


def find_prefixed(text: str) -> Iterator[tuple[int, int]]:
    for m in _PREFIXED.finditer(text):
        pfx, rest = m.group("pfx").lower(), m.group("rest")
        # provider ids join with "_" (a few with "-"); a two-letter noun only with "_": fc_ is an
        # OpenAI item id, fc- a Firecrawl key
        if pfx in ID_NOUNS and (len(pfx) > 2 or m.group("sep") == "_") or _DIGEST_PREFIX.match(pfx):
            continue
        rest = rest.rstrip("=")
        segs = [s for s in re.split(r"[_+-]", rest) if s]
        joined = "".join(segs)
        if segs and not any(c.isdigit() for c in joined):
            # a body drawn from letters alone (rare over 20+ characters, not impossible)
            if len(longest := max(segs, key=len)) >= 20 and random_letters(longest):
                yield m.start(), m.end()
            continue
        if not segs or not random_run(joined, 18):
            continue
        # the secret is the longest run between separators; kind/env segments are short words
        longest = max(segs, key=len)
        if len(longest) >= 14 and len(segs) <= 1 + len(rest) // 10 and random_run(longest, 14):
            yield m.start(), m.end()
        elif len(joined) >= 20 and joined != joined.lower() and joined != joined.upper() \
                and len(segs) <= 1 + len(rest) // 6 and max(map(len, segs[:-1]), default=0) >= 8:
            yield m.start(), m.end()  # a base64url body cut by its own "-" and "_": mixed case, unlike slugs


def find_glued_hex(text: str) -> Iterator[tuple[int, int]]:
    for m in _GLUED_HEX.finditer(text):
        if random_run(m.group(0).lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 32):
            yield m.start(), m.end()


def find_dotted(text: str) -> Iterator[tuple[int, int]]:
    for m in _DOTTED.finditer(text):
        segs = [s.replace("-", "").replace("_", "") for s in m.group(0).split(".")[1:]]
        drawn = [random_run(s, 14) for s in segs]
        # a short base64 segment may hold no digit (22 characters: ~3 % of draws, SendGrid's
        # first): letters a machine drew count too, beside a segment that is a full draw
        if any(drawn) and all(d or (s.isalpha() and len(s) >= 16 and random_letters(s))
                              for d, s in zip(drawn, segs)):
            yield m.start(), m.end()
    for m in _DOTTED_ONE.finditer(text):
        body = m.group("body").replace("-", "").replace("_", "")
        if random_run(body, 24) and body != body.lower() and body != body.upper():
            yield m.start(), m.end()
