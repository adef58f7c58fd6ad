"""Attacks on the attribute allow-list by the key and by the length (written before the defence):
a sentence as an attribute KEY was stored as sent, and a long value with a control character
every 250 characters slipped under the free-value bound. Under metadata_only a free key is held
to a free value's bounds, and any free value past the bound is dropped; the byte prefilter sends
every such record to the engine."""
from __future__ import annotations

import random

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.attribute_keys import MAX_FREE_VALUE_CHARS, attribute_verdict, split_attributes
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import DEFAULT_ACTIONS

from .redaction_benches import REDACTOR as R, record_fires

codec = Codec()
KEYS = ["note.Patient Maria Gonzalez, DOB 1980-04-02, reports chest pain",
        "Summarise the contract for the customer please", "Bitte fasse den Vertrag für mich zusammen",
        "x" * (MAX_FREE_VALUE_CHARS + 1), "k." + "abc/" * 80]


def _controls_every(n: int, length: int, r: random.Random) -> str:
    chars = []
    for i in range(length):
        chars.append(r.choice("\x01\x02\x05\x0e\x1f") if i % n == n - 1 else r.choice("abcdefgh "))
    return "".join(chars)


@pytest.mark.parametrize("key", KEYS)
def test_a_sentence_or_an_overlong_key_is_dropped_under_metadata_only(key):
    reason = attribute_verdict(key, "1", "METADATA_ONLY")
    assert reason in ("free_key_prose", "free_key_too_long")
    assert attribute_verdict(key, "1", "REDACTED") is None
    kept, dropped = split_attributes({key: "1", "env": "prod"}, "METADATA_ONLY")
    assert kept == {"env": "prod"} and dropped == {f"dropped_attribute:{reason}": 1}


@pytest.mark.parametrize("key", KEYS)
def test_the_processors_drop_it_and_the_hot_path_sends_it_there(key):
    ev = syn.step("t", "run-1", 2, name="tool", args_digest="d", attributes={key: "1", "env": "prod"})
    out = R.redact_event(ev, DEFAULT_ACTIONS, "p1")
    assert key not in out["attributes"] and out["attributes"]["env"] == "prod"
    assert record_fires(codec.encode(EVENT, ev))


@pytest.mark.parametrize("key", ["gen_ai.request.model", "http.route", "app.feature_flag", "db.collection.name",
                                 "my-team/shard[3]", "llm.token_count.prompt", "x" * MAX_FREE_VALUE_CHARS])
def test_names_are_kept(key):
    assert attribute_verdict(key, "7", "METADATA_ONLY") is None


@pytest.mark.parametrize("every", [2, 50, 250])
def test_a_long_value_broken_by_controls_is_too_long(every):
    r = random.Random(every)
    value = _controls_every(every, 4 * MAX_FREE_VALUE_CHARS, r)
    assert attribute_verdict("debug.dump", value, "METADATA_ONLY") == "free_value_too_long"
    ev = syn.step("t", "run-1", 2, name="tool", args_digest="d", attributes={"debug.dump": value})
    assert "debug.dump" not in R.redact_event(ev, DEFAULT_ACTIONS, "p1")["attributes"]
    assert record_fires(codec.encode(EVENT, ev))


def test_a_long_string_outside_the_attributes_does_not_trip_the_length_check():
    # a long failure name is not an attribute: the record keeps the pass-through path
    ev = syn.step("t", "run-1", 2, name="n" * 600, args_digest="d", attributes={"env": "prod"})
    assert not record_fires(codec.encode(EVENT, ev))


def test_our_own_prefix_is_no_shelter_for_prose():
    note = "Patient Maria Gonzalez reports chest pain after the new dose"
    assert attribute_verdict("agentstream.note", note, "METADATA_ONLY") == "free_value_prose"
    assert attribute_verdict("agentstream.progress_fingerprint", "9f86d081884c7d65", "METADATA_ONLY") is None
    ev = syn.step("t", "run-1", 2, name="tool", args_digest="d", attributes={"agentstream.note": note})
    assert "agentstream.note" not in R.redact_event(ev, DEFAULT_ACTIONS, "p1")["attributes"]
    assert record_fires(codec.encode(EVENT, ev))
