"""The hot-path shortcuts must not change what comes out: the summary patch gives the bytes a
re-encode would, the verdict cache gives the verdict a fresh scan would, the fast path of
``redact_event`` equals the full walk, and a redelivered batch is not counted twice."""
from __future__ import annotations

import uuid

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.redaction.engine import IDENTIFIER_FIELDS, SKIP_FIELDS
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.summary_patch import SummaryPatcher

codec = Codec()


def _patcher() -> SummaryPatcher:
    return SummaryPatcher(codec.catalog.latest(EVENT).text, codec.resolver.writer_id(EVENT))


def _events():
    yield syn.run_start("t", "r1", attributes={"user.id": "u1", "note": "ünïcode✓" * 20})  # not prose: kept
    yield syn.step("t", "r1", 1, name="search", args_digest="a" * 64, attributes={f"k{i}": "v" * i for i in range(40)})
    yield syn.llm_step("t", "r1", 2, cost_usd=0.25, tokens=123456)
    yield syn.run_end("t", "r1", 3, status="FAILURE", duration_ms=1e9)
    e = syn.step("t", "r1", 4, name="x")
    e["session_id"], e["parent_run_id"], e["seq"] = "s" * 300, "p", 2**40
    yield e


@pytest.mark.parametrize("event", list(_events()), ids=lambda e: e["kind"])
def test_summary_patch_gives_exactly_the_re_encoded_bytes(event):
    raw = codec.encode(EVENT, event)
    for version in ("default", "v2026-01-01", "é" * 70):
        expect = codec.encode(EVENT, {**event, "redaction": {"policy_version": version, "rule_counts": {}}})
        assert _patcher().patch(raw, version) == expect
        assert codec.decode_as(EVENT, _patcher().patch(raw, version))["redaction"]["policy_version"] == version


def test_summary_patch_refuses_what_it_cannot_patch():
    event = next(_events())
    done = codec.encode(EVENT, {**event, "redaction": {"policy_version": "p", "rule_counts": {}}})
    assert _patcher().patch(done, "q") is None  # summary already set: re-encode instead
    other_id = codec.encode(EVENT, event)[:1] + (999).to_bytes(4, "big") + codec.encode(EVENT, event)[5:]
    assert _patcher().patch(other_id, "q") is None  # another writer schema
    assert _patcher().patch(codec.encode(EVENT, event)[:20], "q") is None  # truncated


def test_verdict_cache_matches_a_fresh_scan_and_is_bounded(monkeypatch):
    from agentstream.stream_processors.redaction import engine

    monkeypatch.setattr(engine, "CACHE_MAX_ENTRIES", 50)
    r, fresh = Redactor(b"k"), Redactor(b"k")
    texts = ["mail bob@example.com", "plain", "4111 1111 1111 1111", str(uuid.uuid4())] * 3
    texts += [f"n{i}" for i in range(200)]
    for t in texts:
        fresh.cache_clear()
        assert r.scan(t) == fresh.scan(t)
    assert 0 < r.cache_info()["entries"] <= 50
    r.cache_clear()
    assert r.scan("x" * 600) == () and r.cache_info()["entries"] == 0  # long strings are not cached


def test_fast_path_equals_the_full_walk():
    r = Redactor(b"k")
    for event in _events():
        fast = r.redact_event(event, {}, "p1")
        assert fast["redaction"] == {"policy_version": "p1", "rule_counts": {}}
        assert {k: v for k, v in fast.items() if k != "redaction"} == {k: v for k, v in event.items()
                                                                     if k != "redaction"}
        # the full walk on the same event finds nothing either
        counts: dict[str, int] = {}
        changed: list[str] = []
        for name, v in event.items():
            if v is not None and name not in IDENTIFIER_FIELDS and name not in SKIP_FIELDS:
                r._walk(name, v, {}, counts, changed, frozenset())
        assert counts == {} and changed == []
    hit = syn.step("t", "r", 1, attributes={"AKIAIOSFODNN7EXAMPLE": "ok"})
    out = r.redact_event(hit, {}, "p")
    assert out["redaction"]["rule_counts"] == {"aws_access_key_id": 1}
    assert "AKIAIOSFODNN7EXAMPLE" not in str(out)


def test_uuids_are_never_flagged_but_a_card_next_to_one_is():
    r = Redactor(b"k")
    # These two used to pass Luhn across their dash-joined digit groups.
    for u in ("313874cd-dfbc-423d-b246-548991270564", "53033190-7660-45b1-99e1-7b552e94525c"):
        assert r.scan(u) == () and r.scan(f"id={u} ok") == ()
    assert [f.rule.name for f in r.scan("313874cd-dfbc-423d-b246-548991270564 card 4111 1111 1111 1111")] == \
        ["payment_card"]


def test_redelivered_batch_is_not_counted_twice():
    settings = ProcessorsSettings(topic_prefix="u.")
    book = PolicyBook()
    book.set(TenantPolicy("t", budgets={"run_max_steps": 3, "hard_limit": False}))
    chain = Chain(settings, codec, Redactor(b"k"), book, "u.fleet")
    state: dict[bytes, bytes] = {}
    events = [syn.run_start("t", "r")] + [syn.step("t", "r", i, name=f"tool{i}", args_digest=str(i))
                                           for i in range(1, 3)]
    batch = [InRecord("u.raw", 0, off, b"r", codec.encode(EVENT, e)) for off, e in enumerate(events)]

    def run() -> list:
        return chain.process(batch, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))

    first, again = run(), run()
    assert not [o for o in first + again if o.topic == "u.alerts"]  # 2 steps < 3 in both passes
    assert [o.topic for o in again].count("u.events") == 3  # the events are re-emitted, not recounted
    more = [InRecord("u.raw", 0, 3, b"r", codec.encode(EVENT, syn.step("t", "r", 3, name="z", args_digest="z")))]
    out = chain.process(more, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    assert [o.topic for o in out].count("u.alerts") == 1  # the third step reaches the budget
