"""Recall on the seeded generator (bench/redaction_corpus.py) at a seed the rules were never looked
at against, and the byte prefilter's superset guarantee over the whole corpus."""
from __future__ import annotations

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.attribute_keys import MAX_FREE_VALUE_CHARS
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction.prefilter import may_need_redaction
from agentstream.stream_processors.redaction.rules import PREFILTER

from .redaction_benches import REDACTOR as R, assert_recall, load_bench, record_fires, redact as _redact


gen = load_bench("redaction_corpus")

CASES = gen.generate(1500, seed=20261206)


def test_recall_per_category_and_context_and_lookalikes_kept():
    rep = gen.evaluate(CASES, _redact)
    assert_recall(rep, "per_category", overall=0.99, strict=0.98, each=0.99)
    low_ctx = {k: v for k, v in rep["per_context"].items() if v["lenient"] < 0.99}
    assert not low_ctx, low_ctx
    assert len(rep["per_category"]) >= 15 and len(rep["per_context"]) == len(gen.CONTEXTS)
    assert rep["lookalikes_kept"] >= 0.99 and rep["lookalikes"] > 2000


def test_every_context_holds_every_kind_of_planted_value():
    seen = {(c.context, p.category) for c in CASES for p in c.planted}
    cats = {p.category for c in CASES for p in c.planted}
    assert len(seen) >= 0.9 * len(cats) * len(gen.CONTEXTS)


def test_prefilter_fires_on_every_text_with_a_planted_value_alone_and_inside_an_event():
    codec = Codec()
    for c in CASES:
        assert PREFILTER.search(c.text), c.text
        assert may_need_redaction(c.text.encode()), c.text
        ev = syn.step("t", "run-1", 2, name="tool", args_digest="d", attributes={"note": c.text[:200]})
        if _redact(c.text[:200]) != c.text[:200]:
            assert record_fires(codec.encode(EVENT, ev)), c.text[:200]


def test_hyperscan_and_re_prefilters_agree_on_every_text():
    # the engine scans with Hyperscan over UTF-8; rules.PREFILTER (re, ASCII) is the reference
    texts = [c.text for c in CASES] + [x for c in CASES for x in c.lookalikes]
    assert all(bool(PREFILTER.search(t)) == R._prefilter(t) for t in texts)


def test_prefilter_is_a_superset_of_what_the_engine_changes():
    # look-alike-only texts: whenever the engine changes one (or its prefilter fires), bytes fire too
    for c in CASES:
        for x in c.lookalikes:
            if _redact(x) != x:
                assert may_need_redaction(x.encode()), x
            if PREFILTER.search(x):
                assert may_need_redaction(x.encode()), x


@pytest.mark.parametrize("attrs", [
    {"llm.input_messages.0.message.content": "hi"},
    {"gen_ai.input.messages": "[]"},
    {"traceloop.entity.output": "ok"},
    {"note": "x" * (MAX_FREE_VALUE_CHARS + 1)},
])
def test_prefilter_fires_on_what_metadata_only_drops(attrs):
    raw = Codec().encode(EVENT, syn.step("t", "run-1", 2, name="tool", args_digest="d", attributes=attrs))
    assert may_need_redaction(raw) and record_fires(raw)


def test_prefilter_lets_most_clean_records_through():
    # Random UUID event ids hold digit runs shaped like phone groups now and then: ~5% of these
    # records tripped the whole-record byte scan; the record's text leaves exact UUIDs out.
    codec = Codec()
    clean = [codec.encode(EVENT, syn.step("tenant-a", f"run-{i}", 2, name="search", args_digest="d",
                                          attributes={"http.route": "/v1/search", "note": f"step {i}"}))
             for i in range(400)]
    assert sum(map(record_fires, clean)) == 0  # their text: no UUID, framing or double bytes
