"""A hand-specialised Avro encoder for ``agentstream.v1.Event`` version 2 (schema id 5).

Why not fastavro: a generic ``schemaless_writer`` call on a full event dict costs tens of µs
here, most of it walking the schema. An event's envelope is mostly constant per run, so the run's
constant fields are encoded once (``RunWire``) and each event only encodes what changes. The
output is byte-identical to fastavro's for the v2 writer schema (a unit test checks every
payload kind), and it is framed with the v2 id, so readers resolve it to any newer version.
v2 appended two optionals to v1: ``LlmCall.request_digest`` and the envelope's ``end_user_id``
(constant per run, so it is pre-encoded as the record's tail).
"""
from __future__ import annotations

import struct
from typing import Any

try:  # the same encoding in C for the common shapes (_wirecore.c); built when a compiler is there
    from ._wirecore import encode_event as encode_event_c
except ImportError:
    encode_event_c = None  # type: ignore[assignment]  # optional extension: wire.py encodes alone

# Branch order of the payload union and symbol order of the enums in Event.v2.avsc (as in v1).
KIND_INDEX = {k: i for i, k in enumerate(
    ["RUN_START", "RUN_END", "STEP", "FAILURE", "DECISION", "QUALITY_SIGNAL", "FEEDBACK", "COMMAND_ACK"])}
CAPTURE_INDEX = {"METADATA_ONLY": 0, "REDACTED": 1, "SECURE_REFERENCE": 2}
STEP_KINDS = ("PLAN", "RETRIEVAL", "TOOL", "LLM", "RESPOND", "HANDOFF", "APPROVAL", "GUARDRAIL", "CUSTOM")
STEP_STATUSES = ("OK", "ERROR", "TIMEOUT", "CANCELLED")
RUN_STATUSES = ("SUCCESS", "FAILURE", "PARTIAL")
FAILURE_TYPES = ("TOOL", "MODEL", "RETRIEVAL", "ORCHESTRATION", "POLICY", "BUDGET", "UNKNOWN")
STEP_KIND_INDEX = {k: i for i, k in enumerate(STEP_KINDS)}
STEP_STATUS_INDEX = {k: i for i, k in enumerate(STEP_STATUSES)}
RUN_STATUS_INDEX = {k: i for i, k in enumerate(RUN_STATUSES)}
FAILURE_TYPE_INDEX = {k: i for i, k in enumerate(FAILURE_TYPES)}

# Positions in the STEP payload tuple the agent thread builds (a tuple is ~4x cheaper than a dict).
STEP_FIELDS = ("step_id", "step_kind", "name", "status", "started_us", "latency_ms", "attempt",
               "retry_of", "llm", "tool", "handoff", "approval", "fallback", "content")

_NULL = b"\x00"
_TRUE = b"\x01"
_FALSE = b"\x00"
_pack_double = struct.Struct("<d").pack


def _varint(z: int) -> bytes:
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Zigzag-encoded longs for small values are the common case (seq, counts, lengths).
_SMALL_LONGS = [_varint((n << 1) ^ (n >> 63)) for n in range(4096)]


# µs timestamps are 8-byte varints. Their low 28 bits come from a table of 14-bit groups; the
# high part changes every ~2 minutes and is cached. About 2.5x faster than shifting out eight
# groups one by one. The table is complete before any thread can see it (built at import,
# ~2 ms): it used to be filled on first use, and with several Tracers the transport threads
# read it half-filled (IndexError, events lost). _TS_HIGH only ever gains complete values, and
# a dict's get/set/clear are atomic, so a concurrent clear costs a recompute, never a wrong byte.
_GROUPS14: tuple[bytes, ...] = tuple(bytes((v & 127 | 128, v >> 7 | 128)) for v in range(16384))
_TS_HIGH: dict[int, bytes] = {}


def _enc_ts(z: int) -> bytes:
    t = _GROUPS14
    hi = z >> 28
    h = _TS_HIGH.get(hi)
    if h is None:
        if len(_TS_HIGH) > 64:
            _TS_HIGH.clear()
        h = _TS_HIGH[hi] = t[hi & 16383] + bytes(((hi >> 14) & 127 | 128, hi >> 21))
    return t[z & 16383] + t[z >> 14 & 16383] + h


