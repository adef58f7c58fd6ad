"""AWS access keys: the key id (``AKIA…``/``ASIA…``, a documented prefix and 16 characters) and
its secret, 40 characters of base64 with no prefix at all.

Alone, a 40-character base64 run could be anything; what makes it a secret key is where it
stands. Two structural contexts, any syntax:
- named: after a name that says secret access key (``aws_secret_access_key``, ``SecretAccessKey``,
  ``--secret-access-key``, ``-SecretKey``, ``secret_key =``, ``aws.secretAccessKey``) with any
  separator between: ``=``, ``:``, a blank (a CLI argument), ``,``, quotes;
- paired: within a few lines of an access key id (a credentials CSV, ``AKIA…:secret``, STS JSON,
  ``BasicAWSCredentials("AKIA…", "…")``, "the key pair is AKIA… and …"), where it must also read
  as a machine's draw: both letter cases, not hex (a commit SHA beside a key id stays), and letters
  that are not words (``src/components/authentication/LoginForms`` is a path).
"""
from __future__ import annotations

import re
from bisect import bisect_left
from typing import Iterator

from agentstream.schemas.letter_pairs import _COMMON_PAIRS, random_letters

KEY_ID_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA")
KEY_ID = re.compile(r"\b(?:" + "|".join(KEY_ID_PREFIXES) + r")[A-Z0-9]{16}\b")
# the secret after "aws … secret … =" (the form the first rule was written for)
_AWS_NAMED = re.compile(r"(?i)aws.{0,20}?(?:secret|private).{0,20}?[=:]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")
_AWS = re.compile("(?i)aws")
_B64_40 = r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-])(?!\.\w)"
# a secret-access-key name, then any separator an assignment, a CLI or a call puts there
_SECRET_NAMED = re.compile(
    r"(?<![a-z0-9])(?i:secret[ _.-]?(?:access[ _.-]?)?key)"
    r"\\{0,3}[\"'`]?[ \t]*(?:=>|:=|[=:,]|[ \t])[ \t]*\\{0,3}[\"'`]?(?P<v>" + _B64_40 + ")")
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9/+=_.-])" + _B64_40)
NEAR = 256  # characters between a key id and its secret: a CSV row, a JSON object, a config block
_HEX = re.compile(r"[0-9a-f]{40}|[0-9A-F]{40}")
_CASE_RUN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _reads_as_words(v: str) -> bool:
    """Identifiers and paths: split at case changes and symbols, ≥ 90% of the letter pairs are the
    common pairs of words (random draws: under 0.1% of them; a path or CamelCase name: ≥ 91%)."""
    total = common = 0
    for run in _CASE_RUN.findall(v):
        run = run.lower()
        total += len(run) - 1
        common += sum(run[i:i + 2] in _COMMON_PAIRS for i in range(len(run) - 1))
    return total >= 12 and common >= 0.9 * total


def secret_like(v: str) -> bool:
    """A 40-character draw of base64: both letter cases, not hex, letters that are not words."""
    if _HEX.fullmatch(v) or not any(c.isupper() for c in v) or not any(c.islower() for c in v):
        return False
    return random_letters(v) or not _reads_as_words(v)


def find_secret_keys(text: str) -> Iterator[tuple[int, int]]:
    if _AWS.search(text) is not None:
        for m in _AWS_NAMED.finditer(text):
            yield m.span(1)
    for m in _SECRET_NAMED.finditer(text):
        v = m.group("v")
        classes = (any(c.islower() for c in v), any(c.isupper() for c in v), any(c.isdigit() or c in "+/" for c in v))
        if sum(classes) >= 2 and not _HEX.fullmatch(v):  # named: any draw, but not a digest
            yield m.span("v")
    ids = [m.start() for m in KEY_ID.finditer(text)]  # in order
    if not ids:
        return
    for m in _CANDIDATE.finditer(text):
        s, e = m.span()
        i = bisect_left(ids, s - NEAR - 20)  # the first id that may end within NEAR before it
        if i < len(ids) and ids[i] <= e + NEAR and secret_like(m.group(0)):
            yield s, e
