"""``agentstream sink run`` (standalone, serves /metrics /healthz /readyz) and ``sink migrate``."""
from __future__ import annotations

import typer


def run_standalone(embedded: bool = False) -> None:
    import logging
    import signal
    import threading

    from .gc_policy import apply_gc_policy
    from .probes import serve_probes
    from .service import Sink
    from .settings import SinkSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = SinkSettings()
    if embedded:
        settings = settings.embedded()
    apply_gc_policy(settings.gc_gen0_threshold)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sink = Sink(settings)
    server = serve_probes(sink, settings.metrics_host, settings.metrics_port)
    print(f"sink: metrics on http://{settings.metrics_host}:{server.server_address[1]}/metrics, "
          f"ClickHouse {settings.clickhouse_dsn.split('@')[-1]}", flush=True)
    try:
        sink.run(stop)
    finally:
        server.shutdown()


def register(app: typer.Typer) -> None:
    sink_app = typer.Typer(name="sink", help="Kafka events/alerts -> ClickHouse.", no_args_is_help=True)

    @sink_app.command("run")
    def run(
        embedded: bool = typer.Option(False, help="Embedded profile: 6 s session timeout for fast joins."),
    ) -> None:
        """Consume until Ctrl-C / SIGTERM, serving Prometheus metrics and probes on metrics_port."""
        run_standalone(embedded)

    @sink_app.command("migrate")
    def migrate() -> None:
        """Apply pending DDL migrations and exit (a one-shot job before rolling out sinks/APIs)."""
        from .settings import SinkSettings
        from .storage import apply_migrations, make_client

        settings = SinkSettings()
        applied = apply_migrations(make_client(settings.clickhouse_dsn))
        typer.echo(f"applied migrations: {applied or 'none (up to date)'}")

    app.add_typer(sink_app)
