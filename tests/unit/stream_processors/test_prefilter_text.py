"""Attacks on the hot path's prefilter over a record's TEXT (the strings and map keys the field
reader walks by schema; redaction/prefilter.py): whatever the engine would change or quarantine
must never go on as its own bytes. Written before the defence: a secret in every string field of
every payload of both Event versions, in map keys and values, array items, nested records, at a
string's first and last byte, around NULs inside a string, in ids (UUID-shaped or not), over the
scan limit; random texts (secrets glued into noise, UUIDs, digests, prose, long runs) in random
fields; and a differential against the engine on real SDK records."""
from __future__ import annotations

import io
import json
import random
import struct
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import fastavro
import pytest

from agentstream.schemas import EVENT, Codec, load_catalog
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.schemas.compatibility import example_record
from agentstream.stream_processors.event_reader import EventReader
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.redaction import prefilter
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction_stage import RedactionStage, record_may_need_redaction

from .redaction_benches import engine_changes

codec = Codec()
R = Redactor(b"test-key")
VERSIONS = load_catalog().versions(EVENT)
READERS = {"c": EventReader(codec), "py": EventReader(codec, native=False)}
CORPUS = [json.loads(line)["text"] for line in
          (Path(__file__).parent / "corpus.jsonl").read_text().splitlines() if line.strip()]
SECRETS = ["jane.doe@example.com", "AKIAIOSFODNN7EXAMPLE", "4111 1111 1111 1111", "+1 415 555 0100",
           "123-45-6789", "ghp_" + "a1B2" * 9, "password=hunter2hunter2", "Bearer abcdefghijklmnop1234",
           "https://user:pa55word@example.com/x", "-----BEGIN RSA PRIVATE KEY-----",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
           "DE89 3704 0044 0532 0130 00", "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx"]


def _encode(version: Any, event: dict) -> bytes:
    rec = {**event, "payload": (KIND_TO_BRANCH[event["kind"]], event["payload"])}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, version.parsed, rec)
    return struct.pack(">bI", 0, version.id) + buf.getvalue()


def _base(version: Any, kind: str) -> dict:
    """Every optional field filled (strings "s"), no content and no redaction summary (those
    take the full path whatever their text: tested apart)."""
    named = dict(version.parsed["__named_schemas"])
    ev = example_record({**version.parsed, "fields": [f for f in version.parsed["fields"] if f["name"] != "payload"]},
                        named, 1)
    ev.update(kind=kind, tenant_id="acme", run_id="run-1", event_id="ev-1", ts_us=1_760_000_000_000_000,
              redaction=None, attributes={"k": "s"})
    ev["payload"] = example_record(named[KIND_TO_BRANCH[kind]], named, 1)
    if "content" in ev["payload"]:
        ev["payload"]["content"] = None
    return ev


def _slots(v: Any, path: tuple = ()) -> Iterator[tuple]:
    """Paths to every string of a decoded event; ("key", path, k) for a map key."""
    if isinstance(v, str):
        yield path
    elif isinstance(v, dict):
        for k, item in v.items():
            if path == ("attributes",):
                yield ("key",) + path + (k,)
            yield from _slots(item, path + (k,))
    elif isinstance(v, list):
        for i, item in enumerate(v):
            yield from _slots(item, path + (i,))


def _set(ev: dict, slot: tuple, value: str) -> dict:
    ev = json.loads(json.dumps(ev))
    if slot[0] == "key":
        parent = ev
        for p in slot[1:-1]:
            parent = parent[p]
        parent[value] = parent.pop(slot[-1])
        return ev
    parent = ev
    for p in slot[:-1]:
        parent = parent[p]
    parent[slot[-1]] = value
    return ev


def _fires(raw: bytes, redactor: Redactor = R, reader: str = "c") -> bool:
    return record_may_need_redaction(READERS[reader], redactor, raw)


def _is_text(version: Any, ev: dict, slot: tuple) -> bool:
    """Whether the slot holds text (an enum's symbol is a str once decoded, but no text)."""
    try:
        _encode(version, _set(ev, slot, "not-a-symbol"))
    except (ValueError, KeyError):
        return False
    return True


CASES = [(v, k) for v in VERSIONS for k in KIND_TO_BRANCH]


