"""The hot path's Event reader and the byte pass-through must not change what comes out.

The reader yields exactly ``Codec.decode``'s values for the fields it selects, for every payload
kind of both Event versions (schema-generated, optional fields null and filled, plus random
values; the C interpreter and its Python twin alike), returns None for any
record it cannot read to its last byte, and the redaction stage's pass-through gives the same
events, DLQ and quarantine records as the full decode → redact → encode path.
"""
from __future__ import annotations

import io
import random
import re
import struct
import time

import fastavro
import pytest

from agentstream.schemas import EVENT, Codec, load_catalog
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.schemas.compatibility import example_record
from agentstream.stream_processors import redaction_stage
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.event_reader import DETECTOR_FIELDS, EventReader
from agentstream.stream_processors.event_time import CLAMP_ATTR
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()
VERSIONS = load_catalog().versions(EVENT)


def _encode(version, event: dict) -> bytes:
    rec = {**event, "payload": (KIND_TO_BRANCH[event["kind"]], event["payload"])}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, version.parsed, rec)
    return struct.pack(">bI", 0, version.id) + buf.getvalue()


def _example(version, kind: str, filled: bool) -> dict:
    schema = version.parsed  # fastavro's: named types by full name in __named_schemas
    named = schema["__named_schemas"]
    branch = 1 if filled else 0
    ev = example_record({**schema, "fields": [f for f in schema["fields"] if f["name"] != "payload"]},
                        dict(named), branch)
    ev.update(kind=kind, tenant_id="acme", run_id=f"run-{kind}", ts_us=1_760_000_000_000_000)
    ev["payload"] = example_record(named[KIND_TO_BRANCH[kind]], dict(named), branch)
    return ev


READER = EventReader(codec)
PY_READER = EventReader(codec, native=False)


def selected(value, sel=DETECTOR_FIELDS):
    """``Codec.decode``'s dict cut down to a selection, as the reader should return it."""
    if sel is True or value is None:
        return value
    if isinstance(sel, tuple):
        return {k: v for k, v in value.items() if k in sel}
    return {k: selected(value[k], s) for k, s in sel.items() if k in value}


CASES = [(v, k, f) for v in VERSIONS for k in KIND_TO_BRANCH for f in (False, True)]


@pytest.mark.parametrize("version,kind,filled", CASES,
                         ids=[f"v{v.version}-{k}-{'filled' if f else 'nulls'}" for v, k, f in CASES])
def test_reader_equals_codec_decode_for_every_payload_of_both_versions(version, kind, filled):
    raw = _encode(version, _example(version, kind, filled))
    event, at = READER.read(raw)
    full = codec.decode_as(EVENT, raw)
    assert event == selected(full)  # newest-schema defaults filled for older writers
    assert PY_READER.read(raw) == (event, at)
    assert raw[at] == (0 if full["redaction"] is None else 2)  # where the summary splice goes
    for cut in range(5, len(raw)):
        assert READER.read(raw[:cut]) is None and PY_READER.read(raw[:cut]) is None
    assert READER.read(raw + b"\x00") is None


def _text(rng: random.Random) -> str:
    alphabet = "abcxyz019 -_./:é✓\U0001f600\u2028\\\"'"
    return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 40, 200])))


def test_reader_equals_codec_decode_on_random_values():
    rng = random.Random(18)
    reader = EventReader(codec)
    longs = [0, 1, -1, 63, 64, -65, 2**31, -(2**31), 2**62, -(2**63), 2**63 - 1]
    for n in range(400):
        e = syn.llm_step("t", f"r{n}", rng.choice(longs) % 2**31, cost_usd=rng.random() * 1e6,
                         tokens=abs(rng.choice(longs)) % 2**40,
                         attributes={_text(rng): _text(rng) for _ in range(rng.choice([0, 1, 3, 70]))})
        e["seq"], e["ts_us"] = rng.choice(longs), rng.choice(longs)
        e["session_id"] = rng.choice([None, _text(rng)])
        raw = codec.encode(EVENT, e)
        got = reader.read(raw)
        assert got is not None and got[0] == selected(codec.decode_as(EVENT, raw))
        assert PY_READER.read(raw) == got


