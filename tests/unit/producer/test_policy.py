"""Pure logic: capture policy, digests, price table, budgets, fingerprints, sampling."""
from __future__ import annotations

import pytest

from agentstream.producer import Budget, BudgetExceeded, LackOfProgress, ProducerSettings
from agentstream.producer.capture import CapturePolicy, canonical_json, redact_text
from agentstream.producer.enforcement import RunBudget
from agentstream.producer.pricing import PriceTable


def test_digest_is_keyed_canonical_and_never_the_args():
    p = CapturePolicy("metadata_only", "v1", b"k1")
    a = p.digest({"b": 1, "a": [1, "x"]})
    assert a == p.digest({"a": [1, "x"], "b": 1})  # key order does not matter
    assert a != CapturePolicy("metadata_only", "v1", b"k2").digest({"b": 1, "a": [1, "x"]})
    assert len(a) == 64 and "x" not in a
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_capture_modes():
    text = "mail bob@example.com key sk-proj-abcdefghijklmnopqrstuv call +1 415 555 0100"
    assert CapturePolicy("metadata_only", "v", b"k").project(text) is None
    red = CapturePolicy("redacted", "v", b"k").project(text)
    assert "bob@example.com" not in red["preview"] and "[EMAIL]" in red["preview"]
    assert "sk-proj" not in red["preview"] and len(red["preview"]) <= 160
    store = {}
    ref = CapturePolicy("secure_reference", "v", b"k",
                        content_store=lambda t: store.setdefault("r1", t) and "r1").project(text)
    assert ref == {"preview": None, "reference": "r1"} and store["r1"] == text
    no_store = CapturePolicy("secure_reference", "v", b"k")
    assert no_store.project(text) is None and no_store.blocked == 1  # fail closed
    with pytest.raises(ValueError):
        CapturePolicy("everything", "v", b"k")
    assert redact_text("x@y.io")[1] == {"email": 1}


def test_price_table_prefix_match_cache_pricing_and_overrides(tmp_path):
    t = PriceTable.load()
    assert t.lookup("openai", "gpt-4o-2024-08-06") == t.lookup("openai", "gpt-4o")
    assert t.lookup("openai", "gpt-4o-mini").input == 0.15  # longest prefix wins
    cost = t.cost("anthropic", "claude-sonnet-4-20250514", 1000, 100, cache_read_tokens=500,
                  cache_write_tokens=100)
    assert cost == pytest.approx((400 * 3 + 500 * 0.3 + 100 * 3.75 + 100 * 15) / 1e6)
    assert t.cost("acme", "mystery-model", 10, 10) is None
    path = tmp_path / "prices.json"
    path.write_text('{"providers": {"acme": {"mystery": {"input": 1, "output": 2}}}}')
    t2 = PriceTable.load(str(path), {"openai": {"gpt-4o": {"input": 9, "output": 9}}})
    assert t2.cost("acme", "mystery-model", 1_000_000, 0) == 1.0
    assert t2.lookup("openai", "gpt-4o").input == 9


def test_budget_checks_happen_before_and_resolve_explicit_over_env(monkeypatch):
    monkeypatch.setenv("AGENTSTREAM_PRODUCER_MAX_STEPS", "3")
    monkeypatch.setenv("AGENTSTREAM_PRODUCER_MAX_TOKENS", "100")
    settings = ProducerSettings()
    limits = Budget(max_steps=2).resolve(settings)
    assert (limits.max_steps, limits.max_tokens, limits.max_cost_usd) == (2, 100, None)
    assert ProducerSettings(max_steps=7).max_steps == 7  # explicit argument beats env
    b = RunBudget(limits)
    for _ in range(2):
        b.before_step()
        b.add_step()
    with pytest.raises(BudgetExceeded) as info:
        b.before_step()
    assert (info.value.budget_type, info.value.limit, info.value.outcome) == \
        ("steps", 2, "budget_stopped")
    b.add_usage(90, 0.0)
    b.before_model_call()
    with pytest.raises(BudgetExceeded):
        b.before_model_call(estimated_tokens=20)  # this call would cross the limit


def test_fingerprints_stop_on_repeats():
    b = RunBudget(Budget(max_repeated_fingerprints=2))
    b.record_fingerprint("a")
    b.record_fingerprint("b")
    b.record_fingerprint("a")
    with pytest.raises(LackOfProgress) as info:
        b.record_fingerprint("a")
    assert info.value.outcome == "no_progress_stopped" and info.value.repeats == 3
