"""Prometheus metrics of one gateway app, in its own registry (tests run several apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "agentstream_gateway_events_accepted", "Events acknowledged by Kafka and answered 2xx",
            ["endpoint"], registry=r)
        self.rejected = Counter(
            "agentstream_gateway_events_rejected", "Events refused, by reason",
            ["endpoint", "reason"], registry=r)
        self.requests_rejected = Counter(
            "agentstream_gateway_requests_rejected",
            "Whole requests refused before their events could be read (auth, size, syntax)",
            ["endpoint", "reason"], registry=r)
        self.throttled = Counter(
            "agentstream_gateway_requests_throttled",
            "Requests answered 429/503 with Retry-After, by cause",
            ["endpoint", "cause"], registry=r)
        self.requests = Counter(
            "agentstream_gateway_requests", "Requests by endpoint and status",
            ["endpoint", "status"], registry=r)
        self.ack_latency = Histogram(
            "agentstream_gateway_kafka_ack_seconds",
            "From the first produce of a batch to Kafka's last acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r)
        self.inflight = Gauge(
            "agentstream_gateway_inflight_events", "Events produced, not yet acknowledged",
            registry=r)