def test_reader_reads_negative_block_counts_and_refuses_what_it_cannot_read():
    raw = codec.encode(EVENT, syn.step("t", "r", 1, attributes={"a": "1", "b": "2"}))
    event, at = READER.read(raw)
    # the same map as one block with a negative count and its byte size (the spec allows it)
    plain = b"\x04\x02a\x021\x02b\x022\x00"
    assert plain in raw
    blocked = raw.replace(plain, b"\x03\x10\x02a\x021\x02b\x022\x00")
    assert READER.read(blocked)[0] == event
    assert READER.read(None) is None
    assert READER.read(b"\x01" + raw[1:]) is None  # not the Confluent magic
    assert READER.read(raw[:1] + (999).to_bytes(4, "big") + raw[5:]) is None  # unknown id
    alert_id = codec.resolver.writer_id("agentstream.v1.Alert")
    assert READER.read(raw[:1] + alert_id.to_bytes(4, "big") + raw[5:]) is None
    bad_utf8 = raw.replace(b"\x02a\x021", b"\x02a\x02\xff")
    assert READER.read(bad_utf8) is None
    # an enum index past the end, and a negative one (Python would index from the end)
    kind_at = raw.index(b"\x04\x04", at)  # kind STEP (2) then payload branch 2
    for bad in (b"\x7e", b"\x01"):
        assert READER.read(raw[:kind_at] + bad + raw[kind_at + 1:]) is None


SECRET = "AKIAIOSFODNN7EXAMPLE"


def _batch() -> list[InRecord]:
    v1 = next(v for v in VERSIONS if v.version == 1)
    events = []
    for n in range(30):
        t, r = f"tenant-{n % 3}", f"run-{n}"
        events += [syn.run_start(t, r, attributes={"ticket": f"T-{n}"}),
                   syn.llm_step(t, r, 1, cost_usd=0.01, attributes={"gen_ai.request.model": "gpt-4o"}),
                   syn.step(t, r, 2, name="search", args_digest="d" * 64),
                   syn.run_end(t, r, 3)]
    events[5]["attributes"] = {"note": f"key {SECRET}"}  # a rule hit: redacted, re-encoded
    events[9]["payload"]["content"] = {"preview": "the user asked about refunds", "reference": None}
    events[13]["run_id"] = f"run-{SECRET}"  # a secret in an identifier: quarantined
    events[17]["attributes"] = {"prompt": "what is my balance"}  # a content key
    raws = [codec.encode(EVENT, e) for e in events]
    raws[21] = _encode(v1, {k: v for k, v in events[21].items() if k != "end_user_id"}
                       | {"payload": {k: v for k, v in events[21]["payload"].items()}})
    raws[22] = b"\x00\x00\x00\x00\x05garbage"  # undecodable: DLQ
    raws[23] = raws[23][:-3]  # truncated: DLQ
    return [InRecord("u.raw", n % 4, n, e["run_id"].encode(), raw) for n, (e, raw) in enumerate(zip(events, raws))]


BATCH = _batch()  # built once: synthetic events carry fresh ids and times


