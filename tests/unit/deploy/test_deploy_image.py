"""The image, checked without Docker: the Dockerfile's stages and hardening, the build context
it copies, its install step (the same `pip` build run on the same files), and the entrypoint's
dispatch to real `agentstream` commands."""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile

import dockerfile
import pytest
from deploy_code import cli_root, resolve_command
from deploy_render import ROOT, agentstream_workloads

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
UID = 10001


def _stages() -> dict[str, list]:
    """Stage name -> its instructions, parsed by BuildKit's own Dockerfile parser."""
    stages: dict[str, list] = {}
    current = None
    for cmd in dockerfile.parse_file(str(DOCKERFILE)):
        if cmd.cmd == "FROM":
            assert len(cmd.value) == 3 and cmd.value[1].upper() == "AS", f"unnamed stage: {cmd.original}"
            current = cmd.value[2]
            stages[current] = []
        elif current:
            stages[current].append(cmd)
    return stages


def _ops(stage, op: str) -> list:
    return [c for c in stage if c.cmd == op]


def _copy_sources(stage) -> list[str]:
    return [src for c in _ops(stage, "COPY") if not any(f.startswith("--from=") for f in c.flags)
            for src in c.value[:-1]]


def test_multi_stage_with_a_lean_runtime():
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    runtime = stages["runtime"]
    runs = " ".join(c.value[0] for c in _ops(runtime, "RUN"))
    # No package manager, compiler or pip run in the runtime stage: it only receives the venv.
    for tool in ("apt-get", "pip ", "build-essential", "gcc"):
        assert tool not in runs, f"runtime stage runs {tool}"
    copies_from = [(c.flags, c.value) for c in _ops(runtime, "COPY") if c.flags and c.flags[0].startswith("--from=")]
    assert copies_from == [(("--from=build",), ("/opt/agentstream", "/opt/agentstream"))]
    assert "build-essential" in " ".join(c.value[0] for c in _ops(stages["build"], "RUN"))
    (arg,) = [c for c in dockerfile.parse_file(str(DOCKERFILE)) if c.cmd == "ARG"]
    assert re.match(r"PYTHON_IMAGE=python:3\.\d+-slim", arg.value[0]), "pin a slim Python base"


