"""What ``agentstream topics create`` asks the broker for, per profile (schemas/topics.py)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agentstream.schemas.topics import (DAY_MS, EMBEDDED, HOUR_MS, PRODUCTION, PROFILES, TOPICS,
                                        topic_requests)


def _by_logical(reqs, prefix="agentstream."):
    return {r.name[len(prefix):]: r for r in reqs}


def test_production_is_replicated_with_two_in_sync_and_no_unclean_leaders():
    reqs = topic_requests(profile=PRODUCTION)
    assert {r.name for r in reqs} == {f"agentstream.{t}" for t in TOPICS}
    for r in reqs:
        assert r.replication_factor == 3, r.name
        assert r.config["min.insync.replicas"] == "2", r.name
        assert r.config["unclean.leader.election.enable"] == "false", r.name


def test_production_retention_per_topic():
    reqs = _by_logical(topic_requests(profile="production"))
    # unredacted data: at most an hour, however the catalog default moves
    assert 0 < int(reqs["raw"].config["retention.ms"]) <= HOUR_MS
    assert int(reqs["events"].config["retention.ms"]) == DAY_MS
    for logical, spec in TOPICS.items():
        retention = int(reqs[logical].config["retention.ms"])
        if spec.compacted:
            assert reqs[logical].config["cleanup.policy"] == "compact" and retention == -1
            assert reqs[logical].partitions == 1
        else:
            # production never keeps longer than the catalog, and always a bounded time
            assert 0 < retention <= spec.retention_ms, logical
            assert reqs[logical].config["cleanup.policy"] == "delete"
            assert reqs[logical].partitions == spec.partitions


def test_embedded_keeps_one_replica_and_the_catalog_retention():
    for r in topic_requests(profile=EMBEDDED, partitions=4):
        spec = TOPICS[r.name.split(".", 1)[1]]
        assert r.replication_factor == 1 and "min.insync.replicas" not in r.config
        assert r.config["retention.ms"] == str(spec.retention_ms)
        assert r.partitions == (1 if spec.compacted else 4)


@pytest.mark.parametrize("rf,isr", [(1, "1"), (2, "1"), (3, "2"), (5, "2")])
def test_min_insync_follows_an_overridden_replication_factor(rf, isr):
    # never RF itself: one broker down would stop every acks=all producer of the topic
    for r in topic_requests(profile=PRODUCTION, replication_factor=rf):
        assert r.replication_factor == rf and r.config["min.insync.replicas"] == isr


def test_topics_create_refuses_an_unknown_profile_before_touching_kafka():
    import typer

    from agentstream.cli.schema_commands import register

    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, ["topics", "create", "--bootstrap-servers", "127.0.0.1:1", "--profile", "prod"])
    assert out.exit_code == 2 and "production" in out.output
    assert set(PROFILES) == {"embedded", "production"}
