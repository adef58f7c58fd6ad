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

    def config(self) -> dict[str, str]:
        conf = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(self.retention_ms),
        }
        conf.update(self.extra)
        return conf


TOPICS: dict[str, TopicSpec] = {
    t.logical: t
    for t in [
        TopicSpec("raw", "run_id", "agentstream.v1.Event", 12, DAY_MS, restricted=True,
                  doc="unredacted SDK and gateway output; short retention, restricted ACLs"),
        TopicSpec("events", "run_id", "agentstream.v1.Event", 12, 7 * DAY_MS,
                  doc="redacted events, the input of every detector and the sink"),
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
                  doc="events redaction could not make safe; never reaches events"),
    ]
}


def topic_name(logical: str, prefix: str = "agentstream.") -> str:
    if logical not in TOPICS:
        raise KeyError(f"{logical!r} is not in the topic catalog: {sorted(TOPICS)}")
    return f"{prefix}{logical}"


def create_topics(
    bootstrap_servers: str,
    prefix: str = "agentstream.",
    partitions: int | None = None,
    replication_factor: int = 1,
    client_conf: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Creates every catalog topic that does not exist yet; returns the names it created.

    ``partitions`` overrides the catalog's counts (the embedded broker wants few).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(client_conf or {})})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(
            topic_name(spec.logical, prefix),
            num_partitions=1 if spec.compacted else (partitions or spec.partitions),
            replication_factor=replication_factor,
            config=spec.config(),
        )
        for spec in TOPICS.values()
        if topic_name(spec.logical, prefix) not in existing
    ]
    created: list[str] = []
    if not wanted:  # the admin client refuses an empty request
        return created
    for name, fut in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            fut.result()
            created.append(name)
        except Exception as exc:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