def enc_long(n: int) -> bytes:
    if 0 <= n < 4096:
        return _SMALL_LONGS[n]
    z = (n << 1) ^ (n >> 63)
    if 0x2000000000000 <= z < 0x100000000000000:  # µs timestamps: exactly 8 bytes
        return _enc_ts(z)
    return _varint(z & 0xFFFFFFFFFFFFFFFF if z < 0 else z)


_STR_CACHE: dict[str, bytes] = {}
_STR_CACHE_MAX = 8192


def utf8(s: str) -> bytes:
    """``s`` as UTF-8, a lone surrogate (a file name read with ``surrogateescape``, text cut
    inside a pair) as U+FFFD: Avro strings are UTF-8, and refusing one string lost its whole
    event (the run's, when it was a run attribute or the session id)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


def wire_text(v: Any) -> str:
    """What travels where the contract wants text (a step or tool name, a provider, a model, a
    reason) and the agent passed something else: a number as its digits, None as empty, and
    any other object as ``<its type>``. Never its repr: a dict handed over as a name is more
    likely tool arguments than a name, and its text would leave the agent as metadata. Before,
    the whole event was lost (``stats()["failed"]``)."""
    if v is None:
        return ""
    if isinstance(v, (str, int, float)):
        return str(v)
    return f"<{type(v).__name__}>"


def enc_str(s: str) -> bytes:
    if s.__class__ is not str:
        s = wire_text(s)
    b = _STR_CACHE.get(s)
    if b is None:
        raw = utf8(s)
        b = _SMALL_LONGS[len(raw)] + raw if len(raw) < 4096 else enc_long(len(raw)) + raw
        if len(raw) <= 96:  # names, keys and enum-like values repeat; ids and long text do not
            if len(_STR_CACHE) >= _STR_CACHE_MAX:
                _STR_CACHE.clear()
            _STR_CACHE[s] = b
    return b


def enc_id(s: str) -> bytes:
    """``enc_str`` without the cache, for values that never repeat (step ids)."""
    raw = utf8(s if s.__class__ is str else wire_text(s))
    return (_SMALL_LONGS[len(raw)] if len(raw) < 4096 else enc_long(len(raw))) + raw


def enc_opt_str(s: str | None) -> bytes:
    return _NULL if s is None else b"\x02" + enc_str(s)


def enc_double(x: float) -> bytes:
    return _pack_double(float(x))


def enc_opt_double(x: float | None) -> bytes:
    return _NULL if x is None else b"\x02" + _pack_double(float(x))


def enc_bool(v: bool) -> bytes:
    return _TRUE if v else _FALSE


def enc_str_array(items: Any) -> bytes:
    if not items:
        return _NULL
    return enc_long(len(items)) + b"".join(enc_str(str(i)) for i in items) + _NULL


def enc_str_map(m: dict[str, str] | None) -> bytes:
    if not m:
        return _NULL
    parts = [enc_long(len(m))]
    for k, v in m.items():
        parts.append(enc_str(k))
        parts.append(enc_str(v))
    parts.append(_NULL)
    return b"".join(parts)


MAX_ATTRS = 64
MAX_ATTR_LEN = 1024


def attr_str(v: Any) -> str:
    """Attribute values are strings on the wire: bools as true/false, None as empty."""
    if v.__class__ is not str:
        v = "" if v is None else "true" if v is True else "false" if v is False else str(v)
    return v if len(v) <= MAX_ATTR_LEN else v[:MAX_ATTR_LEN]


def enc_attr_map(m: dict[str, Any] | None) -> bytes:
    """``enc_str_map`` for raw agent attributes: converts and bounds values while encoding.

    The string cache is consulted inline (not through ``enc_str``): attribute keys and many
    values repeat, and a function call per string was half of the transport thread's time."""
    if not m:
        return _NULL
    n = len(m)
    if n > MAX_ATTRS:
        m = dict(list(m.items())[:MAX_ATTRS])
        n = MAX_ATTRS
    parts = [_SMALL_LONGS[n]]
    append = parts.append
    get = _STR_CACHE.get
    for k, v in m.items():
        b = get(k) if k.__class__ is str else None
        append(enc_str(str(k)) if b is None else b)
        b = get(v) if v.__class__ is str else None
        if b is None:
            b = enc_str(v if v.__class__ is str and len(v) <= MAX_ATTR_LEN else attr_str(v))
        append(b)
    append(_NULL)
    return b"".join(parts)


