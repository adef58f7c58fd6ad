"""The streamable-HTTP MCP proxy: an HTTP endpoint in front of one upstream MCP server URL.

Every request (POST messages, GET event stream, DELETE session end) goes on to the upstream
URL with its headers (hop-by-hop ones aside); responses come back unchanged, JSON or SSE,
streamed as they arrive. A session is the server's ``Mcp-Session-Id``; each is one run, ended by
the client's DELETE, by ``idle_s`` without traffic, or when the proxy stops. Traffic without a
session id (a stateless server) is one run for the proxy's lifetime.

Refused ``tools/call`` requests are answered here (JSON) and never reach the server.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import urlsplit

from .mcp_session import McpSession

if TYPE_CHECKING:
    from .tracer import Tracer

log = logging.getLogger("agentstream.producer")
HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding",
               "accept-encoding", "upgrade", "te", "trailer", "proxy-authorization",
               "proxy-authenticate"}
DROP_RESPONSE = {"content-length", "transfer-encoding", "connection", "content-encoding",
                 "keep-alive"}
SESSION_HEADER = "mcp-session-id"


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class SseReader:
    """Splits an SSE byte stream into events and hands each JSON ``data`` to a callback; the
    bytes themselves are passed on untouched by the caller."""

    def __init__(self, on_message: Any) -> None:
        self._buf = b""
        self._on = on_message

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buf:
            event, self._buf = self._buf.split(b"\n\n", 1)
            data = [ln[5:].lstrip(b" ") if ln.startswith(b"data:") else None
                    for ln in event.split(b"\n")]
            payload = b"\n".join(d for d in data if d is not None)
            msg = _parse(payload)
            for m in msg if isinstance(msg, list) else (msg,):
                self._on(m)


class HttpProxy:
    def __init__(self, tracer: Tracer, upstream: str, *, idle_s: float = 1800.0,
                 client: Any = None) -> None:
        import httpx

        self.tracer = tracer
        self.upstream = upstream
        self.idle_s = idle_s
        self.label = urlsplit(upstream).netloc or upstream
        self.sessions: dict[str | None, McpSession] = {}
        self._seen: dict[str | None, float] = {}
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=10.0), follow_redirects=False)

    # ---- sessions -----------------------------------------------------------------------
    def _new_session(self, sid: str | None) -> McpSession:
        return McpSession(self.tracer, transport="streamable_http", server_label=self.label,
                          session_id=sid)

    def _session(self, sid: str | None, msgs: list[Any]) -> tuple[McpSession, bool]:
        """(session, provisional): an initialize without a session id gets a session of its
        own, registered once the server names it."""
        self._sweep()
        if sid is None and any(isinstance(m, dict) and m.get("method") == "initialize"
                               for m in msgs):
            return self._new_session(None), True
        s = self.sessions.get(sid)
        if s is None or s.closed:
            s = self.sessions[sid] = self._new_session(sid)
        self._seen[sid] = time.monotonic()
        return s, False

    def _register(self, session: McpSession, sid: str | None) -> None:
        if sid:
            session.set_session_id(sid)
        if sid in self.sessions and not self.sessions[sid].closed:
            return
        self.sessions[sid] = session
        self._seen[sid] = time.monotonic()

    def _sweep(self) -> None:
        now = time.monotonic()
        for sid, seen in list(self._seen.items()):
            if sid is not None and now - seen > self.idle_s:
                self._seen.pop(sid, None)
                s = self.sessions.pop(sid, None)
                if s is not None:
                    s.close()

    def close_all(self) -> None:
        for s in list(self.sessions.values()):
            s.close()
        self.sessions.clear()

    # ---- the ASGI app -------------------------------------------------------------------
    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        @contextlib.asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[None]:
            yield
            self.close_all()
            await self.client.aclose()

        return Starlette(routes=[Route("/{path:path}", self.handle,
                                       methods=["GET", "POST", "DELETE"])],
                         lifespan=lifespan)

    async def handle(self, request: Any) -> Any:
        import anyio
        import httpx
        from starlette.responses import JSONResponse, Response

        sid = request.headers.get(SESSION_HEADER)
        body = await request.body() if request.method == "POST" else b""
        parsed = _parse(body) if request.method == "POST" else None
        msgs = parsed if isinstance(parsed, list) else [parsed]
        session, provisional = self._session(sid, msgs)
        refusals: list[dict[str, Any]] = []  # the proxy's own replies to refused calls
        keep: list[Any] = []  # the messages forwarded
        for m in msgs:
            reply = await anyio.to_thread.run_sync(session.on_client, m)
            if reply is None:
                keep.append(m)
            else:
                refusals.append(reply)
        if refusals and not keep:
            return JSONResponse(refusals if isinstance(parsed, list) else refusals[0])
        if refusals:
            body = json.dumps(keep).encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        url = self.upstream + (f"?{request.url.query}" if request.url.query else "")
        try:
            upstream = await self.client.send(
                self.client.build_request(request.method, url, headers=headers,
                                          content=body or None), stream=True)
        except httpx.HTTPError as exc:  # the server is down: every forwarded call fails
            for m in keep:
                if isinstance(m, dict) and "id" in m and "method" in m:
                    session.on_server({"jsonrpc": "2.0", "id": m["id"], "error": {
                        "code": -32603, "message": "MCP server unreachable"}})
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32603, "message": f"agentstream proxy: MCP server unreachable "
                                          f"({type(exc).__name__})"}}, status_code=502)
        new_sid = upstream.headers.get(SESSION_HEADER)
        if provisional:
            self._register(session, new_sid)
        out_headers = {k: v for k, v in upstream.headers.items()
                       if k.lower() not in DROP_RESPONSE}
        if request.method == "DELETE":
            await upstream.aclose()
            s = self.sessions.pop(sid, None)
            self._seen.pop(sid, None)
            if s is not None:
                s.close()
            return Response(status_code=upstream.status_code, headers=out_headers)
        ctype = upstream.headers.get("content-type", "")
        if ctype.startswith("text/event-stream"):
            return self._stream(upstream, session, out_headers, refusals)
        content = await upstream.aread()
        await upstream.aclose()
        answer = _parse(content) if ctype.startswith("application/json") else None
        for m in answer if isinstance(answer, list) else (answer,):
            session.on_server(m)
        if refusals and isinstance(answer, list):
            content = json.dumps(answer + refusals).encode()
        return Response(content, status_code=upstream.status_code, headers=out_headers)

    def _stream(self, upstream: Any, session: McpSession, headers: dict[str, str],
                refusals: list[dict]) -> Any:
        from starlette.background import BackgroundTask
        from starlette.responses import StreamingResponse

        reader = SseReader(session.on_server)

        async def body() -> AsyncIterator[bytes]:
            for r in refusals:  # a batch's refused calls, answered ahead of the rest
                yield b"event: message\ndata: " + json.dumps(r).encode() + b"\n\n"
            async for chunk in upstream.aiter_raw():
                reader.feed(chunk)
                yield chunk

        return StreamingResponse(body(), status_code=upstream.status_code, headers=headers,
                                 background=BackgroundTask(upstream.aclose))


def serve(tracer: Tracer, upstream: str, host: str, port: int, *, idle_s: float = 1800.0) -> None:
    """Runs the proxy until interrupted; ends every session's run on the way out."""
    import uvicorn

    class _Server(uvicorn.Server):
        # uvicorn re-raises SIGTERM/SIGINT after a graceful stop, which would kill the process
        # before the caller flushes the sessions' RUN_ENDs to Kafka: stop, don't re-raise.
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    proxy = HttpProxy(tracer, upstream, idle_s=idle_s)
    try:
        _Server(uvicorn.Config(proxy.app(), host=host, port=port, log_level="warning")).run()
    finally:
        proxy.close_all()
