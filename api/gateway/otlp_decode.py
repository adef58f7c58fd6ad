"""OTLP/HTTP trace requests (protobuf or JSON) decoded into plain ``OtlpSpan`` values.

Both encodings end in the same neutral shape, so the mapping to agentstream events is written
and tested once. OTLP/JSON differs from protobuf's canonical JSON: ids are hex, not base64,
and 64-bit integers may come as strings; both spellings of field names are accepted.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


class OtlpDecodeError(ValueError):
    pass


class OtlpBytes(str):
    """A ``bytesValue``, as its base64 text. Why a type of its own: base64 hides whatever the
    bytes hold (a header, a key file) from every rule, so such a value is never kept as an
    attribute (``otlp_mapping.safe_attributes``); where a known key is read as text it still
    reads as before."""


@dataclass
class OtlpSpan:
    trace_id: str  # 32 lowercase hex chars
    span_id: str  # 16 lowercase hex chars
    parent_span_id: str  # "" for a root span
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status_code: int = STATUS_UNSET
    status_message: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    kind: int = 0


# --- protobuf --------------------------------------------------------------------------------

def _pb_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return OtlpBytes(base64.b64encode(v.bytes_value).decode())
    return getattr(v, which)


def _pb_attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in kvs}


def decode_protobuf(body: bytes) -> list[OtlpSpan]:
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        raise OtlpDecodeError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    out = []
    for rs in req.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(OtlpSpan(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_span_id=s.parent_span_id.hex(), name=s.name,
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    attributes=_pb_attrs(s.attributes), status_code=s.status.code,
                    status_message=s.status.message,
                    events=[(e.name, _pb_attrs(e.attributes)) for e in s.events],
                    resource=resource, scope=ss.scope.name, kind=s.kind,
                ))
    return out


# --- JSON ------------------------------------------------------------------------------------

def _get(d: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    if camel in d:
        return d[camel]
    return d.get(snake, default)


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    key, val = next(iter(v.items()))
    if key in ("stringValue", "string_value", "boolValue", "bool_value"):
        return val
    if key in ("intValue", "int_value"):
        return int(val)
    if key in ("doubleValue", "double_value"):
        return float(val)
    if key in ("arrayValue", "array_value"):
        return [_json_value(x) for x in (val or {}).get("values", [])]
    if key in ("kvlistValue", "kvlist_value"):
        return _json_attrs((val or {}).get("values", []))
    if key in ("bytesValue", "bytes_value"):
        return OtlpBytes(val)
    raise OtlpDecodeError(f"unknown AnyValue field {key!r}")


def _json_attrs(kvs: Any) -> dict[str, Any]:
    if not isinstance(kvs, list):
        raise OtlpDecodeError("attributes must be a list of {key, value}")
    return {str(kv["key"]): _json_value(kv.get("value")) for kv in kvs}


def _json_id(v: Any, nbytes: int) -> str:
    if not v:
        return ""
    s = str(v)
    if len(s) == nbytes * 2:
        try:
            bytes.fromhex(s)
            return s.lower()
        except ValueError:
            pass
    try:  # some exporters send protobuf-canonical base64
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise OtlpDecodeError(f"id {s!r} is neither hex nor base64") from None
    return raw.hex()


def decode_json(doc: Any) -> list[OtlpSpan]:
    if not isinstance(doc, dict):
        raise OtlpDecodeError("an OTLP/JSON request is an object with resourceSpans")
    out = []
    try:
        for rs in _get(doc, "resourceSpans", "resource_spans", []) or []:
            resource = _json_attrs((rs.get("resource") or {}).get("attributes", []))
            for ss in _get(rs, "scopeSpans", "scope_spans", []) or []:
                scope = str((ss.get("scope") or {}).get("name", ""))
                for s in ss.get("spans", []) or []:
                    status = s.get("status") or {}
                    out.append(OtlpSpan(
                        trace_id=_json_id(_get(s, "traceId", "trace_id"), 16),
                        span_id=_json_id(_get(s, "spanId", "span_id"), 8),
                        parent_span_id=_json_id(_get(s, "parentSpanId", "parent_span_id"), 8),
                        name=str(s.get("name", "")),
                        start_ns=_ns(_get(s, "startTimeUnixNano", "start_time_unix_nano", 0)),
                        end_ns=_ns(_get(s, "endTimeUnixNano", "end_time_unix_nano", 0)),
                        attributes=_json_attrs(s.get("attributes", [])),
                        status_code=_status_code(status.get("code", 0)),
                        status_message=str(status.get("message", "")),
                        events=[(str(e.get("name", "")), _json_attrs(e.get("attributes", [])))
                                for e in s.get("events", []) or []],
                        resource=resource, scope=scope, kind=_int_enum(s.get("kind", 0)),
                    ))
    except OtlpDecodeError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise OtlpDecodeError(f"not an OTLP/JSON ExportTraceServiceRequest: {exc!r}") from None
    return out


def _ns(v: Any) -> int:
    """A time in ns as OTLP's fixed64 holds it (JSON numbers and strings have no bound)."""
    n = int(v)
    if not 0 <= n < 1 << 64:
        raise OtlpDecodeError(f"a span time of {str(n)[:40]} ns is outside OTLP's unsigned 64 bits")
    return n


def _status_code(v: Any) -> int:
    if isinstance(v, str):
        return {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(v, 0)
    return int(v)


def _int_enum(v: Any) -> int:
    return int(v) if not isinstance(v, str) or v.isdigit() else 0


# --- responses -------------------------------------------------------------------------------

def encode_response(rejected: int, message: str, as_json: bool) -> tuple[bytes, str]:
    if as_json:
        import orjson

        body: dict[str, Any] = {}
        if rejected or message:
            body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
        return orjson.dumps(body), "application/json"
    resp = ExportTraceServiceResponse()
    if rejected or message:
        resp.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message))
    return resp.SerializeToString(), "application/x-protobuf"
