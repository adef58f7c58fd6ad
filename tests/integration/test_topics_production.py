"""``agentstream topics create`` with the production profile against the embedded broker: the
topics exist with the replication factor and configuration it asked for (read back through the
admin API), and a second run creates nothing."""
from __future__ import annotations

from confluent_kafka.admin import AdminClient, ConfigResource
from typer.testing import CliRunner

from agentstream.schemas.topics import PRODUCTION, TOPICS, topic_requests


def test_production_topics_are_created_as_requested(bootstrap, unique):
    import typer

    from agentstream.cli.schema_commands import register

    app = typer.Typer()
    register(app)
    prefix = f"prod{unique}."
    args = ["topics", "create", "--bootstrap-servers", bootstrap, "--prefix", prefix, "--partitions", "2"]
    out = CliRunner().invoke(app, args, env={"AGENTSTREAM_REPLICATION_FACTOR": "", "AGENTSTREAM_TOPIC_PROFILE": ""})
    assert out.exit_code == 0, out.output
    assert f"created {len(TOPICS)} topics (production profile)" in out.output

    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(timeout=10).topics
    wanted = {r.name: r for r in topic_requests(prefix, 2, PRODUCTION)}
    futures = admin.describe_configs([ConfigResource("topic", name) for name in wanted])
    for res, fut in futures.items():
        req = wanted[res.name]
        got = {k: v.value for k, v in fut.result().items()}
        for key, value in req.config.items():
            assert got[key] == value, f"{res.name}: {key}"
        parts = meta[res.name].partitions
        assert len(parts) == req.partitions
        assert all(len(p.replicas) == 3 for p in parts.values()), res.name
    again = CliRunner().invoke(app, args, env={"AGENTSTREAM_REPLICATION_FACTOR": "", "AGENTSTREAM_TOPIC_PROFILE": ""})
    assert "created 0 topics" in again.output
