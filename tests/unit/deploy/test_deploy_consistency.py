"""The deployment artefacts agree with the code: every environment variable is a real setting
(and its value parses), every probe path and port is served, every topic is in the catalog."""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from deploy_code import (
    ENV_NAME,
    PART_OF_ENTRYPOINT,
    SETTINGS,
    cli_envvars,
    cli_root,
    resolve_env_value,
    settings_class,
    split_env_name,
)
from deploy_render import COMPOSE_FILE, KUSTOMIZATIONS, OVERLAYS, agentstream_workloads, by_name, of_kind

from agentstream.schemas.topics import PRODUCTION, TOPICS, topic_name

TOPIC_REF = re.compile(r"(?<![\w/.-])agentstream\.([a-z_]+)(?![\w-])")
COMPOSE_DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


@pytest.fixture(scope="module")
def root():
    return cli_root()


def _k8s_containers(docs):
    for w in agentstream_workloads(docs):
        for c in w["spec"]["template"]["spec"]["containers"]:
            yield f"{w['kind']}/{w['metadata']['name']}", c


def _compose_parts(compose):
    for name, svc in compose["services"].items():
        if svc.get("image", "").startswith("agentstream:"):
            yield name, svc


def _check_env(where: str, entrypoint_arg: str, names: list[str], cli_env: dict[str, list[str]]) -> None:
    allowed_parts = PART_OF_ENTRYPOINT[entrypoint_arg]
    for name in names:
        assert ENV_NAME.match(name), f"{where}: {name} is not an agentstream variable"
        part, field = split_env_name(name)
        if part is None:
            assert name in cli_env, f"{where}: {name} is read by no `agentstream` command option"
            continue
        assert part in allowed_parts, f"{where}: {name} belongs to {part}, but the container runs {entrypoint_arg}"
        cls = settings_class(part)
        assert cls.model_config["env_prefix"] == f"AGENTSTREAM_{part}_", cls
        assert field in cls.model_fields, (
            f"{where}: {name} is not a setting: {cls.__name__} has no field {field!r} "
            f"(fields: {sorted(cls.model_fields)})")


@pytest.mark.parametrize("part", sorted(SETTINGS))
def test_every_part_has_its_settings_class(part):
    assert settings_class(part).model_fields


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifest_env_vars_are_settings(overlays, overlay, root):
    cli_env = cli_envvars(root)
    for where, c in _k8s_containers(overlays[overlay]):
        assert not c.get("envFrom"), f"{where}: envFrom hides which variables are set"
        _check_env(f"{overlay} {where}", c["args"][0], [e["name"] for e in c["env"]], cli_env)


def test_compose_env_vars_are_settings(compose, root):
    cli_env = cli_envvars(root)
    for name, svc in _compose_parts(compose):
        _check_env(f"compose {name}", svc["command"][0], list(svc["environment"]), cli_env)


