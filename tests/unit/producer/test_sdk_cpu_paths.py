"""The SDK's cheaper id and digest paths (issue #18) must give what the plain ones gave.

- run ids and event-id seeds from ``producer/ids.py``: RFC 4122 version-4 strings, unique
  across threads, and never repeated by a forked child (it must not reuse its parent's
  buffered randomness);
- ``CapturePolicy.digest``: the same hex as HMAC-SHA256 of ``json.dumps(value, sort_keys=True,
  separators=(",", ":"), ensure_ascii=False, default=str)`` under the key, for every shape a
  caller passes (strings, nested dicts and lists, non-JSON types, non-ASCII, surrogates).
"""
from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import uuid

import pytest

from agentstream.producer import ids
from agentstream.producer.capture import CapturePolicy, canonical_json
from agentstream.producer.enforcement import Budget


def _is_uuid4(s: str) -> bool:
    u = uuid.UUID(s)
    return str(u) == s and u.version == 4 and u.variant == uuid.RFC_4122


def test_ids_are_version_4_uuids_and_unique_across_threads():
    out: list[list[str]] = [[] for _ in range(8)]

    def take(i: int) -> None:
        for _ in range(3000):
            out[i].append(ids.uuid4_str())

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [s for part in out for s in part]
    assert len(every) == 24_000
    assert len(set(every)) == len(every)
    assert all(_is_uuid4(s) for s in every)
    # random bits really vary; the version nibble is fixed and the variant nibble is 8-b
    for pos in (0, 9, 15, 20, 35):
        assert len({s[pos] for s in every}) > 4
    assert {s[14] for s in every} == {"4"}
    assert {s[19] for s in every} == set("89ab")


def test_version_and_variant_bits_whatever_the_random_bytes():
    for raw in (b"\x00" * 32, b"\xff" * 32, bytes(range(32))):
        made = ids.format_uuid4(raw)
        assert len(made) == 2
        assert all(_is_uuid4(s) for s in made)
    assert ids.format_uuid4(b"\x00" * 16) == ["00000000-0000-4000-8000-000000000000"]
    assert ids.format_uuid4(b"\xff" * 16) == ["ffffffff-ffff-4fff-bfff-ffffffffffff"]


