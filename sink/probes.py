"""Standalone HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive: not crashed, not
stuck), ``/readyz``
(migrations applied and consuming; 503 while ClickHouse is paused-for-outage)."""
from __future__ import annotations

from http.server import ThreadingHTTPServer

from agentstream.schemas.consumer_probes import Answer, json_answer, metrics_answer, serve_routes

from .readiness import ReadinessMixin


def serve_probes(sink: ReadinessMixin, host: str, port: int) -> ThreadingHTTPServer:
    def healthz() -> Answer:
        # Fails once the loop crashed or is stuck (no commit while records wait): a restart is
        # the cure for both, and the body says which.
        h = sink.health()
        return json_answer(h["alive"], {"status": "ok" if h["alive"] else "unhealthy", "failed": h["failed"],
                                        "stuck_seconds": h["stuck_seconds"], "paused": h["paused"]})

    def readyz() -> Answer:
        h = sink.health()
        return json_answer(h["ready"] and not h["paused"], h)

    return serve_routes({"/metrics": metrics_answer, "/healthz": healthz, "/readyz": readyz}, host, port,
                        "sink-probes")
