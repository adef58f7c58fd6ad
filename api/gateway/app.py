"""The write-only ingest gateway: ``POST /v1/ingest`` (JSON events) and ``POST /v1/traces``
(OTLP/HTTP), answered 2xx only after Kafka acknowledged every accepted event."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from agentstream.schemas import Codec, make_resolver, topic_name

from .batch import parse_events, prepare, refusal_for
from .body import read_body
from .delivery import TOO_LARGE, BrokerUnavailable, DeliveryResult, KafkaDelivery, Overloaded
from .errors import GatewayError, error_response, install_error_handlers, json_response
from .keys import WRITE_SCOPE, KeyStore, Principal, bearer_key
from .metrics import GatewayMetrics
from .otlp_route import add_traces_route
from .pricing import PriceTable
from .ratelimit import TokenBuckets, retry_after_header
from .sequence import SeqAllocator
from .settings import GatewaySettings
from .validation import EventValidator

INGEST = "/v1/ingest"


@dataclass
class GatewayState:
    settings: GatewaySettings
    delivery: KafkaDelivery
    keys: KeyStore
    buckets: TokenBuckets
    metrics: GatewayMetrics
    validator: EventValidator
    codec: Codec
    prices: PriceTable
    seqs: SeqAllocator


def build_delivery(settings: GatewaySettings) -> KafkaDelivery:
    return KafkaDelivery(
        settings.producer_conf(),
        topic_name("raw", settings.topic_prefix),
        max_inflight=settings.max_inflight_events,
        delivery_timeout_s=settings.delivery_timeout_ms / 1000,
        probe_interval_s=settings.health_probe_interval_s,
    )


def create_gateway_app(settings: GatewaySettings, producer: KafkaDelivery | None = None
                       ) -> FastAPI:
    """The gateway app. ``producer`` is an already started ``KafkaDelivery`` the caller owns;
    without it the app builds one from ``settings`` and starts/stops it with its lifespan."""
    metrics = GatewayMetrics()
    owned = producer is None
    delivery = producer or build_delivery(settings)
    state = GatewayState(
        settings=settings,
        delivery=delivery,
        keys=KeyStore(settings.api_keys_file),
        buckets=TokenBuckets(settings.rate_limit_events_per_s, settings.rate_limit_burst),
        metrics=metrics,
        validator=EventValidator(max_past_s=settings.max_event_age_s,
                                 max_future_s=settings.max_event_ahead_s,
                                 end_user_key=settings.digest_key_bytes()),
        codec=Codec(make_resolver(settings.schema_registry_url)),
        prices=PriceTable.load(settings.price_table_file),
        seqs=SeqAllocator(),
    )
    delivery.on_ack = metrics.ack_latency.observe
    metrics.inflight.set_function(lambda: delivery.inflight)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            delivery.start()
        try:
            yield
        finally:
            if owned:
                await asyncio.to_thread(delivery.stop, settings.delivery_timeout_ms / 1000)

    app = FastAPI(title="agentstream ingest gateway", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.gateway = state
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = {
            "kafka": bool(delivery.broker_ok),
            "raw_topic": delivery.topic_ok,
            "queue_has_room": delivery.inflight < delivery.max_inflight,
            "api_keys": state.keys.path.exists(),
        }
        ok = all(checks.values())
        body = {"status": "ready" if ok else "not_ready", "checks": checks,
                "detail": delivery.last_probe_error}
        return json_response(200 if ok else 503, body)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(INGEST)
    async def ingest(request: Request) -> Response:
        try:
            principal = authenticate(state, request)
            body = await read_body(request, settings.max_body_bytes)
            require_json(request, INGEST)
            events = parse_events(body, settings.max_batch_events)
        except GatewayError as exc:
            return refused(state, INGEST, exc)
        throttle(state, INGEST, principal, len(events))
        prepared = prepare(events, principal.tenant_id, state.validator, state.codec,
                           settings.max_record_bytes)
        for r in prepared.rejected:
            metrics.rejected.labels(INGEST, r["reason"]).inc()
        if not prepared.records:
            state.buckets.refund(principal.tenant_id, prepared.total)
            status, code, message = refusal_for(prepared.rejected)
            metrics.requests.labels(INGEST, str(status)).inc()
            raise GatewayError(status, code, message, {"rejected": prepared.rejected})
        result = await deliver(state, INGEST, principal, prepared.records)
        if not result.ok:
            return delivery_failed(state, INGEST, result, prepared.indexes, prepared.rejected,
                                   prepared.event_ids)
        metrics.accepted.labels(INGEST).inc(len(prepared.records))
        metrics.requests.labels(INGEST, "200").inc()
        return json_response(200, {
            "accepted": len(prepared.records),
            "rejected": prepared.rejected,
            "event_ids": prepared.event_ids,
        })

    add_traces_route(app, state)
    return app


# --- the steps both endpoints share -------------------------------------------------------

def authenticate(state: GatewayState, request: Request) -> Principal:
    key = bearer_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    challenge = {"WWW-Authenticate": "Bearer"}
    if key is None:
        raise GatewayError(401, "unauthenticated",
                           "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'",
                           headers=challenge)
    principal = state.keys.verify(key)
    if principal is None:
        raise GatewayError(401, "invalid_api_key", "unknown API key", headers=challenge)
    if WRITE_SCOPE not in principal.scopes:
        raise GatewayError(403, "insufficient_scope", "this API key lacks the 'write' scope",
                           {"scopes": sorted(principal.scopes)})
    return principal


def require_json(request: Request, endpoint: str) -> None:
    """A body is JSON only when it says so. No Content-Type is refused too (415): guessing would
    take curl's form default or a stray text/plain for JSON, and a client that says nothing
    about its body gets a clear answer instead of a parse error about the wrong format."""
    raw = request.headers.get("content-type")
    media = (raw or "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        sent = f"Content-Type {raw!r}" if raw else "no Content-Type"
        raise GatewayError(415, "unsupported_media_type",
                           f"{endpoint} takes a JSON body with 'Content-Type: application/json'"
                           f"; the request sent {sent}")


def refused(state: GatewayState, endpoint: str, exc: GatewayError) -> Response:
    state.metrics.requests_rejected.labels(endpoint, exc.code).inc()
    state.metrics.requests.labels(endpoint, str(exc.status)).inc()
    return error_response(exc)


def throttle(state: GatewayState, endpoint: str, principal: Principal, n: int) -> None:
    wait = state.buckets.take(principal.tenant_id, n)
    if wait > 0:
        state.metrics.throttled.labels(endpoint, "rate_limited").inc()
        state.metrics.requests.labels(endpoint, "429").inc()
        raise GatewayError(
            429, "rate_limited",
            f"tenant {principal.tenant_id} is over its rate of "
            f"{state.settings.rate_limit_events_per_s:g} events/s",
            {"retry_after_s": round(wait, 3)},
            headers={"Retry-After": retry_after_header(wait)},
        )


async def deliver(state: GatewayState, endpoint: str, principal: Principal,
                  records: list[tuple[bytes, bytes]]) -> DeliveryResult:
    retry = {"Retry-After": str(state.settings.retry_after_s)}
    try:
        return await state.delivery.deliver(records)
    except Overloaded as exc:
        cause, code, msg = "overloaded", "overloaded", f"ingest queue is full: {exc}"
    except BrokerUnavailable as exc:
        cause, code, msg = "kafka_unavailable", "kafka_unavailable", f"Kafka is unreachable: {exc}"
    state.buckets.refund(principal.tenant_id, len(records))
    state.metrics.throttled.labels(endpoint, cause).inc()
    state.metrics.requests.labels(endpoint, "503").inc()
    raise GatewayError(503, code, msg + "; nothing of this batch was accepted, retry it",
                       {"retry_after_s": state.settings.retry_after_s}, headers=retry)


def delivery_failed(state: GatewayState, endpoint: str, result: DeliveryResult,
                    indexes: list[int], rejected: list[dict[str, Any]],
                    event_ids: list[str] | None = None) -> Response:
    """Kafka refused some records: 503, and the client resends the batch. Records that did land
    land twice then; event ids are stable, so the sink keeps one."""
    delivered = [indexes[i] for i in range(len(indexes)) if i not in result.failed]
    failed: list[dict[str, Any]] = [{"index": indexes[i], "reason": r}
                                    for i, r in sorted(result.failed.items())]
    state.metrics.accepted.labels(endpoint).inc(len(delivered))
    if event_ids is not None:
        for i, f in zip(sorted(result.failed), failed):
            f["event_id"] = event_ids[i]
    too_large = [f for f in failed if f["reason"].startswith(TOO_LARGE)]
    if too_large:  # resending the batch would fail the same way: say so, do not ask for a retry
        state.metrics.requests.labels(endpoint, "413").inc()
        first = too_large[0]
        named = f"event {first['event_id']}" if "event_id" in first else f"index {first['index']}"
        return error_response(GatewayError(
            413, "record_too_large",
            f"Kafka refused {len(too_large)} event(s) for their size (first: {named}); "
            "shorten them, resending cannot help",
            {"failed": failed, "delivered": delivered, "rejected": rejected}))
    state.metrics.throttled.labels(endpoint, "kafka_failed").inc()
    state.metrics.requests.labels(endpoint, "503").inc()
    return error_response(GatewayError(
        503, "kafka_unavailable",
        f"Kafka did not acknowledge {len(failed)} of {len(indexes)} events; retry the batch",
        {"failed": failed, "delivered": delivered, "rejected": rejected,
         "retry_after_s": state.settings.retry_after_s},
        headers={"Retry-After": str(state.settings.retry_after_s)},
    ))


def now_us() -> int:
    return time.time_ns() // 1000
