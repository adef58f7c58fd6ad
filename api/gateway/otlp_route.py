"""``POST /v1/traces``: OTLP/HTTP (protobuf or JSON) spans mapped to events on raw."""
from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

from agentstream.schemas import EVENT, EncodeError

from .body import read_body
from .errors import GatewayError, error_response
from .otlp_decode import OtlpDecodeError, decode_json, decode_protobuf, encode_response
from .otlp_mapping import MappingContext, map_spans

if TYPE_CHECKING:
    from .app import GatewayState

TRACES = "/v1/traces"


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
                spans = decode_json(orjson.loads(body)) if as_json else decode_protobuf(body)
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
                try:
                    records.append((key, state.codec.encode(EVENT, ev)))
                except EncodeError as exc:
                    rejected.append((f"{run.run_id}/{ev['payload'].get('step_id', '?')}",
                                     f"encode: {exc}"))
        for _, reason in rejected:
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
