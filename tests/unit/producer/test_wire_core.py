"""The C encoder (producer/_wirecore.c) must write exactly what wire.py's Python writes, for
every event it accepts, and hand every other event back to Python (None) rather than guess.

Random events cover each field's awkward values: non-ASCII and lone surrogates, long and
non-str attribute values, ints at the 64-bit edges, bools where ints go, subclasses, missing
keys, every optional record. For each, ``RunWire.encode`` (C first) and ``encode_py`` (Python
only) must give the same bytes, or both raise the same exception type.
"""
from __future__ import annotations

import random
import shutil
import struct

import pytest

from agentstream.producer import wire
from agentstream.producer.wire import RunWire
from agentstream.schemas import EVENT, Codec, load_catalog

needs_c = pytest.mark.skipif(wire.encode_event_c is None, reason="_wirecore is not built (no compiler)")

V2 = next(v for v in load_catalog().versions(EVENT) if v.version == 2)
HEADER = struct.pack(">bI", 0, V2.id)


class Str(str):
    def __str__(self) -> str:
        return "sub:" + self


class Num(int):
    pass


class Weird:
    def __str__(self) -> str:
        return "weird"


def _wire(rng: random.Random) -> RunWire:
    return RunWire(header=HEADER, tenant_id="acme", agent_id=rng.choice(["a", "agent-ü"]),
                   agent_version="1.0", environment="prod",
                   run_id="11111111-2222-4333-8444-555555555555",
                   session_id=rng.choice([None, "s"]), parent_run_id=rng.choice([None, "p"]),
                   sdk_version="py/0.1", capture_mode="METADATA_ONLY", policy_version="p7",
                   event_id_seed="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                   end_user_id=rng.choice([None, "9f" * 32]))


def _text(rng: random.Random, n: int | None = None) -> str:
    alphabet = "abcXYZ09 _-.\u00e9\u4e2d\U0001f600\"\\\n"
    s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20) if n is None else n))
    return s


def _str_like(rng: random.Random):
    r = rng.random()
    if r < 0.8:
        return _text(rng)
    return rng.choice([Str("x"), "bad \ud800 surrogate", 5, None, b"bytes"])


def _int_like(rng: random.Random):
    return rng.choice([0, 1, 4095, 4096, -1, 2**62, 2**63 - 1, -2**63, 2**63, 2**64, True,
                       Num(3), 1.5, "7", 1760000000000000 + rng.randrange(10**9)])


def _attr_value(rng: random.Random):
    return rng.choice([_text(rng), "x" * 1024, "y" * 1025, "é" * 2000, None, True, False, 0,
                       -12, 2**70, 0.2, float("nan"), 1e300, Str("s"), Weird(), b"b", ["l"],
                       "bad \udfff"])


def _attrs(rng: random.Random):
    r = rng.random()
    if r < 0.15:
        return None
    if r < 0.2:
        return {}
    if r < 0.25:
        return {f"k{i}": "v" for i in range(rng.choice([64, 65, 100]))}
    d = {}
    for _ in range(rng.randrange(1, 10)):
        key = _text(rng) if rng.random() < 0.9 else rng.choice([Str("k"), 5, "bad \ud800"])
        d[key] = _attr_value(rng)
    return d


def _llm(rng: random.Random):
    r = {"provider": "openai", "operation": "chat", "request_model": "gpt-4o",
         "response_model": rng.choice([None, "gpt-4o-x"]), "input_tokens": 900,
         "output_tokens": 120, "cache_read_tokens": 0, "cache_write_tokens": 5,
         "cost_usd": 0.0034, "finish_reasons": ["stop"], "tool_calls": [],
         "request_digest": rng.choice([None, "ab" * 32])}
    for _ in range(rng.randrange(0, 3)):
        k = rng.choice(list(r))
        c = rng.random()
        if c < 0.3:
            del r[k]
        elif k.endswith("tokens"):
            r[k] = _int_like(rng)
        elif k == "cost_usd":
            r[k] = rng.choice([0, 1, 2**1100, 0.5, True, "1.5", None, float("inf")])
        elif k in ("finish_reasons", "tool_calls"):
            r[k] = rng.choice([None, [], (), ["a", "b"], ("c",), [Str("d")], [1], "ab", {"x"}])
        else:
            r[k] = _str_like(rng)
    return r


def _tool(rng: random.Random):
    r = {"tool_name": "search", "call_id": rng.choice([None, "c1"]),
         "args_digest": rng.choice([None, "cd" * 32])}
    if rng.random() < 0.3:
        k = rng.choice(list(r))
        if rng.random() < 0.5:
            del r[k]
        else:
            r[k] = _str_like(rng)
    return r


def _step(rng: random.Random) -> tuple:
    t = [f"abcdef01.{rng.randrange(1, 10**6)}", rng.choice([0, 3, 8]), _text(rng) or "n",
         rng.choice([0, 1, 3]), 1760000000000000 + rng.randrange(10**9),
         rng.choice([0.0, 3.5, 1e-9, 12345.678]), rng.choice([1, 2, 7]),
         rng.choice([None, "abcdef01.3"]), None, None, None, None, None, None]
    if rng.random() < 0.6:
        t[8] = _llm(rng) if rng.random() < 0.9 else rng.choice([{"provider": "x"}, ["not", "dict"]])
    if rng.random() < 0.5:
        t[9] = _tool(rng)
    if rng.random() < 0.1:
        t[10] = {"to_agent_id": "b", "to_run_id": "r2", "role": None}
    if rng.random() < 0.1:
        t[13] = {"preview": "hi", "reference": None}
    for _ in range(rng.randrange(0, 2) if rng.random() < 0.3 else 0):
        i = rng.randrange(0, 8)
        t[i] = rng.choice([_int_like(rng), _str_like(rng), 5, 1, None, -3, 4096])
    return tuple(t)