def _build(part: str, env: dict[str, str | None], monkeypatch) -> Any:
    for key in list(__import__("os").environ):
        if key.startswith(f"AGENTSTREAM_{part}_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if value is not None and split_env_name(key)[0] == part:
            monkeypatch.setenv(key, value)
    return settings_class(part)()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifest_env_values_parse(overlays, overlay, monkeypatch):
    """The settings class accepts every value the manifests give it (dev resolves its
    generated Secrets; prod's Secrets exist only in the cluster, so only their literals)."""
    docs = overlays[overlay]
    for where, c in _k8s_containers(docs):
        env = {}
        for e in c["env"]:
            if overlay == "prod" and "secretKeyRef" in e.get("valueFrom", {}):
                continue
            env[e["name"]] = resolve_env_value(e, docs)
        for part in PART_OF_ENTRYPOINT[c["args"][0]]:
            with monkeypatch.context() as m:
                s = _build(part, env, m)
            for key, value in env.items():
                p, field = split_env_name(key)
                if p == part and value is not None:
                    _assert_parsed(f"{overlay} {where}: {key}", getattr(s, field), value)


def _assert_parsed(where: str, actual: Any, value: str) -> None:
    if isinstance(actual, bool):
        assert actual == (value.lower() in ("1", "true", "yes", "on")), f"{where}={value!r} -> {actual!r}"
    elif isinstance(actual, (int, float)):
        assert actual == type(actual)(value), f"{where}={value!r} -> {actual!r}"
    elif isinstance(actual, (str, Path)):
        assert str(actual) == value, f"{where}={value!r} -> {actual!r}"


def test_compose_env_values_parse(compose, monkeypatch):
    for _name, svc in _compose_parts(compose):
        env = {k: COMPOSE_DEFAULT.sub(r"\1", str(v)) for k, v in svc["environment"].items()}
        for part in PART_OF_ENTRYPOINT[svc["command"][0]]:
            with monkeypatch.context() as m:
                _build(part, env, m)


# --- probes and ports ---------------------------------------------------------------------------

def _container(docs, deployment: str) -> dict[str, Any]:
    return by_name(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def _probe_paths(c) -> set[str]:
    return {c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}


def _port_of(c, env_name: str | None, default: int) -> int:
    env = {e["name"]: e.get("value") for e in c["env"]}
    return int(env[env_name]) if env_name and env.get(env_name) else default


def _declared_ports(c) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def _scrape_port(docs, deployment: str) -> int:
    ann = by_name(docs, "Deployment", deployment)["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/path"] == "/metrics"
    return int(ann["prometheus.io/port"])


def _ask(client, where: str, paths: set[str]) -> None:
    """Liveness and metrics answer 200 with nothing behind them; readiness may say 503 (no
    ClickHouse or Kafka here) but must exist."""
    for path in sorted(paths):
        status = client.get(path).status_code
        if path == "/readyz":
            assert status in (200, 503), f"{where} {path}: HTTP {status}"
        else:
            assert status == 200, f"{where} {path}: HTTP {status}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_probes_and_port(overlays, overlay, tmp_path):
    from fastapi.testclient import TestClient

    from agentstream.api.app import create_app

    cls = settings_class("API")
    app = create_app(cls(api_keys_file=tmp_path / "keys.json", clickhouse_dsn="http://127.0.0.1:9/none",
                         clickhouse_query_timeout_s=2.0))
    c = _container(overlays[overlay], "agentstream-api")
    _ask(TestClient(app), "query API", _probe_paths(c) | {"/metrics"})
    port = _port_of(c, "AGENTSTREAM_API_PORT", cls().port)
    assert _declared_ports(c) == {"http": port} and _scrape_port(overlays[overlay], "agentstream-api") == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_probes_and_port(overlays, overlay, tmp_path):
    from fastapi.testclient import TestClient

    from agentstream.api.gateway.app import create_gateway_app

    cls = settings_class("GATEWAY")
    app = create_gateway_app(cls(api_keys_file=str(tmp_path / "keys.json"), bootstrap_servers="127.0.0.1:9"))
    c = _container(overlays[overlay], "agentstream-gateway")
    # Not entering the client's context: the app's lifespan (which starts the producer) stays off.
    _ask(TestClient(app), "gateway", _probe_paths(c) | {"/metrics"})
    port = _port_of(c, "AGENTSTREAM_GATEWAY_PORT", cls().port)
    assert _declared_ports(c) == {"http": port} and _scrape_port(overlays[overlay], "agentstream-gateway") == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sink_probes_and_port(overlays, overlay):
    """Starts the sink's real probe server on a free loopback port and asks it every path."""
    from agentstream.sink.probes import serve_probes

    class Health:  # the one method the probe server calls on the sink
        def health(self) -> dict[str, Any]:
            return {"ready": True, "paused": False, "alive": True, "failed": None, "stuck_seconds": 0.0}

    cls = settings_class("SINK")
    c = _container(overlays[overlay], "agentstream-sink")
    server = serve_probes(Health(), "127.0.0.1", 0)
    try:
        port = server.server_address[1]
        for path in _probe_paths(c) | {"/metrics"}:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200, path
    finally:
        server.shutdown()
        server.server_close()
    port = _port_of(c, "AGENTSTREAM_SINK_METRICS_PORT", cls().metrics_port)
    assert port == cls().metrics_port == 9108
    assert _declared_ports(c) == {"metrics": port} and _scrape_port(overlays[overlay], "agentstream-sink") == port


@pytest.fixture(scope="module")
def processors_app(tmp_path_factory):
    from agentstream.stream_processors.app import create_app

    cls = settings_class("PROCESSORS")
    # A closed port: building the app must not need a broker; nothing here sends.
    s = cls(data_dir=Path(tmp_path_factory.mktemp("processors")), bootstrap_servers="127.0.0.1:9")
    return create_app(s, partitions=4)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_processors_probes_and_port(overlays, overlay, processors_app):
    cls = settings_class("PROCESSORS")
    c = _container(overlays[overlay], "agentstream-processors")
    views = set(processors_app.web.views)
    for path in _probe_paths(c) | {"/metrics"}:
        assert path in views, f"the processors' faust web serves no {path} (pages: {sorted(views)})"
    port = _port_of(c, "AGENTSTREAM_PROCESSORS_WEB_PORT", cls().web_port)
    assert processors_app.conf.web_port == cls().web_port == port
    assert _declared_ports(c) == {"metrics": port}
    assert _scrape_port(overlays[overlay], "agentstream-processors") == port


def test_services_target_declared_ports(overlays):
    for overlay, docs in overlays.items():
        for svc in of_kind(docs, "Service"):
            selected = [w for w in agentstream_workloads(docs)
                        if svc["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()]
            assert len(selected) == 1, f"{overlay} Service/{svc['metadata']['name']} selects {len(selected)}"
            names = {p["name"] for c in selected[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
            for p in svc["spec"]["ports"]:
                assert p["targetPort"] in names, f"{overlay} Service/{svc['metadata']['name']}: {p}"


def test_compose_ports_match_settings(compose):
    defaults = {"api": settings_class("API")().port, "gateway": settings_class("GATEWAY")().port,
                "sink": settings_class("SINK")().metrics_port,
                "processors": settings_class("PROCESSORS")().web_port}
    for name, svc in _compose_parts(compose):
        for mapping in svc.get("ports", []):
            host, container = str(mapping).split(":")
            assert int(container) == defaults[svc["command"][0]], f"compose {name}: {mapping}"


# --- topics -------------------------------------------------------------------------------------

def _strings(node: Any):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_every_topic_named_is_in_the_catalog(rendered, compose):
    seen = set()
    sources = {rel: rendered[rel] for rel in KUSTOMIZATIONS}
    sources["compose"] = compose
    for where, docs in sources.items():
        for s in _strings(docs):
            for logical in TOPIC_REF.findall(s):
                seen.add(logical)
                assert logical in TOPICS, f"{where}: agentstream.{logical} is not in the topic catalog"
    assert {"raw", "events", "alerts"} <= seen


def test_strimzi_topics_equal_the_catalog(rendered):
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(rendered["examples/strimzi"], "KafkaTopic")}
    assert set(topics) == {topic_name(logical) for logical in TOPICS}
    for logical, spec in TOPICS.items():
        t = topics[topic_name(logical)]
        assert t["partitions"] == (1 if spec.compacted else spec.partitions), logical
        assert t["replicas"] == PRODUCTION.replication_factor, logical
        for key, value in spec.config(PRODUCTION).items():
            assert t["config"][key] == value, f"{logical}: {key}"


def test_sink_and_processor_inputs_match_the_code(overlays):
    """The KEDA triggers watch the topics the code actually consumes."""
    sink_topics = {topic_name(t) for t in settings_class("SINK")().topics}
    for docs in overlays.values():
        so = by_name(docs, "ScaledObject", "agentstream-sink")
        assert {t["metadata"]["topic"] for t in so["spec"]["triggers"]} == sink_topics
        so = by_name(docs, "ScaledObject", "agentstream-processors")
        assert {t["metadata"]["topic"] for t in so["spec"]["triggers"]} == {topic_name("raw")}


def test_compose_file_is_the_one_documented():
    assert COMPOSE_FILE.name == "compose.yaml" and json.dumps  # docs/deploy.md links this path
    assert "deploy/compose/compose.yaml" in (COMPOSE_FILE.parents[2] / "docs" / "deploy.md").read_text()


def test_run_on_kubernetes_snippet_matches_the_manifests(overlays):
    """The three lines the README quotes apply kustomizations that exist and reach a Service
    the dev overlay renders."""
    doc = (COMPOSE_FILE.parents[2] / "docs" / "deploy.md").read_text()
    section = doc.split("## Run on Kubernetes", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 3
    applied = re.findall(r"kubectl apply -k (\S+)", "\n".join(block))
    assert applied and all(p.removeprefix("deploy/k8s/") in KUSTOMIZATIONS for p in applied), applied
    m = re.search(r"kubectl -n (\S+) port-forward svc/(\S+) (\d+):(\d+)", block[2])
    ns, svc, _, port = m.groups()
    service = by_name(overlays["dev"], "Service", svc)
    assert service["metadata"]["namespace"] == ns
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
