"""`agentstream mcp proxy` between the official MCP Python SDK's client and server, both
transports, against the real broker: TOOL steps decodable on the raw topic and stored in chDB
through the real processors and sink, no argument or result content anywhere, budgets and
remote STOP refusing a call before the server sees it."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

mcp = pytest.importorskip("mcp")

from agentstream.api.gateway.server import free_port  # noqa: E402
from agentstream.producer.capture import canonical_json  # noqa: E402
from agentstream.schemas import COMMAND, Codec, topic_name  # noqa: E402

from integrations_fake_server import tenant_runs  # noqa: E402
from pipeline_stack import stack_fixtures  # noqa: E402

pytestmark = pytest.mark.integration
KEY = "mcp-test-digest-key"
SECRET = "sk-live-" + "Q7f" * 12  # an argument value that must never travel
topic_prefix, stack = stack_fixtures()

SERVER = '''
import os, sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("fixture-tools", log_level="WARNING")
LOG = os.environ["MCP_FIXTURE_LOG"]

def _called(name):
    with open(LOG, "a") as f:
        f.write(name + "\\n")

@server.tool()
def add(a: int, b: int) -> int:
    _called("add")
    return a + b

@server.tool()
def remember(text: str) -> str:
    _called("remember")
    return "stored %d chars" % len(text)

@server.tool()
def boom(reason: str) -> str:
    _called("boom")
    raise ToolError("tool failed: " + reason)

if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run()
    else:
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
'''


@pytest.fixture
def server_script(tmp_path):
    p = tmp_path / "fixture_server.py"
    p.write_text(SERVER)
    return p


def _env(bootstrap, topic_prefix, tmp_path, log_path):
    env = dict(os.environ)
    env.update({"AGENTSTREAM_PRODUCER_BOOTSTRAP_SERVERS": bootstrap,
                "AGENTSTREAM_PRODUCER_TOPIC_PREFIX": topic_prefix,
                "AGENTSTREAM_PRODUCER_DIGEST_KEY": KEY,
                "AGENTSTREAM_PRODUCER_SESSION_TIMEOUT_MS": "6000",
                "AGENTSTREAM_PRODUCER_SPOOL_DIR": str(tmp_path / "spool"),
                "AGENTSTREAM_DATA_DIR": str(tmp_path / "no-stack"),
                "MCP_FIXTURE_LOG": str(log_path)})
    return env


def _proxy_cmd(tenant, *opts):
    return [sys.executable, "-m", "agentstream.cli.main", "mcp", "proxy", "--tenant", tenant,
            "--agent-id", "mcp-test-agent", *opts]


def _digest(value):
    return hmac.new(KEY.encode(), canonical_json(value), hashlib.sha256).hexdigest()


def _calls(log_path):
    return log_path.read_text().split() if log_path.exists() else []


def _tenant_runs(bootstrap, topic_prefix, tenant, want_runs):
    return tenant_runs(bootstrap, topic_name("raw", topic_prefix), tenant, want_runs,
                       forbidden=SECRET.encode())  # content never on the wire


def _payload(ev):
    return ev["payload"]


def _tool_steps(events):
    return [_payload(e) for e in events if e["kind"] == "STEP" and _payload(e)["step_kind"] == "TOOL"]


async def _stdio_session(cmd, env, work):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
    async with Client(params, mode="legacy") as client:
        return await work(client)


def test_stdio_proxy_records_tool_calls_as_steps(server_script, bootstrap, topic_prefix,
                                                 tmp_path, unique, stack):
    tenant, run_id, log_path = f"mcp-{unique}", str(uuid.uuid4()), tmp_path / "calls.log"
    env = _env(bootstrap, topic_prefix, tmp_path, log_path)
    cmd = _proxy_cmd(tenant, "--run-id", run_id, "--session-id", "sess-1", "--",
                     sys.executable, str(server_script), "stdio")

    async def work(client):
        tools = await client.list_tools()
        added = await client.call_tool("add", {"a": 2, "b": 3})
        kept = await client.call_tool("remember", {"text": SECRET})
        failed = await client.call_tool("boom", {"reason": "disk full"})
        return tools, added, kept, failed

    tools, added, kept, failed = asyncio.run(_stdio_session(cmd, env, work))
    assert {t.name for t in tools.tools} == {"add", "remember", "boom"}
    assert not added.is_error and added.content[0].text == "5"
    assert not kept.is_error and failed.is_error
    assert _calls(log_path) == ["add", "remember", "boom"]

    events = _tenant_runs(bootstrap, topic_prefix, tenant, 1)[run_id]
    assert events[0]["kind"] == "RUN_START" and events[-1]["kind"] == "RUN_END"
    assert events[0]["session_id"] == "sess-1"
    start_attrs = events[0]["attributes"] or {}
    assert start_attrs.get("mcp.transport") == "stdio"
    assert start_attrs.get("mcp.server.name") == "fixture-tools"
    steps = _tool_steps(events)
    assert [s["tool"]["tool_name"] for s in steps] == ["add", "remember", "boom"]
    assert steps[0]["tool"]["args_digest"] == _digest({"a": 2, "b": 3})
    assert steps[1]["tool"]["args_digest"] == _digest({"text": SECRET})
    assert [s["status"] for s in steps] == ["OK", "OK", "ERROR"]
    assert all(s["latency_ms"] > 0 for s in steps)
    failures = [_payload(e) for e in events if e["kind"] == "FAILURE"]
    assert [(f["failure_type"], f["failure_code"]) for f in failures] == [("TOOL", "tool_error")]
    assert failures[0]["step_id"] == steps[2]["step_id"]
    end = _payload(events[-1])
    assert end["step_count"] == 3 and end["status"] == "SUCCESS"
    assert "disk full" not in repr(events) and SECRET not in repr(events)
    stored = stack.assert_stored_as_emitted(
        tenant, events, secrets=(SECRET, "disk full", f"stored {len(SECRET)} chars"))
    assert [(r["tool_name"], r["args_digest"], r["status"]) for r in stored if r["step_kind"] == "TOOL"] == [
        ("add", _digest({"a": 2, "b": 3}), "OK"), ("remember", _digest({"text": SECRET}), "OK"),
        ("boom", steps[2]["tool"]["args_digest"], "ERROR")]
    assert {r["session_id"] for r in stored} == {"sess-1"}


def test_stdio_budget_refuses_the_call_and_the_server_never_sees_it(
        server_script, bootstrap, topic_prefix, tmp_path, unique, stack):
    tenant, run_id, log_path = f"mcpb-{unique}", str(uuid.uuid4()), tmp_path / "calls.log"
    env = _env(bootstrap, topic_prefix, tmp_path, log_path)
    cmd = _proxy_cmd(tenant, "--run-id", run_id, "--max-steps", "2", "--",
                     sys.executable, str(server_script), "stdio")

    async def work(client):
        return [await client.call_tool("add", {"a": i, "b": i}) for i in range(4)]

    results = asyncio.run(_stdio_session(cmd, env, work))
    assert [r.is_error for r in results] == [False, False, True, True]
    assert "budget" in results[2].content[0].text
    assert _calls(log_path) == ["add", "add"]
    events = _tenant_runs(bootstrap, topic_prefix, tenant, 1)[run_id]
    assert len(_tool_steps(events)) == 2
    assert [(_payload(e)["failure_type"], _payload(e)["failure_code"]) for e in events
            if e["kind"] == "FAILURE"] == [("BUDGET", "steps_budget_exceeded")]
    assert _payload(events[-1])["status"] == "PARTIAL"
    assert _payload(events[-1])["outcome"] == "budget_stopped"
    stack.assert_stored_as_emitted(tenant, events)
    assert stack.run(tenant, run_id)["outcome"] == "budget_stopped"


def _send_stop(bootstrap, topic_prefix, tenant, run_id):
    from confluent_kafka import Producer

    cmd = {"command_id": str(uuid.uuid4()), "tenant_id": tenant, "run_id": run_id,
           "command_type": "STOP", "reason": "operator stop", "issued_by": "test",
           "issued_us": time.time_ns() // 1000, "throttle_ms": None, "alert_id": None}
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic_name("commands", topic_prefix), Codec().encode(COMMAND, cmd), run_id.encode())
    assert p.flush(10) == 0


def test_stdio_remote_stop_refuses_the_next_call(server_script, bootstrap, topic_prefix,
                                                 tmp_path, unique, stack):
    tenant, run_id, log_path = f"mcps-{unique}", str(uuid.uuid4()), tmp_path / "calls.log"
    env = _env(bootstrap, topic_prefix, tmp_path, log_path)
    cmd = _proxy_cmd(tenant, "--run-id", run_id, "--", sys.executable, str(server_script),
                     "stdio")

    async def work(client):
        results = [await client.call_tool("add", {"a": 1, "b": 1})]
        # The listener starts at the topic's end once it has its partitions: a STOP sent
        # before that is not seen, so it is sent again until a call is refused.
        for _ in range(60):
            await asyncio.to_thread(_send_stop, bootstrap, topic_prefix, tenant, run_id)
            await asyncio.sleep(0.5)
            results.append(await client.call_tool("add", {"a": 1, "b": 1}))
            if results[-1].is_error:
                break
        results.append(await client.call_tool("add", {"a": 2, "b": 2}))
        return results

    results = asyncio.run(_stdio_session(cmd, env, work))
    served = [r for r in results if not r.is_error]
    assert results[-1].is_error and results[-2].is_error
    assert "stopped by command" in results[-1].content[0].text
    assert len(_calls(log_path)) == len(served)  # refused calls never reached the server
    events = _tenant_runs(bootstrap, topic_prefix, tenant, 1)[run_id]
    assert len(_tool_steps(events)) == len(served)
    assert any(e["kind"] == "COMMAND_ACK" and _payload(e)["status"] == "applied" for e in events)
    assert _payload(events[-1])["outcome"] == "stopped_by_command"
    stored = stack.assert_stored_as_emitted(tenant, events)
    assert "COMMAND_ACK" in {r["kind"] for r in stored}
    assert stack.run(tenant, run_id)["outcome"] == "stopped_by_command"


def _wait_port(port, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def test_http_proxy_one_run_per_session_and_budget(server_script, bootstrap, topic_prefix,
                                                   tmp_path, unique, stack):
    from mcp import Client

    tenant, log_path = f"mcph-{unique}", tmp_path / "calls.log"
    env = _env(bootstrap, topic_prefix, tmp_path, log_path)
    up_port, proxy_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, str(server_script), "http", str(up_port)],
                                      env=env, stderr=(tmp_path / "server.err").open("wb")))
        _wait_port(up_port, procs[-1])
        procs.append(subprocess.Popen(
            _proxy_cmd(tenant, "--max-steps", "2", "--upstream",
                       f"http://127.0.0.1:{up_port}/mcp", "--listen", f"127.0.0.1:{proxy_port}"),
            env=env, stderr=(tmp_path / "proxy.err").open("wb")))
        _wait_port(proxy_port, procs[-1])

        async def session(calls):
            async with Client(f"http://127.0.0.1:{proxy_port}/mcp", mode="legacy") as client:
                return [await client.call_tool(name, args) for name, args in calls]

        async def both():
            return await asyncio.gather(
                session([("add", {"a": 1, "b": 2}), ("remember", {"text": SECRET}),
                         ("add", {"a": 5, "b": 5})]),
                session([("boom", {"reason": "x"})]))

        first, second = asyncio.run(both())
    finally:
        for p in reversed(procs):
            p.terminate()
            assert p.wait(15) == 0 or p is procs[0]  # the proxy stops cleanly on SIGTERM
    assert [r.is_error for r in first] == [False, False, True]
    assert "budget" in first[2].content[0].text
    assert [r.is_error for r in second] == [True]
    assert sorted(_calls(log_path)) == ["add", "boom", "remember"]

    runs = _tenant_runs(bootstrap, topic_prefix, tenant, 2)
    assert len(runs) == 2
    by_tools = {tuple(s["tool"]["tool_name"] for s in _tool_steps(evs)): evs
                for evs in runs.values()}
    assert set(by_tools) == {("add", "remember"), ("boom",)}
    a, b = by_tools[("add", "remember")], by_tools[("boom",)]
    assert a[0]["session_id"] and b[0]["session_id"] and a[0]["session_id"] != b[0]["session_id"]
    assert all(e["session_id"] == a[0]["session_id"] for e in a)
    assert (a[0]["attributes"] or {}).get("mcp.transport") == "streamable_http"
    assert _tool_steps(a)[1]["tool"]["args_digest"] == _digest({"text": SECRET})
    assert _payload(a[-1])["outcome"] == "budget_stopped"
    assert _tool_steps(b)[0]["status"] == "ERROR"
    assert _payload(b[-1])["status"] in ("SUCCESS", "FAILURE")
    for evs in (a, b):
        stored = stack.assert_stored_as_emitted(tenant, evs, secrets=(SECRET,))
        assert {r["session_id"] for r in stored} == {evs[0]["session_id"]}