def _event(rng: random.Random):
    kind = rng.choice(["STEP"] * 6 + ["RUN_START", "RUN_END", "FAILURE", "FEEDBACK"])
    if kind == "STEP":
        payload = _step(rng)
    elif kind == "RUN_START":
        payload = {"entrypoint": _text(rng), "role": rng.choice([None, "r"]), "sampled": True}
    elif kind == "RUN_END":
        payload = {"status": "SUCCESS", "outcome": "completed", "started_us": 1760000000000000,
                   "duration_ms": 1.5, "step_count": 6, "llm_calls": 3, "input_tokens": 10,
                   "output_tokens": 2, "cost_usd": 0.1}
    elif kind == "FAILURE":
        payload = {"failure_type": "TOOL", "failure_code": "x", "step_id": None,
                   "message": rng.choice([None, "m", "bad \ud800"]), "retryable": False}
    else:
        payload = {"interaction_id": "i", "feedback_type": "user_rating", "value": "positive",
                   "source": "sdk"}
    seq = rng.choice([0, 1, 4095, 4096, 2**40, rng.randrange(10**6)])
    ts = rng.choice([1760000000000000 + rng.randrange(10**9), 0, 5, 2**62, -1])
    emitted = ts if rng.random() < 0.8 else ts + 7
    psid = rng.choice([None, None, "abcdef01.1", "é" * 3, Str("p"), "bad \ud800"])
    return seq, ts, emitted, psid, _attrs(rng), kind, payload


def _in_range(ev) -> bool:
    """No enum index past its symbols (wire.py writes those as given; so does C)."""
    return ev[5] != "STEP" or (0 <= ev[6][1] < 9 and 0 <= ev[6][3] < 4)


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as exc:  # noqa: BLE001 - compared by type between the two encoders
        return "raised", type(exc)


def test_the_extension_is_built_wherever_a_compiler_is():
    # setup.py builds it optional=True: a broken build would otherwise only skip the tests below
    assert wire.encode_event_c is not None or not (shutil.which("cc") or shutil.which("gcc")), \
        "producer/_wirecore.c did not build: reinstall (make install) and read the compiler's output"


@needs_c
def test_c_and_python_write_the_same_bytes_or_the_same_error():
    rng = random.Random(18)
    seen = {"c": 0, "fallback": 0}
    for _ in range(6000):
        w = _wire(rng)
        ev = _event(rng)
        c = _outcome(w.encode, *ev)
        py = _outcome(w.encode_py, *ev)
        assert c == py, ev
        if ev[5] != "STEP" and py[0] == "raised":
            continue  # its payload does not encode at all; compared above
        args = (w.pre, w.middle, w.id_base, w.tail, *ev[:5], wire.KIND_PREFIX.get(ev[5], b""),
                ev[6] if ev[5] == "STEP" else None,
                None if ev[5] == "STEP" else wire.PAYLOAD_ENCODERS[ev[5]](ev[6]))
        c_took = wire.encode_event_c(*args)
        seen["c" if c_took is not None else "fallback"] += 1
        if c_took is not None and _in_range(ev):  # what C writes decodes
            name, rec = Codec().decode(c_took)
            assert name == EVENT and rec["kind"] == ev[5] and rec["seq"] == ev[0]
    # both paths were exercised, and C took a fair share (the common shapes)
    assert seen["c"] > 800 and seen["fallback"] > 800, seen


@needs_c
def test_the_sdk_s_common_step_is_encoded_in_c():
    """The shape every LLM/tool step has (bench/e2e_sdk.py's): C must take it, or the speedup
    silently disappears."""
    w = _wire(random.Random(1))
    llm = {"provider": "openai", "operation": "chat", "request_model": "gpt-4o",
           "response_model": None, "input_tokens": 900, "output_tokens": 120,
           "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.00345,
           "finish_reasons": ["stop"], "tool_calls": []}
    step = ("abcdef01.4", 3, "chat gpt-4o", 0, 1760000000000000, 0.0189, 1, None, llm,
            {"tool_name": "search", "call_id": None, "args_digest": "ab" * 32},
            None, None, None, None)
    attrs = {"temperature": 0.2, "n": 3, "stream": False, "user": None,
             "gen_ai.request.model": "gpt-4o"}
    data = wire.encode_event_c(w.pre, w.middle, w.id_base, w.tail, 7, 1760000000000123,
                                1760000000000123, "abcdef01.1", attrs, wire.KIND_PREFIX["STEP"],
                                step, None)
    assert data is not None
    assert data == w.encode_py(7, 1760000000000123, 1760000000000123, "abcdef01.1", attrs,
                               "STEP", step)


def test_speedups_off_uses_python_only():
    w = RunWire(header=HEADER, tenant_id="t", agent_id="a", agent_version="1", environment="e",
                run_id="r", session_id=None, parent_run_id=None, sdk_version="s",
                capture_mode="METADATA_ONLY", policy_version="p", event_id_seed="x" * 36,
                speedups=False)
    assert w.c is None
