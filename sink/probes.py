"""Standalone HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive: not crashed, not
stuck), ``/readyz``
(migrations applied and consuming; 503 while ClickHouse is paused-for-outage)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .readiness import ReadinessMixin


def serve_probes(sink: ReadinessMixin, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server API
            if self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                # Fails once the loop crashed or is stuck (no commit while records wait): a
                # restart is the cure for both, and the body says which.
                h = sink.health()
                body = {"status": "ok" if h["alive"] else "unhealthy", "failed": h["failed"],
                        "stuck_seconds": h["stuck_seconds"], "paused": h["paused"]}
                self._send(200 if h["alive"] else 503, json.dumps(body).encode(), "application/json")
            elif self.path == "/readyz":
                h = sink.health()
                ok = h["ready"] and not h["paused"]
                self._send(200 if ok else 503, json.dumps(h).encode(), "application/json")
            else:
                self._send(404, b'{"error":"not found"}', "application/json")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="sink-probes", daemon=True).start()
    return server
