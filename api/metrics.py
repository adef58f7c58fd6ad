"""Prometheus metrics of the query API, in a registry per app (tests build many apps)."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


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

    def render(self) -> Response:
        # Plus the process's default registry: on the embedded default the sink runs in this
        # process and counts its rows, DLQ records and lag there (sink/metrics.py); without it
        # nothing showed where the sink's records went.
        body = generate_latest(self.registry) + generate_latest(REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def _observe(request: Request, call_next):
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            # The template, not the raw path: run ids would explode the label cardinality.
            template = getattr(route, "path", "unmatched")
            metrics.requests.labels(request.method, template, str(status)).inc()
            metrics.latency.labels(request.method, template).observe(time.perf_counter() - start)
