"""The stdio MCP proxy: the client talks to this process as if it were the server.

The server command runs as a child process. Messages are newline-delimited JSON-RPC (the MCP
stdio transport), forwarded byte for byte in both directions; only a refused ``tools/call`` is
answered here instead of being forwarded. The server's stderr is the proxy's stderr (MCP keeps
logs there). One proxy process is one session and so one run.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, Sequence

from .mcp_session import McpSession

if TYPE_CHECKING:
    from .tracer import Tracer

log = logging.getLogger("agentstream.producer")
SERVER_EXIT_WAIT_S = 5.0


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None  # not ours to judge: the peer answers a parse error


class StdioProxy:
    def __init__(self, tracer: Tracer, command: Sequence[str], *, run_id: str | None = None,
                 session_id: str | None = None, client_in: BinaryIO | None = None,
                 client_out: BinaryIO | None = None, env: dict[str, str] | None = None) -> None:
        if not command:
            raise ValueError("no MCP server command given (agentstream mcp proxy -- CMD ...)")
        self.command = list(command)
        self.tracer = tracer
        self.session = McpSession(tracer, transport="stdio",
                                  server_label=os.path.basename(self.command[0]),
                                  run_id=run_id, session_id=session_id)
        self._in = client_in or sys.stdin.buffer
        self._out = client_out or sys.stdout.buffer
        self._env = env
        self._out_lock = threading.Lock()
        self._done = threading.Event()
        self._client_eof = False
        self._signalled = False
        self.proc: subprocess.Popen | None = None

    def _to_client(self, data: bytes) -> None:
        with self._out_lock:
            self._out.write(data if data.endswith(b"\n") else data + b"\n")
            self._out.flush()

    def _client_loop(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            for line in self._in:
                if not line.strip():
                    continue
                forward = self._from_client(line)
                if forward is not None:
                    self.proc.stdin.write(forward if forward.endswith(b"\n") else forward + b"\n")
                    self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the server went away; the server loop reports it
        finally:
            self._client_eof = True
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self._done.set()

    def _from_client(self, line: bytes) -> bytes | None:
        """What to forward for one client line (None: nothing, the proxy answered it)."""
        msg = _parse(line)
        if isinstance(msg, list):  # a JSON-RPC batch (MCP 2025-03-26): refuse per element
            keep = []
            for m in msg:
                reply = self.session.on_client(m)
                if reply is None:
                    keep.append(m)
                else:
                    self._to_client(json.dumps(reply).encode())
            if len(keep) == len(msg):
                return line
            return json.dumps(keep).encode() if keep else None
        reply = self.session.on_client(msg)
        if reply is not None:
            self._to_client(json.dumps(reply).encode())
            return None
        return line

    def _server_loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                # the step closes before the client sees the answer: the client's next call
                # (which may be refused and end the run) always comes after it
                msg = _parse(line)
                for m in msg if isinstance(msg, list) else (msg,):
                    self.session.on_server(m)
                try:
                    self._to_client(line)
                except (BrokenPipeError, OSError, ValueError):
                    break  # the client is gone
        finally:
            self._done.set()

    def run(self) -> int:
        """Proxies until the client closes stdin or the server exits; returns the exit code
        (the server's own when it died first)."""
        self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=self._env, bufsize=0)
        prev = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
        client = threading.Thread(target=self._client_loop, name="mcp-client", daemon=True)
        server = threading.Thread(target=self._server_loop, name="mcp-server", daemon=True)
        client.start()
        server.start()
        try:
            self._done.wait()
            return self._shutdown(server)
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, prev)

    def _on_sigterm(self, *_: Any) -> None:
        self._signalled = True
        self._done.set()

    def _shutdown(self, server: threading.Thread) -> int:
        assert self.proc is not None
        if self._client_eof:
            # The client hung up: the server sees EOF on its stdin and should exit by itself.
            try:
                self.proc.wait(SERVER_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
        else:
            try:
                stdin = self.proc.stdin  # a pipe: Popen was given stdin=PIPE
                if stdin is not None:
                    stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(SERVER_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
        try:
            code = self.proc.wait(SERVER_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        server.join(SERVER_EXIT_WAIT_S)
        died = not self._client_eof and not self._signalled and code not in (0, None)
        self.session.close(RuntimeError(f"MCP server exited with code {code}") if died else None)
        return 0 if self._client_eof and code in (0, None, -signal.SIGTERM) else (code or 0)
