"""Secret and PII formats a probe found stored verbatim: credential FILES (.netrc, .pgpass, PuTTY
keys, YAML block scalars under a credential name), a bare AWS secret access key beside its key id
or its name in any syntax, passwords named in other languages, card numbers with other separators,
percent-encoded PII in URLs, phone numbers written as contact URIs (also as identifiers), and a
value at a line's start in JSON-encoded output (after a ``\\n`` escape).

Attacks first, generated (redaction_format_cases.py, redaction_encoding_cases.py: every value
drawn fresh, every surrounding varied), then the look-alikes each rule must leave alone
(redaction_format_lookalikes.py), then the byte pass-through path, which must never let one of
these formats through untouched."""
from __future__ import annotations

import random

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import DEFAULT_ACTIONS, RedactionError
from agentstream.stream_processors.redaction.prefilter import rule_patterns_match
from agentstream.stream_processors.redaction.rules import PREFILTER

from . import redaction_encoding_cases as ec
from . import redaction_format_cases as fc
from . import redaction_format_lookalikes as la
from .redaction_benches import REDACTOR, engine_changes, load_bench, record_fires, redact

outcome = load_bench("redaction_scoring").outcome
codec = Codec()


@pytest.mark.parametrize("kind", sorted(la.GENERATORS))
def test_every_generated_instance_is_redacted(kind):
    r = random.Random(f"formats-{kind}")
    missed = []
    for _ in range(250):
        text, values = la.GENERATORS[kind](r)
        out = redact(text)
        missed += [(v, text, out) for v in values if not all(outcome(text, out, v))]
    assert not missed, missed[:5]


def test_look_alikes_survive():
    r = random.Random(2026)
    changed = []
    for _ in range(3000):
        text, keep = la.near_miss(r)
        out = redact(text)
        if keep not in out:
            changed.append((text, out))
    assert not changed, changed[:10]


@pytest.mark.parametrize("kind", sorted(la.GENERATORS))
def test_the_byte_path_never_passes_one_on(kind):
    # a raw record goes on as its bytes when no prefilter pattern fires: a format whose rule
    # exists but whose trigger is missing from the prefilter would be stored as sent
    r = random.Random(f"bytes-{kind}")
    for _ in range(40):
        text, _ = la.GENERATORS[kind](r)
        assert PREFILTER.search(text) and rule_patterns_match(text.encode()), text
        ev = syn.step("t", "run-1", 2, name=text, args_digest="d")
        assert engine_changes(ev) and record_fires(codec.encode(EVENT, ev)), text


# ---- credential files: what each rule takes and what it leaves ------------------------------

def test_netrc_takes_the_password_and_a_token_used_as_login_but_not_the_names():
    text = "machine git.example.com\n  login deploy\n  password Tr0ub4dor&3\nmachine x.org login bob password 'a b c'"
    out = redact(text)
    assert "Tr0ub4dor&3" not in out and "a b c" not in out
    assert "machine git.example.com" in out and "login deploy" in out and "login bob" in out


def test_pgpass_keeps_host_port_database_and_user():
    out = redact("db.prod.internal:5432:orders:app_user:S3cr\\:et-pass")
    assert out.startswith("db.prod.internal:5432:orders:app_user:[REDACTED:") and "et-pass" not in out


def test_putty_keeps_the_public_half():
    r = random.Random(1)
    text, values = fc.putty_key(r)
    while "\\n" in text or "```" in text or "Private-MAC" not in text:  # the plain file
        text, values = fc.putty_key(r)
    out = redact(text)
    assert "Public-Lines:" in out and "PuTTY-User-Key-File-" in out
    assert not [v for v in values if v in out]


def test_yaml_block_stops_at_the_next_key():
    text = "db:\n  password: |\n    Tr0ub4dor&3\n    second-line-9\n  host: db.internal\n  port: 5432\n"
    out = redact(text)
    assert "Tr0ub4dor" not in out and "second-line-9" not in out
    assert "host: db.internal\n  port: 5432" in out and "password: |" in out


# ---- AWS ---------------------------------------------------------------------------------------

def test_aws_secret_beside_its_key_id_in_any_separator():
    r = random.Random(40)
    for sep in (" ", "\t", ":", ",", " / ", "\n", "|", ";", " and "):
        k, s = fc.aws_pair(r)
        for text in (f"{k}{sep}{s}", f"{s}{sep}{k}"):
            assert s not in redact(text), text


# ---- other languages ----------------------------------------------------------------------------

@pytest.mark.parametrize("word", fc.LOCALIZED)
def test_a_password_named_in_another_language(word):
    r = random.Random(word)
    for sep in fc.SEPARATORS:
        v = fc.password(r)
        assert v not in redact(f"{word}{sep}{v}"), (word, sep, v)