def _opt_rec(rec: dict | None, enc) -> bytes:
    return _NULL if rec is None else b"\x02" + enc(rec)


def _llm(r: dict) -> bytes:
    return b"".join((
        enc_str(r["provider"]), enc_str(r.get("operation", "chat")), enc_str(r["request_model"]),
        enc_opt_str(r.get("response_model")), enc_long(r.get("input_tokens", 0)),
        enc_long(r.get("output_tokens", 0)), enc_long(r.get("cache_read_tokens", 0)),
        enc_long(r.get("cache_write_tokens", 0)), enc_double(r.get("cost_usd", 0.0)),
        enc_str_array(r.get("finish_reasons")), enc_str_array(r.get("tool_calls")),
        enc_opt_str(r.get("request_digest")),
    ))


def _tool(r: dict) -> bytes:
    return enc_str(r["tool_name"]) + enc_opt_str(r.get("call_id")) + enc_opt_str(r.get("args_digest"))


def _handoff(r: dict) -> bytes:
    return enc_str(r["to_agent_id"]) + enc_opt_str(r.get("to_run_id")) + enc_opt_str(r.get("role"))


def _approval(r: dict) -> bytes:
    return enc_str(r["action_digest"]) + enc_str(r["decision"]) + enc_double(r["approval_latency_ms"])


def _fallback(r: dict) -> bytes:
    return (enc_str(r["source"]) + enc_str(r["target"]) + enc_str(r["reason"])
            + enc_bool(r["preserves_safety_posture"]))


def _content(r: dict) -> bytes:
    return enc_opt_str(r.get("preview")) + enc_opt_str(r.get("reference"))


def enc_step(t: tuple) -> bytes:
    (step_id, kind, name, status, started_us, latency_ms, attempt, retry_of,
     llm, tool, handoff, approval, fallback, content) = t
    head = b"".join((enc_id(step_id), _SMALL_LONGS[kind], enc_str(name), _SMALL_LONGS[status],
                     enc_long(started_us), _pack_double(latency_ms), enc_long(attempt),
                     enc_opt_str(retry_of)))
    if llm is None and tool is None and handoff is None and approval is None and fallback is None \
            and content is None:
        return head + b"\x00\x00\x00\x00\x00\x00"
    return b"".join((head, _opt_rec(llm, _llm), _opt_rec(tool, _tool), _opt_rec(handoff, _handoff),
                     _opt_rec(approval, _approval), _opt_rec(fallback, _fallback),
                     _opt_rec(content, _content)))


def _run_start(p: dict) -> bytes:
    return enc_str(p["entrypoint"]) + enc_opt_str(p.get("role")) + enc_bool(p.get("sampled", True))


def _run_end(p: dict) -> bytes:
    return b"".join((
        _SMALL_LONGS[RUN_STATUS_INDEX[p["status"]]], enc_str(p.get("outcome", "completed")),
        enc_long(p["started_us"]), enc_double(p["duration_ms"]), enc_long(p.get("step_count", 0)),
        enc_long(p.get("llm_calls", 0)), enc_long(p.get("input_tokens", 0)),
        enc_long(p.get("output_tokens", 0)), enc_double(p.get("cost_usd", 0.0)),
    ))


def _failure(p: dict) -> bytes:
    return b"".join((_SMALL_LONGS[FAILURE_TYPE_INDEX[p.get("failure_type", "UNKNOWN")]],
                     enc_str(p["failure_code"]), enc_opt_str(p.get("step_id")),
                     enc_opt_str(p.get("message")), enc_bool(p.get("retryable", False))))


def _decision(p: dict) -> bytes:
    return b"".join((enc_str(p["decision_type"]), enc_str(p["selected"]),
                     enc_str_array(p.get("candidates")), enc_str(p["reason_code"]),
                     enc_opt_double(p.get("confidence")), enc_opt_str(p.get("step_id"))))


def _quality(p: dict) -> bytes:
    return b"".join((enc_str(p["signal_type"]), enc_str(p["signal_code"]), enc_bool(p["value"]),
                     enc_opt_double(p.get("weight")), enc_opt_str(p.get("step_id"))))


def _feedback(p: dict) -> bytes:
    return (enc_str(p["interaction_id"]) + enc_str(p["feedback_type"]) + enc_str(p["value"])
            + enc_str(p.get("source", "sdk")))