@pytest.mark.parametrize("version,kind", CASES, ids=[f"v{v.version}-{k}" for v, k in CASES])
def test_a_secret_in_any_string_of_any_payload_is_never_passed_on(version, kind):
    base = _base(version, kind)
    assert not engine_changes(base) and not _fires(_encode(version, base))
    slots = [s for s in _slots(base) if _is_text(version, base, s)]
    assert len(slots) >= 9
    changed = 0
    for slot in slots:
        for i, secret in enumerate(SECRETS):
            # at the string's first byte, its last byte, and inside words
            for text in (secret, "x " + secret, secret + " y") if i % 3 == 0 else (secret,):
                ev = _set(base, slot, text)
                raw = _encode(version, ev)
                if engine_changes(ev):
                    changed += 1
                    assert _fires(raw), (slot, text)
                    assert _fires(raw, reader="py"), (slot, text)
    assert changed >= len(slots) * 5  # the engine did act on most of them: the test is not vacuous


@pytest.mark.parametrize("text", CORPUS)
def test_every_corpus_text_in_free_text_ids_and_attributes(text):
    version = VERSIONS[-1]
    failure, step = _base(version, "FAILURE"), _base(version, "STEP")
    for ev in (_set(failure, ("payload", "message"), text), _set(step, ("payload", "tool", "call_id"), text),
               _set(step, ("payload", "step_id"), text), _set(step, ("run_id",), text),
               _set(step, ("attributes", "k"), text), _set(step, ("key", "attributes", "k"), text),
               _set(step, ("payload", "llm", "tool_calls", 0), text)):
        if engine_changes(ev):
            assert _fires(_encode(version, ev)), text


@pytest.mark.parametrize("value", [
    "x\x00card 4111 1111 1111 1111\x00y",         # NULs inside one string: the text's own separator
    "\x00\x00jane.doe@example.com", "AKIAIOSFODNN7EXAMPLE\x00",
    "a\x01\x02+1 415 555 0100\x7f", "ün ïcode jane.doe@example.com ✓",
])
def test_separators_and_odd_bytes_inside_a_string_hide_nothing(value):
    ev = _set(_base(VERSIONS[-1], "FAILURE"), ("payload", "message"), value)
    assert engine_changes(ev) and _fires(_encode(VERSIONS[-1], ev)) and _fires(_encode(VERSIONS[-1], ev), reader="py")


def test_a_secret_split_across_two_fields_is_judged_as_the_engine_judges_each_field():
    # Neither half is a secret to the engine (it judges each string): the prefilter may pass it,
    # but only because the engine would; a half that is itself a secret to the engine is found.
    base = _base(VERSIONS[-1], "STEP")
    halves = [("AKIAIOSF", "ODNN7EXAMPLE"), ("jane.doe@", "example.com"), ("4111 1111", " 1111 1111"),
              ("4111 1111 1111 1111 and", "jane.doe@example.com")]
    for a, b in halves:
        ev = _set(_set(base, ("payload", "name"), a), ("payload", "tool", "tool_name"), b)
        assert _fires(_encode(VERSIONS[-1], ev)) or not engine_changes(ev), (a, b)
    ev = _set(_set(base, ("payload", "name"), halves[-1][0]), ("payload", "tool", "tool_name"), halves[-1][1])
    assert engine_changes(ev) and _fires(_encode(VERSIONS[-1], ev))


def test_attribute_verdicts_apply_to_attributes_and_prose_elsewhere_is_not_a_trip():
    base = _base(VERSIONS[-1], "FAILURE")
    prose = "the upstream service returned an error after three retries"
    # an attribute that reads as prose, one too long, one under a content key: dropped by the engine
    for ev in (_set(base, ("attributes", "k"), prose), _set(base, ("attributes", "k"), "x" * 300),
               _set(base, ("key", "attributes", "k"), "gen_ai.prompt"), _set(base, ("key", "attributes", "k"), "my_messages")):
        assert engine_changes(ev) and _fires(_encode(VERSIONS[-1], ev))
    ev = _set(base, ("payload", "message"), prose)  # a failure message: text the engine scans, not an attribute
    assert not engine_changes(ev) and not _fires(_encode(VERSIONS[-1], ev))


@pytest.mark.parametrize("slot", [("event_id",), ("run_id",), ("payload", "step_id"), ("payload", "tool", "call_id"),
                                  ("attributes", "k"), ("payload", "name"), ("agent_id",)])
