"""The alerting contract on the policies topic (schemas/alerting.py): keys that no tenant key can
be mistaken for, records validated on read, silences and routing decided the same everywhere."""
from __future__ import annotations

import json
import random

import pytest

from agentstream.schemas.alerting import (AlertingBook, AlertingError, AlertState, Matcher, Silence,
                                          encode, is_alerting_key, make_key, parse_key, parse_rules,
                                          routing_decisions, routing_doc)

SEV = ["INFO", "WARNING", "CRITICAL"]


def _alert(rnd, tenant="t"):
    return {"tenant_id": tenant, "alert_id": f"a{rnd.random()}", "alert_type": rnd.choice(["loop", "drift", "budget_breach"]),
            "severity": rnd.choice(SEV), "agent_id": rnd.choice(["", "planner", "coder"]), "detected_us": 10}


def test_keys_round_trip_and_never_look_like_a_tenant_key():
    for tenant in ["acme", "a b", "ünï", "x" * 200, "alerting", "\u2028"]:
        for kind, ident in [("routing", ""), ("silence", "sil-1"), ("state", "a:b/c")]:
            key = make_key(tenant, kind, ident)
            assert is_alerting_key(key) and parse_key(key) == (tenant, kind, ident)
        assert not is_alerting_key(tenant.encode())  # a tenant's policy key
    # A NUL would let one tenant's id spell another key's tail: refused at the source.
    for bad in [("a\x00silence", "routing", ""), ("a", "silence", "x\x00y"), ("", "routing", ""),
                ("a", "state", ""), ("a", "other", "x")]:
        with pytest.raises(AlertingError):
            make_key(*bad)
    assert parse_key(b"\x00alerting\x00t\x00nonsense") is None and parse_key(b"acme") is None


def test_matcher_and_silence_windows():
    rnd = random.Random(5)
    m = Matcher(alert_type="loop", agent_id="planner")
    for _ in range(300):
        a = _alert(rnd)
        assert m.matches(a) == (a["alert_type"] == "loop" and a["agent_id"] == "planner")
        assert Matcher().matches(a)  # empty matches all
    s = Silence("sil-1", m, starts_us=100, expires_us=200)
    a = {"alert_type": "loop", "agent_id": "planner", "severity": "INFO"}
    assert [s.silences(a, t) for t in (99, 100, 199, 200)] == [False, True, True, False]
    with pytest.raises(AlertingError):
        Silence.from_doc({"silence_id": "s", "matcher": {}, "starts_us": 5, "expires_us": 5})
    with pytest.raises(AlertingError):
        Matcher.from_doc({"severity": "LOUD"})
    with pytest.raises(AlertingError):
        Matcher.from_doc({"tenant_id": "other"})  # no way to widen a matcher past the tenant


def test_routing_sends_each_matching_destination_once():
    rules = parse_rules({"rules": [
        {"rule_id": "crit", "severities": ["CRITICAL"], "destination": {"kind": "slack", "url": "https://h/1"}},
        {"rule_id": "drift", "alert_types": ["drift"], "destination": {"kind": "webhook", "url": "https://h/2"}},
        {"rule_id": "dup", "alert_types": ["drift"], "destination": {"kind": "slack", "url": "https://h/1"}},
        {"rule_id": "pd", "alert_types": ["budget_breach"], "severities": ["CRITICAL", "WARNING"],
         "destination": {"kind": "pagerduty", "url": "https://e/v2", "routing_key": "K123456"}}]})
    rnd = random.Random(9)
    for _ in range(500):
        a = _alert(rnd)
        want = set()
        if a["severity"] == "CRITICAL" or a["alert_type"] == "drift":
            want.add("https://h/1")
        if a["alert_type"] == "drift":
            want.add("https://h/2")
        if a["alert_type"] == "budget_breach" and a["severity"] != "INFO":
            want.add("https://e/v2")
        got = [d.url for d in routing_decisions(rules, a)]
        assert sorted(got) == sorted(want) and len(got) == len(set(got))
    shown = json.dumps([r.destination.redacted() for r in rules], ensure_ascii=False)
    assert "K123456" not in shown and "/1" not in shown and "…3456" in shown


@pytest.mark.parametrize("doc", [
    {"rules": [{"rule_id": "x", "destination": {"kind": "pagerduty", "url": "https://e"}}]},  # no key
    {"rules": [{"rule_id": "x", "destination": {"kind": "sms", "url": "https://e"}}]},
    {"rules": [{"rule_id": "x", "destination": {"kind": "webhook", "url": "file:///etc/passwd"}}]},
    {"rules": [{"rule_id": "x y", "destination": {"kind": "webhook", "url": "https://e"}}]},
    {"rules": [{"rule_id": "x", "severities": ["LOUD"], "destination": {"kind": "webhook", "url": "https://e"}}]},
    {"rules": [{"rule_id": "x", "destination": {"kind": "webhook", "url": "https://e"}}] * 2},
    {"rules": "all"},
])
def test_bad_rules_are_refused(doc):
    with pytest.raises(AlertingError):
        parse_rules(doc)


def test_book_folds_in_order_skips_malformed_and_keeps_tenants_apart():
    book = AlertingBook()
    s1 = Silence("sil-1", Matcher(alert_type="loop"), 0, 10**18)
    assert book.apply(make_key("a", "silence", "sil-1"), encode(s1.to_doc()))
    assert book.apply(make_key("a", "state", "x"), encode(AlertState("x", "acknowledged", 5).to_doc()))
    assert book.apply(make_key("a", "routing"), encode(routing_doc(parse_rules({"rules": [
        {"rule_id": "r", "destination": {"kind": "webhook", "url": "https://h"}}]}), 1)))
    # Malformed records are skipped whole: the earlier good value stays.
    for key, value in [(make_key("a", "silence", "sil-1"), b"{not json"),
                       (make_key("a", "silence", "sil-1"), encode({"v": 2})),
                       (make_key("a", "state", "x"), encode({**AlertState("y", "resolved", 6).to_doc()})),  # id mismatch
                       (make_key("a", "state", "x"), encode({**AlertState("x", "closed", 6).to_doc()}))]:
        assert not book.apply(key, value)
    assert book.skipped == 4
    assert book.tenant("a").states["x"].state == "acknowledged" and "sil-1" in book.tenant("a").silences
    loop_b = {"tenant_id": "b", "alert_type": "loop", "severity": "INFO", "agent_id": ""}
    assert book.silenced_by(loop_b, 1) is None and book.destinations(loop_b) == []  # a's rules are a's
    assert book.silenced_by({**loop_b, "tenant_id": "a"}, 1) == s1
    # Tombstones delete.
    assert book.apply(make_key("a", "silence", "sil-1"), None)
    assert book.apply(make_key("a", "routing"), None)
    assert book.tenant("a").silences == {} and book.tenant("a").rules == ()


def test_the_sinks_retention_book_ignores_alerting_records():
    """The sink follows the policies topic for retention: alerting records (and their
    tombstones) share the topic and must neither warn nor touch a tenant's retention."""
    from agentstream.schemas import POLICY, Codec
    from agentstream.sink.retention import RetentionBook

    codec, book = Codec(), RetentionBook(30, 90)
    book.apply_record(codec, b"a", codec.encode(POLICY, {"tenant_id": "a", "retention_days": 7}))
    silence = Silence("sil-1", Matcher(), 0, 10)
    book.apply_record(codec, make_key("a", "silence", "sil-1"), encode(silence.to_doc()))
    book.apply_record(codec, make_key("a", "routing"), None)
    assert book.snapshot() == {"a": 7}
