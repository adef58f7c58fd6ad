"""The embedded stack: the broker, then each part as its own process, watched and stopped together.

chDB allows one owner per data directory, so the sink and the query API share one process
(``agentstream serve-embedded``); the processors and the ingest gateway run on their own.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .embedded_broker import EmbeddedBroker, free_port

# The embedded profile: Tansu completes a group join after about half the session timeout, so
# a short timeout makes a restart rejoin in ~3 s instead of ~30 s. Production keeps its own.
EMBEDDED_SESSION_TIMEOUT_MS = 6000


def port_or_free(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


@dataclass
class Part:
    name: str
    args: list[str]
    health_url: str | None
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class StackConfig:
    data_dir: Path = Path(".agentstream")
    topic_prefix: str = "agentstream."
    partitions: int = 4
    broker_port: int = 9092
    api_port: int = 8000
    gateway_port: int = 8001
    processors_port: int = 6066
    with_gateway: bool = True


@dataclass
class Stack:
    config: StackConfig
    broker: EmbeddedBroker | None = None
    parts: list[Part] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def env(self) -> dict[str, str]:
        """Every part's settings for the embedded profile, as environment variables."""
        c = self.config
        data = c.data_dir.resolve()
        bootstrap = self.broker.bootstrap_servers if self.broker else ""
        common = {"BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": c.topic_prefix}
        env = dict(os.environ)
        for prefix, extra in {
            "AGENTSTREAM_PRODUCER_": {"SPOOL_DIR": str(data / "spool"),
                                      "SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS)},
            "AGENTSTREAM_PROCESSORS_": {"BROKER_SESSION_TIMEOUT": str(EMBEDDED_SESSION_TIMEOUT_MS / 1000),
                                        "WEB_PORT": str(c.processors_port),
                                        "DATA_DIR": str(data / "processors")},
            "AGENTSTREAM_SINK_": {"CLICKHOUSE_DSN": f"chdb://{data / 'chdb'}",
                                  "SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS)},
            "AGENTSTREAM_API_": {"CLICKHOUSE_DSN": f"chdb://{data / 'chdb'}",
                                 "API_KEYS_FILE": str(data / "api_keys.json"),
                                 "PORT": str(c.api_port)},
            "AGENTSTREAM_GATEWAY_": {"API_KEYS_FILE": str(data / "api_keys.json"),
                                     "PORT": str(c.gateway_port)},
        }.items():
            for k, v in {**common, **extra}.items():
                env.setdefault(prefix + k, v)
        return env

    def start(self) -> None:
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        logs = c.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.broker = EmbeddedBroker(port=port_or_free(c.broker_port),
                                     log_path=str(logs / "broker.log")).start()
        from agentstream.schemas.topics import create_topics

        create_topics(self.broker.bootstrap_servers, prefix=c.topic_prefix, partitions=c.partitions)
        c.api_port = port_or_free(c.api_port)
        c.gateway_port = port_or_free(c.gateway_port)
        c.processors_port = port_or_free(c.processors_port)
        cmd = [sys.executable, "-m", "agentstream.cli.main"]
        self.parts = [
            Part("processors", cmd + ["processors", "run"],
                 f"http://127.0.0.1:{c.processors_port}/readyz"),
            Part("sink+api", cmd + ["serve-embedded"], f"{self.api_url}/readyz"),
        ]
        if c.with_gateway:
            self.parts.append(Part("gateway", cmd + ["gateway", "run"], f"{self.gateway_url}/readyz"))
        env = self.env()
        for part in self.parts:
            part.log = logs / f"{part.name.replace('+', '_')}.log"
            part.proc = subprocess.Popen(part.args, env=env, stdout=open(part.log, "ab"),
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def status(self) -> dict[str, str]:
        out = {"broker": "up" if self.broker and self.broker.alive() else "DOWN"}
        for part in self.parts:
            if not part.alive():
                out[part.name] = f"EXITED ({part.proc.returncode if part.proc else '?'}); see {part.log}"
                continue
            try:
                r = httpx.get(part.health_url, timeout=1.0) if part.health_url else None
                out[part.name] = "ready" if r is None or r.status_code == 200 else f"starting ({r.status_code})"
            except httpx.HTTPError:
                out[part.name] = "starting"
        return out

    def wait_ready(self, timeout: float = 120.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if all(v in ("up", "ready") for v in st.values()):
                return st
            failed = {k: v for k, v in st.items() if v.startswith(("EXITED", "DOWN"))}
            if failed or time.monotonic() > deadline:
                raise RuntimeError("embedded stack did not become ready: " + json.dumps(st))
            time.sleep(0.5)

    def stop(self, timeout: float = 15.0) -> None:
        for part in reversed(self.parts):
            if part.alive():
                os.killpg(part.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for part in self.parts:
            if part.proc is None:
                continue
            try:
                part.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(part.proc.pid, signal.SIGKILL)
                part.proc.wait()
        if self.broker:
            self.broker.stop()