def test_runtime_runs_as_the_uid_the_manifests_declare(overlays, compose):
    runtime = _stages()["runtime"]
    assert [c.value for c in _ops(runtime, "USER")] == [(f"{UID}:{UID}",)], "numeric uid:gid for runAsNonRoot"
    (entrypoint,) = _ops(runtime, "ENTRYPOINT")
    assert entrypoint.json and entrypoint.value == ("/usr/local/bin/agentstream-entrypoint",)
    for docs in overlays.values():
        for w in agentstream_workloads(docs):
            assert w["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == UID
    assert compose["services"]["sink"]["user"] == f"{UID}:{UID}"
    env = {}
    for c in _ops(runtime, "ENV"):
        env.update(dict(zip(c.value[::2], c.value[1::2])))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "the root filesystem is read-only"
    # The only writable paths are the mounted ones: HOME and the working directory among them.
    assert env["HOME"] == "/var/lib/agentstream"
    assert [c.value for c in _ops(runtime, "WORKDIR")] == [("/var/lib/agentstream",)]
    exposed = {int(p) for c in _ops(runtime, "EXPOSE") for p in c.value}
    assert exposed == {8000, 8001, 6066, 9108}


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            ignored = not neg
    return ignored


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_build_context_holds_what_is_copied_and_nothing_heavy():
    patterns = _dockerignore()
    sources = _copy_sources(_stages()["build"]) + _copy_sources(_stages()["runtime"])
    for src in sources:
        assert not _ignored(src, patterns), f".dockerignore drops {src}, which the Dockerfile copies"
        assert (ROOT / src).exists(), f"the Dockerfile copies {src}, which is not in the repository"
    for heavy in (".git", ".venv", ".agentstream", "tests", "bench", "deploy/k8s"):
        assert _ignored(heavy, patterns), f"{heavy} would bloat or leak into the build context"
    # Every part of the distribution is copied into the build stage.
    setup_parts = re.search(r"PARTS = \[(.*?)\]", (ROOT / "setup.py").read_text()).group(1)
    for part in re.findall(r'"(\w+)"', setup_parts):
        assert part in sources, f"the image would lack agentstream.{part}"


def test_install_step_builds_a_complete_wheel(tmp_path):
    """What `pip install --no-deps .` sees in the build stage: the copied files only. Built
    without isolation so it stays offline (setuptools and wheel come from this venv)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for src in _copy_sources(_stages()["build"]):
        path = ROOT / src
        if not path.exists():
            pytest.fail(f"the Dockerfile copies {src}, which is not in the repository (docker build would fail)")
        if path.is_dir():
            shutil.copytree(path, ctx / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
        else:
            shutil.copy2(path, ctx / src)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ctx)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("agentstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("schemas", "producer", "stream_processors", "sink", "api", "cli"):
        assert f"agentstream/{part}/__init__.py" in names, part
    assert "agentstream/schemas/registry.json" in names
    # the SDK's C step core is compiled in the build stage (it has a compiler), not copied
    assert any(n.startswith("agentstream/producer/_speedups.") and n.endswith(".so") for n in names)
    assert any(n.startswith("agentstream/schemas/avro/") and n.endswith(".avsc") for n in names)
    migrations = {p.name for p in (ROOT / "sink" / "migrations").glob("*.sql")}
    assert {f"agentstream/sink/migrations/{m}" for m in migrations} <= names, "migrations missing"
    for sub in (ROOT / "api").rglob("__init__.py"):
        rel = sub.parent.relative_to(ROOT).as_posix()
        assert f"agentstream/{rel}/__init__.py" in names, f"subpackage {rel} missing from the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "agentstream = agentstream.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# --- the entrypoint -------------------------------------------------------------------------------

ENTRYPOINT_CASES = {
    ("api",): [["api", "run"]],
    ("gateway",): [["gateway", "run"]],
    ("sink",): [["sink", "run"]],
    ("processors",): [["processors", "run", "--app", "all"]],
    ("processors", "chain"): [["processors", "run", "--app", "chain"]],
    ("topics",): [["topics", "create"]],
    ("schemas",): [["schemas", "register"]],
    ("migrate",): [["sink", "migrate"]],
    ("init",): [["topics", "create"], ["schemas", "register"], ["sink", "migrate"]],
    ("--help",): [["--help"]],
}


@pytest.fixture(scope="module")
def fake_cli(tmp_path_factory):
    """An `agentstream` on PATH that records its argv, one line per call."""
    bindir = tmp_path_factory.mktemp("bin")
    log = bindir / "calls.log"
    exe = bindir / "agentstream"
    exe.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    exe.chmod(0o755)
    return bindir, log


@pytest.mark.parametrize("args", list(ENTRYPOINT_CASES), ids=lambda a: " ".join(a))
def test_entrypoint_dispatch(fake_cli, args):
    bindir, log = fake_cli
    log.write_text("")
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "AGENTSTREAM_SCHEMA_REGISTRY_URL": "http://registry:8081"}
    proc = subprocess.run(["/bin/sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    assert calls == ENTRYPOINT_CASES[args]


def test_init_skips_registration_without_a_registry(fake_cli):
    bindir, log = fake_cli
    log.write_text("")
    proc = subprocess.run(["/bin/sh", str(ENTRYPOINT), "init"], env={"PATH": f"{bindir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "schema ids stay embedded" in proc.stderr
    assert [c.split() for c in log.read_text().splitlines()] == [["topics", "create"], ["sink", "migrate"]]


def test_entrypoint_commands_exist_and_parse(monkeypatch):
    """Every command line the entrypoint can run is a real `agentstream` command whose options
    parse, with the environment the init Job provides for the required ones."""
    monkeypatch.setenv("AGENTSTREAM_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("AGENTSTREAM_SCHEMA_REGISTRY_URL", "http://registry:8081")
    root = cli_root()
    for calls in ENTRYPOINT_CASES.values():
        for argv in calls:
            if argv == ["--help"]:
                continue
            resolve_command(root, argv)


def test_entrypoint_is_executable_posix_sh():
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    if shutil.which("dash"):
        assert subprocess.run(["dash", "-n", str(ENTRYPOINT)]).returncode == 0


def test_dependency_layer_installs_exactly_the_pinned_runtime_deps(tmp_path):
    """The build stage's first RUN turns pyproject's dependencies into a requirements file;
    run that same one-liner here and compare."""
    import tomllib

    run = next(c.value[0] for c in _ops(_stages()["build"], "RUN") if "tomllib" in c.value[0])
    script = re.search(r'python -c "(.*?)" >', run).group(1)
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.stdout.split() == [w.replace(" ", "") for w in wanted]
    assert all("==" in req for req in wanted), "the image installs what the tests ran: pin exactly"
