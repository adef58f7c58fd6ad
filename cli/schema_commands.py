"""``agentstream topics create`` and ``agentstream schemas register``: one-shot setup jobs."""
from __future__ import annotations

import typer

topics_app = typer.Typer(help="Kafka topics from the schema catalog.", no_args_is_help=True)
schemas_app = typer.Typer(help="Avro schemas and the Schema Registry.", no_args_is_help=True)


@topics_app.command("create")
def topics_create(
    bootstrap_servers: str = typer.Option(..., envvar="AGENTSTREAM_BOOTSTRAP_SERVERS"),
    prefix: str = typer.Option("agentstream.", envvar="AGENTSTREAM_TOPIC_PREFIX"),
    partitions: int = typer.Option(0, help="override the catalog's partition counts (0 = keep)"),
    profile: str = typer.Option(
        "production", envvar="AGENTSTREAM_TOPIC_PROFILE",
        help="production: replication factor 3, min.insync.replicas 2, production retention (raw 1 h); "
             "embedded: one broker, the catalog's retention"),
    replication_factor: int = typer.Option(
        0, envvar="AGENTSTREAM_REPLICATION_FACTOR",
        help="override the profile's replication factor (0 = keep); min.insync.replicas follows (RF - 1, at most 2)"),
) -> None:
    """Create every catalog topic that does not exist yet (idempotent); existing topics are not altered."""
    from agentstream.schemas.topics import PROFILES, create_topics

    if profile not in PROFILES:
        raise typer.BadParameter(f"one of {', '.join(PROFILES)}", param_hint="--profile")
    if replication_factor < 0:
        raise typer.BadParameter("must be 1 or more (0 keeps the profile's)", param_hint="--replication-factor")
    created = create_topics(
        bootstrap_servers, prefix=prefix, partitions=partitions or None,
        replication_factor=replication_factor or None, profile=profile,
    )
    typer.echo(f"created {len(created)} topics ({profile} profile): {', '.join(sorted(created)) or '-'}")


@topics_app.command("list")
def topics_list(prefix: str = typer.Option("agentstream.")) -> None:
    """Print the catalog: name, key, partitions, retention, compaction."""
    from agentstream.schemas.topics import TOPICS, topic_name

    for spec in TOPICS.values():
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms / 3.6e6:g}h"
        flags = ",".join(f for f, on in [("compacted", spec.compacted), ("restricted", spec.restricted)] if on)
        typer.echo(f"{topic_name(spec.logical, prefix):28} key={spec.key:12} "
                   f"partitions={spec.partitions:<3} retention={retention:8} {flags}")


@schemas_app.command("register")
def schemas_register(
    registry_url: str = typer.Option(..., envvar="AGENTSTREAM_SCHEMA_REGISTRY_URL"),
    subject_strategy: str = typer.Option(
        "topic_name", envvar="AGENTSTREAM_SCHEMA_SUBJECT_STRATEGY",
        help="topic_name: Confluent's default TopicNameStrategy, '<topic>-value' subjects; "
             "record_name: RecordNameStrategy, the record's full name"),
    prefix: str = typer.Option("agentstream.", envvar="AGENTSTREAM_TOPIC_PREFIX",
                               help="topic prefix (names the topic_name subjects)"),
) -> None:
    """Make the registry hold every catalog schema version under its built-in id (IMPORT mode
    where the registry has it), then read every id back; exits 1 naming each mismatch."""
    from agentstream.schemas import RegistryResolver, SchemaIdMismatch
    from agentstream.schemas.registry_sync import STRATEGIES, subjects_for

    if subject_strategy not in STRATEGIES:
        raise typer.BadParameter(f"one of {', '.join(STRATEGIES)}", param_hint="--subject-strategy")
    resolver = RegistryResolver(registry_url, verify=False)
    try:
        ids = resolver.register_all(subject_strategy, prefix)
    except SchemaIdMismatch as exc:
        for p in exc.problems:
            typer.echo(f"mismatch: {p}", err=True)
        raise typer.Exit(1) from None
    for name in sorted(ids):
        versions = ", ".join(f"v{v.version}=id {v.id}" for v in resolver.catalog.versions(name))
        typer.echo(f"{name}: {versions} under {', '.join(subjects_for(name, subject_strategy, prefix))}")


@schemas_app.command("check")
def schemas_check(registry_url: str = typer.Option(..., envvar="AGENTSTREAM_SCHEMA_REGISTRY_URL")) -> None:
    """Read every built-in id back from the registry (what each service does on start)."""
    from agentstream.schemas import RegistryResolver
    from agentstream.schemas.registry_sync import check_ids

    problems = check_ids(RegistryResolver(registry_url, verify=False).client)
    for p in problems:
        typer.echo(f"mismatch: {p}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("the registry holds every built-in schema id")


@schemas_app.command("codegen")
def schemas_codegen(check: bool = typer.Option(False, "--check")) -> None:
    """Regenerate schemas/generated.py from the .avsc files (or check it is current)."""
    from agentstream.schemas import codegen

    raise typer.Exit(codegen.main(["--check"] if check else []))


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")
    app.add_typer(schemas_app, name="schemas")
