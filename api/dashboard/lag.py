"""Consumer lag per pipeline stage, read from Kafka: committed offsets against end offsets.

Each consumer group reading one of the catalog's topics (under the API's prefix) is one stage: the
redaction processor reads ``raw``, the detectors and the sink read ``events``, the sink reads
``alerts``. Lag is ``end offset - committed offset`` summed over partitions.

The end offset is what the broker reports, and a broker can report it short: Tansu 0.6 answers a
high watermark of 1 for a partition holding hundreds of records. So lag is a lower bound, marked
``exact: False`` whenever any partition's committed offset is above its reported end (the one
case where the report is provably wrong), and the dashboard always shows it with that caveat. The
consumed rate (committed offsets advancing between two reads) does not depend on the end offset.

The pipeline is shared by every tenant, so its offsets count every tenant's records: a tenant's
dashboard gets ``tenant_view`` only (the pipeline's own stages, each caught up or behind by an
order of magnitude), never group ids, offsets or rates. The full reading is for operators, on the
broker's own tools.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentstream.schemas import TOPICS, topic_name

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

# What a stage is called, by the logical topic it reads; the group id says who reads it.
STAGE_OF_TOPIC = {
    "raw": "redaction (raw → events)",
    "events": "events consumer",
    "alerts": "alerts consumer",
    "commands": "commands consumer",
    "policies": "policies table",
    "dlq": "DLQ consumer",
    "quarantine": "quarantine consumer",
}


@dataclass
class StageLag:
    group_id: str
    topic: str
    stage: str
    partitions: int
    committed: int
    reported_end: int
    lag: int
    exact: bool
    rate_per_s: float | None = None
    detail: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "group_id", "topic", "stage", "partitions", "committed", "reported_end", "lag",
            "exact", "rate_per_s", "detail")}


def stage_name(group_id: str, logical: str) -> str:
    g = group_id.lower()
    if "sink" in g:
        return f"sink ({logical} → ClickHouse)"
    if logical == "raw":
        return STAGE_OF_TOPIC["raw"]
    if logical == "events" and ("processor" in g or "detect" in g or "faust" in g):
        return "detectors (events → alerts, commands)"
    return f"{STAGE_OF_TOPIC.get(logical, logical)} [{group_id}]"


class LagReader:
    """Reads every group's lag; results are cached briefly so page views do not hammer Kafka."""

    def __init__(self, bootstrap_servers: str, prefix: str, client_conf: dict[str, str] | None = None,
                 timeout_s: float = 5.0, cache_s: float = 2.0) -> None:
        self.bootstrap = bootstrap_servers
        self.prefix = prefix
        self.conf = dict(client_conf or {})
        self.timeout = timeout_s
        self.cache_s = cache_s
        self._admin: AdminClient | None = None
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._last_committed: dict[tuple[str, str], tuple[float, int]] = {}

    def _admin_client(self):
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient({"bootstrap.servers": self.bootstrap, **self.conf})
        return self._admin

    def read(self) -> dict[str, Any]:
        if not self.bootstrap:
            return {"available": False, "stages": [], "note": "no Kafka configured for the API "
                    "(AGENTSTREAM_API_BOOTSTRAP_SERVERS); lag is unknown"}
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < self.cache_s:
                return self._cached[1]
            try:
                out = {"available": True, "stages": [s.to_json() for s in self._read_stages(now)]}
            except Exception as exc:  # noqa: BLE001 - Kafka being down is a state to show, not a 500
                out = {"available": False, "stages": [], "note": f"Kafka unavailable: {exc}"}
            out["caveat"] = ("Lag = reported end offset − committed offset. Some brokers (the embedded "
                             "Tansu) report end offsets short, so this is a lower bound, never exact.")
            self._cached = (now, out)
            return out

    def _read_stages(self, now: float) -> list[StageLag]:
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        admin = self._admin_client()
        ours = {topic_name(t, self.prefix): t for t in TOPICS}
        groups = admin.list_consumer_groups(request_timeout=self.timeout).result(timeout=self.timeout)
        committed: dict[tuple[str, str], dict[int, int]] = {}
        for g in groups.valid:
            try:
                fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g.group_id)],
                                                        request_timeout=self.timeout)[g.group_id]
                res = fut.result(timeout=self.timeout)
            except (KafkaException, TimeoutError):  # a group that vanished meanwhile
                continue
            for tp in res.topic_partitions or []:
                if tp.topic in ours and tp.offset >= 0:
                    committed.setdefault((g.group_id, tp.topic), {})[tp.partition] = tp.offset
        if not committed:
            return []
        wanted = {TopicPartition(t, p): OffsetSpec.latest()
                  for (_, t), parts in committed.items() for p in parts}
        ends: dict[tuple[str, int], int] = {}
        for tp, fut in admin.list_offsets(wanted, request_timeout=self.timeout).items():
            try:
                ends[(tp.topic, tp.partition)] = fut.result(timeout=self.timeout).offset
            except (KafkaException, TimeoutError):  # no answer for it: shown as unknown (-1)
                ends[(tp.topic, tp.partition)] = -1
        stages = []
        for (group, topic), parts in sorted(committed.items()):
            detail, lag, end_sum, exact = [], 0, 0, True
            for p, off in sorted(parts.items()):
                end = ends.get((topic, p), -1)
                if end < 0 or end < off:
                    exact = False
                plag = max(0, end - off) if end >= 0 else 0
                lag += plag
                end_sum += max(end, 0)
                detail.append({"partition": p, "committed": off, "reported_end": end, "lag": plag})
            total = sum(parts.values())
            rate = None
            prev = self._last_committed.get((group, topic))
            if prev and now > prev[0]:
                rate = round(max(0, total - prev[1]) / (now - prev[0]), 2)
            self._last_committed[(group, topic)] = (now, total)
            stages.append(StageLag(group, topic, stage_name(group, ours[topic]), len(parts), total,
                                   end_sum, lag, exact, rate, detail))
        return stages


