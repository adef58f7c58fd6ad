"""The write-only ingest gateway: HTTP batches and OTLP/HTTP traces into the raw topic."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_gateway_app
    from .settings import GatewaySettings

__all__ = ["GatewaySettings", "create_gateway_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `agentstream --help` does not import FastAPI and confluent-kafka.
    if name == "create_gateway_app":
        from .app import create_gateway_app

        return create_gateway_app
    if name == "GatewaySettings":
        from .settings import GatewaySettings

        return GatewaySettings
    raise AttributeError(name)
