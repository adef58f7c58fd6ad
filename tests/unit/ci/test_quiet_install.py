"""The install is quiet unless something is wrong. Three sources of noise, each tested: setuptools'
"Package would be ignored" (~45 lines for each of six data-only folders) when the package is
built, and pip's "Location 'file:///...' is ignored" for each package a local mirror of this
machine's pip configuration lacks (139 lines in a dry run of `pip install -e .[dev]`), which
`make install` filters through .ci/pip-quiet.sh, keeping every other line and pip's exit status,
and setuptools 84's notice on every editable install of a package-dir layout, filtered there too."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_building_the_package_prints_no_warning_and_ships_its_data(tmp_path):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    src = tmp_path / "src"
    for rel in files:
        if rel.startswith((".venv/", "tests/", "docs/", "bench/", "deploy/")):
            continue
        path = ROOT / rel
        if path.is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / rel)
    out = tmp_path / "wheel"
    # pip's default verbosity (not -q), so a warning of the build backend cannot hide
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    noise = [ln for ln in (r.stdout + r.stderr).splitlines()
             if "warning" in ln.lower() and "Location 'file:" not in ln]  # the machine's pip config
    assert noise == [], "\n".join(noise[:20])
    [wheel] = out.glob("agentstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("agentstream/sink/migrations/", "agentstream/schemas/avro/", "agentstream/api/static/"):
        assert any(n.startswith(must) for n in names), must


PIP_QUIET = ROOT / ".ci" / "pip-quiet.sh"


def fake_pip(tmp_path, lines: list[str], status: int) -> list[str]:
    script = tmp_path / "fake-pip"
    body = "".join(f"echo {line!r}{' >&2' if i % 2 else ''}\n" for i, line in enumerate(lines))
    script.write_text(f"#!/bin/sh\n{body}exit {status}\n")
    script.chmod(0o755)
    return ["sh", str(PIP_QUIET), str(script)]


def test_pip_quiet_drops_only_the_mirror_notice_and_keeps_pips_status(tmp_path):
    mirror = "WARNING: Location 'file:///opt/pypi-more/simple/fastavro/' is ignored: it is neither a file nor a directory."
    real = "WARNING: Retrying (Retry(total=4)) after connection broken"
    error = "ERROR: No matching distribution found for nothing==1.0"
    r = subprocess.run(fake_pip(tmp_path, [mirror, real, mirror, error, mirror], 1),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [real, error]
    ok = subprocess.run(fake_pip(tmp_path, [mirror, mirror], 0), capture_output=True, text=True,
                        timeout=30)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")


def test_make_install_goes_through_pip_quiet():
    text = (ROOT / "Makefile").read_text()
    recipe = text.split("$(STAMP): pyproject.toml setup.py", 1)[1].split("\n\n", 1)[0]
    pip_lines = [ln for ln in recipe.splitlines() if "pip install" in ln]
    assert pip_lines and all("sh .ci/pip-quiet.sh" in ln and " -q " in ln for ln in pip_lines)


# What setuptools 84 prints for every editable install of a package-dir layout (seen in
# `make install` on a clean clone, 2026-12-07), as pip passes it through.
EDITABLE_NOTICE = [
    "  /tmp/pip-build-env-rgxdlpxf/overlay/lib/python3.11/site-packages/setuptools/command/"
    "editable_wheel.py:354: BuildBackendWarning: Editable installation.",
    "  !!",
    "  ",
    "          " + "*" * 80,
    "          Please be careful with folders in your working directory with the same",
    "          name as your package as they may take precedence during imports.",
    "          " + "*" * 80,
    "  ",
    "  !!",
    '    with strategy, WheelFile(wheel_path, "w") as wheel_obj:',
]


def test_pip_quiet_drops_setuptools_editable_notice_and_nothing_around_it(tmp_path):
    other = ["  /x/setuptools/dist.py:1: SetuptoolsDeprecationWarning: License classifiers are deprecated.",
             "  !!", "          " + "*" * 80, "          Please use a SPDX license expression.",
             "          " + "*" * 80, "  !!"]
    before, after = "Obtaining file:///work/main", "ERROR: Could not build wheels for agentstream"
    # one stream (the fake pip alternates stdout and stderr; pip-quiet merges them in order)
    script = tmp_path / "fake-pip"
    script.write_text("#!/bin/sh\ncat <<'END'\n" + "\n".join([before, *EDITABLE_NOTICE, *other, after])
                      + "\nEND\nexit 1\n")
    script.chmod(0o755)
    r = subprocess.run(["sh", str(PIP_QUIET), str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [before, *other, after]
