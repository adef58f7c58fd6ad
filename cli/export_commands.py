"""``agentstream export otlp``: the redacted events topic sent on to an OTLP backend
(sink/otlp_exporter.py)."""
from __future__ import annotations

import os
from typing import Optional

import typer

export_app = typer.Typer(help="Send telemetry on to other backends.", no_args_is_help=True)


@export_app.command("otlp")
def export_otlp(
    endpoint: str = typer.Option(..., "--endpoint", help="OTLP/HTTP base URL (…/v1/traces is appended)"),
    headers: str = typer.Option("", "--headers", help="k=v,k2=v2 sent with every request (e.g. an API key)"),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="only this tenant's runs"),
    group: Optional[str] = typer.Option(None, "--group", help="consumer group (default agentstream-export-otlp)"),
    batch_max_spans: Optional[int] = typer.Option(None, "--batch-max-spans"),
    probe_port: Optional[int] = typer.Option(None, "--probe-port", help="serve /healthz, /readyz and "
                                             "/metrics on this port (host: AGENTSTREAM_EXPORT_PROBE_HOST)"),
) -> None:
    """Send runs as traces and steps as spans (GenAI semantic conventions) to an OTLP backend;
    offsets are committed after the backend accepts each batch."""
    from agentstream.schemas.consumer_errors import ConsumerCrash
    from agentstream.sink.otlp_exporter import BackendUnavailable, OtlpExportSettings, run_export

    update: dict = {"endpoint": endpoint, "tenant": tenant}
    if headers:
        update["headers"] = headers
    if group:
        update["group_id"] = group
    if batch_max_spans:
        update["batch_max_spans"] = batch_max_spans
    if probe_port is not None:
        update["probe_port"] = probe_port
    # Kafka comes from AGENTSTREAM_EXPORT_* or, like every other part, the stack's address.
    for name in ("BOOTSTRAP_SERVERS", "TOPIC_PREFIX"):
        if f"AGENTSTREAM_EXPORT_{name}" not in os.environ and f"AGENTSTREAM_SINK_{name}" in os.environ:
            update[name.lower()] = os.environ[f"AGENTSTREAM_SINK_{name}"]
    try:
        settings = OtlpExportSettings(**{k: v for k, v in update.items() if v is not None})
        settings.header_map()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        stats = run_export(settings)
    except (BackendUnavailable, ConsumerCrash) as exc:
        typer.echo(f"error: {exc} (offsets not committed; a restart resumes there)", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"exported {stats['spans']} spans in {stats['batches']} batches")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
