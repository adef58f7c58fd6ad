"""``/healthz``, ``/readyz`` and ``/metrics`` for the consumers ``ChainDriver`` drives (the alert
forwarder, the OTLP exporter): the probes the processors, the sink, the API and the gateway
already have, for the two that had none.

- **Alive** (``/healthz``): the consumer has not failed, and its loop turned within
  ``stuck_after_s``. A turn is a ``consume()`` plus the chain's work (a POST is bounded by its
  timeout, retries back off between turns), so a stale heartbeat is a loop that hangs: a restart
  is the cure.
- **Ready** (``/readyz``): alive, in its consumer group (an assignment arrived; an empty one
  counts, a member beyond the partition count is still a healthy member), and its chain not
  retrying an outage of its destination or backend, during which its partitions are paused.

The body says which (``failed``, ``seconds_since_poll``, ``assigned``, ``failing``, ``paused``)
with the consumer's own counters. Nothing here knows a client library or the driver's class:
it reads four attributes of it. ``serve_routes`` is the small GET server the sink's probes use
too (sink/probes.py).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


# (status, body, content type) of one GET
Answer = tuple[int, bytes, str]


def json_answer(ok: bool, body: dict[str, Any]) -> Answer:
    return 200 if ok else 503, json.dumps(body).encode(), "application/json"


def metrics_answer() -> Answer:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return 200, generate_latest(), CONTENT_TYPE_LATEST


def serve_routes(routes: dict[str, Callable[[], Answer]], host: str, port: int, name: str) -> ThreadingHTTPServer:
    """A GET-only HTTP server answering ``routes`` (404 elsewhere) from a daemon thread: the probe
    endpoints of the processes that have no web framework (the sink, the forwarder, the exporter)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server API
            route = routes.get(self.path)
            code, body, ctype = route() if route is not None else (404, b'{"error":"not found"}', "application/json")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


@dataclass(frozen=True)
class ProbeFacts:
    last_turn_at: float  # time.monotonic() of the loop's last turn (its start before the first)
    assigned: tuple[str, ...] | None  # None: no assignment yet (the group not joined)
    failing: bool  # the chain retries an outage
    paused: bool
    failed: str | None  # why the consumer stopped, once it has
    counters: dict[str, Any] = field(default_factory=dict)


def consumer_health(f: ProbeFacts, now: float, stuck_after_s: float) -> dict[str, Any]:
    since = max(0.0, now - f.last_turn_at)
    alive = f.failed is None and since < stuck_after_s
    return {
        "alive": alive,
        "ready": alive and f.assigned is not None and not f.failing,
        "failed": f.failed,
        "seconds_since_poll": round(since, 1),
        "joined": f.assigned is not None,
        "assigned": list(f.assigned or ()),
        "failing": f.failing,
        "paused": f.paused,
        **f.counters,
    }


class ConsumerProbes:
    """Set ``driver`` once the consumer's driver exists and ``failed`` when it stops on an error;
    ``serve`` answers the probes from a daemon thread until ``close``."""

    def __init__(self, stuck_after_s: float, counters: Callable[[], dict[str, Any]] = dict) -> None:
        self.stuck_after_s = stuck_after_s
        self.counters = counters
        self.started_at = time.monotonic()
        self.driver: Any = None
        self.failed: str | None = None
        self._server: ThreadingHTTPServer | None = None

    def facts(self) -> ProbeFacts:
        d = self.driver
        if d is None:  # starting: catching up on rules, building clients
            return ProbeFacts(self.started_at, None, False, False, self.failed, self.counters())
        return ProbeFacts(d.last_turn_at, d.assigned, d.failing, d.paused, self.failed, self.counters())

    def health(self, now: float | None = None) -> dict[str, Any]:
        return consumer_health(self.facts(), time.monotonic() if now is None else now, self.stuck_after_s)

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        def healthz() -> Answer:
            h = self.health()
            return json_answer(h["alive"], {"status": "ok" if h["alive"] else "unhealthy", "failed": h["failed"],
                                            "seconds_since_poll": h["seconds_since_poll"]})

        def readyz() -> Answer:
            h = self.health()
            return json_answer(h["ready"], h)

        self._server = serve_routes({"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_answer},
                                    host, port, "consumer-probes")
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
