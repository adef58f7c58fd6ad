"""Validates JSON events against the Avro Event contract, field by field, with reasons.

The validator is compiled from the newest Event schema in the catalog, so a new schema version
is accepted without code changes. It returns the record normalized for the codec (defaults
filled in, integers widened to doubles) or the list of what is wrong, one entry per field.
"""
from __future__ import annotations

import copy
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from agentstream.schemas import EVENT, load_catalog
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.schemas.attribute_keys import split_attributes
from agentstream.schemas.digests import end_user_digest
from agentstream.schemas.id_format import is_id_shaped

from .event_rules import Issue, issue, rule_issues

Check = Callable[[Any, list[Issue]], Any]

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
# Filled in by the gateway when absent; everything else is the client's to send.
GATEWAY_FILLED = ("tenant_id", "event_id", "emitted_us", "sdk_version")
NON_EMPTY = ("event_id", "agent_id", "run_id")
# Validated by format, never scanned as free text downstream (issue #16)
ID_FIELDS = ("event_id", "run_id", "session_id", "parent_run_id", "parent_step_id")
# Event times outside [now - max_past, now + max_future] are refused (GatewaySettings holds the
# bounds): a year-9999 row would sort at the top of every listing and break every date
# conversion that reads it.
# Wall-clock fields in microseconds: the envelope's and the payload's (STEP and RUN_END carry
# started_us, which the timeline and the run header read).
TIME_FIELDS = ("ts_us", "emitted_us")
PAYLOAD_TIME_FIELDS = ("started_us",)


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _wrong(path: str, expected: str, v: Any, issues: list[Issue]) -> None:
    issues.append(issue(path, "wrong_type", f"expected {expected}, got {_json_type(v)}"))


def _default_factory(default: Any) -> Callable[[], Any]:
    if isinstance(default, (dict, list)):
        return lambda: copy.deepcopy(default)
    return lambda: default


