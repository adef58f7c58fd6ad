"""The SDK's preview checker (producer/capture.py) fails closed for the secret classes the processors'
rules were widened for: a ``redacted`` preview never carries a vendor token, a digit-free random
body or a one-word password; the processors redact again downstream with the full rule set."""
from __future__ import annotations

import random
import sys
from pathlib import Path

from agentstream.producer.capture import CapturePolicy, redact_text, residual_findings

BENCH = Path(__file__).parents[3] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
import redaction_classes as rc  # noqa: E402  (the generators live with their bench)

POLICY = CapturePolicy("redacted", "v1", b"k")


def _leaks(value: str, text: str) -> bool:
    text = text[-150:]  # what fits a preview
    if value not in text:
        return False
    got = POLICY.project(text)
    return got is not None and value in got["preview"]


def test_vendor_tokens_never_reach_a_preview():
    r = random.Random(21)
    leaks = []
    for _ in range(1500):
        name, v = rc.vendor_token(r)
        t = rc.surround(r, rc.carried(r, name, v))
        if _leaks(v, t):
            leaks.append((name, t))
    assert not leaks, leaks[:5]


def test_digit_free_bodies_and_one_word_passwords_never_reach_a_preview():
    r = random.Random(22)
    leaks = [t for _ in range(4000) for _, v, t in [rc.no_digit_case(r)] if _leaks(v, t)]
    leaks += [t for _ in range(1500) for w, t in [rc.prose_password(r)] if _leaks(w, t)]
    assert not leaks, leaks[:5]


def test_a_redacted_preview_has_no_residual_findings_and_ordinary_text_stays():
    red, counts = redact_text("the passphrase is tangerine, token dapi" + "a1" * 16 + " and pw: maple")
    assert "tangerine" not in red and "maple" not in red and "dapi" not in red, red
    assert counts and residual_findings(red) == []
    keep = ("model claude-3-5-sonnet-20241022 answered in 3 steps",
            "commit 9f8e7d6c5b4a39281706f5e4d3c2b1a098765432 fixed it",
            "run 0b5c2a4e-8f1d-4c3b-9a7e-6d5f4e3c2b1a finished", "the password is incorrect",
            "secret_name=prod/db/main", "max_tokens=1024", "PWD=/home/agent/work",
            # a short credential word inside another word is not one
            "mapping: users", "shopping is fun", "the keyboard is broken", "author: jane", "typing is slow")
    for text in keep:
        assert POLICY.project(text) == {"preview": text, "reference": None}, text
