"""The MCP HTTP proxy's failures by class: an unreachable server is a 502 the client can act on,
and the forwarded call's step fails; a bug in the proxy is not disguised as "server down"."""
from __future__ import annotations

import socket

import httpx
import pytest
from starlette.testclient import TestClient

from agentstream.producer.mcp_http import HttpProxy

from step_support import drain, make_tracer

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "search", "arguments": {"q": "x"}}}


@pytest.fixture
def tracer(tmp_path):
    t = make_tracer(tmp_path, speedups=True, digest_key="k")
    yield t
    t.close(0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def test_an_unreachable_server_is_a_502_and_the_call_fails_its_step(tracer):
    proxy = HttpProxy(tracer, f"http://127.0.0.1:{_closed_port()}/mcp")
    with TestClient(proxy.app()) as client:
        r = client.post("/mcp", json=CALL, headers={"mcp-session-id": "s1"})
    assert r.status_code == 502
    assert "MCP server unreachable (ConnectError)" in r.json()["error"]["message"]
    steps = [e["payload"] for e in drain(tracer) if e["kind"] == "STEP"]
    assert [(s["name"], s["status"]) for s in steps] == [("search", "ERROR")]


class _BrokenClient:
    """An httpx client whose request building has a bug (not a network failure)."""

    def build_request(self, *args, **kwargs):
        raise TypeError("a bug in the proxy")

    async def aclose(self) -> None:
        pass


def test_a_bug_is_not_reported_as_an_unreachable_server(tracer):
    proxy = HttpProxy(tracer, "http://127.0.0.1:1/mcp", client=_BrokenClient())
    with TestClient(proxy.app(), raise_server_exceptions=False) as client:
        r = client.post("/mcp", json=CALL, headers={"mcp-session-id": "s1"})
    assert r.status_code == 500  # the server's error, with its traceback in the log
    assert "unreachable" not in r.text


def test_a_timeout_is_an_unreachable_server_too(tracer):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    proxy = HttpProxy(tracer, "http://mcp.invalid/mcp", client=client)
    with TestClient(proxy.app()) as tc:
        r = tc.post("/mcp", json=CALL, headers={"mcp-session-id": "s1"})
    assert r.status_code == 502 and "(ReadTimeout)" in r.json()["error"]["message"]
