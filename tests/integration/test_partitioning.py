"""One partitioner everywhere (issue #21): a run's records land on the partition Java's default
partitioner (murmur2) gives its run_id, whichever path wrote them: the SDK, POST /v1/ingest,
OTLP /v1/traces, the API's producer (commands) and the processors' emitter (events). Against
the real broker, on topics with 12 partitions, for several runs, so agreement by chance is out.
The same runs carry an end user's id on every path: with one key, the SDK and the gateway store
one keyed digest for it, and the raw id is on no record.
"""
from __future__ import annotations

import time
import uuid
import zlib

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agentstream.api.auth import add_key
from agentstream.api.gateway import GatewaySettings
from agentstream.api.gateway.server import ThreadedGateway, free_port
from agentstream.api.kafka_io import KafkaWriter
from agentstream.api.settings import ApiSettings
from agentstream.producer import Tracer
from agentstream.schemas import COMMAND, EVENT, Codec, partition_for, topic_name
from agentstream.schemas.digests import end_user_digest
from agentstream.schemas.topics import create_topics
from agentstream.stream_processors.emitter import Emitter
from agentstream.stream_processors.records import OutRecord

pytestmark = pytest.mark.integration
PARTITIONS = 12
RUNS = 6
KEY = "fleet-digest-key-0123456789"
USER = "alice@example.com"


@pytest.fixture(scope="module")
def prefix(bootstrap):
    p = "part" + uuid.uuid4().hex[:6] + "."
    create_topics(bootstrap, prefix=p, partitions=PARTITIONS)
    return p


def _read(bootstrap: str, topic: str, keys: set[bytes], want: int) -> list[tuple[bytes, int, bytes]]:
    """(key, partition, value) of every record with one of ``keys``; never stops at the high
    watermark (Tansu reports it short): reads until ``want`` arrived or 30 s passed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in range(PARTITIONS)])
    out: list[tuple[bytes, int, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < want and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None and m.key() in keys:
                out.append((m.key(), m.partition(), m.value()))
    finally:
        c.close()
    return out


def test_every_path_puts_a_run_on_its_murmur2_partition(bootstrap, prefix, tmp_path):
    # OTLP's run id is the trace id, so every path uses 32-hex run ids
    runs = [uuid.uuid4().hex for _ in range(RUNS)]
    expected = {r: partition_for(r.encode(), PARTITIONS) for r in runs}
    assert len(set(expected.values())) > 1  # the runs spread: a constant partition proves nothing
    # and librdkafka's default (consistent_random: CRC32) would put some elsewhere
    assert any(zlib.crc32(r.encode()) % PARTITIONS != p for r, p in expected.items())
    now_us = time.time_ns() // 1000

    tracer = Tracer("acme", "sdk-agent", "1.0", "test", bootstrap_servers=bootstrap, topic_prefix=prefix,
                    commands_enabled=False, spool_dir=str(tmp_path / "spool"), digest_key=KEY)
    for r in runs:
        with tracer.run("sdk", run_id=r, end_user_id=USER):
            pass
    assert tracer.flush(30)
    tracer.close(10)

    keys = tmp_path / "keys.json"
    key = add_key(keys, "acme", scopes=["write"], name="writer")
    gw = ThreadedGateway(GatewaySettings(bootstrap_servers=bootstrap, topic_prefix=prefix,
                                         api_keys_file=str(keys), port=free_port(),
                                         args_digest_key=KEY)).start()
    try:
        gw.wait_ready()
        auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        events = [{"agent_id": "http-agent", "agent_version": "1", "environment": "test", "run_id": r, "seq": 0,
                   "ts_us": now_us, "kind": "RUN_START", "payload": {"entrypoint": "http"},
                   "end_user_id": USER} for r in runs]
        resp = httpx.post(gw.url + "/v1/ingest", json={"events": events}, headers=auth, timeout=60)
        assert resp.status_code == 200, resp.text
        t = time.time_ns()
        spans = [{"traceId": r, "spanId": uuid.uuid4().hex[:16], "name": "agent run",
                  "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 1_000_000),
                  "attributes": [{"key": "enduser.id", "value": {"stringValue": USER}}]} for r in runs]
        body = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "otlp-agent"}}]},
            "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}
        resp = httpx.post(gw.url + "/v1/traces", json=body, headers=auth, timeout=60)
        assert resp.status_code == 200, resp.text
    finally:
        gw.stop()

    writer = KafkaWriter(ApiSettings(bootstrap_servers=bootstrap, topic_prefix=prefix))
    for r in runs:
        writer.write("commands", r, COMMAND, {"command_id": str(uuid.uuid4()), "tenant_id": "acme", "run_id": r,
                                              "command_type": "STOP", "reason": "test", "issued_by": "api",
                                              "issued_us": now_us})
    emitter = Emitter(bootstrap)
    emitter.produce_all(OutRecord(topic_name("events", prefix), r.encode(), b"x") for r in runs)
    emitter.flush_sync(30)
    emitter.close()

    wanted = {r.encode() for r in runs}
    codec = Codec()
    # per run on raw: the SDK's RUN_START + RUN_END, ingest's RUN_START, OTLP's RUN_START + RUN_END
    raw = _read(bootstrap, topic_name("raw", prefix), wanted, 5 * RUNS)
    paths: dict[str, set[str]] = {r: set() for r in runs}
    for k, part, value in raw:
        ev = codec.decode_as(EVENT, value)
        paths[k.decode()].add(ev["agent_id"])
        assert USER.encode() not in value
        assert ev["end_user_id"] == end_user_digest(KEY.encode(), USER), ev["agent_id"]
        assert part == expected[k.decode()], (ev["agent_id"], k, part)
    assert all(p == {"sdk-agent", "http-agent", "otlp-agent"} for p in paths.values()), paths
    for logical in ("commands", "events"):
        got = _read(bootstrap, topic_name(logical, prefix), wanted, RUNS)
        assert len(got) == RUNS
        assert all(part == expected[k.decode()] for k, part, _ in got), logical
