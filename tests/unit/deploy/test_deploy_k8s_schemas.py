"""Every rendered manifest is valid against the Kubernetes API schemas (kubernetes-validate,
pinned in pyproject, strict: unknown fields are errors). Custom resources of the operators we
target (KEDA, Strimzi, Altinity, the Prometheus Operator) have no schema in that package;
their required structure is checked field by field below (and in test_deploy_monitoring.py)."""
from __future__ import annotations

import re

import kubernetes_validate
import pytest
from deploy_render import KUSTOMIZATIONS, of_kind

# The oldest Kubernetes minor still in upstream support and the newest the pinned
# kubernetes-validate ships; manifests must be valid on both.
KUBERNETES_VERSIONS = ["1.33.0", "1.37.0"]

CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def test_validator_pin_knows_the_newest_version():
    assert kubernetes_validate.utils.latest_version().startswith("1.37")


def test_validator_rejects_a_broken_deployment():
    """The validator is not vacuous: a misspelt field and a wrong type are both errors."""
    bad = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "replicas": "two",
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "IfNotPresent",
                                                        "livenessProbes": {}}]}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("rel", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_resources_validate(rendered, rel, version):
    checked, errors = 0, []
    for doc in rendered[rel]:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{doc['kind']} {doc['apiVersion']}: not a Kubernetes {version} API kind")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)
    assert checked or rel.startswith("examples/"), f"{rel}: no built-in resource rendered"


BUILTIN_API_VERSIONS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}


@pytest.mark.parametrize("rel", KUSTOMIZATIONS)
def test_every_resource_is_known_and_named(rendered, rel):
    for doc in rendered[rel]:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        name = doc["metadata"]["name"]
        assert DNS_SUBDOMAIN.match(name) and len(name) <= 253, f"bad name {name!r}"
        known = doc["apiVersion"] in BUILTIN_API_VERSIONS or (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS
        assert known, f"{rel}: {doc['kind']} {doc['apiVersion']} is neither a stable built-in nor a known CRD"


def _scaled_objects(rendered):
    for rel in KUSTOMIZATIONS:
        for so in of_kind(rendered[rel], "ScaledObject"):
            yield rel, so


def test_scaled_objects_are_well_formed(rendered):
    found = 0
    for rel, so in _scaled_objects(rendered):
        found += 1
        spec = so["spec"]
        where = f"{rel} ScaledObject/{so['metadata']['name']}"
        assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                             "cooldownPeriod", "idleReplicaCount", "advanced", "triggers", "fallback"}, where
        assert spec["scaleTargetRef"]["name"], where
        assert isinstance(spec["minReplicaCount"], int) and isinstance(spec["maxReplicaCount"], int), where
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], where
        assert spec["triggers"], where
        for trig in spec["triggers"]:
            assert trig["type"] == "kafka", where
            meta = trig["metadata"]
            assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(meta), where
            # KEDA reads trigger metadata as strings: a YAML number would be rejected.
            assert all(isinstance(v, str) for v in meta.values()), f"{where}: non-string metadata {meta}"
            assert int(meta["lagThreshold"]) > 0
            assert meta.get("allowIdleConsumers", "false") == "false", where
    assert found >= 4, "expected the processors and sink ScaledObjects in both overlays"


def test_strimzi_resources_are_well_formed(rendered):
    docs = rendered["examples/strimzi"]
    (kafka,) = of_kind(docs, "Kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    listeners = {lst["name"]: lst for lst in kafka["spec"]["kafka"]["listeners"]}
    assert listeners["plain"]["port"] == 9092
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    pools = of_kind(docs, "KafkaNodePool")
    assert pools and all(p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools)
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    for topic in of_kind(docs, "KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert isinstance(topic["spec"]["partitions"], int) and isinstance(topic["spec"]["replicas"], int)
        assert all(isinstance(v, str) for v in topic["spec"]["config"].values())


def test_clickhouse_installation_is_well_formed(rendered):
    (chi,) = of_kind(rendered["examples/clickhouse"], "ClickHouseInstallation")
    conf = chi["spec"]["configuration"]
    (cluster,) = conf["clusters"]
    assert cluster["layout"]["shardsCount"] >= 1 and cluster["layout"]["replicasCount"] >= 1
    # The password is a reference to a Secret, never a value in the manifest.
    assert "agentstream/password" not in conf["users"]
    assert conf["users"]["agentstream/k8s_secret_password"].count("/") == 2
    templates = chi["spec"]["templates"]
    assert chi["spec"]["defaults"]["templates"]["podTemplate"] in {t["name"] for t in templates["podTemplates"]}
    assert chi["spec"]["defaults"]["templates"]["dataVolumeClaimTemplate"] in {
        t["name"] for t in templates["volumeClaimTemplates"]}
