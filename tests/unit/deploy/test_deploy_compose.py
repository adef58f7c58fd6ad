"""deploy/compose/compose.yaml is a valid Compose file (the Compose Specification's JSON schema,
vendored) and wires a real Kafka in KRaft mode, a Schema Registry and ClickHouse to the parts."""
from __future__ import annotations

import copy
import hashlib
import json

import jsonschema
import pytest
from deploy_render import DEPLOY

SPEC = DEPLOY / "compose" / "spec" / "compose-spec.json"
SPEC_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
PARTS = {"init", "processors", "sink", "api", "gateway"}


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SPEC.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_vendored_spec_is_the_recorded_one():
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == SPEC_SHA256
    assert (SPEC.parent / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_compose_file_validates(validator, compose):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_validator_rejects_a_broken_compose_file(validator, compose):
    broken = copy.deepcopy(compose)
    broken["services"]["sink"]["depends_on"] = {"init": {"condition": "when_it_feels_like_it"}}
    broken["services"]["api"]["restart"] = ["always"]
    assert len(list(validator.iter_errors(broken))) >= 2


def test_engines(compose):
    s = compose["services"]
    kafka = s["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and not kafka["image"].endswith(":latest")
    env = kafka["environment"]
    # KRaft: the broker is its own controller, no ZooKeeper anywhere.
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not any("zookeeper" in name.lower() for name in s)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "schema-registry" in s and "8081" in s["schema-registry"]["environment"]["SCHEMA_REGISTRY_LISTENERS"]
    assert s["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name in ("kafka", "schema-registry", "clickhouse"):
        assert s[name]["healthcheck"]["test"], name


def test_parts_wait_for_init_and_init_for_the_engines(compose):
    s = compose["services"]
    assert PARTS <= set(s)
    init = s["init"]
    assert init["command"] == ["init"] and init["restart"] == "no"
    assert {k: v["condition"] for k, v in init["depends_on"].items()} == {
        "kafka": "service_healthy", "schema-registry": "service_healthy", "clickhouse": "service_healthy"}
    for name in PARTS - {"init"}:
        assert s[name]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}, name
    # init creates topics (bootstrap), registers schemas (registry) and migrates (sink DSN).
    assert {"AGENTSTREAM_BOOTSTRAP_SERVERS", "AGENTSTREAM_SCHEMA_REGISTRY_URL",
            "AGENTSTREAM_SINK_CLICKHOUSE_DSN"} <= set(init["environment"])


def test_parts_are_hardened_like_the_pods(compose):
    for name in PARTS:
        svc = compose["services"][name]
        assert svc["user"] == "10001:10001" and svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"], name
        assert svc["build"] == {"context": "../..", "dockerfile": "Dockerfile"}, name


def test_parts_reach_the_engines_by_service_name(compose):
    s = compose["services"]
    for name in PARTS - {"init"}:
        env = s[name]["environment"]
        assert any(k.endswith("_BOOTSTRAP_SERVERS") and v == "kafka:9092" for k, v in env.items()), name
        assert any(k.endswith("_SCHEMA_REGISTRY_URL") and v == "http://schema-registry:8081"
                   for k, v in env.items()), name
    for name in ("sink", "api"):
        dsn = next(v for k, v in s[name]["environment"].items() if k.endswith("_CLICKHOUSE_DSN"))
        assert "@clickhouse:8123/agentstream" in dsn, name


def test_dev_api_key_matches_its_hash():
    """The key printed in compose.yaml's header opens the API and the gateway."""
    header = (DEPLOY / "compose" / "compose.yaml").read_text()
    key = header.split("dev key: ", 1)[1].split(")", 1)[0]
    from agentstream.api.auth import hash_key, load_keys

    for keys_file in (DEPLOY / "compose" / "api_keys.json", DEPLOY / "k8s" / "overlays" / "dev" / "api_keys.json"):
        (entry,) = load_keys(keys_file)
        assert entry.key_hash == hash_key(key) and set(entry.scopes) == {"read", "write"}, keys_file


def test_parts_have_readiness_healthchecks_on_their_ports(compose):
    """The image has no curl: the healthcheck asks /readyz with the venv's Python."""
    from deploy_code import settings_class

    ports = {"api": settings_class("API")().port, "gateway": settings_class("GATEWAY")().port,
             "sink": settings_class("SINK")().metrics_port, "processors": settings_class("PROCESSORS")().web_port}
    for name, port in ports.items():
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        assert f"http://127.0.0.1:{port}/readyz" in test[3], name
        compile(test[3], f"{name} healthcheck", "exec")
