"""Schema ids agree with a Confluent-compatible Schema Registry (issue #21).

Records framed without a registry carry the built-in ids of schemas/registry.json.
``agentstream schemas register`` must leave the registry holding exactly those ids (imported in
IMPORT mode) under either subject strategy, every service refuses a registry that holds other
ids, and Confluent's own ``AvroDeserializer`` then reads the records written before the registry
existed. The registry is tests/integration/registry_server.py, driven through confluent-kafka's
SchemaRegistryClient as any Confluent client would.
"""
from __future__ import annotations

import io
import struct
import time
import uuid

import fastavro
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from typer.testing import CliRunner

from agentstream.cli.schema_commands import schemas_app
from agentstream.schemas import COMMAND, EVENT, Codec, RegistryResolver, SchemaIdMismatch, load_catalog, topic_name
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.schemas.registry_sync import subjects_for

from registry_server import RegistryServer

pytestmark = pytest.mark.integration
CATALOG = load_catalog()
NOW = int(time.time()) * 1_000_000


@pytest.fixture
def registry():
    with RegistryServer() as server:
        yield server


def client(server) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": server.url})


def cli(*args: str):
    """``agentstream schemas ...``"""
    assert args[0] == "schemas"
    return CliRunner().invoke(schemas_app, list(args[1:]))


def test_the_test_registry_answers_like_confluent_for_the_client(registry):
    c = client(registry)
    a = '{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}'
    b = '{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}'
    breaking = '{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}'
    assert c.register_schema("s1", Schema(a, "AVRO")) == 1
    assert SchemaRegistryClient({"url": registry.url}).register_schema("s2", Schema(a, "AVRO")) == 1  # one id per schema
    assert c.register_schema("s1", Schema(b, "AVRO")) == 2
    assert c.get_versions("s1") == [1, 2] and c.get_latest_version("s1").schema_id == 2
    assert c.lookup_schema("s1", Schema(a, "AVRO")).version == 1
    assert c.test_compatibility("s1", Schema(breaking, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as err:
        c.register_schema("s1", Schema(breaking, "AVRO"))
    assert err.value.http_status_code == 409
    with pytest.raises(SchemaRegistryError) as err:
        SchemaRegistryClient({"url": registry.url}).get_schema(99)
    assert err.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as err:  # IMPORT on a subject with versions needs force
        c.update_mode("s1", "IMPORT")
    assert err.value.error_code == 42205
    assert c.update_mode("s1", "IMPORT", force=True) == "IMPORT"
    assert c.set_compatibility("s2", "NONE") == {"compatibility": "NONE"}


@pytest.mark.parametrize("strategy", ["topic_name", "record_name"])
def test_register_leaves_the_registry_holding_the_built_in_ids(registry, strategy):
    prefix = f"p{uuid.uuid4().hex[:6]}."
    r = cli("schemas", "register", "--registry-url", registry.url, "--subject-strategy", strategy,
            "--prefix", prefix)
    assert r.exit_code == 0, r.output
    c = client(registry)
    for name in CATALOG.names():
        for v in CATALOG.versions(name):
            assert c.get_schema(v.id).schema_str == v.text  # every built-in id, read back
        for subject in subjects_for(name, strategy, prefix):
            assert [c.get_version(subject, n).schema_id for n in c.get_versions(subject)] == \
                [v.id for v in CATALOG.versions(name)]
    expected = {f"{prefix}raw-value", f"{prefix}events-value"} if strategy == "topic_name" else {EVENT}
    assert expected <= set(c.get_subjects())
    assert c.get_mode(next(iter(expected))) == "READWRITE"  # IMPORT was only for the import
    assert ("PUT", f"/mode/{next(iter(expected))}") in registry.registry.requests
    # the services' start-up check passes, and a second run changes nothing
    assert RegistryResolver(registry.url).writer_id(EVENT) == CATALOG.latest(EVENT).id
    posts = sum(1 for m, _ in registry.registry.requests if m == "POST")
    assert cli("schemas", "register", "--registry-url", registry.url, "--subject-strategy", strategy,
               "--prefix", prefix).exit_code == 0
    assert sum(1 for m, _ in registry.registry.requests if m == "POST") == posts
    assert cli("schemas", "check", "--registry-url", registry.url).exit_code == 0


def test_a_registry_with_other_ids_is_refused_everywhere(registry):
    # someone else's schemas took ids 1 and 2, and this registry has no IMPORT mode
    registry.registry.supports_import = False
    c = client(registry)
    c.register_schema("other-value", Schema('{"type":"string"}', "AVRO"))
    c.register_schema("other2-value", Schema('{"type":"long"}', "AVRO"))
    r = cli("schemas", "register", "--registry-url", registry.url)
    assert r.exit_code == 1
    assert "id 1 holds another schema" in r.output and "id 5" in r.output
    with pytest.raises(SchemaIdMismatch) as err:  # what every service does on start
        RegistryResolver(registry.url)
    assert any("id 1" in p for p in err.value.problems)
    assert cli("schemas", "check", "--registry-url", registry.url).exit_code == 1


def test_an_empty_registry_is_refused_until_register_runs(registry):
    with pytest.raises(SchemaIdMismatch) as err:
        RegistryResolver(registry.url)
    assert "agentstream schemas register" in str(err.value)


def test_a_taken_id_is_not_overwritten_by_the_import(registry):
    registry.registry.schemas[5] = {"schema": '"string"', "fp": '"string"'}
    r = cli("schemas", "register", "--registry-url", registry.url)
    assert r.exit_code == 1 and "id 5 holds another schema" in r.output
    assert registry.registry.schemas[5]["schema"] == '"string"'


def _v1_framed(ev: dict) -> bytes:
    """An Event as a writer from before Event v2 framed it (built-in id 1)."""
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, 1))
    fastavro.schemaless_writer(buf, CATALOG.by_id(1).parsed, {**ev, "payload": (KIND_TO_BRANCH[ev["kind"]], ev["payload"])})
    return buf.getvalue()