def test_formatted_ids_keep_every_random_digit_in_place():
    rng = random.Random(7)
    for _ in range(300):
        raw = bytes(rng.randrange(256) for _ in range(16 * rng.randrange(1, 6)))
        made = ids.format_uuid4(raw)
        assert len(made) == len(raw) // 16
        for k, s in enumerate(made):
            want = bytearray(raw[16 * k:16 * k + 16])
            want[6] = want[6] & 0x0F | 0x40
            want[8] = want[8] & 0x3F | 0x80
            assert s == str(uuid.UUID(bytes=bytes(want)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_hands_out_its_parents_buffered_ids():
    ids.uuid4_str()  # the pool now holds ids the parent will hand out next
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave without running the parent's exits
        try:
            os.close(r)
            os.write(w, "\n".join(ids.uuid4_str() for _ in range(300)).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    child = set(b"".join(chunks).decode().split("\n"))
    parent = {ids.uuid4_str() for _ in range(300)}
    assert len(child) == 300
    assert not child & parent


def _old_digest(key: bytes, value) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _values(rng: random.Random) -> list:
    def text() -> str:
        alphabet = "abcXYZ 019_-./:\"\\\n\t\u00e9\u00fc\u4e2d\U0001f600\u2028"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))

    def value(depth: int):
        c = rng.randrange(9 if depth < 3 else 6)
        if c == 0:
            return text()
        if c == 1:
            return rng.randrange(-10**12, 10**12)
        if c == 2:
            return rng.choice([0.1, -2.5, 1e300, float("inf"), float("nan")])
        if c == 3:
            return rng.choice([None, True, False])
        if c == 4:
            return rng.choice([datetime.date(2024, 1, 2), decimal.Decimal("1.10"), uuid.UUID(int=7),
                               b"bytes"])
        if c == 5:
            return ""
        if c == 6:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        if c == 7:
            return tuple(value(depth + 1) for _ in range(rng.randrange(3)))
        return {text(): value(depth + 1) for _ in range(rng.randrange(4))}

    return [value(0) for _ in range(400)]


def _text_key(rng: random.Random) -> str:
    return "".join(rng.choice("aZ0 _-.\"\\\n\t\u00e9\u4e2d\U0001f600\u2028\x00\x1f")
                   for _ in range(rng.randrange(0, 10)))


def test_digests_are_byte_for_byte_what_they_were():
    rng = random.Random(18)
    for key in (b"k", os.urandom(32), b"x" * 200):  # a key longer than the block is hashed first
        policy = CapturePolicy("metadata_only", "p1", key)
        flat = [{_text_key(rng): _text_key(rng) for _ in range(rng.randrange(6))}
                for _ in range(200)]  # the shape tool arguments mostly have: str -> str
        for v in _values(rng) + flat + [
                "order 1", {"q": "order 1"}, ["tool", "search", "ab" * 32], "", {}, {"": ""},
                "\ud800 lone surrogate"[1:], {"a": 1, "b": [1, 2]}, {"b": "x", "a": "y", "é": "\n"},
                {"k": "v", 1: "x"}, {"k": None}, {"z": "1", "a": {"n": "2"}}]:
            assert _outcome(policy.digest, v) == _outcome(functools.partial(_old_digest, key), v), v


def _outcome(fn, v):
    """The digest, or the type of what it raised (mixed-type keys cannot be sorted: TypeError)."""
    try:
        return fn(v)
    except Exception as exc:  # noqa: BLE001 - compared by type between the two formulas
        return type(exc)


def test_canonical_json_is_unchanged_and_digest_threads_agree():
    assert canonical_json({"b": 1, "a": [None, True, "é"]}) == '{"a":[null,true,"é"],"b":1}'.encode()
    policy = CapturePolicy("metadata_only", "p1", b"key")
    want = {i: _old_digest(b"key", {"i": i}) for i in range(500)}
    bad: list[int] = []

    def work() -> None:
        for i in range(500):
            if policy.digest({"i": i}) != want[i]:
                bad.append(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_a_value_json_cannot_encode_still_raises_as_before():
    policy = CapturePolicy("metadata_only", "p1", b"key")
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError):
        policy.digest(loop)


@pytest.mark.parametrize("field", ["max_steps", "max_model_calls", "max_tokens", "max_cost_usd",
                                   "max_wall_time_s", "max_repeated_fingerprints"])
def test_budget_any_sees_every_limit(field):
    assert not Budget().any()
    assert Budget(**{field: 0}).any()


def test_ids_module_is_fork_registered():
    # the guard above only holds if the hook is registered at import (not lazily)
    assert "agentstream.producer.ids" in sys.modules


def test_digests_without_openssls_hmac_state_are_the_same(monkeypatch):
    """Where ``hmac.new`` gives no OpenSSL state to copy (``_hmac``), the policy copies the
    Python HMAC object itself: the same digests."""
    real_new = hmac.new

    class PlainHmac:
        copies = 0

        def __init__(self, inner) -> None:
            self._inner = inner

        def copy(self) -> "PlainHmac":
            PlainHmac.copies += 1
            return PlainHmac(self._inner.copy())

        def update(self, data: bytes) -> None:
            self._inner.update(data)

        def hexdigest(self) -> str:
            return self._inner.hexdigest()

    import agentstream.producer.capture as capture

    monkeypatch.setattr(capture.hmac, "new", lambda *a, **kw: PlainHmac(real_new(*a, **kw)))
    policy = CapturePolicy("metadata_only", "p1", b"key")
    values = ("order 1", {"q": "order 1"}, {"b": "1", "a": "2"}, ["tool", "x"], {"n": 1})
    for v in values:
        assert policy.digest(v) == _old_digest(b"key", v)
    assert PlainHmac.copies == len(values)  # the wrapper itself was copied, once per digest