@pytest.mark.parametrize("mode", ["METADATA_ONLY", "REDACTED"])
def test_an_attribute_named_password_in_another_language(mode):
    r = random.Random(mode)
    for _ in range(40):
        key, v = fc.localized_attribute(r)
        ev = syn.step("t", "run-1", 2, attributes={key: v})
        out = REDACTOR.redact_event(ev, DEFAULT_ACTIONS, "p", capture_mode=mode)
        assert v not in repr(out), (key, out["attributes"])
        assert record_fires(codec.encode(EVENT, ev)), key


# ---- contact URIs as identifiers -----------------------------------------------------------------

def test_a_phone_number_as_the_run_id_quarantines():
    # the run id is the Kafka key and cannot be rewritten: a number there stops the event whole
    r = random.Random(1)
    for scheme in ("whatsapp:", "tel:", "sms:", "viber:", "callto:"):
        num, _ = ec.e164(r)
        ev = syn.step("acme", "run-1", 2)
        ev["run_id"] = f"{scheme}{num}"
        with pytest.raises(RedactionError) as e:
            REDACTOR.redact_event(ev, DEFAULT_ACTIONS, "p")
        assert num not in e.value.reason


def test_a_phone_number_as_the_session_id_keeps_the_event_under_a_pseudonym():
    # a messaging bot keys its sessions by the sender's number: its runs are kept and still group
    r = random.Random(2)
    seen = set()
    for scheme in ("whatsapp:", "tel:", "sms:", "viber:", "callto:"):
        num, _ = ec.e164(r)
        sessions = set()
        for seq in (1, 2, 3):
            ev = syn.step("acme", f"run-{seq}", seq)
            ev["session_id"] = f"{scheme}{num}"
            out = REDACTOR.redact_event(ev, DEFAULT_ACTIONS, "p")
            assert num[1:] not in repr(out) and out["redaction"]["rule_counts"] == {"contact_uri": 1}
            sessions.add(out["session_id"])
        assert len(sessions) == 1 and not sessions & seen
        seen |= sessions


def test_a_phone_number_as_a_nested_id_is_redacted_and_ids_of_other_styles_are_not():
    r = random.Random(6)
    num, _ = ec.e164(r)
    ev = syn.step("acme", "run-1", 2)
    ev["payload"]["step_id"] = f"whatsapp:{num}"
    out = REDACTOR.redact_event(ev, DEFAULT_ACTIONS, "p")
    assert num[1:] not in repr(out)
    for benign in ("job:12:+3", "run:+1700000000", "tel:+10000000000", "sip:conference-room-4",
                   "arn:aws:iam::123456789012:role/deploy", "urn:isbn:9780306406157"):
        ev = syn.step("acme", "run-1", 2)
        ev["payload"]["step_id"] = benign
        ev["session_id"] = benign
        assert REDACTOR.redact_event(ev, DEFAULT_ACTIONS, "p")["payload"]["step_id"] == benign


# ---- escapes: judged decoded, redacted where they stand --------------------------------------------

@pytest.mark.parametrize("text,gone,kept", [
    ("GET /invite?email=jane.doe%40example.com&role=viewer", "jane.doe", "&role=viewer"),
    ("next=https%3A%2F%2Fci%3ATr0ub4dor%40git.example.com%2Frepo", "Tr0ub4dor", "next=https%3A%2F%2F"),
    ("location: /login?next=%2Fwelcome%3Fto%3Djane%2540example.com", "jane%2540", "/login?next="),
    ("?phone=%2B1+415+555+0132&ok=1", "555+0132", "&ok=1"),
    ('{"note": "\\u5bc6\\u7801\\uff1aAbc123xyz"}', "Abc123xyz", '{"note": "\\u5bc6\\u7801\\uff1a'),
])
def test_an_escaped_value_is_redacted_in_place(text, gone, kept):
    out = redact(text)
    assert gone not in out and kept in out, out


def test_a_lone_surrogate_no_longer_quarantines_the_event():
    # JSON input can hold one (decoded from "\ud800" too); the vendor table and the hash action
    # encoded the text strictly, raised, and the event went to quarantine
    for text in ("\ud800 token ghp_" + "a1" * 18, r"\ud800 %40 ghp_" + "a1" * 18):
        ev = syn.step("t", "run-1", 2, name=text)
        for action in ("mask", "hash"):
            out = REDACTOR.redact_event(ev, {"api_key": action}, "p")
            assert "a1a1a1" not in repr(out["payload"]["name"])
