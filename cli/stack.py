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
from .stack_state import drain, remove_state, write_state
from .supervision import RestartPolicy

# The embedded profile: Tansu completes a group join after about half the session timeout, so
# a short timeout makes a restart rejoin in ~3 s instead of ~30 s. Production keeps its own.
EMBEDDED_SESSION_TIMEOUT_MS = 6000


class PortInUse(RuntimeError):
    """A port the user named is taken: the stack must not quietly run somewhere else."""


def port_or_free(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def claim_port(what: str, preferred: int, explicit: bool, moved: dict[str, tuple[int, int]]) -> int:
    """The port to use: a named one or a clear error; a default one, moved if it is taken (and
    recorded in ``moved`` so the banner can say so)."""
    got = port_or_free(preferred)
    if got != preferred:
        if explicit:
            raise PortInUse(f"{what} port {preferred} is in use on 127.0.0.1; free it or pick "
                            f"another with --{what}-port")
        moved[what] = (preferred, got)
    return got


@dataclass
class Part:
    name: str
    args: list[str]
    health_url: str | None
    proc: subprocess.Popen | None = None
    log: Path | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)

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
    # Start a part that exited again, with crash-loop backoff (cli/supervision.py), as compose
    # and Kubernetes do; the broker is never restarted (its topics are in memory).
    restart: bool = True
    # The ports the user named ("broker", "api", "gateway", "processors"): used or an error.
    explicit: frozenset[str] = frozenset()
    # Defaults that were taken and moved: name -> (default, used).
    moved: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Stack:
    config: StackConfig
    broker: EmbeddedBroker | None = None
    parts: list[Part] = field(default_factory=list)
    _stopping: bool = False

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
        # Every port is checked before anything starts, so a named port that is taken stops
        # the stack before it owns a process.
        c.broker_port = claim_port("broker", c.broker_port, "broker" in c.explicit, c.moved)
        c.api_port = claim_port("api", c.api_port, "api" in c.explicit, c.moved)
        if c.with_gateway:
            c.gateway_port = claim_port("gateway", c.gateway_port, "gateway" in c.explicit, c.moved)
        c.processors_port = claim_port("processors", c.processors_port, "processors" in c.explicit,
                                       c.moved)
        self.broker = EmbeddedBroker(port=c.broker_port, log_path=str(logs / "broker.log"),
                                     own_session=True).start()
        from agentstream.schemas.topics import create_topics

        create_topics(self.broker.bootstrap_servers, prefix=c.topic_prefix, partitions=c.partitions)
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
            self.launch(part, env)
        write_state(c.data_dir, self.state())

    def launch(self, part: Part, env: dict[str, str]) -> None:
        """Starts one part (again), its output appended to its log."""
        assert part.log is not None
        part.proc = subprocess.Popen(part.args, env=env, stdout=open(part.log, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        part.policy.started(time.monotonic())

    def supervise(self, say=lambda _msg: None, now: float | None = None) -> None:
        """Starts again each part that exited, when its ``RestartPolicy`` says; says so."""
        if not self.config.restart or self._stopping:
            return
        now = time.monotonic() if now is None else now
        for part in self.parts:
            if part.proc is None or part.alive():
                continue
            if part.policy.due_at is None:
                delay = part.policy.exited(now)
                say(f"{part.name} exited (code {part.proc.returncode}); starting it again in {delay:g} s "
                    f"(exit {part.policy.restarts} in a row; its log: {part.log})")
            if part.policy.due(now) and not self._stopping:
                self.launch(part, self.env())
                say(f"{part.name} started again (pid {part.proc.pid})")
                write_state(self.config.data_dir, self.state())

    def state(self) -> dict:
        """What stack.json says: where everything listens and which processes are the stack's."""
        c = self.config
        return {
            "pid": os.getpid(), "bootstrap_servers": self.broker.bootstrap_servers if self.broker else "",
            "topic_prefix": c.topic_prefix, "api_url": self.api_url,
            "gateway_url": self.gateway_url if c.with_gateway else None,
            "processors_url": f"http://127.0.0.1:{c.processors_port}",
            "children": {"broker": self.broker.proc.pid if self.broker and self.broker.proc else None,
                         **{p.name: p.proc.pid for p in self.parts if p.proc}},
            "moved": {k: {"default": a, "used": b} for k, (a, b) in c.moved.items()},
        }

    def status(self) -> dict[str, str]:
        out = {"broker": "up" if self.broker and self.broker.alive() else "DOWN"}
        for part in self.parts:
            if not part.alive():
                again = (f"; starting again in {max(0.0, part.policy.due_at - time.monotonic()):.0f} s"
                         if part.policy.due_at is not None else "")
                out[part.name] = f"EXITED ({part.proc.returncode if part.proc else '?'}){again}; see {part.log}"
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

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def stop(self, timeout: float = 15.0, say=lambda _msg: None, drain_s: float = 45.0) -> None:
        """Stops in the order that loses nothing, each step bounded: the gateway (a producer;
        the caller has stopped its own producers first), then, once the consumers have caught
        up, the processors (they commit on SIGTERM), then, caught up again, the sink, which
        stores and commits what it holds, and the broker last."""
        self._stopping = True  # no part is started again from here on
        bootstrap = self.broker.bootstrap_servers if self.broker and self.broker.alive() else None
        try:
            self._stop_part(self.part("gateway"), timeout, say)
            for name in ("processors", "sink+api"):
                part = self.part(name)
                if part is None or not part.alive():
                    continue
                if bootstrap and drain_s > 0:
                    say(f"waiting for the pipeline to drain before stopping {name} ...")
                    if not drain(bootstrap, timeout_s=drain_s, say=say):
                        say(f"the pipeline did not drain in {drain_s:g} s; stopping {name} anyway")
                self._stop_part(part, timeout, say)
            for part in self.parts:  # anything else, and anything that survived
                self._stop_part(part, timeout, say)
        finally:
            if self.broker:
                self.broker.stop()
            remove_state(self.config.data_dir)

    @staticmethod
    def _stop_part(part: Part | None, timeout: float, say) -> None:
        if part is None or part.proc is None:
            return
        if part.alive():
            say(f"stopping {part.name} ...")
            try:
                os.killpg(part.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            part.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{part.name} did not stop in {timeout:g} s; killing it")
            try:
                os.killpg(part.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            part.proc.wait()
        # the part's own children (its process group) must not outlive it either
        try:
            os.killpg(part.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
