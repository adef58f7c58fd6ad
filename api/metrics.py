"""Prometheus metrics of the query API, in a registry per app (tests build many apps)."""
from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agentstream.schemas.offset_gaps import register_gap_metrics

from .kafka_io import POLICY_GAP_COUNTS


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "agentstream_api_requests_total", "HTTP requests by route template and status",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "agentstream_api_request_seconds", "time to the response headers, by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.sql_rejected = Counter(
            "agentstream_api_sql_rejected_total", "/v1/sql queries rejected, by reason code",
            ["code"], registry=self.registry)
        self.sse_clients = Gauge(
            "agentstream_api_sse_clients", "open alert streams", registry=self.registry)
        self.kafka_writes = Counter(
            "agentstream_api_kafka_writes_total", "records produced (policies, feedback)",
            ["topic", "result"], registry=self.registry)
        # The policies tails' re-read fetches (process-wide counts, read at each scrape).
        register_gap_metrics(self.registry, "agentstream_api_policies", lambda: POLICY_GAP_COUNTS)

    def watch_run_misses(self, misses: Any) -> None:
        """The cache of runs a tenant does not have (store/run_misses.py), read at each scrape."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        class _Collector:
            def collect(self) -> Any:
                yield CounterMetricFamily("agentstream_api_run_misses_answered",
                                          "GET /v1/runs/{id} 404s answered from the cache, without a query",
                                          value=misses.hits)
                yield CounterMetricFamily("agentstream_api_run_misses_remembered",
                                          "404s of a run read remembered for later ones", value=misses.remembered)
                yield GaugeMetricFamily("agentstream_api_run_misses", "runs remembered missing now",
                                        value=len(misses))

        self.registry.register(_Collector())

    def render(self) -> Response:
        # Plus the process's default registry: on the embedded default the sink runs in this
        # process and counts its rows, DLQ records and lag there (sink/metrics.py); without it
        # nothing showed where the sink's records went.
        body = generate_latest(self.registry) + generate_latest(REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, metrics: ApiMetrics) -> None:
    app.add_middleware(ObserveRequests, metrics=metrics)


class ObserveRequests:
    """Counts each HTTP request and times it to its response headers, by route template; the
    response carries that time as ``Server-Timing: app;dur=<ms>``.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``)
    runs every request in a task group of its own and re-streams the response through a memory
    channel, Python work per request that this needs none of."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen = False

        def observe(status: int) -> None:
            nonlocal seen
            seen = True
            # The template, not the raw path: run ids would explode the label cardinality.
            # Starlette's template without converters ("{run_id}", not "{run_id:path}"): the
            # label alerts and dashboards name (deploy/.../prometheusrule.yaml).
            template = getattr(scope.get("route"), "path_format", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)

        async def send_observed(message: Any) -> None:
            if message["type"] == "http.response.start" and not seen:
                observe(message["status"])
                # the server's own time to the headers, apart from the network and the client's
                # wake-ups (W3C Server-Timing: browsers' dev tools show it)
                took = (time.perf_counter() - start) * 1000
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"server-timing", b"app;dur=%.1f" % took)]}
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            if not seen:  # raised before any response: the server answers 500
                observe(500)
