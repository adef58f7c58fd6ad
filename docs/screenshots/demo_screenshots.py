"""The README's screenshots, taken from what `agentstream demo` produces (`make screenshots`).

Runs the demo on private ports and a private data dir, waits for the fleet's first burst, and
captures the fleet page and the waterfall of a demo run that has a timed-out tool call and its
retry, with Debian's Chromium driven by Playwright (the browser tests' set-up). Writes
docs/screenshots/demo_fleet.png and demo_run_waterfall.png, then stops the demo with SIGTERM.
The browser tests write the other screenshots (seeded data) for docs/dashboard.md.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("AGENTSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(data: Path, runs: int) -> tuple[subprocess.Popen, str, str]:
    ports = {k: free_port() for k in ("api", "broker", "gateway", "processors")}
    args = [sys.executable, "-m", "agentstream.cli.main", "demo", "--data-dir", str(data),
            "--runs", str(runs)] + [a for k, p in ports.items() for a in (f"--{k}-port", str(p))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    api = key = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("the demo exited before it was ready")
        if m := re.search(r"query API \+ dashboard\s+(http://\S+)", line):
            api = m.group(1)
        if m := re.search(r"demo key for acme\s+(\S+)", line):
            key = m.group(1)
        if "fleet outcomes:" in line and api and key:
            return proc, api, key
    raise SystemExit("the demo did not finish its first burst in time")


def waterfall_run(api: str, key: str) -> str:
    """A finished support-agent run with a timeout, its retry and LLM calls."""
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        for _ in range(60):
            runs = http.get("/v1/runs", params={"agent": "support-agent", "status": "SUCCESS",
                                                "limit": 200}).json()["items"]
            for run in runs:
                spans = http.get(f"/v1/runs/{run['run_id']}/timeline").json()["spans"]
                if any(s["retry_of"] for s in spans) and sum(s["kind"] == "LLM" for s in spans) >= 2:
                    return run["run_id"]
            time.sleep(1)
    raise SystemExit("no demo run with a retry and LLM calls was stored")


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        proc, api, key = start_demo(Path(tmp) / "data", runs=400)
        try:
            run_id = waterfall_run(api, key)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_context(base_url=api, viewport={"width": 1440, "height": 900}).new_page()
                page.goto("/ui/login")
                page.fill("#api_key", key)
                page.click("button[type=submit]")
                page.wait_for_url("**/ui")
                page.wait_for_selector("#fleet-table tbody tr[data-agent]")
                page.wait_for_function("document.querySelectorAll('#fleet-table .spark canvas').length >= 15")
                page.wait_for_timeout(1500)  # the alert ticker and lag panel's first refresh
                page.screenshot(path=str(HERE / "demo_fleet.png"), full_page=True)
                page.goto(f"/ui/runs/{run_id}")
                page.wait_for_selector(".wf-bar[data-step-id]")
                page.wait_for_timeout(500)
                page.screenshot(path=str(HERE / "demo_run_waterfall.png"), full_page=True)
                browser.close()
            print(json.dumps({"api": api, "waterfall_run": run_id,
                              "written": ["demo_fleet.png", "demo_run_waterfall.png"]}))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
