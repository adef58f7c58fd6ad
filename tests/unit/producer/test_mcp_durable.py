"""Durable tools through the MCP proxy: a tools/call the tenant's policy names durable reaches
the server only after Kafka acknowledged its audit record; with the broker unreachable the proxy
answers the call itself with a tool error and the server never sees it. Other tools and later
calls go on as usual (a durable refusal is not a run-ending enforcement)."""
from __future__ import annotations

import time

from agentstream.producer.mcp_session import McpSession
from agentstream.producer.testing import InMemoryTransport


def _call(i, name, args=None):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": name, "arguments": args if args is not None else {"amount": 5}}}


def _ok(i):
    return {"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text", "text": "done"}]}}


def _settled(tracer, memory, run_id):
    deadline = time.monotonic() + 30  # a bound on a hang, not a timing claim
    while time.monotonic() < deadline:
        events = memory.events(run_id)
        if tracer.stats()["online"] and tracer.flush(5) and events and events[-1]["kind"] == "RUN_END":
            return events
        time.sleep(0.01)
    raise AssertionError(f"run never settled: {tracer.stats()}")


def test_a_durable_tool_is_forwarded_only_once_audited_and_refused_when_kafka_is_gone(tmp_path):
    memory = InMemoryTransport()
    tracer = memory.tracer("acme", "mcp-proxy", "1", "test", spool_dir=str(tmp_path / "spool"),
                           probe_interval_s=0.05)
    tracer.set_durable_tools(["payments.*"])
    s = McpSession(tracer, transport="stdio", server_label="srv")
    assert s.on_client(_call(1, "payments.refund")) is None  # audited, then forwarded
    s.on_server(_ok(1))
    assert s.on_client(_call(2, "search", {"q": "x"})) is None  # not durable: no audit
    s.on_server(_ok(2))

    memory.set_reachable(False)
    answer = s.on_client(_call(3, "payments.refund", {"amount": 9}))
    assert answer is not None and answer["id"] == 3 and answer["result"]["isError"] is True
    assert answer["result"]["_meta"]["agentstream/refused"] == "AuditUnavailable"
    assert s.on_client(_call(4, "search", {"q": "y"})) is None  # the session goes on
    s.on_server(_ok(4))
    memory.set_reachable(True)
    assert s.on_client(_call(5, "payments.refund", {"amount": 1})) is None  # back: forwarded again
    s.on_server(_ok(5))
    s.close()
    assert s.refused == 1 and s.calls == 4

    events = _settled(tracer, memory, s.run.run_id)
    audits = [e for e in events if e["kind"] == "DECISION" and e["payload"].get("decision_type") == "durable_action"]
    tools = [e for e in events if e["kind"] == "STEP" and e["payload"]["step_kind"] == "TOOL"]
    assert [t["payload"]["tool"]["call_id"] for t in tools] == ["1", "2", "3", "4", "5"]
    assert [a["payload"]["step_id"] for a in audits] == [tools[0]["payload"]["step_id"],
                                                         tools[4]["payload"]["step_id"]]
    durable = {t["payload"]["tool"]["call_id"]: t["attributes"].get("agentstream.durable") for t in tools}
    assert durable == {"1": "acknowledged", "2": None, "3": "audit_unavailable", "4": None, "5": "acknowledged"}
    assert tools[2]["payload"]["status"] == "ERROR" and tools[0]["payload"]["status"] == "OK"
    assert events[-1]["kind"] == "RUN_END"
    tracer.close()
