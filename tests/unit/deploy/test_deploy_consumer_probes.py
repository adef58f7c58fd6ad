"""The alert forwarder's and the OTLP exporter's probes in their Kubernetes components, rendered
into each overlay: liveness on /healthz, readiness on /readyz, at the port the settings make the
process serve on all interfaces, and Prometheus let in to that port."""
from __future__ import annotations

import pytest
from deploy_render import OVERLAYS, by_name, render_with_component, set_container_env

from agentstream.sink.otlp_exporter import OtlpExportSettings
from agentstream.stream_processors.settings import ProcessorsSettings

CASES = {
    "alert-forwarder": ("AGENTSTREAM_PROCESSORS_", ProcessorsSettings, "forwarder_probe_port", "forwarder_probe_host"),
    "otlp-exporter": ("AGENTSTREAM_EXPORT_", OtlpExportSettings, "probe_port", "probe_host"),
}


@pytest.fixture(scope="module", params=[(o, c) for o in OVERLAYS for c in CASES], ids=lambda p: f"{p[0]}-{p[1]}")
def rendered(request, tmp_path_factory):
    overlay, component = request.param
    return component, render_with_component(overlay, component, tmp_path_factory.mktemp("kz"))


def test_probes_hit_the_port_the_process_serves(rendered, monkeypatch):
    component, docs = rendered
    prefix, settings_cls, port_field, host_field = CASES[component]
    name = f"agentstream-{component}"
    dep = by_name(docs, "Deployment", name)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert ports[c[probe]["httpGet"]["port"]] > 0
    set_container_env(docs, name, prefix, settings_cls.model_fields, monkeypatch)
    if component == "otlp-exporter":
        monkeypatch.setenv("AGENTSTREAM_EXPORT_ENDPOINT", "http://collector:4318")
    s = settings_cls()
    assert getattr(s, port_field) == ports["probes"]
    assert getattr(s, host_field) == "0.0.0.0"  # the kubelet probes the pod's IP
    pol = by_name(docs, "NetworkPolicy", f"{name}-ingress-metrics")
    assert {p["port"] for rule in pol["spec"]["ingress"] for p in rule["ports"]} == {ports["probes"]}
    assert pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component


def test_the_probes_are_off_by_default_outside_kubernetes():
    assert ProcessorsSettings().forwarder_probe_port == 0 and OtlpExportSettings().probe_port == 0
    assert ProcessorsSettings().forwarder_probe_host == "127.0.0.1" == OtlpExportSettings().probe_host
