"""Runs the gateway under uvicorn in a background thread of the calling process.

For embedding (one-process setups, benchmarks, tests); ``agentstream gateway run`` is the
service entry point.
"""
from __future__ import annotations

import socket
import threading
import time

import uvicorn

from .settings import GatewaySettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadedGateway:
    def __init__(self, settings: GatewaySettings, producer=None) -> None:
        from .app import create_gateway_app

        self.settings = settings
        self.app = create_gateway_app(settings, producer)
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host=settings.host, port=settings.port, log_level="warning",
            access_log=False, lifespan="on",
        ))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout: float = 30.0) -> "ThreadedGateway":
        self._thread = threading.Thread(target=self._server.run, name="gateway-uvicorn",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start on {self.url}")
            time.sleep(0.02)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Blocks until the first Kafka probe found the broker and the raw topic."""
        delivery = self.app.state.gateway.delivery
        deadline = time.monotonic() + timeout
        while not (delivery.broker_ok and delivery.topic_ok):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready: {delivery.last_probe_error}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> "ThreadedGateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
