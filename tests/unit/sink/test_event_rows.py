"""The direct path's C mapper (sink/_eventrows.c) against the Python mapper, the reference.

The contract, over generated records of Event v1 and v2 (every payload branch, optionals present
and absent, strings of any script and every escape, integers at their limits, nan, infinities,
-0.0): whatever Python stores, C writes the same row, byte for byte once decoded; whatever
Python rejects, C refuses (the sink then redoes the range in Python). C may refuse more, only
for the reasons it names. Then the attacks: truncations, byte flips, invalid UTF-8, a map key
given twice, a payload branch its kind does not name, trailing bytes.
"""
from __future__ import annotations

import io
import json
import math
import random
import struct

import fastavro
import orjson
import pytest

from agentstream.schemas import EVENT, Codec, DecodeError
from agentstream.schemas.avro_binary import encode_long
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.schemas.run_keys import run_key
from agentstream.sink import event_rows
from agentstream.sink.containers import MARK, canonical_hash
from agentstream.sink.rows import EVENT_COLUMNS, RowError, event_row
from tests.avro_datums import datum
from tests.staged_schemas import staged_writer_schemas

pytestmark = pytest.mark.skipif(not event_rows.AVAILABLE, reason="sink/_eventrows.c is not built")

# Refusals C may make where Python stores: Python would read these records differently from
# ClickHouse (duplicate keys), or maps any record under FEEDBACK/COMMAND_ACK (its branch check).
ALLOWED_EXTRA_REFUSALS = ("a payload branch other than the one its kind names", "a map key given twice")


SCHEMAS = [(sid, s, event_rows.SCHEMA_VERSION[canonical_hash(s)]) for sid, s in staged_writer_schemas()
           if canonical_hash(s) in event_rows.SCHEMA_VERSION]
assert len(SCHEMAS) == len(event_rows.SCHEMA_VERSION)


def _branches(schema: dict) -> dict[str, dict]:
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    return {b["name"]: b for b in payload["type"]}


def _event(schema: dict, rng: random.Random) -> dict:
    """A random Event: mostly within what the mapper takes, sometimes just outside it."""
    ev = datum(schema, rng)
    kind = ev["kind"]
    branches = _branches(schema)
    name = KIND_TO_BRANCH[kind] if rng.random() < 0.93 else rng.choice(list(branches))
    payload = datum(branches[name], rng)
    if rng.random() < 0.9:
        ev["seq"] = rng.choice([0, 1, 7, 2**32 - 1, rng.randrange(0, 2**32)])
    if isinstance(payload.get("attempt"), int) and rng.random() < 0.9:
        payload["attempt"] = rng.choice([0, 1, 65535, rng.randrange(0, 65536)])
    llm = payload.get("llm")
    if isinstance(llm, dict) and rng.random() < 0.8:
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            llm[k] = rng.choice([0, 5, 2**40, rng.randrange(0, 2**40)])  # datum() makes 2^63-1 and < 0
    # durations and ids mostly as the mapper takes them (0..30 days; one token of id characters),
    # else whatever datum() made: nan, infinities, -1e300, text of any script
    for rec, k in ((payload, "latency_ms"), (payload, "duration_ms"), (payload.get("approval"), "approval_latency_ms")):
        if isinstance(rec, dict) and k in rec and rng.random() < 0.95:
            rec[k] = rng.choice([0.0, -0.0, 0.5, 2_592_000_000.0, rng.uniform(0, 1e6)])
    for k in ("event_id", "run_id", "session_id", "parent_run_id", "parent_step_id"):
        if ev.get(k) and rng.random() < 0.97:
            ev[k] = rng.choice(["r", "run_7a52:x/y+=#-.", "R" * 256, k + str(rng.randrange(100))])
    red = ev.get("redaction")
    if isinstance(red, dict) and rng.random() < 0.85:
        red["rule_counts"] = {k: abs(v) % 2**63 for k, v in red["rule_counts"].items()}
    for k in ("tenant_id", "run_id", "event_id"):
        if not ev[k] and rng.random() < 0.9:
            ev[k] = k + str(rng.randrange(100))
    ev["payload"] = (name, payload)
    return ev


def _framed(sid: int, schema: dict, ev: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), ev)
    return b"\x00" + sid.to_bytes(4, "big") + buf.getvalue()


def _trailer(days: int) -> bytes:
    return encode_long(days) + MARK