def test_uuids_are_exempt_wherever_they_are_and_only_exact_uuids(slot):
    base = _base(VERSIONS[-1], "STEP")
    rnd = random.Random(7)
    for _ in range(200):
        u = str(uuid.UUID(int=rnd.getrandbits(128)))
        for value in (u, u.upper()):
            ev = _set(base, slot, value)
            assert not engine_changes(ev) and not _fires(_encode(VERSIONS[-1], ev)), value
    for value in ("call +1 415 555 0100 " + u, u + " jane.doe@example.com", u[:-1] + "4111 1111 1111 1111"):
        ev = _set(base, slot, value)
        assert _fires(_encode(VERSIONS[-1], ev)) or not engine_changes(ev), value


def test_a_string_over_the_scan_limit_is_never_passed_on():
    small = Redactor(b"k", max_chars=1000)
    ev = _set(_base(VERSIONS[-1], "FAILURE"), ("payload", "message"), "\x01" * 1001)  # no pattern matches it
    assert engine_changes(ev, small) and _fires(_encode(VERSIONS[-1], ev), small)
    ev = _set(_base(VERSIONS[-1], "FAILURE"), ("payload", "message"), "é" * 600)  # 1200 bytes, 600 characters
    assert not engine_changes(ev, small) and _fires(_encode(VERSIONS[-1], ev), small)  # bytes: a superset


def test_past_the_match_limit_the_record_takes_the_full_path():
    many = " ".join(f"{i:014d}" for i in range(prefilter.MAX_JUDGED_MATCHES + 1))  # clean to the engine? no matter
    ev = _set(_base(VERSIONS[-1], "FAILURE"), ("payload", "message"), many)
    assert _fires(_encode(VERSIONS[-1], ev))


@pytest.mark.parametrize("pattern,ok", [(r"\bAKIA", False), ("(?<![0-9])[0-9]{16}", False), ("^ghp_", False),
                                        ("secret$", False), (r"(?i:key)[:=]\$", True), ("[^a-z]{3}x", True)])
def test_only_context_free_patterns_are_accepted(pattern, ok):
    assert prefilter.context_free(pattern) is ok


