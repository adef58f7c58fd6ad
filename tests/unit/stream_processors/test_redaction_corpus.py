"""Recall and preservation per category on the labelled corpus (positives must be caught by a
rule of their category and vanish; look-alikes must come out unchanged)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from agentstream.stream_processors.redaction import RedactionError, Redactor
from agentstream.stream_processors.redaction.cli_redact import redact_lines
from agentstream.stream_processors.redaction.rules import PREFILTER

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "corpus.jsonl").read_text().splitlines() if line]
R = Redactor(b"test-key")


def _categories(text):
    return {f.rule.category for f in R.scan(text)}


@pytest.mark.parametrize("case", [c for c in CORPUS if c["cat"]], ids=lambda c: c["cat"])
def test_positive_is_detected_in_its_category_and_removed(case):
    assert PREFILTER.search(case["text"]), "the prefilter must let every positive through"
    assert case["cat"] in _categories(case["text"])
    counts: dict[str, int] = {}
    out = R.redact_text(case["text"], {}, counts)
    assert f"[REDACTED:{case['cat']}]" in out and sum(counts.values()) >= 1
    assert not R.scan(out), "the post-check would find a leftover"


@pytest.mark.parametrize("case", [c for c in CORPUS if not c["cat"]], ids=lambda c: c["text"][:20])
def test_look_alike_survives(case):
    counts: dict[str, int] = {}
    assert R.redact_text(case["text"], {}, counts) == case["text"] and counts == {}


def test_recall_and_preservation_per_category():
    per = defaultdict(lambda: [0, 0])
    for c in CORPUS:
        key = c["cat"] or "negative"
        per[key][1] += 1
        ok = (c["cat"] in _categories(c["text"])) if c["cat"] else not R.scan(c["text"])
        per[key][0] += ok
    assert all(hit == total for hit, total in per.values()), dict(per)


def test_actions_hash_is_keyed_and_stable_and_drop_removes_attribute():
    counts: dict[str, int] = {}
    a = R.redact_text("mail bob@example.com", {"email": "hash"}, counts)
    assert a == R.redact_text("mail bob@example.com", {"email": "hash"}, {})
    assert a != Redactor(b"other").redact_text("mail bob@example.com", {"email": "hash"}, {})
    assert "bob" not in a and a.startswith("mail [email:hmac:")
    ev = {"event_id": "e", "tenant_id": "t", "agent_id": "a", "agent_version": "1", "environment": "x",
          "run_id": "r", "sdk_version": "s", "kind": "FAILURE", "attributes": {"who": "bob@example.com", "ok": "1"},
          "payload": {"failure_type": "TOOL", "failure_code": "x", "message": "bob@example.com failed"}}
    out = R.redact_event(ev, {"email": "drop"}, "p7")
    assert out["attributes"] == {"ok": "1"} and out["payload"]["message"] is None
    assert out["redaction"] == {"policy_version": "p7", "rule_counts": {"email": 2}}


def test_fail_closed_on_unknown_action_oversize_text_and_secret_identifier():
    with pytest.raises(RedactionError):
        R.redact_text("bob@example.com", {"email": "encrypt"}, {})
    with pytest.raises(RedactionError, match="scan limit"):
        R.scan("x" * (R.max_chars + 1))
    ev = {"event_id": "e", "tenant_id": "t", "agent_id": "bob@example.com", "run_id": "r", "kind": "STEP",
          "attributes": {}, "payload": {}}
    with pytest.raises(RedactionError, match="identifier field agent_id"):
        R.redact_event(ev, {}, "p")


def test_redact_jsonl_cli_path(capsys):
    import io

    out = io.StringIO()
    bad = redact_lines(io.StringIO('{"id": 1, "text": "key AKIAIOSFODNN7EXAMPLE"}\nnot json\n'), out, b"k",
                       err=io.StringIO())
    rec = json.loads(out.getvalue())
    assert bad == 1 and rec["id"] == 1 and "AKIA" not in rec["text"] and rec["redaction"] == {"aws_access_key_id": 1}


def test_the_hash_action_does_not_quarantine_its_own_tokens():
    """``[email:hmac:<16 hex>]`` reads as key material to the key-aware rule, so the post-check
    quarantined every event redacted under ``hash`` (a tenant choosing it lost all such events)."""
    ev = {"event_id": "e", "tenant_id": "t", "agent_id": "a", "agent_version": "1", "environment": "x",
          "run_id": "r", "sdk_version": "s", "kind": "FAILURE",
          "attributes": {"who": "bob@example.com", "db.password": "Tr0ub4dor3"},
          "payload": {"failure_type": "TOOL", "failure_code": "x",
                      "message": "bob@example.com paid with 4111 1111 1111 1111"}}
    actions = {c: "hash" for c in ("email", "payment_card", "credential_assignment")}
    out = R.redact_event(ev, actions, "p8")
    assert out["payload"]["message"].startswith("[email:hmac:") and "4111" not in out["payload"]["message"]
    assert out["attributes"]["who"].startswith("[email:hmac:")
    assert out["attributes"]["db.password"].startswith("[credential_assignment:hmac:")
    assert out["redaction"]["rule_counts"] == {"email": 2, "payment_card": 1, "sensitive_assignment": 1}


def _b64(obj) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("text,rule", [
    # an unsigned token (alg none, empty signature) still carries its claims; so does one cut
    # before its signature (found by a privacy probe: both were missed)
    (f"auth {_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'alice', 'exp': 1999999999})}.", "jwt"),
    (f"auth {_b64({'alg': 'HS256'})}.{_b64({'sub': 'alice', 'role': 'admin'})}", "jwt"),
    # a password with an empty user name in a URL
    ("REDIS_URL=redis://:S3cr3tPa55@cache:6379/0", "url_credentials"),
])
def test_token_shapes_a_probe_found_missing(text, rule):
    assert rule in [f.rule.name for f in R.scan(text)]


@pytest.mark.parametrize("text", ["see https://example.com/a.b", "http://[::1]:8080/x",
                                  f"file {_b64({'alg': 'HS256'})}.png", "ver eyJhbGciOiJIUzI1NiJ9.12345678"])
def test_lookalikes_of_those_shapes_are_kept(text):
    assert not [f for f in R.scan(text) if f.rule.name in ("jwt", "url_credentials")]
