"""The SDK's core path against the real broker: runs and steps land on raw, in order."""
from __future__ import annotations

import asyncio
import threading

import pytest

from agentstream.producer import Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name

pytestmark = pytest.mark.integration


@pytest.fixture
def tracer(bootstrap, topic_prefix, tmp_path, unique):
    t = Tracer(f"tenant-{unique}", "support-agent", "1.2.0", "test",
               bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
               spool_dir=str(tmp_path / "spool"), session_timeout_ms=6000,
               commands_enabled=False)
    yield t
    t.close(5)


def _read(bootstrap, topic_prefix, run_ids, **kw):
    return read_events(bootstrap, topic_name("raw", topic_prefix), run_ids, timeout=30, **kw)


def test_run_events_arrive_in_order_with_envelope(tracer, bootstrap, topic_prefix):
    with tracer.run("triage", session_id="sess-1", role="planner", ticket="T-1") as run:
        with run.step("plan", "analyze") as plan:
            plan.set_attribute("n_candidates", 3)
        with run.llm_step("openai", "gpt-4o") as s:
            s.record_llm("openai", "gpt-4o", input_tokens=1200, output_tokens=300,
                         cache_read_tokens=200, response_model="gpt-4o-2024-08-06",
                         finish_reasons=["stop"], tool_calls=["search"])
        first = run.tool_call("search", {"q": "refund policy"}, latency_ms=12.5, status="error")
        run.failure("tool", "timeout", step_id=first, retryable=True)
        with run.tool_step("search", {"q": "refund policy"}, retry_of=first):
            pass
        run.decision("tool_selection", "api", ["api", "cache"], "fresh_data_required", 0.85)
        run.quality_signal("schema_valid", "full_match", True, weight=0.5)
    assert tracer.flush(15)
    events = _read(bootstrap, topic_prefix, [run.run_id])[run.run_id]
    kinds = [e["kind"] for e in events]
    assert kinds == ["RUN_START", "STEP", "STEP", "STEP", "FAILURE", "STEP", "DECISION",
                     "QUALITY_SIGNAL", "RUN_END"]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len({e["event_id"] for e in events}) == len(events)
    for e in events:
        assert e["tenant_id"] == tracer.tenant_id
        assert e["run_id"] == run.run_id and e["session_id"] == "sess-1"
        assert e["capture_mode"] == "METADATA_ONLY" and e["policy_version"] == "default"
        assert (e["agent_id"], e["agent_version"], e["environment"]) == \
            ("support-agent", "1.2.0", "test")
    start, plan, llm, tool1, failure, retry, decision, quality, end = events
    assert start["payload"]["entrypoint"] == "triage" and start["payload"]["role"] == "planner"
    assert start["attributes"] == {"ticket": "T-1"}
    assert plan["payload"]["step_kind"] == "PLAN" and plan["attributes"] == {"n_candidates": "3"}
    call = llm["payload"]["llm"]
    assert (call["input_tokens"], call["output_tokens"], call["cache_read_tokens"]) == \
        (1200, 300, 200)
    # gpt-4o: 1000 uncached * 2.50 + 200 cached * 1.25 + 300 out * 10.00, per 1M tokens
    assert call["cost_usd"] == pytest.approx((1000 * 2.5 + 200 * 1.25 + 300 * 10.0) / 1e6)
    assert llm["attributes"]["gen_ai.provider.name"] == "openai"
    assert tool1["payload"]["status"] == "ERROR" and tool1["payload"]["latency_ms"] == 12.5
    digest = tool1["payload"]["tool"]["args_digest"]
    assert len(digest) == 64 and "refund" not in str(tool1)
    assert failure["payload"]["step_id"] == tool1["payload"]["step_id"]
    assert failure["payload"]["failure_type"] == "TOOL"
    assert retry["payload"]["retry_of"] == tool1["payload"]["step_id"]
    assert retry["payload"]["attempt"] == 2
    assert retry["payload"]["tool"]["args_digest"] == digest
    assert decision["payload"]["confidence"] == 0.85
    assert quality["payload"]["value"] is True
    totals = end["payload"]
    assert totals["status"] == "SUCCESS" and totals["step_count"] == 4
    assert totals["llm_calls"] == 1 and totals["input_tokens"] == 1200
    assert totals["cost_usd"] == pytest.approx(call["cost_usd"])
    stats = tracer.stats()
    assert stats["sent"] >= len(events) and stats["dropped"] == 0 and stats["failed"] == 0


