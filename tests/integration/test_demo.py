"""``agentstream demo`` as a new user runs it: it prints where the API is and a demo key, and
/v1/runs lists runs from several agents within 30 s. The demo owns its chDB, so it runs as a
subprocess with its own data dir and broker."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from pathlib import Path

import httpx
import pytest

from agentstream.cli.embedded_broker import free_port

pytestmark = pytest.mark.integration


def test_demo_prints_where_to_look_and_lists_runs_of_several_agents(tmp_path):
    api_port, broker_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentstream.cli.main", "demo", "--data-dir", str(tmp_path / "data"),
         "--api-port", str(api_port), "--broker-port", str(broker_port), "--runs", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        start_new_session=True,
    )
    out: list[str] = []
    try:
        deadline = time.monotonic() + 120
        key = api = None
        while time.monotonic() < deadline and not (key and api):
            line = proc.stdout.readline()
            if not line:
                pytest.fail("demo exited early:\n" + "".join(out))
            out.append(line)
            if m := re.search(r"query API \+ dashboard\s+(http://\S+)", line):
                api = m.group(1)
            if m := re.search(r"demo key for acme\s+(\S+)", line):
                key = m.group(1)
        assert api and key, "".join(out)
        printed_at = time.monotonic()
        agents: set[str] = set()
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
            while time.monotonic() - printed_at < 30 and len(agents) < 2:
                r = http.get("/v1/runs", params={"limit": 200})
                if r.status_code == 200:
                    agents = {run["agent_id"] for run in r.json()["items"]}
                time.sleep(0.5)
        assert len(agents) >= 2, f"agents listed within 30 s: {agents}"
        check_demo_shows_what_the_readme_shows(api, key)
        check_readme_curl_examples(api, key, tmp_path / "data", tmp_path)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode is not None
    # Ctrl-C reaches the whole process group; the broker (own session) outlived the processors,
    # which stopped cleanly instead of by their deadline
    log = (tmp_path / "data" / "logs" / "processors.log").read_text()
    assert "clean shutdown did not finish" not in log


def check_demo_shows_what_the_readme_shows(api: str, key: str) -> None:
    """The README's Compare and waterfall on the demo's own data: TOOL steps carry their tool
    names (so Compare has a tool mix and a chi-square test), and every step sits inside its run
    (the timeline starts where the run starts, no bar before it or past its end)."""
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        deadline = time.monotonic() + 90
        while True:
            cmp = http.get("/v1/compare", params={"agent": "support-agent", "a": "1.4.0", "b": "1.5.0"})
            assert cmp.status_code == 200, cmp.text
            body = cmp.json()
            if body["tool_mix"] and body["tests"]["tool_mix_chi_square"]["p_value"] is not None:
                break
            assert time.monotonic() < deadline, f"Compare's tool mix stayed empty: {body}"
            time.sleep(1)
        tools = {row["tool"] for row in body["tool_mix"]}
        assert {"order_lookup", "refund_api"} <= tools, tools
        runs = http.get("/v1/runs", params={"limit": 40, "status": "SUCCESS"}).json()["items"]
        assert runs
        for run in runs[:15]:
            # The run list reads `runs`, the timeline `run_events`: views of one insert that
            # commit one after the other, so a just-listed run's timeline may be a moment late.
            for _ in range(50):
                r = http.get(f"/v1/runs/{run['run_id']}/timeline")
                if r.status_code != 404:
                    break
                time.sleep(0.1)
            assert r.status_code == 200, r.text
            tl = r.json()
            assert tl["started_us"] == run["started_us"], (run, tl["started_us"])
            for span in tl["spans"]:
                assert span["start_ms"] >= 0, (run["run_id"], span)
                assert span["end_ms"] <= tl["duration_ms"] + 5, (run["run_id"], span, tl["duration_ms"])
            kinds = {s["kind"] for s in tl["spans"]}
            assert "TOOL" in kinds and "LLM" in kinds, kinds


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> tuple[str, list[str]]:
    """The README's demo-key line and its curl commands (continuation lines joined)."""
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    block = next(b for b in blocks if "curl" in b and "KEY=" in b)
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip()]
    key_line = next(ln for ln in lines if ln.startswith("KEY="))
    return key_line, [ln for ln in lines if ln.startswith("curl")]


def check_readme_curl_examples(api: str, key: str, data_dir: Path, cwd: Path) -> None:
    key_line, curls = readme_commands()
    assert len(curls) >= 8, curls
    port = api.rsplit(":", 1)[1]
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        run_id = http.get("/v1/runs", params={"limit": 1}).json()["items"][0]["run_id"]
    for cmd in curls:
        # the README's own text, pointed at this demo: its port, a real run id, and curl told to
        # fail on an HTTP error (a 4xx/5xx answer must fail the test, not print and pass)
        line = (cmd.replace("localhost:8000", f"127.0.0.1:{port}").replace("<run_id>", run_id)
                .replace("curl ", "curl --fail-with-body ", 1).split("  #")[0])
        script = "set -euo pipefail\n" + key_line.replace(".agentstream/", f"{data_dir}/") + "\n" + line
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=cwd)
        assert r.returncode == 0, f"README command failed ({r.returncode}): {cmd}\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        out = r.stdout.strip()
        assert out, cmd
        doc = json.loads(out)
        assert "error" not in doc, (cmd, out[:500])