def test_confluent_avro_deserializer_reads_records_written_before_the_registry(bootstrap, topic_prefix, registry):
    codec = Codec()  # embedded: no registry exists yet
    run = f"run-{uuid.uuid4()}"
    base = dict(tenant_id="acme", agent_id="a", agent_version="1", environment="prod", run_id=run,
                ts_us=NOW, emitted_us=NOW, sdk_version="test")
    step = {"step_id": "s1", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": NOW, "latency_ms": 2.5,
            "llm": {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 5}}
    v1_event = dict(base, event_id=str(uuid.uuid4()), seq=0, kind="RUN_START", payload={"entrypoint": "main"})
    v2_event = dict(base, event_id=str(uuid.uuid4()), seq=1, kind="STEP", end_user_id="ab" * 32,
                    payload=dict(step, llm=dict(step["llm"], request_digest="cd" * 32)))
    command = {"command_id": "c1", "tenant_id": "acme", "run_id": run, "command_type": "STOP", "reason": "loop",
               "issued_by": "detector", "issued_us": NOW}
    raw, commands = topic_name("raw", topic_prefix), topic_name("commands", topic_prefix)
    sent = [(raw, _v1_framed(v1_event)), (raw, codec.encode(EVENT, v2_event)), (commands, codec.encode(COMMAND, command))]
    p = Producer({"bootstrap.servers": bootstrap})
    for topic, value in sent:
        p.produce(topic, value, run.encode())
    assert p.flush(30) == 0

    r = cli("schemas", "register", "--registry-url", registry.url, "--prefix", topic_prefix)  # TopicNameStrategy
    assert r.exit_code == 0, r.output
    deserializer = AvroDeserializer(client(registry))
    got = {}
    for topic, want in ((raw, 2), (commands, 1)):
        for value in _read(bootstrap, topic, run.encode(), want):
            got[value] = deserializer(value, SerializationContext(topic, MessageField.VALUE))
    v1_read, v2_read, cmd_read = (got[v] for _, v in sent)
    assert v1_read == {**v1_event, "session_id": None, "parent_run_id": None, "parent_step_id": None,
                       "capture_mode": "METADATA_ONLY", "policy_version": "default", "attributes": {},
                       "redaction": None, "payload": {"entrypoint": "main", "role": None, "sampled": True}}
    assert "end_user_id" not in v1_read  # read with its own writer schema, v1
    assert v2_read["end_user_id"] == "ab" * 32 and v2_read["payload"]["llm"]["request_digest"] == "cd" * 32
    assert v2_read == {k: v for k, v in codec.decode_as(EVENT, sent[1][1]).items()}
    assert cmd_read == codec.decode_as(COMMAND, sent[2][1])
    # and agentstream itself, now configured with the registry, reads and writes the same bytes
    registry_codec = Codec(RegistryResolver(registry.url))
    assert registry_codec.encode(EVENT, v2_event) == sent[1][1]
    assert registry_codec.decode_as(EVENT, sent[0][1])["event_id"] == v1_event["event_id"]


def _read(bootstrap: str, topic: str, key: bytes, want: int) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in parts])
    out: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < want and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None and m.key() == key:
                out.append(m.value())
    finally:
        c.close()
    return out
