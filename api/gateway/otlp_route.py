"""``POST /v1/traces``: OTLP/HTTP (protobuf or JSON) spans mapped to events on raw."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import logging

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

from agentstream.schemas import EVENT, EncodeError

from .body import read_body
from .errors import GatewayError, error_response
from .event_rules import usage_issues
from .otlp_decode import OtlpDecodeError, decode_json, decode_protobuf, encode_response
from .otlp_mapping import MappingContext, map_spans

if TYPE_CHECKING:
    from .app import GatewayState

TRACES = "/v1/traces"
log = logging.getLogger("agentstream.gateway")


def _kind(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), "a number")


def _objects(v: Any, path: str) -> list[tuple[str, dict]]:
    """The objects of an optional array at ``path``; ValueError names the first misfit."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise ValueError(f"{path} is {_kind(v)}, not an array")
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise ValueError(f"{path}[{i}] is {_kind(item)}, not an object")
    return [(f"{path}[{i}]", item) for i, item in enumerate(v)]


def _attributes(v: Any, path: str) -> None:
    for apath, kv in _objects(v, path):
        if not isinstance(kv.get("key"), str):
            raise ValueError(f"{apath} has no string 'key' (an attribute is {{key, value}})")


def _object(d: dict, key: str, path: str) -> dict:
    v = d.get(key)
    if v is not None and not isinstance(v, dict):
        raise ValueError(f"{path}.{key} is {_kind(v)}, not an object")
    return v or {}


def _field(d: dict, camel: str, snake: str) -> tuple[str, Any]:
    return (camel, d[camel]) if camel in d else (snake, d.get(snake))


def json_shape_problem(doc: Any) -> str | None:
    """Where an OTLP/JSON document departs from ExportTraceServiceRequest's shape, as a path a
    client can act on (``resourceSpans[0].scopeSpans[1].spans[2] is a string, not an
    object``); None when every container the decoder walks has the right JSON type."""
    if not isinstance(doc, dict):
        return f"the body is {_kind(doc)}, not an object with resourceSpans"
    try:
        name, value = _field(doc, "resourceSpans", "resource_spans")
        for rpath, rs in _objects(value, name):
            _attributes(_object(rs, "resource", rpath).get("attributes"), f"{rpath}.resource.attributes")
            name, value = _field(rs, "scopeSpans", "scope_spans")
            for spath, ss in _objects(value, f"{rpath}.{name}"):
                _object(ss, "scope", spath)
                for path, span in _objects(ss.get("spans"), f"{spath}.spans"):
                    _object(span, "status", path)
                    _attributes(span.get("attributes"), f"{path}.attributes")
                    for epath, event in _objects(span.get("events"), f"{path}.events"):
                        _attributes(event.get("attributes"), f"{epath}.attributes")
    except ValueError as exc:
        return str(exc)
    return None