# The pipeline's own stages, by the names ``stage_name`` gives them; any other group (a tool, a
# forwarder run by someone) is not shown: its name and pace are its owner's.
_PIPELINE_STAGES = ("redaction (raw → events)", "detectors (events → alerts, commands)")
# Lag as an order of magnitude: whether the pipeline keeps up, not how much anyone sent.
_BUCKETS = ((0, "none"), (1_000, "under 1,000"), (100_000, "1,000 – 100,000"))


def lag_bucket(lag: int) -> str:
    for bound, label in _BUCKETS:
        if lag <= bound:
            return label
    return "over 100,000"


def tenant_view(reading: dict[str, Any]) -> dict[str, Any]:
    """What any tenant's session may see of ``LagReader.read()``: per pipeline stage whether it is
    behind, and by how much to an order of magnitude (the worst of its groups)."""
    worst: dict[str, tuple[int, bool]] = {}
    for s in reading.get("stages") or []:
        if s.get("stage") not in _PIPELINE_STAGES and not str(s.get("stage")).startswith("sink ("):
            continue
        lag, exact = worst.get(s["stage"], (0, True))
        worst[s["stage"]] = (max(lag, int(s.get("lag") or 0)), exact and bool(s.get("exact", True)))
    stages = [{"stage": name, "behind": lag > 0, "lag": lag_bucket(lag), "exact": exact}
              for name, (lag, exact) in sorted(worst.items())]
    out: dict[str, Any] = {"available": bool(reading.get("available")), "stages": stages}
    if not reading.get("available"):
        # Kafka's own error text names brokers and hosts: a fixed sentence instead.
        out["note"] = "consumer lag is unavailable right now"
    if reading.get("caveat"):
        out["caveat"] = ("Lag is shared by every tenant of this deployment, shown as an order of "
                         "magnitude. " + reading["caveat"])
    return out
