"""The topic catalog: every topic's key, value schema, partitions, retention and compaction."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# Headers the DLQ and quarantine records carry; consumers of those topics rely on these names.
DLQ_HEADERS = {
    "reason": "x-agentstream-reason",
    "stage": "x-agentstream-stage",
    "source_topic": "x-agentstream-source-topic",
    "source_partition": "x-agentstream-source-partition",
    "source_offset": "x-agentstream-source-offset",
}


# Every agentstream producer (SDK, gateway, API, processors, sink DLQ) sets this, so a record's
# partition depends only on its key and the partition count: a run's events share a partition
# whichever path they took. librdkafka's murmur2_random is the Java client's default partitioner
# (murmur2 of the key bytes, positive, modulo the partitions; random for a null key), so Kafka
# Streams, Connect and Java producers keyed by run_id agree too. librdkafka's own default
# (consistent_random, CRC32) would put a key elsewhere.
PARTITIONER = "murmur2_random"

# Produce requests in flight per broker connection for every idempotent agentstream producer.
# librdkafka's idempotent producer keeps one request in flight per partition and, while it is out
# and the partition's next batch has lingered, polls its broker thread with a zero timeout: a
# broker slower than linger.ms makes every producer spin. With 2, a third partition's request
# waits in the send queue and the thread sleeps until an answer (SDK, 12 tracers: 40.1 -> 21.4
# us/event, bench/sdk_cpu.py; docs/sdk.md "The Kafka producer", bench/sdk_broker_rtt.py).
IDEMPOTENT_MAX_IN_FLIGHT = 2


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``) as a signed 32-bit int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner (and ``PARTITIONER``) gives a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class TopicProfile:
    """How topics are created: ``embedded`` (one Tansu broker, the catalog's retention) or
    ``production`` (replicated, and each topic's production retention)."""

    name: str
    replication_factor: int
    production_retention: bool

    def min_insync_replicas(self, replication_factor: int) -> int:
        # 2 of 3: a write survives one broker lost with it, and one broker may be down (rolling
        # restart) without stopping producers. Never more than RF - 1, or one broker down
        # stops every acks=all producer of the topic.
        return max(1, min(2, replication_factor - 1))


EMBEDDED = TopicProfile("embedded", replication_factor=1, production_retention=False)
PRODUCTION = TopicProfile("production", replication_factor=3, production_retention=True)
PROFILES = {p.name: p for p in (EMBEDDED, PRODUCTION)}


@dataclass(frozen=True)
class TopicSpec:
    logical: str
    key: str
    value_schema: str | None
    partitions: int
    retention_ms: int
    compacted: bool = False
    restricted: bool = False
    doc: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # Retention in the production profile (None: retention_ms). What a day of raw or events
    # costs at fleet rates is in docs/deploy.md ("Retention per topic").
    production_retention_ms: int | None = None

    def config(self, profile: TopicProfile | str = EMBEDDED, replication_factor: int | None = None) -> dict[str, str]:
        profile = PROFILES[profile] if isinstance(profile, str) else profile
        retention = self.retention_ms
        if profile.production_retention and self.production_retention_ms is not None:
            retention = self.production_retention_ms
        conf = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(retention),
        }
        if profile is not EMBEDDED:
            rf = replication_factor or profile.replication_factor
            conf["min.insync.replicas"] = str(profile.min_insync_replicas(rf))
            # an out-of-sync replica never becomes leader: acked records are never dropped
            conf["unclean.leader.election.enable"] = "false"
        conf.update(self.extra)
        return conf


TOPICS: dict[str, TopicSpec] = {
    t.logical: t
    for t in [
        # unredacted: production keeps only what a short processor outage needs replayed
        TopicSpec("raw", "run_id", "agentstream.v1.Event", 12, DAY_MS, restricted=True,
                  doc="unredacted SDK and gateway output; short retention, restricted ACLs",
                  production_retention_ms=HOUR_MS),
        # ClickHouse is the system of record: a day covers a sink or ClickHouse outage
        TopicSpec("events", "run_id", "agentstream.v1.Event", 12, 7 * DAY_MS,
                  doc="redacted events, the input of every detector and the sink",
                  production_retention_ms=DAY_MS),
        TopicSpec("alerts", "tenant_id", "agentstream.v1.Alert", 3, 30 * DAY_MS,
                  doc="detector findings for the sink and alert consumers"),
        TopicSpec("commands", "run_id", "agentstream.v1.Command", 12, HOUR_MS,
                  doc="stop/throttle commands to live runs; useless once the run is over"),
        TopicSpec("policies", "tenant_id", "agentstream.v1.Policy", 1, -1, compacted=True,
                  doc="per-tenant policy, read as a global table; under NUL-prefixed keys, alert "
                      "routing, silence and state records (JSON, schemas/alerting.py)",
                  extra={"min.compaction.lag.ms": "0"}),
        TopicSpec("dlq", "original key", None, 3, 14 * DAY_MS,
                  doc="undecodable or invalid records, original bytes, reason in headers"),
        TopicSpec("quarantine", "run_id", None, 3, 7 * DAY_MS, restricted=True,
                  doc="events redaction could not make safe; never reaches events",
                  production_retention_ms=3 * DAY_MS),
    ]
}


def topic_name(logical: str, prefix: str = "agentstream.") -> str:
    if logical not in TOPICS:
        raise KeyError(f"{logical!r} is not in the topic catalog: {sorted(TOPICS)}")
    return f"{prefix}{logical}"


@dataclass(frozen=True)
class TopicRequest:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def topic_requests(
    prefix: str = "agentstream.",
    partitions: int | None = None,
    profile: TopicProfile | str = EMBEDDED,
    replication_factor: int | None = None,
) -> list[TopicRequest]:
    """What ``create_topics`` asks the broker for, topic by topic."""
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    rf = replication_factor or profile.replication_factor
    return [
        TopicRequest(topic_name(spec.logical, prefix), 1 if spec.compacted else (partitions or spec.partitions),
                     rf, spec.config(profile, rf))
        for spec in TOPICS.values()
    ]


def create_topics(
    bootstrap_servers: str,
    prefix: str = "agentstream.",
    partitions: int | None = None,
    replication_factor: int | None = None,
    client_conf: dict[str, Any] | None = None,
    timeout: float = 30.0,
    profile: TopicProfile | str = EMBEDDED,
) -> list[str]:
    """Creates every catalog topic that does not exist yet; returns the names it created.

    ``partitions`` overrides the catalog's counts (the embedded broker wants few);
    ``replication_factor`` overrides the profile's (a one-broker dev Kafka).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(client_conf or {})})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(r.name, num_partitions=r.partitions, replication_factor=r.replication_factor, config=r.config)
        for r in topic_requests(prefix, partitions, profile, replication_factor)
        if r.name not in existing
    ]
    created: list[str] = []
    if not wanted:  # the admin client refuses an empty request
        return created
    for name, fut in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            fut.result()
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
