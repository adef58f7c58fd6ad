"""What the code declares, for checking the deployment artefacts against it: each part's
settings class, the `agentstream` command tree and the environment variables its options read."""
from __future__ import annotations

import base64
import importlib
import re
from typing import Any, Iterator

import pytest

# AGENTSTREAM_<PART>_<FIELD> -> that part's one pydantic-settings class (DESIGN: configuration).
SETTINGS = {
    "PROCESSORS": ("agentstream.stream_processors.settings", "ProcessorsSettings"),
    "SINK": ("agentstream.sink.settings", "SinkSettings"),
    "API": ("agentstream.api.settings", "ApiSettings"),
    "GATEWAY": ("agentstream.api.gateway.settings", "GatewaySettings"),
}
# What the image's entrypoint runs for each first argument (deploy/docker/entrypoint.sh), and
# which settings those processes read. `init` runs CLI one-shots and the sink's migrate.
PART_OF_ENTRYPOINT = {
    "api": {"API"}, "gateway": {"GATEWAY"}, "sink": {"SINK"}, "processors": {"PROCESSORS"},
    "init": {"SINK"}, "migrate": {"SINK"}, "topics": set(), "schemas": set(),
}
ENV_NAME = re.compile(r"^AGENTSTREAM_[A-Z0-9_]+$")


def settings_class(part: str):
    module_name, class_name = SETTINGS[part]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        pytest.fail(f"settings of {part} missing: cannot import {module_name} ({exc}); the manifests "
                    f"set AGENTSTREAM_{part}_* variables that nothing reads")
    cls = getattr(module, class_name, None)
    if cls is None:
        pytest.fail(f"settings of {part} missing: {module_name} has no class {class_name}")
    return cls


def split_env_name(name: str) -> tuple[str | None, str]:
    """(PART, field) for a part setting, (None, name) for anything else."""
    for part in SETTINGS:
        prefix = f"AGENTSTREAM_{part}_"
        if name.startswith(prefix):
            return part, name[len(prefix):].lower()
    return None, name


def cli_root():
    """The `agentstream` command built the way cli/main.py builds it, failing on any part
    whose commands do not import (main() would only print that)."""
    import typer

    from agentstream.cli.main import PART_COMMANDS

    app = typer.Typer()
    for name in PART_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)
    return typer.main.get_command(app)


def walk_commands(cmd, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from walk_commands(sub, path + (name,))
    else:
        yield path, cmd


def cli_envvars(root) -> dict[str, list[str]]:
    """Environment variable -> the commands whose options read it."""
    out: dict[str, list[str]] = {}
    for path, cmd in walk_commands(root):
        for param in cmd.params:
            envvars = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            for env in filter(None, envvars):
                out.setdefault(env, []).append(" ".join(path))
    return out


def resolve_command(root, argv: list[str]):
    """The leaf command ``agentstream argv...`` runs, with its options parsed (raises the
    command's own usage error on an unknown option or a missing required one)."""
    cmd, i = root, 0
    while hasattr(cmd, "commands"):
        assert i < len(argv) and argv[i] in cmd.commands, f"`agentstream {' '.join(argv)}`: no command {argv[i:i+1]}"
        cmd, i = cmd.commands[argv[i]], i + 1
    cmd.make_context(" ".join(argv[:i]), list(argv[i:]))
    return " ".join(argv[:i]), cmd


def resolve_env_value(entry: dict[str, Any], docs: list[dict[str, Any]]) -> str | None:
    """A container env entry's value as the kubelet would set it, from the rendered ConfigMaps
    and Secrets (None for an optional reference that is absent)."""
    if "value" in entry:
        return entry["value"]
    ref = entry["valueFrom"]
    if "configMapKeyRef" in ref:
        kind, r = "ConfigMap", ref["configMapKeyRef"]
    else:
        kind, r = "Secret", ref["secretKeyRef"]
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == r["name"]:
            if kind == "ConfigMap":
                return d["data"][r["key"]]
            if r["key"] in d.get("data", {}):
                return base64.b64decode(d["data"][r["key"]]).decode()
    if r.get("optional"):
        return None
    raise AssertionError(f"{entry['name']}: {kind} {r['name']} key {r['key']} not rendered")


def processors_raw_group(app_id: str) -> str:
    """The consumer group that reads raw in the processors: RawLoop names it from the app id.
    Read from the code so a rename fails here rather than leaving KEDA watching a dead group."""
    import inspect

    from agentstream.stream_processors import raw_loop

    src = inspect.getsource(raw_loop.RawLoop.run_blocking)
    assert '"group.id": f"{s.app_id}-raw"' in src, (
        "RawLoop no longer names its group <app_id>-raw: update the processors ScaledObject's "
        "consumerGroup and this function")
    return f"{app_id}-raw"
