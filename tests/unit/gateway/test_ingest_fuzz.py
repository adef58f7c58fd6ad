"""Hostile batches on the HTTP ingest route: whatever a client sends, ``prepare`` answers with
records or per-event rejections (never an exception, so never a 500), and every record it
accepts is one the processors pass and the sink stores. A record accepted here and then
dead-lettered downstream is an event the client was told was taken and that never becomes
queryable: this fuzz found two (a ``seq`` beyond UInt32, a step ``attempt`` outside UInt16).

Seeds: the real SDK's events of every kind, decoded to the JSON the route takes; each batch
mutates them (a field replaced by any JSON value, removed, or a stray field added)."""
from __future__ import annotations

import copy
import random

from agentstream.api.gateway.batch import prepare
from agentstream.api.gateway.validation import EventValidator
from agentstream.producer.testing import InMemoryTransport
from agentstream.schemas import EVENT, Codec
from agentstream.sink.rows import event_row
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

ODD = [None, True, False, 0, -1, 1, 2**31, 2**32, 2**63 - 1, 2**63, -2**63 - 1, 10**30, 65_536, 1.5, -0.0, 1e308,
       -1e308, 5e-324, "", " ", "x", "\x00", "é" * 5000, "a" * 70_000, [], [1], [None], {}, {"a": 1}, {"": ""},
       [[[]]], {"a": {"b": {"c": []}}}, "SUCCESS", "STEP", "LLM", "2026-12-07", "-1", "1e400", "NaN"]


def _seeds() -> list[dict]:
    mem = InMemoryTransport()
    t = mem.tracer("t", "agent", "1.0", "prod")
    for i in range(5):
        with t.run("task", ticket=f"T{i}") as run:
            with run.llm_step("openai", "gpt-4o") as st:
                st.record_llm("openai", "gpt-4o", input_tokens=10, output_tokens=5, finish_reasons=["stop"])
            run.tool_call("search", {"q": "x"}, latency_ms=2.0)
            run.decision("tool_selection", "api", ["api", "cache"], "fresh", 0.8)
            run.failure("tool_error", "timeout", "took too long", retryable=True)
            run.quality_signal("hallucination", "ungrounded", True)
            run.feedback("i1", "positive")
            run.handoff("agent-b", role="reviewer")
            run.approval({"op": "refund", "amount": 5}, "approved", 1200.0)
            run.fallback("gpt-4o", "gpt-4o-mini", "rate_limited", True)
    assert t.flush(10)
    t.close(5)
    out = []
    for e in mem.events():
        e.pop("tenant_id")
        out.append(e)
    return out


def _paths(o, p=()):
    yield p
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _paths(v, p + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _paths(v, p + (i,))


def _mutate(e: dict, rng: random.Random) -> dict:
    e = copy.deepcopy(e)
    for _ in range(rng.choice([1, 1, 2, 3])):
        path = rng.choice([p for p in _paths(e) if p])
        parent = e
        for k in path[:-1]:
            parent = parent[k]
        r = rng.random()
        if r < 0.7:
            parent[path[-1]] = copy.deepcopy(rng.choice(ODD))
        elif r < 0.85:
            parent.pop(path[-1])
        elif isinstance(parent, dict):
            parent[rng.choice(["zz", "payload", "kind", "attributes", "llm", "x" * 300])] = copy.deepcopy(rng.choice(ODD))
    return e


def test_what_the_route_accepts_is_stored():
    seeds = _seeds()
    assert {e["kind"] for e in seeds} >= {"RUN_START", "STEP", "DECISION", "FAILURE", "QUALITY_SIGNAL",
                                          "FEEDBACK", "RUN_END"}
    codec, validator = Codec(), EventValidator()
    chain = Chain(ProcessorsSettings(topic_prefix="f."), codec, Redactor(b"k"), PolicyBook(), "f.fleet")
    state: dict = {}
    rng = random.Random(5)
    accepted = offset = 0
    for _ in range(1500):
        batch = [_mutate(rng.choice(seeds), rng) for _ in range(rng.choice([1, 3, 10]))]
        prepared = prepare(batch, "t", validator, codec, 1_000_000)  # raises: a 500
        records = [InRecord("f.raw", 0, offset + i, k, v) for i, (k, v) in enumerate(prepared.records)]
        offset += len(records)
        accepted += len(records)
        out = chain.process(records, lambda p, k: state.get((p, k)), lambda p, k, v: state.__setitem__((p, k), v))
        assert not [o for o in out if o.topic == "f.dlq"]
        stored = [o for o in out if o.topic == "f.events"]
        assert len(stored) == len(records)
        for o in stored:
            event_row(codec.decode_as(EVENT, o.value))  # a RowError: the sink's DLQ
    assert accepted > 500  # many mutations leave a valid event: the fuzz reaches the pipeline
