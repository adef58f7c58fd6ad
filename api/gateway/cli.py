"""``agentstream gateway run``: the ingest gateway as its own process."""
from __future__ import annotations

from typing import Any

import typer

gateway_app = typer.Typer(help="The write-only ingest gateway (HTTP batches, OTLP/HTTP).",
                          no_args_is_help=True)


@gateway_app.callback()
def _group() -> None:
    """The write-only ingest gateway (HTTP batches, OTLP/HTTP)."""


@gateway_app.command("run")
def run(
    host: str | None = typer.Option(None, help="Listen address [env AGENTSTREAM_GATEWAY_HOST, 127.0.0.1]"),
    port: int | None = typer.Option(None, help="Listen port [env AGENTSTREAM_GATEWAY_PORT, 8001]"),
    bootstrap_servers: str | None = typer.Option(None, "--bootstrap-servers",
                                          help="Kafka bootstrap servers"),
    topic_prefix: str | None = typer.Option(None, "--topic-prefix", help="Topic name prefix"),
    api_keys_file: str | None = typer.Option(None, "--api-keys-file", help="Tenant API keys JSON file"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve /v1/ingest, /v1/traces, /healthz, /readyz and /metrics until stopped."""
    import uvicorn

    from .app import create_gateway_app
    from .settings import GatewaySettings

    # only what was given, so the AGENTSTREAM_GATEWAY_* environment fills the rest
    overrides: dict[str, Any] = {k: v for k, v in {
        "host": host, "port": port, "bootstrap_servers": bootstrap_servers,
        "topic_prefix": topic_prefix, "api_keys_file": api_keys_file,
    }.items() if v is not None}
    settings = GatewaySettings(**overrides)
    app = create_gateway_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level,
                access_log=False)


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
