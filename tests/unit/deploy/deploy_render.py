"""Offline rendering of the deployment artefacts and lookups over them, for tests/unit/deploy.

Kubernetes manifests are rendered with the real Kustomize (built into kubectl, which the
machine image ships; a standalone ``kustomize`` binary works too), never with a re-implementation,
so what the tests check is what ``kubectl apply -k`` would send.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
OVERLAYS = ["dev", "prod"]
EXAMPLES = ["strimzi", "clickhouse"]
# Every kustomization a user may apply: the two overlays and the engine examples.
KUSTOMIZATIONS = [f"overlays/{o}" for o in OVERLAYS] + [f"examples/{e}" for e in EXAMPLES]


def kustomize_command() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.fail(
        "no Kustomize renderer: neither `kubectl` (ships Kustomize v5) nor `kustomize` is on PATH. "
        "Install one (Debian: kubernetes-client; the machine image has kubectl) to render "
        "deploy/k8s offline."
    )


def render(rel: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*kustomize_command(), str(K8S / rel)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"kustomize failed on deploy/k8s/{rel}:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert docs, f"deploy/k8s/{rel} rendered nothing"
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def by_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in of_kind(docs, kind):
        if d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"no {kind} named {name}")


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) of every workload."""
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]


def agentstream_workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d for d in docs
        if d.get("kind") in ("Deployment", "Job")
        and d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "agentstream"
    ]


def configmap_value(docs: list[dict[str, Any]], logical_name: str, key: str) -> str:
    """A key of a generated ConfigMap, found by its name before Kustomize's hash suffix."""
    for cm in of_kind(docs, "ConfigMap"):
        if cm["metadata"]["name"].rsplit("-", 1)[0] == logical_name or cm["metadata"]["name"] == logical_name:
            return cm["data"][key]
    raise AssertionError(f"no ConfigMap {logical_name}")


def render_with_component(overlay: str, component: str, workdir: Path) -> list[dict[str, Any]]:
    """An overlay with an optional component added as a user adds it (``components:`` in a copy
    of the overlay itself, so Kustomize links its ConfigMap references to the generated names)."""
    import os

    src = K8S / "overlays" / overlay
    d = workdir / overlay
    shutil.copytree(src, d)
    kz = yaml.safe_load((d / "kustomization.yaml").read_text())
    # relative: Kustomize refuses absolute roots
    kz["resources"] = [os.path.relpath((src / r).resolve(), d) if r.startswith("../") else r
                       for r in kz["resources"]]
    kz["components"] = [os.path.relpath(K8S / "components" / component, d)]
    (d / "kustomization.yaml").write_text(yaml.safe_dump(kz))
    proc = subprocess.run([*kustomize_command(), str(d)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def validate_named(docs: list[dict[str, Any]], prefix: str, kinds: set[str]) -> None:
    """The objects named ``prefix...`` are exactly ``kinds`` and valid (Kubernetes 1.37, strict)."""
    import kubernetes_validate

    mine = [d for d in docs if d["metadata"]["name"].startswith(prefix)]
    assert {d["kind"] for d in mine} == kinds
    for doc in mine:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def set_container_env(docs: list[dict[str, Any]], deployment: str, env_prefix: str, fields: Any,
                      monkeypatch: Any) -> None:
    """Checks a Deployment's env vars are ``env_prefix`` + a settings field and that its ConfigMap
    references resolve, and sets them (a plausible value for references) for the settings to parse."""
    (c,) = by_name(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    cms = {cm["metadata"]["name"] for cm in of_kind(docs, "ConfigMap")}
    for e in c["env"]:
        assert e["name"].startswith(env_prefix)
        assert e["name"][len(env_prefix):].lower() in fields, e["name"]
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert ref["name"] in cms  # kustomize rewrote it to the generated (hashed) name
        monkeypatch.setenv(e["name"], e.get("value", "x:1" if "SERVERS" in e["name"] else "http://x"))
