"""Start the processors worker as a child process and wait until it is ready.

Used by the integration tests, the bench and anyone composing a stack in Python; ``agentstream up``
does the same with ``agentstream processors run``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(bootstrap: str, prefix: str, app_id: str, web_port: int, data_dir: str | Path,
               session_timeout: float = 6.0, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTSTREAM_PROCESSORS_TOPIC_PREFIX": prefix,
        "AGENTSTREAM_PROCESSORS_APP_ID": app_id,
        "AGENTSTREAM_PROCESSORS_WEB_PORT": str(web_port),
        "AGENTSTREAM_PROCESSORS_WEB_HOST": "127.0.0.1",
        "AGENTSTREAM_PROCESSORS_DATA_DIR": str(data_dir),
        "AGENTSTREAM_PROCESSORS_BROKER_SESSION_TIMEOUT": str(session_timeout),
    })
    env.update({f"AGENTSTREAM_PROCESSORS_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    web_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                return bool(json.load(r).get("ready"))
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def records_in(self) -> float:
        """Records the worker has read from raw so far (its /metrics counter); 0 while it is not up."""
        try:
            body = urllib.request.urlopen(f"{self.url}/metrics", timeout=5).read().decode()
        except Exception:  # noqa: BLE001 - not up yet
            return 0.0
        m = re.search(r"^agentstream_processors_records_in_total (\S+)$", body, re.M)
        return float(m.group(1)) if m else 0.0

    def wait_ready(self, timeout: float = 90.0) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; log: {self.log_path}\n"
                                   + self.log_tail())
            if self.ready():
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready in {timeout}s; log: {self.log_path}\n" + self.log_tail())

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if not ln.startswith("%")]
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit, as a crash would."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_worker(bootstrap: str, prefix: str, app_id: str, data_dir: str | Path, log_path: str | Path,
                 web_port: int | None = None, session_timeout: float = 6.0, **extra: str) -> WorkerProcess:
    """Starts ``python -m agentstream.stream_processors``; call ``wait_ready()`` on the result."""
    port = web_port or free_port()
    log_path = Path(log_path)
    env = worker_env(bootstrap, prefix, app_id, port, data_dir, session_timeout, **extra)
    proc = subprocess.Popen([sys.executable, "-m", "agentstream.stream_processors"], env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return WorkerProcess(proc, port, log_path)
