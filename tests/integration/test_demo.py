"""``agentstream demo`` as a new user runs it: it prints where the API is and a demo key, and
/v1/runs lists runs from several agents within 30 s. The demo owns its chDB, so it runs as a
subprocess with its own data dir and broker."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

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
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode is not None
