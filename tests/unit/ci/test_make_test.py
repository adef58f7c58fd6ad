"""`make test` on a fresh machine: .ci/ensure-chromium.sh installs Chromium when it can, or says
in one line what is missing and how to get it, and the browser tests then skip instead of
erroring. apt-get, sudo and id are stand-ins on PATH (shell scripts that record their calls):
what is tested is the script's decisions and the Makefile's wiring, not Debian."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / ".ci" / "ensure-chromium.sh"


def tool(bin_dir: Path, name: str, body: str) -> None:
    p = bin_dir / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)


@pytest.fixture
def box(tmp_path):
    """A PATH with only what the script may use, and a log of the stand-ins' calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sh", "cat", "true"):
        real = shutil.which(name)
        if real:
            os.symlink(real, bin_dir / name)
    log = tmp_path / "calls.log"
    chromium = tmp_path / "chromium"
    env = {"PATH": str(bin_dir), "AGENTSTREAM_CHROMIUM": str(chromium), "CALLS": str(log)}
    return bin_dir, log, chromium, env


def run(env) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def installer(bin_dir: Path, chromium: Path, works: bool = True) -> None:
    # apt-get that "installs" chromium by creating the binary, as Debian's package does
    make = f'touch "{chromium}"; chmod +x "{chromium}"' if works else "exit 100"
    tool(bin_dir, "apt-get", 'echo "apt-get $*" >> "$CALLS"\n'
         f'case "$*" in *install*chromium*) {make} ;; esac')
    tool(bin_dir, "touch", f'exec {shutil.which("touch")} "$@"')
    tool(bin_dir, "chmod", f'exec {shutil.which("chmod")} "$@"')


def test_present_chromium_is_used_as_is(box):
    bin_dir, log, chromium, env = box
    chromium.write_text("")
    chromium.chmod(0o755)
    tool(bin_dir, "apt-get", 'echo "apt-get $*" >> "$CALLS"')
    r = run(env)
    assert (r.stdout.strip(), r.stderr, calls(log)) == ("present", "", [])


def test_root_installs_debians_chromium(box):
    bin_dir, log, chromium, env = box
    tool(bin_dir, "id", "echo 0")
    installer(bin_dir, chromium)
    r = run(env)
    assert r.stdout.strip() == "present", r.stderr
    assert calls(log)[0].startswith("apt-get update")
    assert "install -y -qq --no-install-recommends chromium" in calls(log)[1]
    assert chromium.exists()


def test_passwordless_sudo_installs_it(box):
    bin_dir, log, chromium, env = box
    tool(bin_dir, "id", "echo 1000")
    tool(bin_dir, "sudo", 'echo "sudo $*" >> "$CALLS"\nshift\nexec "$@"')  # drops -n
    installer(bin_dir, chromium)
    r = run(env)
    assert r.stdout.strip() == "present", r.stderr
    assert any(c.startswith("sudo -n apt-get install") for c in calls(log)), calls(log)


@pytest.mark.parametrize("case", ["no_apt", "no_sudo", "sudo_needs_password", "install_fails",
                                  "opted_out"])
def test_otherwise_one_clear_line_and_skip(box, case):
    bin_dir, log, chromium, env = box
    tool(bin_dir, "id", "echo 1000")
    if case != "no_apt":
        installer(bin_dir, chromium, works=case != "install_fails")
    if case == "sudo_needs_password":
        tool(bin_dir, "sudo", 'echo "sudo $*" >> "$CALLS"\nexit 1')
    if case == "install_fails":
        tool(bin_dir, "id", "echo 0")
    if case == "opted_out":
        tool(bin_dir, "id", "echo 0")
        env = {**env, "AGENTSTREAM_INSTALL_CHROMIUM": "no"}
    r = run(env)
    assert r.stdout.strip() == "skip"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    last = lines[-1]
    assert "Chromium not found" in last and "apt-get install chromium" in last and "skipped" in last
    assert len(lines) == (2 if case == "install_fails" else 1), r.stderr  # + "installing ..."
    assert not any("install" in c for c in calls(log)) or case == "install_fails"


def test_make_test_runs_the_script_and_hands_its_answer_to_pytest():
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    r = subprocess.run([make, "-n", "-o", ".venv/.installed", "test"], cwd=ROOT, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if "pytest" in ln][-1]
    assert line.startswith("AGENTSTREAM_BROWSER_TESTS=$(sh .ci/ensure-chromium.sh) ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "apt-get" not in ci  # one place holds the set-up logic


def test_browser_tests_skip_when_make_test_says_so(tmp_path):
    env = {**os.environ, "AGENTSTREAM_BROWSER_TESTS": "skip",
           "AGENTSTREAM_CHROMIUM": str(tmp_path / "no-chromium")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        "tests/browser"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    assert " skipped" in r.stdout and " passed" not in r.stdout and "error" not in r.stdout.lower()
    assert "Chromium not found" in r.stdout


def test_without_make_tests_a_missing_chromium_still_fails_loudly(tmp_path, monkeypatch):
    """Only make test's explicit "skip" skips; a bare pytest run keeps the loud failure."""
    import importlib

    monkeypatch.delenv("AGENTSTREAM_BROWSER_TESTS", raising=False)
    monkeypatch.setenv("AGENTSTREAM_CHROMIUM", str(tmp_path / "no-chromium"))
    conftest = importlib.reload(importlib.import_module("tests.browser.conftest"))

    class Item:
        fspath = ROOT / "tests" / "browser" / "test_pages.py"
        marks: list = []

        def add_marker(self, mark):
            self.marks.append(mark)

    item = Item()
    conftest.pytest_collection_modifyitems(None, [item])
    assert item.marks == []
    monkeypatch.setenv("AGENTSTREAM_BROWSER_TESTS", "skip")
    conftest.pytest_collection_modifyitems(None, [item])
    assert [m.name for m in item.marks] == ["skip"]
    monkeypatch.undo()
    importlib.reload(conftest)  # the real CHROMIUM again for browser tests later in this session
