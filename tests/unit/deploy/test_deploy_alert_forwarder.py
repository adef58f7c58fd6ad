"""deploy/k8s/components/alert-forwarder, rendered into each overlay with the real Kustomize:
Kubernetes schemas (strict), env vars that are real processors settings and parse, the command
and its --ledger exist, the ledger on the persistent volume, one writer at a time (one replica,
Recreate), a restricted security context, and egress to Kafka and HTTPS destinations."""
from __future__ import annotations

import pytest
from deploy_code import cli_root
from deploy_render import OVERLAYS, by_name, render_with_component, set_container_env, validate_named

from agentstream.stream_processors.settings import ProcessorsSettings

NAME = "agentstream-alert-forwarder"


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request, tmp_path_factory):
    return render_with_component(request.param, "alert-forwarder", tmp_path_factory.mktemp("kz"))


def _container(docs):
    dep = by_name(docs, "Deployment", NAME)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, c


def test_validates_against_the_kubernetes_schemas(docs):
    validate_named(docs, NAME, {"Deployment", "PersistentVolumeClaim", "NetworkPolicy"})


def test_env_is_processors_settings_that_parse_and_the_configmap_resolves(docs, monkeypatch):
    set_container_env(docs, NAME, "AGENTSTREAM_PROCESSORS_", ProcessorsSettings.model_fields, monkeypatch)
    assert ProcessorsSettings().app_id == "agentstream-processors"


def test_the_ledger_lives_on_the_claim_and_one_forwarder_holds_it(docs):
    dep, c = _container(docs)
    assert c["args"][:2] == ["alerts", "forward"]
    forward = cli_root().commands["alerts"].commands["forward"]
    assert "--ledger" in {o for p in forward.params for o in p.opts}
    ledger = c["args"][c["args"].index("--ledger") + 1]
    spec = dep["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    claim = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}
    on_claim = [n for n, path in mounts.items() if ledger.startswith(path + "/") and claim.get(n)]
    assert on_claim, "the ledger is not on a persistent volume"
    pvc = by_name(docs, "PersistentVolumeClaim", claim[on_claim[0]])
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["fsGroup"] and c["resources"]["limits"]


def test_network_policy_lets_it_reach_kafka_and_the_destinations(docs):
    pol = by_name(docs, "NetworkPolicy", f"{NAME}-egress")
    ports = {p["port"] for rule in pol["spec"]["egress"] for p in rule["ports"]}
    assert {9092, 443} <= ports
    assert pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "alert-forwarder"