class _Compiler:
    """Compiles a schema into closures with their field path baked in: a valid event builds
    no path strings at all. Items of arrays and maps report their index or key by rewriting
    the placeholder path of an issue, which costs only when something is wrong."""

    def __init__(self) -> None:
        self.named: dict[str, tuple[Any, str]] = {}  # full name -> (schema, namespace)

    def compile(self, schema: Any, path: str, namespace: str = "") -> Check:
        if isinstance(schema, str):
            return self._primitive(schema, path, namespace)
        if isinstance(schema, list):
            return self._union([self.compile(s, path, namespace) for s in schema], schema, path)
        t = schema["type"]
        if t == "record":
            return self._record(schema, path, namespace)
        if t == "enum":
            return self._enum(schema, path, namespace)
        if t == "array":
            return self._array(schema["items"], path, namespace)
        if t == "map":
            return self._map(schema["values"], path, namespace)
        return self._primitive(t, path, namespace)

    def _define(self, schema: dict[str, Any], namespace: str) -> tuple[str, str]:
        name = schema["name"]
        ns = schema.get("namespace", namespace)
        full = name if "." in name else f"{ns}.{name}" if ns else name
        self.named.setdefault(full, (schema, ns))
        return full, ns

    def _primitive(self, t: str, path: str, namespace: str) -> Check:
        if t == "null":
            def check(v, issues):
                if v is not None:
                    _wrong(path, "null", v, issues)
                return None
        elif t == "boolean":
            def check(v, issues):
                if type(v) is not bool:
                    _wrong(path, "boolean", v, issues)
                return v
        elif t in ("int", "long"):
            lo, hi = (INT_MIN, INT_MAX) if t == "int" else (LONG_MIN, LONG_MAX)

            def check(v, issues):
                if type(v) is not int:
                    _wrong(path, f"integer ({t})", v, issues)
                elif not lo <= v <= hi:
                    issues.append(issue(path, "out_of_range", f"{v} does not fit an Avro {t}"))
                return v
        elif t in ("float", "double"):
            def check(v, issues):
                if type(v) is float:
                    return v
                if type(v) is int:
                    if abs(v) <= sys.float_info.max:  # orjson reads wider ints as doubles; a caller may not
                        return float(v)
                    issues.append(issue(path, "out_of_range", f"an integer of {v.bit_length()} bits "
                                        f"does not fit an Avro {t}"))
                    return v
                _wrong(path, "number", v, issues)
                return v
        elif t == "string":
            def check(v, issues):
                if type(v) is not str:
                    _wrong(path, "string", v, issues)
                return v
        else:
            full = t if "." in t or not namespace else f"{namespace}.{t}"
            ref = self.named.get(full) or self.named.get(t)
            if ref is None:
                raise ValueError(f"unsupported or unknown Avro type {t!r}")
            # A named type used again: compiled again for this path (Event has no recursion).
            return self.compile(ref[0], path, ref[1])
        return check

    @staticmethod
    def _union(branches: list[Check], schema: list[Any], path: str) -> Check:
        nullable = "null" in schema
        rest = [b for b, s in zip(branches, schema) if s != "null"]
        if nullable and len(rest) == 1:
            inner = rest[0]

            def check(v, issues):
                return None if v is None else inner(v, issues)
            return check

        def check_any(v, issues):
            if v is None and nullable:
                return None
            for b in rest:
                trial: list[Issue] = []
                out = b(v, trial)
                if not trial:
                    return out
            issues.append(issue(path, "wrong_type", "matches no branch of the union"))
            return v
        return check_any

    def _record(self, schema: dict[str, Any], path: str, namespace: str) -> Check:
        _, ns = self._define(schema, namespace)
        fields = [(f["name"], self.compile(f["type"], _join(path, f["name"]), ns),
                   _default_factory(f["default"]) if "default" in f else None)
                  for f in schema["fields"]]
        known = frozenset(name for name, *_ in fields)
        return _record_check(fields, known, path)

    def _enum(self, schema: dict[str, Any], path: str, namespace: str) -> Check:
        self._define(schema, namespace)
        symbols = frozenset(schema["symbols"])
        listing = ", ".join(schema["symbols"])

        def check(v, issues):
            if type(v) is not str:
                _wrong(path, f"one of {listing}", v, issues)
            elif v not in symbols:
                issues.append(issue(path, "invalid_enum", f"{v!r} is not one of {listing}"))
            return v
        return check

    def _array(self, items_schema: Any, path: str, namespace: str) -> Check:
        holder = f"{path}[*]"
        items = self.compile(items_schema, holder, namespace)

        def check(v, issues):
            if type(v) is not list:
                _wrong(path, "array", v, issues)
                return v
            n = len(issues)
            out = [items(x, issues) for x in v]
            if len(issues) > n:
                _locate(issues, n, holder, lambda: [f"{path}[{i}]" for i in range(len(v))],
                        v, items)
            return out
        return check

    def _map(self, values_schema: Any, path: str, namespace: str) -> Check:
        holder = f"{path}.*"
        values = self.compile(values_schema, holder, namespace)

        def check(v, issues):
            if type(v) is not dict:
                _wrong(path, "object", v, issues)
                return v
            n = len(issues)
            out = {k: values(x, issues) for k, x in v.items()}
            if len(issues) > n:
                del issues[n:]
                for k, x in v.items():  # the slow path, only for a bad map: name the key
                    trial: list[Issue] = []
                    values(x, trial)
                    for t in trial:
                        t["field"] = t["field"].replace(holder, _join(path, str(k)), 1)
                    issues.extend(trial)
            return out
        return check


def _locate(issues: list[Issue], n: int, holder: str, paths: Callable[[], list[str]],
            v: list[Any], items: Check) -> None:
    del issues[n:]
    for p, x in zip(paths(), v):
        trial: list[Issue] = []
        items(x, trial)
        for t in trial:
            t["field"] = t["field"].replace(holder, p, 1)
        issues.extend(trial)


def _record_check(fields: list[tuple[str, Check, Callable[[], Any] | None]],
                  known: frozenset[str], path: str) -> Check:
    def check(v, issues):
        if type(v) is not dict:
            _wrong(path, "object", v, issues)
            return v
        out = {}
        for name, sub, default in fields:
            if name in v:
                out[name] = sub(v[name], issues)
            elif default is not None:
                out[name] = default()
            else:
                issues.append(issue(_join(path, name), "missing_field",
                                    "required field is missing"))
        if len(v) > len(out) or any(k not in known for k in v):
            for k in v:
                if k not in known:
                    issues.append(issue(_join(path, str(k)), "unknown_field",
                                        "not a field of the Event contract"))
        return out
    return check