def test_decorated_agent_sync_async_and_threads(tracer, bootstrap, topic_prefix):
    runs: list = []

    @tracer.tool
    def lookup(order_id: str) -> str:
        return "shipped"

    @tracer.step("plan")
    def plan() -> list[str]:
        return ["lookup"]

    @tracer.agent(name="order-status")
    def handle(order_id: str) -> str:
        runs.append(tracer.current_run())
        plan()
        worker = threading.Thread(target=tracer.wrap(lambda: lookup(order_id)))
        worker.start()
        worker.join()
        return lookup(order_id)

    @tracer.tool(name="async_lookup")
    async def alookup(order_id: str) -> str:
        await asyncio.sleep(0)
        return "ok"

    @tracer.agent
    async def ahandle(order_id: str) -> str:
        runs.append(tracer.current_run())
        results = await asyncio.gather(alookup(order_id), alookup(order_id + "x"))
        async with tracer.current_run().step("respond", "answer"):
            pass
        return results[0]

    assert handle("A-1") == "shipped"
    assert asyncio.run(ahandle("A-2")) == "ok"
    assert tracer.flush(15)
    got = _read(bootstrap, topic_prefix, [r.run_id for r in runs])
    sync_events, async_events = got[runs[0].run_id], got[runs[1].run_id]
    assert [e["kind"] for e in sync_events] == ["RUN_START", "STEP", "STEP", "STEP", "RUN_END"]
    assert sync_events[0]["payload"]["entrypoint"] == "order-status"
    names = [e["payload"]["name"] for e in sync_events[1:4]]
    assert names == ["plan", "lookup", "lookup"]
    # same arguments, same keyed digest: the thread's step joined the same run
    assert sync_events[2]["payload"]["tool"]["args_digest"] == \
        sync_events[3]["payload"]["tool"]["args_digest"]
    assert [e["kind"] for e in async_events] == ["RUN_START", "STEP", "STEP", "STEP", "RUN_END"]
    assert async_events[0]["payload"]["entrypoint"].endswith("ahandle")
    assert sorted(e["payload"]["name"] for e in async_events[1:4]) == \
        ["answer", "async_lookup", "async_lookup"]
    assert [e["seq"] for e in async_events] == [0, 1, 2, 3, 4]


def test_an_oversized_event_never_wedges_the_spool(bootstrap, topic_prefix, tmp_path, unique):
    """The red-team's repro (sdk_poison2.py): a 12 MB tool name, then 100 small events, then
    more processes on the same spool directory. The name is cut to 1 KB (bounds.py); a record
    over librdkafka's message.max.bytes (1 MB) found at the spool's head (an older SDK's) is
    refused locally (MSG_SIZE_TOO_LARGE): dropped and counted, and the rest replays."""
    from agentstream.producer.spool import Spool

    spool_dir = str(tmp_path / "shared-spool")

    def tracer():
        return Tracer(f"tenant-{unique}", "poison", "1", "test", bootstrap_servers=bootstrap,
                      topic_prefix=topic_prefix, spool_dir=spool_dir, commands_enabled=False,
                      probe_interval_s=0.2)

    t = tracer()
    with t.run("poison") as run:
        run.tool_call("N" * 12_000_000, {"q": 1}, latency_ms=1.0)
        for i in range(100):
            run.tool_call("small", {"i": i}, latency_ms=1.0)
    assert t.flush(15)
    events = _read(bootstrap, topic_prefix, [run.run_id])[run.run_id]
    assert len(events) == 103 and len(events[1]["payload"]["name"]) == 1024
    t.close(5)
    assert t.stats()["spooled"] == 0 and t.stats()["truncated"] >= 2

    spool = Spool(spool_dir, 64 * 1024 * 1024, 8 * 1024 * 1024)
    spool.append([(1, b"k", b"\x00" * 2_000_000)])
    spool.close()
    t2 = tracer()
    with t2.run("after") as later:
        later.tool_call("small", {}, latency_ms=1.0)
    events = _read(bootstrap, topic_prefix, [later.run_id])[later.run_id]
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "RUN_END"]
    t2.close(5)
    assert t2.stats()["rejected"] == 1 and t2.stats()["spool_bytes"] == 0