def _ack(p: dict) -> bytes:
    return (enc_str(p["command_id"]) + enc_str(p["command_type"]) + enc_str(p["status"])
            + enc_opt_str(p.get("detail")))


PAYLOAD_ENCODERS = {
    "RUN_START": _run_start, "RUN_END": _run_end, "FAILURE": _failure, "DECISION": _decision,
    "QUALITY_SIGNAL": _quality, "FEEDBACK": _feedback, "COMMAND_ACK": _ack,
}
# kind enum index followed by the payload union branch index (same order in v1).
KIND_PREFIX = {k: bytes([i << 1, i << 1]) for k, i in KIND_INDEX.items()}
STEP_PREFIX = KIND_PREFIX["STEP"]


class RunWire:
    """The pre-encoded constant parts of one run's envelope."""

    __slots__ = ("head", "middle", "id_prefix", "id_head", "id_base", "tail", "pre", "c")

    def __init__(self, *, header: bytes, tenant_id: str, agent_id: str, agent_version: str,
                 environment: str, run_id: str, session_id: str | None,
                 parent_run_id: str | None, sdk_version: str, capture_mode: str,
                 policy_version: str, event_id_seed: str,
                 end_user_id: str | None = None, speedups: bool = True) -> None:
        self.head = header
        self.middle = b"".join((
            enc_str(tenant_id), enc_str(agent_id), enc_str(agent_version), enc_str(environment),
            enc_str(run_id), enc_opt_str(session_id), enc_opt_str(parent_run_id)))
        self.id_base = (enc_str(sdk_version) + _SMALL_LONGS[CAPTURE_INDEX[capture_mode]]
                        + enc_str(policy_version))
        # event ids are a UUID-shaped function of (run, seq): a replayed record keeps its id,
        # so the sink's dedup on event_id holds across spool replays. Costs no uuid4() per event.
        self.id_prefix = event_id_seed[:24]
        self.id_head = _SMALL_LONGS[36] + self.id_prefix.encode("ascii")
        # end_user_id: already the keyed digest (the tracer hashes it), never the raw id
        self.tail = enc_opt_str(end_user_id)
        self.pre = self.head + self.id_head
        # C for the common shapes (None: this module's Python, the reference, does every event)
        self.c = encode_event_c if speedups else None

    def event_id(self, seq: int) -> str:
        return self.id_prefix + format(seq, "012x")

    def encode(self, seq: int, ts_us: int, emitted_us: int, parent_step_id: str | None,
               attributes: dict[str, str] | None, kind: str, payload: Any) -> bytes:
        c = self.c
        if c is not None:
            if kind == "STEP":
                data = c(self.pre, self.middle, self.id_base, self.tail, seq, ts_us, emitted_us,
                         parent_step_id, attributes, STEP_PREFIX, payload, None)
            else:
                data = c(self.pre, self.middle, self.id_base, self.tail, seq, ts_us, emitted_us,
                         parent_step_id, attributes, KIND_PREFIX[kind], None,
                         PAYLOAD_ENCODERS[kind](payload))
            if data is not None:
                return data
        return self.encode_py(seq, ts_us, emitted_us, parent_step_id, attributes, kind, payload)

    def encode_py(self, seq: int, ts_us: int, emitted_us: int, parent_step_id: str | None,
                  attributes: dict[str, str] | None, kind: str, payload: Any) -> bytes:
        """``encode`` in Python only: the reference, and the path of every shape C leaves."""
        body = enc_step(payload) if kind == "STEP" else PAYLOAD_ENCODERS[kind](payload)
        ts = enc_long(ts_us)
        return b"".join((
            self.head, self.id_head, format(seq, "012x").encode(), self.middle,
            _NULL if parent_step_id is None else b"\x02" + enc_id(parent_step_id), enc_long(seq), ts, ts if emitted_us == ts_us else
            enc_long(emitted_us),
            self.id_base, enc_attr_map(attributes), _NULL, KIND_PREFIX[kind], body, self.tail,
        ))


def step_tuple_to_dict(t: tuple) -> dict[str, Any]:
    d = dict(zip(STEP_FIELDS, t))
    d["step_kind"] = STEP_KINDS[d["step_kind"]]
    d["status"] = STEP_STATUSES[d["status"]]
    return d
