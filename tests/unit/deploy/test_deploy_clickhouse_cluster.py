"""deploy/k8s/examples/clickhouse-cluster: 2 shards x 2 replicas with ClickHouse Keeper, rendered
offline by the real Kustomize and checked against the Kubernetes schemas (built-in kinds) and
field by field (the operators' custom resources), and against the cluster schema it serves."""
from __future__ import annotations

import kubernetes_validate
import pytest
from deploy_render import of_kind, render
from test_deploy_k8s_schemas import KUBERNETES_VERSIONS

from agentstream.sink.cluster import cluster_migrations

REL = "examples/clickhouse-cluster"


@pytest.fixture(scope="module")
def docs():
    return render(REL)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_resources_validate(docs, version):
    builtin = [d for d in docs if "altinity.com" not in d["apiVersion"]]
    assert {d["kind"] for d in builtin} == {"Namespace", "Secret"}
    for d in builtin:
        kubernetes_validate.validate(d, version, strict=True)


def test_two_shards_of_two_replicas_on_a_three_node_keeper(docs):
    (chi,) = of_kind(docs, "ClickHouseInstallation")
    (chk,) = of_kind(docs, "ClickHouseKeeperInstallation")
    assert chi["apiVersion"] == "clickhouse.altinity.com/v1"
    assert chk["apiVersion"] == "clickhouse-keeper.altinity.com/v1"
    conf = chi["spec"]["configuration"]
    (cluster,) = conf["clusters"]
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 2}
    (keeper_cluster,) = chk["spec"]["configuration"]["clusters"]
    replicas = keeper_cluster["layout"]["replicasCount"]
    assert replicas >= 3 and replicas % 2 == 1, "a Raft quorum that survives a loss"
    # the operator's Service for a CHK is keeper-<name>; its port is the one Keeper listens on
    (node,) = conf["zookeeper"]["nodes"]
    assert node["host"] == f"keeper-{chk['metadata']['name']}"
    assert str(node["port"]) == chk["spec"]["configuration"]["settings"]["keeper_server/tcp_port"]
    for d in (chi, chk):
        assert d["metadata"]["namespace"] == "clickhouse"
        # replicas of one shard (and Keeper nodes) never share a machine
        (tpl,) = d["spec"]["templates"]["podTemplates"]
        anti = tpl["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
        defaults = d["spec"]["defaults"]["templates"]
        assert defaults["podTemplate"] == tpl["name"]
        assert defaults["dataVolumeClaimTemplate"] in {v["name"] for v in d["spec"]["templates"]["volumeClaimTemplates"]}


def test_the_users_profile_makes_distributed_inserts_synchronous_and_deduplicated(docs):
    (chi,) = of_kind(docs, "ClickHouseInstallation")
    conf = chi["spec"]["configuration"]
    profile = conf["users"]["agentstream/profile"]
    settings = {k.split("/", 1)[1]: v for k, v in conf["profiles"].items() if k.startswith(profile + "/")}
    assert settings["insert_distributed_sync"] == "1"
    assert settings["insert_deduplicate"] == "1"
    assert settings["deduplicate_blocks_in_dependent_materialized_views"] == "1"
    # the API's IN-subqueries over Distributed tables are refused under the default 'deny'
    assert settings["distributed_product_mode"] == "global"
    assert all(isinstance(v, str) for v in conf["profiles"].values())
    # the password is a Secret reference, never a value
    assert "agentstream/password" not in conf["users"]
    ns, secret, key = conf["users"]["agentstream/k8s_secret_password"].split("/")
    (sec,) = [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == secret]
    assert sec["metadata"]["namespace"] == ns and key in sec["data"]


def test_the_cluster_name_is_one_the_schema_generator_takes(docs):
    (chi,) = of_kind(docs, "ClickHouseInstallation")
    name = chi["spec"]["configuration"]["clusters"][0]["name"]
    stmts = [s for m in cluster_migrations(name) for s in m.statements]
    assert all(f"ON CLUSTER {name}" in s for s in stmts if not s.startswith("INSERT"))