def _sdk_records(n: int, seed: int, dirty: float) -> list[tuple[bytes, bytes]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    try:
        from sdk_records import sdk_records
    finally:
        sys.path.pop(0)
    return sdk_records(n, seed=seed, dirty=dirty)


def test_real_sdk_records_clean_pass_and_planted_secrets_never_do():
    data = _sdk_records(3000, seed=31, dirty=0.3)
    rnd = random.Random(31)
    fired_clean = 0
    raws, fired_each = [], []
    for i, (_, raw) in enumerate(data):
        ev = codec.decode_as(EVENT, raw)
        if i % 3 == 0:  # and a corpus text in a random string of the record
            slot = rnd.choice([s for s in _slots(ev) if _is_text(VERSIONS[-1], ev, s)])
            ev = _set(ev, slot, rnd.choice(CORPUS))
            raw = codec.encode(EVENT, ev)
        changed, fired = engine_changes(ev), _fires(raw)
        assert fired or not changed, ev
        assert _fires(raw, reader="py") == fired
        fired_clean += fired and not changed
        raws.append(raw)
        fired_each.append(fired)
    assert fired_clean <= len(data) // 100  # the engine's own verdicts clear ids and digests
    # The stage asks it of a batch at once (one rule-pattern scan over the batch's texts): the
    # same records go on as their bytes, in batches of every size.
    stage = RedactionStage(codec, R, PolicyBook(), "s.")
    at = 0
    while at < len(raws):
        size = rnd.choice((1, 2, 7, 100, 500))
        batch = [InRecord("s.raw", 0, at + j, None, raw) for j, raw in enumerate(raws[at:at + size])]
        out: list = []
        before = stage.counts.passed_bytes
        stage.process(batch, out)
        assert stage.counts.passed_bytes - before == fired_each[at:at + size].count(False)
        at += size


def test_readers_agree_on_the_text_of_damaged_records():
    data = _sdk_records(400, seed=5, dirty=0.0)
    rnd = random.Random(5)
    c, py = READERS["c"], READERS["py"]
    for _, raw in data:
        for _ in range(5):
            b = bytearray(raw)
            if rnd.random() < 0.5:
                b[rnd.randrange(5, len(b))] = rnd.randrange(256)
            else:
                del b[rnd.randrange(6, len(b)):]
            assert c.read_text(bytes(b)) == py.read_text(bytes(b))


def _random_text(rnd: random.Random) -> str:
    kind = rnd.randrange(9)
    if kind == 0:
        return rnd.choice(CORPUS)
    if kind == 1:
        return str(uuid.UUID(int=rnd.getrandbits(128)))
    if kind == 2:
        return f"{rnd.getrandbits(256):064x}"
    if kind == 3:  # a corpus text glued into noise, NULs and other control bytes included
        noise = "".join(rnd.choice("ab1 _-\x00\x01\t.:/é日") for _ in range(rnd.randint(0, 12)))
        return noise + rnd.choice(CORPUS) + noise[::-1]
    if kind == 4:
        return " ".join(rnd.choice(("the", "order", "was", "refunded", "by", "ops", "ünï", "日本")) for _ in range(6))
    if kind == 5:
        return rnd.choice("xé日") * rnd.randint(200, 400)
    if kind == 6:
        return rnd.choice(SECRETS)
    if kind == 7:
        return "".join(chr(rnd.randrange(32, 0x2FF)) for _ in range(rnd.randint(0, 20)))
    return f"call_{rnd.getrandbits(64):016x}"


@pytest.mark.parametrize("version", VERSIONS, ids=[f"v{v.version}" for v in VERSIONS])
def test_random_texts_in_random_fields_never_pass_what_the_engine_changes(version):
    rnd = random.Random(version.version * 1000 + 7)
    bases = {kind: _base(version, kind) for kind in KIND_TO_BRANCH}
    slots = {kind: [s for s in _slots(ev) if _is_text(version, ev, s)] for kind, ev in bases.items()}
    changed = passed = 0
    for _ in range(1500):
        kind = rnd.choice(list(KIND_TO_BRANCH))
        ev = bases[kind]
        for slot in rnd.sample(slots[kind], k=min(3, len(slots[kind]))):
            ev = _set(ev, slot, _random_text(rnd))
        ev = _set(ev, ("attributes",), {_random_text(rnd)[:40] or "k": _random_text(rnd)
                                        for _ in range(rnd.choice((0, 1, 4)))})
        raw = _encode(version, ev)
        fires = _fires(raw)
        assert _fires(raw, reader="py") == fires
        if engine_changes(ev):
            changed += 1
            assert fires, ev
        passed += not fires
    assert changed > 300 and passed > 100  # both kinds were generated


def _record_text(rnd: random.Random) -> bytes:
    """A record's text as the reader gives it: strings, each ended by a NUL but the last."""
    return b"\x00".join(_random_text(rnd).encode("utf-8", "surrogatepass") for _ in range(rnd.randint(0, 6)))


def test_one_scan_of_a_batch_clears_only_texts_the_rule_patterns_miss():
    """``batch_rule_hits`` against each text scanned on its own: a text the batch scan clears
    never holds a rule-pattern match (secrets, corpus texts and digit runs at either end of a
    text, next to another text's, glued across two texts, empty texts, NULs, non-ASCII); a
    text with a match of its own is always marked. 300 random batches of 1-60 texts."""
    rnd = random.Random(1806)
    marked_clean = 0
    for _ in range(300):
        texts = [_record_text(rnd) for _ in range(rnd.randint(1, 60))]
        for _ in range(rnd.randint(0, 3)):  # a secret split across two neighbours: "...AKIA" + "IOSF..."
            if len(texts) > 1:
                i = rnd.randrange(len(texts) - 1)
                s = rnd.choice(SECRETS).encode()
                cut = rnd.randint(1, len(s) - 1)
                texts[i], texts[i + 1] = texts[i] + s[:cut], s[cut:] + texts[i + 1]
        hits = prefilter.batch_rule_hits(texts)
        assert hits is not None and len(hits) == len(texts)
        for text, hit in zip(texts, hits):
            alone = prefilter.rule_patterns_match(text)
            assert hit or not alone, text  # never a miss
            marked_clean += hit and not alone  # a match across texts marks one more: harmless
    assert marked_clean < 300  # and rarely


def test_a_batch_past_the_match_limit_is_left_to_the_per_text_scan():
    assert prefilter.batch_rule_hits([]) == []
    digits = b"12345678901234567890" * 50
    many = [digits] * (prefilter.MAX_BATCH_MATCHES // 100 + 10)
    assert prefilter.batch_rule_hits(many) is None
    assert prefilter.batch_rule_hits([b"plain", digits, b"plain"]) == [False, True, False]
