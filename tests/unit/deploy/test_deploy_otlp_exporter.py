"""deploy/k8s/components/otlp-exporter, rendered into each overlay with the real Kustomize and
validated like the rest: Kubernetes schemas (strict), env vars that are real settings and parse,
the command it runs exists, restricted security context, egress allowed, config map resolved."""
from __future__ import annotations

import pytest
from deploy_code import cli_root
from deploy_render import OVERLAYS, by_name, render_with_component, set_container_env, validate_named

from agentstream.sink.otlp_exporter import OtlpExportSettings

NAME = "agentstream-otlp-exporter"


@pytest.fixture(scope="module", params=OVERLAYS)
def with_exporter(request, tmp_path_factory):
    return render_with_component(request.param, "otlp-exporter", tmp_path_factory.mktemp("kz"))


def test_validates_against_the_kubernetes_schemas(with_exporter):
    validate_named(with_exporter, NAME, {"Deployment", "PodDisruptionBudget", "NetworkPolicy"})


def test_env_is_settings_that_parse_and_the_configmap_resolves(with_exporter, monkeypatch):
    set_container_env(with_exporter, NAME, "AGENTSTREAM_EXPORT_", OtlpExportSettings.model_fields, monkeypatch)
    monkeypatch.setenv("AGENTSTREAM_EXPORT_HEADERS", "k=v")
    s = OtlpExportSettings()
    assert s.batch_max_spans == 500 and s.header_map() == {"k": "v"}


def test_runs_a_real_command_under_a_restricted_context(with_exporter):
    dep = by_name(with_exporter, "Deployment", NAME)
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["args"][:2] == ["export", "otlp"]
    assert "otlp" in cli_root().commands["export"].commands
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] and c["resources"]["limits"]


def test_network_policy_lets_it_reach_kafka_and_the_backend(with_exporter):
    pol = by_name(with_exporter, "NetworkPolicy", f"{NAME}-egress")
    ports = {p["port"] for rule in pol["spec"]["egress"] for p in rule["ports"]}
    assert {9092, 443, 4318} <= ports
    assert pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "otlp-exporter"
