"""McpSession and the proxies' message handling without a network: what a tools/call becomes,
what is refused and how, and that odd JSON-RPC never breaks the proxied traffic."""
from __future__ import annotations

import io
import json
import sys

import pytest

from agentstream.producer.mcp_http import SseReader
from agentstream.producer.mcp_session import McpSession
from agentstream.producer.mcp_stdio import StdioProxy

from step_support import drain, make_tracer


def _call(i, name="search", args=None):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": name, "arguments": args if args is not None else {"q": "x"}}}


@pytest.fixture
def tracer(tmp_path):
    t = make_tracer(tmp_path, speedups=True, digest_key="k")
    yield t
    t.close(0)


def _steps(events):
    return [e["payload"] for e in events if e["kind"] == "STEP"]


def test_a_call_and_its_response_make_one_tool_step_with_the_digest_only(tracer):
    s = McpSession(tracer, transport="stdio", server_label="srv", session_id="s1")
    assert s.on_client({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "clientInfo": {"name": "claude"}, "protocolVersion": "2025-06-18"}}) is None
    s.on_server({"jsonrpc": "2.0", "id": 0, "result": {"serverInfo": {"name": "files"}}})
    assert s.on_client(_call(1, "read_file", {"path": "/etc/shadow"})) is None
    s.on_server({"jsonrpc": "2.0", "id": 1, "result": {"content": [
        {"type": "text", "text": "root:secret"}]}})
    s.close()
    events = drain(tracer)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "RUN_END"]
    step = _steps(events)[0]
    assert step["step_kind"] == "TOOL" and step["status"] == "OK"
    assert step["tool"]["tool_name"] == "read_file" and step["tool"]["call_id"] == "1"
    assert step["tool"]["args_digest"] == tracer.digest({"path": "/etc/shadow"})
    assert "shadow" not in repr(events) and "root:secret" not in repr(events)
    assert events[0]["session_id"] == "s1"
    attrs = events[0]["attributes"]
    assert (attrs["mcp.client.name"], attrs["mcp.server.name"], attrs["mcp.transport"]) == (
        "claude", "files", "stdio")
    assert events[-1]["payload"]["step_count"] == 1


@pytest.mark.parametrize("response,code", [
    ({"error": {"code": -32602, "message": "bad args: secret"}}, "invalid_params"),
    ({"error": {"code": 12345, "message": "x"}}, "jsonrpc_error"),
    ({"error": {"code": "nan", "message": "x"}}, "jsonrpc_error"),
    ({"result": {"content": [], "isError": True}}, "tool_error"),
])
def test_errors_fail_the_step_with_a_code_never_the_message(tracer, response, code):
    s = McpSession(tracer, transport="stdio", server_label="srv")
    s.on_client(_call("a-1"))
    s.on_server({"jsonrpc": "2.0", "id": "a-1", **response})
    s.close()
    events = drain(tracer)
    assert _steps(events)[0]["status"] == "ERROR"
    fail = [e["payload"] for e in events if e["kind"] == "FAILURE"]
    assert [(f["failure_type"], f["failure_code"]) for f in fail] == [("TOOL", code)]
    assert "secret" not in repr(events)


def test_ids_of_different_json_types_are_different_requests(tracer):
    s = McpSession(tracer, transport="stdio", server_label="srv")
    s.on_client(_call(1, "a"))
    s.on_client(_call("1", "b"))
    s.on_server({"jsonrpc": "2.0", "id": "1", "result": {"isError": True}})
    s.on_server({"jsonrpc": "2.0", "id": 1, "result": {}})
    s.close()
    by_name = {p["name"]: p["status"] for p in _steps(drain(tracer))}
    assert by_name == {"a": "OK", "b": "ERROR"}


def test_cancelled_and_unanswered_calls_are_cancelled_steps(tracer):
    s = McpSession(tracer, transport="stdio", server_label="srv")
    s.on_client(_call(1, "slow"))
    s.on_client(_call(2, "never"))
    s.on_client({"jsonrpc": "2.0", "method": "notifications/cancelled",
                 "params": {"requestId": 1, "reason": "user"}})
    s.on_server({"jsonrpc": "2.0", "id": 1, "result": {}})  # late answer: already closed
    s.close()
    assert {p["name"]: p["status"] for p in _steps(drain(tracer))} == {
        "slow": "CANCELLED", "never": "CANCELLED"}