def _run(monkeypatch, pass_through: bool):
    if not pass_through:
        monkeypatch.setattr(redaction_stage, "text_may_need_redaction", lambda *a: True)
    book = PolicyBook()
    book.set(TenantPolicy("tenant-1", version="p-7"))
    chain = Chain(ProcessorsSettings(topic_prefix="u."), codec, Redactor(b"k"), book, "u.fleet")
    state: dict = {}
    out = chain.process(BATCH, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    monkeypatch.undo()
    return chain, out, state


def _decoded(out, topic):
    # a DLQ reason may quote an object address (fastavro's message): compare it without one
    return [(o.key, codec.decode_as(EVENT, o.value) if topic == "u.events" else o.value,
             [(h, re.sub(rb" at 0x[0-9a-f]+", b"", v)) for h, v in o.headers])
            for o in out if o.topic == topic]


def test_pass_through_gives_what_the_full_path_gives(monkeypatch):
    fast_chain, fast, fast_state = _run(monkeypatch, True)
    slow_chain, slow, slow_state = _run(monkeypatch, False)
    assert fast_chain.redaction.counts.passed_bytes > 80  # most of the batch took the bytes path
    assert slow_chain.redaction.counts.passed_bytes == 0
    for topic in ("u.events", "u.dlq", "u.quarantine"):
        assert _decoded(fast, topic) == _decoded(slow, topic), topic
    fast_counts, slow_counts = vars(fast_chain.redaction.counts), vars(slow_chain.redaction.counts)
    assert {**fast_counts, "passed_bytes": 0} == slow_counts
    assert fast_counts["dlq"] == 2 and fast_counts["quarantine"] == 1
    assert fast_state == slow_state  # the detectors saw the same events
    assert sorted(o.key for o in fast if o.topic == "u.alerts") == \
        sorted(o.key for o in slow if o.topic == "u.alerts")
    events = [codec.decode_as(EVENT, o.value) for o in fast if o.topic == "u.events"]
    assert all(e["redaction"]["policy_version"] == ("p-7" if e["tenant_id"] == "tenant-1" else "default")
               for e in events)
    assert not any(SECRET.encode() in o.value for o in fast if o.topic == "u.events")
    preview = next(e for e in events if e["run_id"] == "run-2" and e["kind"] == "STEP" and e["seq"] == 1)
    assert preview["payload"]["content"] is None or "refunds" not in str(preview["payload"]["content"])



def test_read_text_remembers_a_framing_without_reading_another_record_by_it():
    """``read_text`` keeps the last framing's reader: records of two writer versions interleaved,
    unknown ids, other schemas, bad magic bytes and short records read exactly as a reader that
    never saw another record reads them."""
    v1 = next(v for v in VERSIONS if v.version == 1)
    v2_raw = codec.encode(EVENT, syn.step("t", "r", 1, attributes={"a": "1"}))
    ev = syn.llm_step("t", "r2", 2, cost_usd=0.01)
    v1_raw = _encode(v1, {**ev, "payload": dict(ev["payload"])})
    alert_id = codec.resolver.writer_id("agentstream.v1.Alert")
    others = [v2_raw[:1] + (999).to_bytes(4, "big") + v2_raw[5:], v2_raw[:1] + alert_id.to_bytes(4, "big") + v2_raw[5:],
              b"\x01" + v2_raw[1:], b"\x01", b"", v2_raw[:5], v2_raw[:6], v2_raw[:-2], None]
    seq = [v2_raw, v1_raw, v2_raw, *others, v1_raw, *others, v2_raw, v2_raw]
    random.Random(5).shuffle(seq)
    for reader in (EventReader(codec), EventReader(codec, native=False)):
        for raw in seq + seq[::-1]:
            fresh = EventReader(codec, native=reader.native)
            assert reader.read_text(raw) == fresh.read_text(raw), raw
    assert READER.read_text(v1_raw)[0]["kind"] == "STEP" and READER.read_text(b"\x01" * 8) is None


def test_inline_pass_through_equals_the_full_path_on_random_batches(monkeypatch):
    """The stage's inlined byte path against the engine's full path on random batches: tenants
    with their own policy versions in one batch, headers, times just inside and past the far-future
    horizon (``ts_us`` and a payload's ``started_us``), content previews, secrets, both Event
    versions, undecodable records. Same events (bytes decoded), headers, DLQ, quarantine, counts."""
    rnd = random.Random(18)
    v1 = next(v for v in VERSIONS if v.version == 1)
    now = int(time.time() * 1_000_000)
    horizon = now + 86_400 * 1_000_000
    records = []
    for n in range(400):
        t, r = f"tenant-{rnd.randrange(5)}", f"run-{rnd.randrange(60)}"
        kind = rnd.randrange(4)
        if kind == 0:
            ev = syn.run_start(t, r, attributes={"ticket": f"T-{n}"})
        elif kind == 1:
            ev = syn.llm_step(t, r, n, cost_usd=0.01)
        elif kind == 2:
            ev = syn.step(t, r, n, name=rnd.choice(("search", "fetch")), args_digest="%064x" % n)
        else:
            ev = syn.run_end(t, r, n)
        what = rnd.random()
        if what < 0.1:  # the horizon's edge, either side, on either time
            at = horizon + rnd.choice((-2_000_000, 5_000_000, 10**12))
            if rnd.random() < 0.5 or "started_us" not in ev["payload"]:
                ev["ts_us"] = at
            else:
                ev["payload"]["started_us"] = at
        elif what < 0.15 and "content" in ev["payload"]:
            ev["payload"]["content"] = {"preview": "the user asked about refunds", "reference": None}
        elif what < 0.2:
            ev["attributes"] = {**(ev.get("attributes") or {}), "note": rnd.choice(
                (f"key {SECRET}", "mail jane.doe@example.com", "a plain note", "card 4111 1111 1111 1111"))}
        raw = codec.encode(EVENT, ev)
        if rnd.random() < 0.1:
            raw = _encode(v1, {k: v for k, v in ev.items() if k != "end_user_id"} | {"payload": dict(ev["payload"])})
        if rnd.random() < 0.02:
            raw = raw[:-2]  # truncated: DLQ either way
        headers = [("h", str(n).encode())] if rnd.random() < 0.3 else None
        records.append(InRecord("u.raw", n % 4, n, r.encode(), raw, headers))

    def run(pass_through: bool):
        if not pass_through:
            monkeypatch.setattr(redaction_stage, "text_may_need_redaction", lambda *a: True)
        book = PolicyBook()
        for i in range(3):
            book.set(TenantPolicy(f"tenant-{i}", version=f"p-{i}"))
        chain = Chain(ProcessorsSettings(topic_prefix="u."), codec, Redactor(b"k"), book, "u.fleet")
        state: dict = {}
        out = []
        for i in range(0, len(records), 97):
            out += chain.process(records[i:i + 97], lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
        monkeypatch.undo()
        return chain, out, state

    fast_chain, fast, fast_state = run(True)
    slow_chain, slow, slow_state = run(False)
    assert fast_chain.redaction.counts.passed_bytes > 250
    for topic in ("u.dlq", "u.quarantine"):
        assert _decoded(fast, topic) == _decoded(slow, topic), topic
    fast_events, slow_events = _decoded(fast, "u.events"), _decoded(slow, "u.events")
    assert len(fast_events) == len(slow_events)
    for f, s in zip(fast_events, slow_events):
        # a clamped time is the processing time: the two runs' clocks differ
        if CLAMP_ATTR in (s[1].get("attributes") or {}):
            assert CLAMP_ATTR in (f[1].get("attributes") or {})
            continue
        assert f == s
    assert {**vars(fast_chain.redaction.counts), "passed_bytes": 0} == vars(slow_chain.redaction.counts)
    assert fast_state.keys() == slow_state.keys()
    assert not any(SECRET.encode() in o.value for o in fast if o.topic == "u.events")
    # each event keeps its record's headers (compared above with the full path's), in a list of its own
    sources = {r.offset: r for r in records}
    kept = [o for o in fast if o.topic == "u.events" and o.headers]
    assert kept and all(o.headers is not sources[int(o.headers[0][1])].headers for o in kept)