def add_traces_route(app: FastAPI, state: "GatewayState") -> None:
    from .app import authenticate, deliver, now_us, refused, throttle

    settings = state.settings
    metrics = state.metrics
    digest_key = (settings.args_digest_key.get_secret_value().encode()
                  if settings.args_digest_key else None)

    @app.post(TRACES)
    async def traces(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = ctype == "application/json"
        try:
            principal = authenticate(state, request)
            if ctype not in ("application/x-protobuf", "application/protobuf", "application/json"):
                raise GatewayError(415, "unsupported_media_type",
                                   f"{TRACES} takes application/x-protobuf or application/json"
                                   f", not {ctype or 'no Content-Type'!r}")
            body = await read_body(request, settings.max_body_bytes)
            try:
                if as_json:
                    doc = orjson.loads(body)
                    problem = json_shape_problem(doc)
                    if problem:
                        raise OtlpDecodeError(f"not an OTLP/JSON ExportTraceServiceRequest: {problem}")
                    spans = decode_json(doc)
                else:
                    spans = decode_protobuf(body)
            except orjson.JSONDecodeError as exc:
                raise GatewayError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
            except OtlpDecodeError as exc:
                raise GatewayError(400, "malformed_otlp", str(exc)) from None
            if len(spans) > settings.max_batch_events:
                raise GatewayError(400, "batch_too_large",
                                   f"{len(spans)} spans in one request; the limit is "
                                   f"{settings.max_batch_events}",
                                   {"max_batch_events": settings.max_batch_events,
                                    "spans": len(spans)})
        except GatewayError as exc:
            return refused(state, TRACES, exc)

        ctx = MappingContext(principal.tenant_id, now_us(), state.prices.cost, digest_key)
        mapped = map_spans(spans, ctx)
        rejected = list(mapped.rejected)
        if mapped.event_count:
            throttle(state, TRACES, principal, mapped.event_count)

        records: list[tuple[bytes, bytes]] = []
        allocated: list[tuple[str, int, int]] = []
        for run in mapped.runs:
            start = state.seqs.allocate(principal.tenant_id, run.run_id, len(run.events))
            allocated.append((run.run_id, start, len(run.events)))
            key = run.run_id.encode()
            for ev in run.events:
                ev["seq"] += start
                ref = f"{run.run_id}/{ev['payload'].get('step_id', '?')}"
                # A span's times and usage figures meet the rules /v1/ingest applies: a span
                # open for 40 days or a count of 1e30 tokens is refused here, not dead-lettered
                # by the sink after the client was told it was accepted.
                bad_time = state.validator.time_issues(ev, ctx.now_us)
                if bad_time:
                    rejected.append((ref, bad_time[0]["message"]))
                    continue
                bad_usage = usage_issues(ev)
                if bad_usage:
                    rejected.append((ref, f"{bad_usage[0]['field']}: {bad_usage[0]['message']}"))
                    continue
                try:
                    value = state.codec.encode(EVENT, ev)
                except EncodeError:
                    # fastavro's message quotes the whole record and its schema (KBs, and the
                    # span's attributes): the client gets a short generic reason.
                    log.warning("an OTLP span's event did not encode", exc_info=True)
                    rejected.append((ref, "encode: the span's event does not fit the Event schema"))
                    continue
                if len(value) + len(key) > settings.max_record_bytes:
                    rejected.append((ref, f"record_too_large: the span's event encodes to "
                                     f"{len(value) + len(key)} bytes, more than Kafka's "
                                     f"{settings.max_record_bytes}"))
                    continue
                records.append((key, value))
        for _ in rejected:
            metrics.rejected.labels(TRACES, "invalid_span").inc()

        def give_back() -> None:
            for run_id, start, n in reversed(allocated):
                state.seqs.release(principal.tenant_id, run_id, start, n)

        if records:
            try:
                result = await deliver(state, TRACES, principal, records)
            except GatewayError:
                give_back()
                raise
            if not result.ok:
                give_back()
                metrics.throttled.labels(TRACES, "kafka_failed").inc()
                metrics.requests.labels(TRACES, "503").inc()
                return error_response(GatewayError(
                    503, "kafka_unavailable",
                    f"Kafka did not acknowledge {len(result.failed)} of {len(records)} events;"
                    " retry the export", {"retry_after_s": settings.retry_after_s},
                    headers={"Retry-After": str(settings.retry_after_s)}))
            metrics.accepted.labels(TRACES).inc(len(records))
        elif spans and rejected:
            metrics.requests.labels(TRACES, "400").inc()
            raise GatewayError(400, "invalid_spans", "no span of the request is valid",
                               {"rejected": [{"span": ref, "reason": r} for ref, r in rejected]})
        metrics.requests.labels(TRACES, "200").inc()
        message = "; ".join(f"{ref}: {r}" for ref, r in rejected[:20])
        data, media = encode_response(len(rejected), message, as_json)
        return Response(data, status_code=200, media_type=media)
