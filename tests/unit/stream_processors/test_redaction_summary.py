"""What the processors carry over from a summary an edge set: only the names the product writes
(``dropped_attribute:<reason>``) survive the merge; any other key a producer put in
``redaction.rule_counts`` (a card number, an API key) is left behind, never stored."""
from __future__ import annotations

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import DEFAULT_ACTIONS, Redactor

CARD_AND_KEY = "4111 1111 1111 1111 sk-proj-Zq8xT2mN5vL0pK7sW3yH9aB4cD6eF1gH"


def test_only_the_product_s_names_survive_the_merge_of_a_previous_summary():
    event = syn.step("t", "r", 1, args_digest="a" * 64)
    event["redaction"] = {"policy_version": "x", "rule_counts": {
        CARD_AND_KEY: 1, "dropped_attribute:" + CARD_AND_KEY: 1, "dropped_attribute:content_key": 2,
        "dropped_attribute:": 1, "email": 3}}
    out = Redactor(b"k").redact_event(event, DEFAULT_ACTIONS, "p1")
    assert out["redaction"] == {"policy_version": "p1", "rule_counts": {"dropped_attribute:content_key": 2}}
    assert CARD_AND_KEY not in repr(Codec().decode_as(EVENT, Codec().encode(EVENT, out)))
