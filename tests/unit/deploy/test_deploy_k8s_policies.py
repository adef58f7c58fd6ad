"""What every overlay must guarantee: hardened pods, probes, resources, disruption budgets,
autoscaling capped at the partition count, network policies covering every pod, secrets only
as references."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_code import processors_raw_group
from deploy_render import OVERLAYS, ROOT, agentstream_workloads, by_name, configmap_value, of_kind

from agentstream.schemas.topics import TOPICS

LONG_RUNNING = {"api", "gateway", "sink", "processors"}
SECRET_NAMES = {"agentstream-secrets", "agentstream-api-keys"}


def _containers(workload):
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_part_is_deployed(overlays, overlay):
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"]
                  for d in agentstream_workloads(overlays[overlay])}
    assert components == LONG_RUNNING | {"init"}
    (job,) = of_kind(overlays[overlay], "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["init"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_restricted_security_context(overlays, overlay):
    for w in agentstream_workloads(overlays[overlay]):
        pod = w["spec"]["template"]["spec"]
        where = f"{overlay} {w['kind']}/{w['metadata']['name']}"
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0 and psc["runAsGroup"] > 0, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), where
        for c in _containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            # A read-only root needs somewhere to write: /tmp and the working directory.
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert {"/tmp", "/var/lib/agentstream"} <= mounts, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_and_probes(overlays, overlay):
    for w in agentstream_workloads(overlays[overlay]):
        where = f"{overlay} {w['kind']}/{w['metadata']['name']}"
        for c in _containers(w):
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), where
            assert not c["image"].endswith(":latest") and ":" in c["image"], f"{where}: unpinned image"
            if w["kind"] == "Deployment":
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    assert c[probe]["httpGet"]["path"].startswith("/"), f"{where}: {probe}"
                # Liveness must not depend on downstream clusters (a Kafka outage would restart
                # every pod); readiness does.
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", where
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget(overlays, overlay):
    docs = overlays[overlay]
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for d in of_kind(docs, "Deployment"):
        labels = d["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, f"{overlay} Deployment/{d['metadata']['name']}: {len(covering)} PDBs"
        spec = covering[0]["spec"]
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling(overlays, overlay):
    docs = overlays[overlay]
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(docs, "ScaledObject")}
    assert set(hpas) == {"agentstream-api", "agentstream-gateway"}
    assert set(scaled) == {"agentstream-processors", "agentstream-sink"}
    assert not set(hpas) & set(scaled), "one autoscaler per Deployment"
    for name in set(hpas) | set(scaled):
        dep = by_name(docs, "Deployment", name)
        # A replicas field would be reset by every `kubectl apply`, fighting the autoscaler.
        assert "replicas" not in dep["spec"], f"{overlay} {name} sets replicas under an autoscaler"
    api = hpas["agentstream-api"]["spec"]
    assert api["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= api["minReplicas"] <= api["maxReplicas"]
    prefix = configmap_value(docs, "agentstream-cluster", "TOPIC_PREFIX")
    bootstrap = configmap_value(docs, "agentstream-cluster", "KAFKA_BOOTSTRAP_SERVERS")
    for name, so in scaled.items():
        topics = [t["metadata"]["topic"] for t in so["spec"]["triggers"]]
        partitions = []
        for topic in topics:
            assert topic.startswith(prefix), f"{name}: {topic} lacks the prefix {prefix!r}"
            logical = topic[len(prefix):]
            assert logical in TOPICS, f"{name}: {topic} is not in the topic catalog"
            partitions.append(TOPICS[logical].partitions)
        # More consumers than partitions would sit idle.
        assert so["spec"]["maxReplicaCount"] <= max(partitions), f"{overlay} {name}: above partitions"
        for t in so["spec"]["triggers"]:
            assert t["metadata"]["bootstrapServers"] == bootstrap, f"{overlay} {name}: stale bootstrap"
            env = {e["name"]: e.get("value") for e in by_name(docs, "Deployment", name)["spec"]["template"]
                   ["spec"]["containers"][0]["env"]}
            if name == "agentstream-sink":
                group = env["AGENTSTREAM_SINK_GROUP_ID"]
            else:
                group = processors_raw_group(env["AGENTSTREAM_PROCESSORS_APP_ID"])
            assert t["metadata"]["consumerGroup"] == group, f"{overlay} {name}: lag of a group it is not in"


def test_prod_caps_reach_the_partition_count(overlays):
    """prod may use every partition: its caps are exactly the partitions of the input topic."""
    for so in of_kind(overlays["prod"], "ScaledObject"):
        logical = [t["metadata"]["topic"].split(".", 1)[1] for t in so["spec"]["triggers"]]
        assert so["spec"]["maxReplicaCount"] == max(TOPICS[t].partitions for t in logical)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_cover_every_pod(overlays, overlay):
    docs = overlays[overlay]
    policies = of_kind(docs, "NetworkPolicy")

    def selects(pol, labels):
        sel = pol["spec"]["podSelector"]
        if not sel.get("matchLabels", {}).items() <= labels.items():
            return False
        for expr in sel.get("matchExpressions", []):
            assert expr["operator"] == "In"
            if labels.get(expr["key"]) not in expr["values"]:
                return False
        return True

    for w in agentstream_workloads(docs):
        labels = w["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if selects(p, labels)]
        kinds = {t for p in mine for t in p["spec"]["policyTypes"]}
        where = f"{overlay} {w['metadata']['name']}"
        assert kinds == {"Ingress", "Egress"}, where
        assert any(not p["spec"].get("ingress") and not p["spec"].get("egress") for p in mine), \
            f"{where}: no default deny"
        egress_ports = {port["port"] for p in mine for rule in p["spec"].get("egress", []) for port in rule["ports"]}
        assert 53 in egress_ports and 9092 in egress_ports, where
        component = labels["app.kubernetes.io/component"]
        # ClickHouse only for the parts that read or write tables.
        assert (8123 in egress_ports) == (component in {"api", "sink", "init"}), where
        ingress_ports = {port["port"] for p in mine for rule in p["spec"].get("ingress", [])
                         for port in rule["ports"]}
        container_ports = {port["containerPort"] for c in _containers(w) for port in c.get("ports", [])}
        assert container_ports <= ingress_ports, f"{where}: ports {container_ports - ingress_ports} unreachable"


def test_dev_secrets_resolve_and_prod_ships_none(overlays):
    for overlay in OVERLAYS:
        docs = overlays[overlay]
        secrets = {s["metadata"]["name"].rsplit("-", 1)[0]: s for s in of_kind(docs, "Secret")}
        for w in agentstream_workloads(docs):
            pod = w["spec"]["template"]["spec"]
            refs = [(e["valueFrom"]["secretKeyRef"], e["name"]) for c in pod["containers"] for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})]
            refs += [({"name": v["secret"]["secretName"], "key": i["key"]}, v["name"])
                     for v in pod.get("volumes", []) if "secret" in v for i in v["secret"]["items"]]
            for ref, what in refs:
                base_name = ref["name"].rsplit("-", 1)[0] if overlay == "dev" else ref["name"]
                assert base_name in SECRET_NAMES, f"{overlay} {what}: unknown Secret {ref['name']}"
                if overlay == "dev" and not ref.get("optional"):
                    keys = set(secrets[base_name].get("data", {}))
                    assert ref["key"] in keys, f"dev {what}: Secret {base_name} has no key {ref['key']}"
        if overlay == "prod":
            assert not secrets, "prod must not carry secret values; the Secrets are created out of band"


def test_secret_keys_are_documented():
    """prod users create the Secrets by hand: docs/deploy.md must list every key a manifest reads."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    keys = set()
    for path in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml"):
        text = path.read_text()
        for line in text.splitlines():
            if "secretKeyRef" in line:
                keys.add(line.split("key:")[1].split(",")[0].strip(" }"))
        if "secretName: agentstream-api-keys" in text:
            keys.add("api_keys.json")
    assert keys >= {"clickhouse-dsn", "schema-registry-url", "hash-key", "args-digest-key",
                    "kafka-client-config", "api_keys.json"}
    missing = [k for k in sorted(keys) if f"`{k}`" not in doc]
    assert not missing, f"docs/deploy.md does not document Secret keys {missing}"


def test_namespaces_enforce_restricted_pod_security(overlays):
    for overlay in OVERLAYS:
        (ns,) = of_kind(overlays[overlay], "Namespace")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert all(d["metadata"].get("namespace") == ns["metadata"]["name"]
                   for d in overlays[overlay] if d["kind"] != "Namespace")


def test_no_plaintext_credentials_in_manifests():
    """Outside the dev overlay's named dev-only literals, no URL carries user:password@ and no
    field holds a password."""
    userinfo = re.compile(r"://[^\s/@:]+:[^\s/@]+@")
    password_field = re.compile(r"^\s*-?\s*(password|passwd)\s*:\s*\S", re.I)
    for path in Path(ROOT / "deploy" / "k8s").rglob("*.yaml"):
        if "overlays/dev" in str(path):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            assert not userinfo.search(code) and not password_field.match(code), f"{path}:{n}: {line}"
