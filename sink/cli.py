"""``agentstream sink run`` (standalone, serves /metrics /healthz /readyz) and ``(sink) migrate``."""
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

    def migrate(
        cluster: str = typer.Option(
            None, envvar="AGENTSTREAM_CLICKHOUSE_CLUSTER",
            help="A ClickHouse cluster (remote_servers) name: Replicated local tables ON CLUSTER, "
                       "Distributed tables under the embedded names (docs/storage.md)."),
        print_sql: bool = typer.Option(False, "--print", help="Print the DDL (with --cluster) and exit."),
    ) -> None:
        """Apply pending DDL migrations and exit (a one-shot job before rolling out sinks/APIs)."""
        from .cluster import ClusterSchemaError, apply_cluster_migrations, render_sql
        from .settings import SinkSettings
        from .storage import apply_migrations, make_client

        try:
            if print_sql:
                if not cluster:
                    raise typer.BadParameter("--print needs --cluster (the embedded DDL is sink/migrations/)")
                typer.echo(render_sql(cluster))
                return
            client = make_client(SinkSettings().clickhouse_dsn)
            applied = apply_cluster_migrations(client, cluster) if cluster else apply_migrations(client)
        except ClusterSchemaError as exc:
            raise typer.BadParameter(str(exc)) from exc
        where = f" on cluster {cluster}" if cluster else ""
        typer.echo(f"applied migrations{where}: {applied or 'none (up to date)'}")

    sink_app.command("migrate")(migrate)
    app.add_typer(sink_app)
    # top level too: the first step of a deployment, before any part runs
    app.command("migrate")(migrate)