class EventValidator:
    """``validate(raw, tenant_id)`` -> (record, []) or (None, issues)."""

    def __init__(self, schema_text: str | None = None, sdk_version: str = "gateway-http", *,
                 max_past_s: float | None = None,
                 max_future_s: float | None = None,
                 end_user_key: bytes | None = None) -> None:
        """``max_past_s``/``max_future_s`` None only where the contract itself is checked
        against fixed historic fixtures; the gateway always passes its settings' bounds."""
        schema = orjson.loads(schema_text or load_catalog().latest(EVENT).text)
        self.sdk_version = sdk_version
        # end_user_id arrives raw and leaves as its keyed digest; without a key it is dropped,
        # never forwarded (issue #20: an end user's id is never stored raw)
        self.end_user_key = end_user_key or None
        self.max_past_us = None if max_past_s is None else int(max_past_s * 1_000_000)
        self.max_future_us = None if max_future_s is None else int(max_future_s * 1_000_000)
        comp = _Compiler()
        ns = schema.get("namespace", "")
        fields = []
        self._payload: dict[str, Check] = {}
        for f in schema["fields"]:
            if f["name"] == "payload":
                branches = {comp._define(b, ns)[0]: b for b in f["type"] if isinstance(b, dict)}
                self._payload = {kind: comp.compile(branches[full], "payload", ns)
                                 for kind, full in KIND_TO_BRANCH.items() if full in branches}
                continue
            fields.append((f["name"], comp.compile(f["type"], f["name"], ns),
                           _default_factory(f["default"]) if "default" in f else None))
        known = frozenset([n for n, *_ in fields] + ["payload"])
        self._envelope = _record_check(fields, known, "")

    def validate(self, raw: Any, tenant_id: str, now_us: int | None = None
                 ) -> tuple[dict[str, Any] | None, list[Issue]]:
        if type(raw) is not dict:
            return None, [issue("", "wrong_type", f"an event is an object, got {_json_type(raw)}")]
        claimed = raw.get("tenant_id")
        if claimed is not None and claimed != tenant_id:
            # The key decides the tenant; a payload naming another one is a client bug or worse.
            return None, [issue("tenant_id", "tenant_mismatch",
                                "tenant_id differs from the API key's tenant; omit it")]
        raw = dict(raw)
        raw["tenant_id"] = tenant_id
        if "event_id" not in raw:
            raw["event_id"] = str(uuid.uuid4())
        if "emitted_us" not in raw:
            raw["emitted_us"] = now_us if now_us is not None else time.time_ns() // 1000
        if "sdk_version" not in raw:
            raw["sdk_version"] = self.sdk_version
        issues: list[Issue] = []
        out = self._envelope(raw, issues)
        kind = raw.get("kind")
        branch = self._payload.get(kind) if isinstance(kind, str) else None
        if "payload" not in raw:
            issues.append(issue("payload", "missing_field", "required field is missing"))
        elif branch is not None:
            out["payload"] = branch(raw["payload"], issues)
        for name in NON_EMPTY:
            if type(out.get(name)) is str and not out[name].strip():
                issues.append(issue(name, "empty_value", "must not be empty"))
        for name in ID_FIELDS:
            v = out.get(name)
            # any non-empty value, blank ones too: the sink dead-letters an optional id of " "
            # (sink/rows.py ID_FIELDS), so it is refused here; a required one is empty_value
            if type(v) is str and v and (v.strip() or name not in NON_EMPTY) and not is_id_shaped(v):
                issues.append(issue(name, "invalid_id", "an id is one token (letters, digits and "
                                                        "._:/+=#-, at most 256 characters)"))
        issues += rule_issues(out)
        issues += self.time_issues(out, now_us if now_us is not None else time.time_ns() // 1000)
        if issues:
            return None, issues
        if out.get("attributes"):
            # content stays out of raw under metadata_only: the shared allow-list, counts only
            kept, dropped = split_attributes(out["attributes"], out.get("capture_mode") or "METADATA_ONLY")
            if dropped:
                out["attributes"] = kept
                out["redaction"] = {"policy_version": "gateway", "rule_counts": dropped}
        if out.get("end_user_id") is not None:
            out["end_user_id"] = (end_user_digest(self.end_user_key, out["end_user_id"])
                                  if self.end_user_key and out["end_user_id"] else None)
        return out, []

    def time_issues(self, out: dict[str, Any], now_us: int) -> list[Issue]:
        """``out_of_range`` issues for the event's wall-clock fields (also used for OTLP spans)."""
        issues: list[Issue] = []
        # The schema's long already bounds ts_us; an epoch before 1970 is never an event time.
        lo = 1 if self.max_past_us is None else now_us - self.max_past_us
        hi = LONG_MAX if self.max_future_us is None else now_us + self.max_future_us
        payload = out.get("payload")
        found = [(name, out.get(name)) for name in TIME_FIELDS]
        if isinstance(payload, dict):
            found += [(f"payload.{name}", payload.get(name)) for name in PAYLOAD_TIME_FIELDS]
        for path, v in found:
            if type(v) is int and not lo <= v <= hi:
                issues.append(issue(path, "out_of_range",
                                    f"{path} = {v} is outside the accepted event times [{lo}, {hi}]"
                                    " (microseconds since the epoch; the gateway takes events from"
                                    " max_event_age_s before to max_event_ahead_s after now)"))
        return issues