def _python(codec: Codec, value: bytes, days: int):
    try:
        return event_row(codec.decode_as(EVENT, value), days)
    except (DecodeError, RowError):
        return None


# ---- RowBinary read back (the test's own reader, from EVENT_TYPES) ----

def _varint(b: bytes, i: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return x, i


def _read(t: str, b: bytes, i: int):
    if t.startswith("Nullable("):
        if b[i]:
            return None, i + 1
        return _read(t[9:-1], b, i + 1)
    if t in ("String", "LowCardinality(String)"):
        n, i = _varint(b, i)
        return b[i:i + n].decode(), i + n
    if t.startswith("DateTime64") or t == "Int64":
        return struct.unpack_from("<q", b, i)[0], i + 8
    fixed = {"UInt16": "<H", "UInt32": "<I", "UInt64": "<Q", "Float64": "<d", "Bool": "<?"}
    if t in fixed:
        return struct.unpack_from(fixed[t], b, i)[0], i + struct.calcsize(fixed[t])
    if t.startswith("Array("):
        n, i = _varint(b, i)
        out = []
        for _ in range(n):
            v, i = _read(t[6:-1], b, i)
            out.append(v)
        return out, i
    if t.startswith("Map(String, "):
        n, i = _varint(b, i)
        d = {}
        for _ in range(n):
            k, i = _read("String", b, i)
            assert k not in d
            d[k], i = _read(t[12:-1], b, i)
        return d, i
    raise AssertionError(t)


def _rows(b: bytes) -> list[tuple]:
    out, i = [], 0
    while i < len(b):
        row = []
        for c in EVENT_COLUMNS:
            v, i = _read(event_rows.EVENT_TYPES[c][0], b, i)
            row.append(v)
        out.append(tuple(row))
    return out


def _same(a: tuple, b: tuple) -> bool:
    def norm(v):
        if isinstance(v, float):
            return ("f", struct.pack("<d", v)) if not math.isnan(v) else ("nan",)
        return v
    return [norm(x) for x in a] == [norm(x) for x in b]


@pytest.fixture(scope="module", params=SCHEMAS, ids=lambda s: f"schema{s[0]}")
def corpus(request):
    sid, schema, v2 = request.param
    rng = random.Random(1000 + sid)
    return sid, schema, v2, [_event(schema, rng) for _ in range(3000)]


def test_c_writes_what_python_stores_and_refuses_what_it_rejects(corpus):
    sid, schema, v2, events = corpus
    codec = Codec()
    stored = refused_extra = 0
    bodies = []
    for ev in events:
        days = random.Random(ev["event_id"]).choice([1, 7, 30, 400, 65535])
        value = _framed(sid, schema, ev)
        want = _python(codec, value, days)
        body = value + _trailer(days)
        try:
            got = event_rows.rows(body, 1, v2)
        except ValueError as exc:
            if want is not None:
                assert any(r in str(exc) for r in ALLOWED_EXTRA_REFUSALS), (str(exc), ev)
                refused_extra += 1
            continue
        assert want is not None, ("C mapped a record Python rejects", ev)
        [row] = _rows(got)
        assert _same(row, want), (row, want)
        stored += 1
        bodies.append((body, got))
    assert stored > 2000  # the generator mostly makes records the mapper takes
    assert refused_extra < 200
    # back to back, as a container's body
    assert event_rows.rows(b"".join(b for b, _ in bodies), len(bodies), v2) == b"".join(g for _, g in bodies)


def test_the_runs_a_body_carries_are_its_rows_tenants_and_runs(corpus):
    """What the sink tells the embedded API's cache of missing runs an insert carries
    (api/store/run_misses.py): every row's run, as schemas/run_keys.py spells it, nothing else.
    A run left out would be answered missing after it is stored."""
    sid, schema, v2, events = corpus
    rng = random.Random(sid)
    bodies, want, tenant = [], set(), "t-same"
    for ev in events:
        if rng.random() < 0.3:  # rows of one run back to back, as a partition's batch holds them
            ev = {**ev, "tenant_id": tenant, "run_id": "same-run"}
        tenant = ev["tenant_id"] or tenant
        body = _framed(sid, schema, ev) + _trailer(30)
        try:
            event_rows.rows(body, 1, v2)
        except ValueError:
            continue
        bodies.append(body)
        want.add(run_key(ev["tenant_id"], ev["run_id"]))
    body = b"".join(bodies)
    rows, runs = event_rows.rows_and_runs(body, len(bodies), v2)
    assert rows == event_rows.rows(body, len(bodies), v2)
    assert runs == want and len(want) > 100
    assert any(max(k) >= 0x80 for k in want)  # runs and tenants of non-ASCII text among them
    with pytest.raises(ValueError):
        event_rows.rows_and_runs(body[:-1], len(bodies), v2)


def test_the_payload_json_is_python_s_for_every_branch_and_odd_text(corpus):
    """The payload column alone, over odd text: quotes, escapes, controls, U+2028/2029, astral."""
    sid, schema, v2, events = corpus
    codec = Codec()
    odd = ['"', "\\", "/", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\u2028x\u2029", "é✓日本\U0001f600", "", "\ud7ff\ue000"]
    rng = random.Random(5)
    n = 0
    for ev in events[:1500]:
        ev = json.loads(json.dumps(ev, default=list))  # a copy (the payload tuple becomes a list)
        name, payload = ev["payload"]
        enums = {"status", "step_kind", "failure_type"} if name != "agentstream.v1.CommandAck" else set()
        for k, v in payload.items():
            if isinstance(v, str) and k not in enums:
                payload[k] = rng.choice(odd) + v[:5] + rng.choice(odd)
        ev["payload"] = (name, payload)
        value = _framed(sid, schema, ev)
        want = _python(codec, value, 30)
        try:
            got = event_rows.rows(value + _trailer(30), 1, v2)
        except ValueError:
            continue
        assert want is not None
        [row] = _rows(got)
        p = EVENT_COLUMNS.index("payload")
        assert row[p] == want[p]
        n += 1
    assert n > 1000


def test_doubles_are_written_as_orjson_writes_them():
    from agentstream.sink._eventrows import json_double
    rng = random.Random(3)
    xs = [math.ldexp(1.0, k) for k in range(-1074, 1024)]
    xs += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(60_000)]
    xs += [round(rng.uniform(0, 1000), rng.randrange(0, 9)) for _ in range(20_000)]
    xs += [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e16, 1e15, 9.999999999999999e15, 1e-5, 1e-6, 0.1]
    for x in xs + [-x for x in xs]:
        assert json_double(x) == orjson.dumps(x).decode(), repr(x)


def _one(sid: int, schema: dict, **over) -> dict:
    ev = {"event_id": "e1", "tenant_id": "t1", "agent_id": "a", "agent_version": "1", "environment": "prod",
          "run_id": "r1", "seq": 3, "ts_us": 1_700_000_000_000_000, "emitted_us": 1_700_000_000_000_001,
          "sdk_version": "0.1", "capture_mode": "METADATA_ONLY", "policy_version": "p1",
          "attributes": {"k1": "v1", "k2": "v2"}, "redaction": {"policy_version": "p1", "rule_counts": {"r1": 1, "r2": 2}},
          "kind": "FEEDBACK", "payload": ("agentstream.v1.Feedback", {"interaction_id": "i", "feedback_type": "thumbs",
                                                                      "value": "up", "source": "user"})}
    ev.update(over)
    return ev


@pytest.mark.parametrize("sid,schema,v2", SCHEMAS, ids=lambda x: str(x)[:12])
def test_attacks_are_refused(sid, schema, v2):
    codec = Codec()
    base = _framed(sid, schema, _one(sid, schema)) + _trailer(30)
    assert event_rows.rows(base, 1, v2)
    for cut in range(len(base)):  # every truncation
        with pytest.raises(ValueError):
            event_rows.rows(base[:cut], 1, v2)
    with pytest.raises(ValueError, match="bytes left"):
        event_rows.rows(base + b"\x00", 1, v2)
    with pytest.raises(ValueError, match="record 1 of 2"):
        event_rows.rows(base, 2, v2)
    # a map key given twice (same length, spliced in): Python keeps one, a Map would keep both
    dup = base.replace(b"k2", b"k1")
    with pytest.raises(ValueError, match="given twice"):
        event_rows.rows(dup, 1, v2)
    with pytest.raises(ValueError, match="given twice"):
        event_rows.rows(base.replace(b"r2", b"r1"), 1, v2)
    # invalid UTF-8 anywhere (even in a field not stored): Python's decoder refuses the record
    for bad in (b"\xff", b"\xc0", b"\xed", b"\x80"):
        for field in (b"prod", b"thumbs", b"0.1"):
            value = base.replace(field, bad + field[1:], 1)
            with pytest.raises(ValueError, match="UTF-8"):
                event_rows.rows(value, 1, v2)
            assert _python(codec, value[:-len(_trailer(30))], 30) is None
    for seq in (b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"):  # surrogate, overlong, > U+10FFFF
        ev = _one(sid, schema, environment="ab")
        value = _framed(sid, schema, ev).replace(b"\x04ab", bytes([2 * len(seq)]) + seq)
        with pytest.raises(ValueError, match="UTF-8"):
            event_rows.rows(value + _trailer(30), 1, v2)
        assert _python(codec, value, 30) is None
    # the mark catches a record whose length is not what its schema says
    with pytest.raises(ValueError, match="length"):
        event_rows.rows(base[:-4] + b"AGS2", 1, v2)
    # what event_row() rejects: empty ids, seq out of range, a negative count, retention 0
    for over in ({"tenant_id": ""}, {"run_id": ""}, {"seq": -1}, {"seq": 2**32},
                 {"redaction": {"policy_version": "p", "rule_counts": {"r": -1}}}):
        value = _framed(sid, schema, _one(sid, schema, **over))
        assert _python(codec, value, 30) is None
        with pytest.raises(ValueError):
            event_rows.rows(value + _trailer(30), 1, v2)
    with pytest.raises(ValueError, match="retention"):
        event_rows.rows(_framed(sid, schema, _one(sid, schema)) + _trailer(0), 1, v2)
    # a payload branch other than its kind's
    mismatch = _framed(sid, schema, _one(sid, schema, kind="STEP"))
    with pytest.raises(ValueError, match="branch"):
        event_rows.rows(mismatch + _trailer(30), 1, v2)


@pytest.mark.parametrize("sid,schema,v2", SCHEMAS, ids=lambda x: str(x)[:12])
def test_byte_flips_end_in_rows_python_agrees_with_or_a_refusal(sid, schema, v2):
    codec = Codec()
    rng = random.Random(17)
    events = [_event(schema, rng) for _ in range(200)]
    refused = agreed = 0
    for ev in events:
        value = bytearray(_framed(sid, schema, ev))
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(5, len(value))
            value[i] = rng.randrange(256)
        try:
            got = event_rows.rows(bytes(value) + _trailer(30), 1, v2)
        except ValueError:
            refused += 1
            continue
        want = _python(codec, bytes(value), 30)
        assert want is not None and len(got) < 4 * len(value) + 4096
        [row] = _rows(got)
        assert _same(row, want)
        agreed += 1
    assert refused and agreed


def test_takes_only_the_columns_it_writes():
    cols = [(c, event_rows.EVENT_TYPES[c][-1]) for c in EVENT_COLUMNS] + [("inserted_at", "DateTime64(3, 'UTC')")]
    assert event_rows.takes(cols)
    assert not event_rows.takes(cols[1:])
    assert not event_rows.takes([(n, "Int32" if n == "seq" else t) for n, t in cols])


@pytest.mark.parametrize("sid,schema,v2", SCHEMAS, ids=lambda x: str(x)[:12])
def test_a_cost_that_is_no_cost_is_refused_by_both_mappers(sid, schema, v2):
    """A NaN in events.cost_usd made every sum over the tenant's costs NaN; a negative one took
    spend away (schemas/usage_numbers.py). Both mappers dead-letter it alike; -0.0 is 0.0."""
    codec = Codec()
    llm = {"provider": "p", "operation": "chat", "request_model": "m", "response_model": None,
           "input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
           "finish_reasons": [], "tool_calls": []}
    if v2:
        llm["request_digest"] = None
    step = {"step_id": "s", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": 1,
            "latency_ms": 1.0, "attempt": 1, "retry_of": None, "llm": llm, "tool": None, "handoff": None,
            "approval": None, "fallback": None, "content": None}
    for cost, stored in ((math.nan, False), (math.inf, False), (-math.inf, False), (-0.01, False),
                         (-0.0, True), (0.0, True), (1e300, True)):
        ev = _one(sid, schema, kind="STEP", payload=("agentstream.v1.Step", {**step, "llm": {**llm, "cost_usd": cost}}))
        value = _framed(sid, schema, ev)
        want = _python(codec, value, 30)
        if stored:
            [row] = _rows(event_rows.rows(value + _trailer(30), 1, v2))
            assert want is not None and row[EVENT_COLUMNS.index("cost_usd")] == abs(cost)
        else:
            assert want is None, cost
            with pytest.raises(ValueError, match="cost_usd"):
                event_rows.rows(value + _trailer(30), 1, v2)


def _step_payload(v2: bool, **over) -> dict:
    llm = {"provider": "p", "operation": "chat", "request_model": "m", "response_model": None,
           "input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
           "cost_usd": 0.0, "finish_reasons": [], "tool_calls": []}
    if v2:
        llm["request_digest"] = None
    step = {"step_id": "s", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": 1,
            "latency_ms": 1.0, "attempt": 1, "retry_of": None, "llm": llm, "tool": None, "handoff": None,
            "approval": None, "fallback": None, "content": None}
    for k, v in over.items():
        if k in llm:
            llm[k] = v
        else:
            step[k] = v
    return step


@pytest.mark.parametrize("sid,schema,v2", SCHEMAS, ids=lambda x: str(x)[:12])
def test_durations_token_counts_and_ids_out_of_bounds_are_refused_by_both_mappers(sid, schema, v2):
    """Red-team s17: written around the gateway, a latency of -1e308 or NaN failed every read of
    the run, 2^63-1 tokens wrapped the tenant's sums, and a run id with a newline (or 10 KB long)
    was stored and unreadable. Both mappers dead-letter each alike, with a reason; an id in another
    script is stored."""
    codec = Codec()
    approval = {"action_digest": "ab" * 16, "decision": "approved", "approval_latency_ms": 1.0}
    run_end = {"status": "SUCCESS", "outcome": "ok", "started_us": 1, "duration_ms": 1.0, "step_count": 1,
               "llm_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    bad = [
        *[dict(kind="STEP", payload=("agentstream.v1.Step", _step_payload(v2, latency_ms=x)))
          for x in (-1e308, -1.0, math.nan, math.inf, -math.inf, 2_592_000_000.5)],
        *[dict(kind="RUN_END", payload=("agentstream.v1.RunEnd", {**run_end, "duration_ms": x}))
          for x in (-1e308, math.nan, math.inf)],
        dict(kind="STEP", payload=("agentstream.v1.Step", _step_payload(
            v2, llm=None, step_kind="APPROVAL", approval={**approval, "approval_latency_ms": math.inf}))),
        *[dict(kind="STEP", payload=("agentstream.v1.Step", _step_payload(v2, **{k: n})))
          for k in ("input_tokens", "cache_write_tokens") for n in (2**40 + 1, 2**63 - 1)],
        *[{k: v} for k in ("run_id", "event_id", "session_id", "parent_run_id", "parent_step_id")
          for v in ("a b", "a\nb", "a\tb", "a\x7fb", "x" * 10_000, "é" * 513)],
    ]
    for over in bad:
        value = _framed(sid, schema, _one(sid, schema, **over))
        with pytest.raises(RowError):
            event_row(codec.decode_as(EVENT, value), 30)
        with pytest.raises(ValueError):
            event_rows.rows(value + _trailer(30), 1, v2)
    good = [
        dict(kind="STEP", payload=("agentstream.v1.Step", _step_payload(v2, latency_ms=2_592_000_000.0,
                                                                         input_tokens=2**40))),
        dict(kind="RUN_END", payload=("agentstream.v1.RunEnd", {**run_end, "duration_ms": -0.0})),
        dict(kind="STEP", payload=("agentstream.v1.Step", _step_payload(v2, llm=None, step_kind="APPROVAL",
                                                                         approval=approval))),
        {"run_id": "R" * 256, "session_id": "", "parent_run_id": None, "parent_step_id": "run_7:a/b+=#-."},
        # stored ids need only be storable (schemas/id_format.is_storable_id): another script, a
        # leading dash, 1,024 bytes
        {"run_id": "run-é-東京", "session_id": "-lead", "parent_run_id": "é" * 512},
    ]
    for over in good:
        value = _framed(sid, schema, _one(sid, schema, **over))
        want = event_row(codec.decode_as(EVENT, value), 30)
        [row] = _rows(event_rows.rows(value + _trailer(30), 1, v2))
        assert _same(row, want)


def test_the_row_error_names_the_field_never_the_value():
    ev = {"kind": "FEEDBACK", "payload": {}, "seq": 1, "tenant_id": "t", "run_id": "x" * 10_000,
          "event_id": "e", "ts_us": 1}
    with pytest.raises(RowError) as e:
        event_row(ev)
    assert "run_id is not an id" in e.value.reason and len(e.value.reason) < 200