@pytest.mark.parametrize("msg", [None, 3, "x", [], {}, {"method": "tools/call"},
                                 {"id": 1, "method": "tools/call", "params": "oops"},
                                 {"id": 1, "method": "tools/call", "params": {"name": ["x"]}},
                                 {"id": [1], "method": "tools/call", "params": {"name": "t"}},
                                 {"id": 1, "method": "tools/call",
                                  "params": {"name": "t", "arguments": {"a": float("nan")}}}])
def test_odd_messages_are_forwarded_never_raise(tracer, msg):
    s = McpSession(tracer, transport="stdio", server_label="srv")
    assert s.on_client(msg) is None
    s.on_server(msg)
    s.on_server({"id": None, "result": {}})
    s.close()


def test_a_budget_refusal_answers_with_a_tool_error_and_stays_refused(tmp_path):
    t = make_tracer(tmp_path, speedups=False, digest_key="k", max_steps=1)
    s = McpSession(t, transport="stdio", server_label="srv")
    assert s.on_client(_call(1)) is None
    s.on_server({"jsonrpc": "2.0", "id": 1, "result": {}})
    refused = s.on_client(_call(2))
    assert refused["id"] == 2 and refused["result"]["isError"] is True
    assert "budget" in refused["result"]["content"][0]["text"]
    again = s.on_client(_call("three"))
    assert again["id"] == "three" and again["result"]["isError"] is True
    assert s.calls == 1 and s.refused == 2
    s.close()
    events = drain(t)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "FAILURE", "RUN_END"]
    assert events[-1]["payload"]["outcome"] == "budget_stopped"
    t.close(0)


def test_a_remote_stop_refuses_the_next_call(tracer):
    s = McpSession(tracer, transport="stdio", server_label="srv", run_id="r-1")
    s.ensure_run().apply_command({"command_id": "c1", "command_type": "STOP", "reason": "loop"})
    refused = s.on_client(_call(7))
    assert "stopped by command c1" in refused["result"]["content"][0]["text"]
    events = drain(tracer)
    assert [e["kind"] for e in events] == ["RUN_START", "COMMAND_ACK", "RUN_END"]
    assert events[-1]["payload"]["outcome"] == "stopped_by_command"


def test_sse_reader_splits_events_across_chunks():
    got = []
    r = SseReader(got.append)
    stream = (b'event: message\r\nid: 1\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n'
              b': keepalive\n\n'
              b'data: [{"id":2,"result":{}},\ndata: {"id":3,"result":{}}]\n\n')
    for i in range(0, len(stream), 7):
        r.feed(stream[i:i + 7])
    assert [m["id"] for m in got if isinstance(m, dict)] == [1, 2, 3]


def test_stdio_proxy_forwards_bytes_and_answers_refusals_itself(tmp_path):
    """A real child process (a line echo standing in for the server) behind the proxy."""
    t = make_tracer(tmp_path, speedups=True, digest_key="k", max_steps=1)
    echo = ("import sys, json\n"
            "for line in sys.stdin:\n"
            "    m = json.loads(line)\n"
            "    for x in m if isinstance(m, list) else [m]:\n"
            "        print(json.dumps({'id': x['id'], 'result': {'seen': x['id']}}), flush=True)\n")
    lines = [json.dumps(_call(1)), "  ", json.dumps(_call(2)),
             json.dumps([_call(3), {"jsonrpc": "2.0", "id": 4, "method": "ping"}])]
    out = io.BytesIO()
    p = StdioProxy(t, [sys.executable, "-c", echo], client_in=io.BytesIO(
        "\n".join(lines).encode() + b"\n"), client_out=out)
    assert p.run() == 0
    replies = [json.loads(ln) for ln in out.getvalue().splitlines()]
    served = {r["id"] for r in replies if "seen" in r.get("result", {})}
    refused = {r["id"] for r in replies if r.get("result", {}).get("isError")}
    assert served == {1, 4} and refused == {2, 3}
    t.close(0)


def test_a_refusal_while_calls_run_ends_the_run_after_their_steps(tmp_path):
    t = make_tracer(tmp_path, speedups=True, digest_key="k", max_steps=2)
    s = McpSession(t, transport="streamable_http", server_label="srv")
    s.on_client(_call(1))
    s.on_client(_call(2))
    assert s.on_client(_call(3))["result"]["isError"] is True
    assert not s.run.ended  # two calls still running
    s.on_server({"jsonrpc": "2.0", "id": 2, "result": {}})
    s.on_server({"jsonrpc": "2.0", "id": 1, "result": {}})
    assert s.run.ended
    s.close()
    kinds = [e["kind"] for e in drain(t)]
    assert kinds == ["RUN_START", "FAILURE", "STEP", "STEP", "RUN_END"]
    t.close(0)
