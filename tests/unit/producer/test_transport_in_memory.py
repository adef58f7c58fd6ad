"""agentstream.producer.testing.InMemoryTransport: what agent teams use to test an instrumented
agent without Kafka. The events read back must be exactly what the pipeline would decode, in
order, also across a simulated outage (spool -> replay), with nothing lost or duplicated."""
from __future__ import annotations

import threading
import time

import pytest

from agentstream.producer import Tracer
from agentstream.producer.errors import AuditUnavailable
from agentstream.producer.testing import InMemoryTransport


@pytest.fixture
def memory() -> InMemoryTransport:
    return InMemoryTransport()


def _tracer(memory: InMemoryTransport, tmp_path, **kw) -> Tracer:
    return memory.tracer("acme", "support-bot", "1.4.2", "test",
                         spool_dir=str(tmp_path / "spool"), probe_interval_s=0.05, **kw)


def _settle(tracer: Tracer, memory: InMemoryTransport, run_ids: list[str]) -> None:
    """Waits (at most 30 s, a bound on a hang, not a timing claim) until the spool is replayed
    and every run in ``run_ids`` has arrived up to its RUN_END."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = tracer.stats()
        runs = memory.runs()
        if s["online"] and s["spool_bytes"] == 0 and tracer.flush(5) and \
                all(runs.get(r) and runs[r][-1]["kind"] == "RUN_END" for r in run_ids):
            return
        time.sleep(0.01)
    raise AssertionError(f"the spool was not replayed: {tracer.stats()}")


def test_an_agent_run_reads_back_decoded_and_in_order(memory, tmp_path):
    tracer = _tracer(memory, tmp_path)
    with tracer.run("triage", end_user_id="user-42") as run:
        with run.step("tool", "search", query_len=12):
            pass
        run.llm_call("openai", "gpt-4o-mini", input_tokens=100, output_tokens=20, latency_ms=5)
        run.failure("retrieval", "empty_result")
    assert tracer.flush(10)
    events = memory.events(run.run_id)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "STEP", "FAILURE", "RUN_END"]
    assert [e["seq"] for e in events] == list(range(5))
    assert {e["tenant_id"] for e in events} == {"acme"}
    assert {e["agent_version"] for e in events} == {"1.4.2"}
    assert "user-42" not in repr(events)  # only the keyed digest travels
    steps = memory.events(run.run_id, kind="STEP")
    assert [e["payload"]["name"] for e in steps] == ["search", "chat gpt-4o-mini"]
    assert memory.runs() == {run.run_id: events}
    topics = {topic for topic, _key, _value in memory.records()}
    assert topics == {tracer.topic}
    memory.clear()
    assert memory.events() == []
    tracer.close(5)


def test_a_tracer_built_by_hand_delivers_there_too(memory, tmp_path):
    tracer = Tracer("acme", "a", "1", "test", producer_factory=memory.producer_factory,
                    commands_enabled=False, spool_dir=str(tmp_path / "spool"))
    with tracer.run("r") as run:
        run.tool_call("lookup", latency_ms=3)
    assert tracer.flush(10)
    assert [e["kind"] for e in memory.events(run.run_id)] == ["RUN_START", "STEP", "RUN_END"]
    tracer.close(5)


def test_an_outage_spools_and_replays_without_loss_or_duplicates(memory, tmp_path):
    tracer = _tracer(memory, tmp_path)
    with tracer.run("r") as run:
        for _ in range(5):
            run.tool_call("x", latency_ms=1)
        assert tracer.flush(10)
        memory.set_reachable(False)
        for _ in range(200):
            run.tool_call("x", latency_ms=1)
        tracer.flush(10)  # spooled (flush cannot confirm delivery while offline)
        stats = tracer.stats()
        assert stats["spooled"] > 0 and not stats["online"] and stats["state"] == "offline"
        assert stats["spool_bytes"] > 0
        memory.set_reachable(True)
    _settle(tracer, memory, [run.run_id])
    events = memory.events(run.run_id)
    assert [e["seq"] for e in events] == list(range(207))
    assert len({e["event_id"] for e in events}) == 207
    stats = tracer.stats()
    assert stats["replayed"] > 0 and stats["dropped"] == 0 and stats["state"] == "online"
    tracer.close(5)


def test_records_left_by_a_dead_process_replay_before_new_ones(memory, tmp_path):
    first = _tracer(memory, tmp_path)
    memory.set_reachable(False)
    with first.run("before-restart") as old:
        for _ in range(20):
            old.tool_call("x", latency_ms=1)
    first.close(5)  # what was not delivered is on disk for the next process
    assert memory.events() == []
    memory.set_reachable(True)
    second = _tracer(memory, tmp_path)
    with second.run("after-restart") as new:
        new.tool_call("y", latency_ms=1)
    _settle(second, memory, [old.run_id, new.run_id])
    runs = [e["run_id"] for e in memory.events()]
    assert runs.index(new.run_id) > max(i for i, r in enumerate(runs) if r == old.run_id)
    assert [e["seq"] for e in memory.events(old.run_id)] == list(range(22))
    second.close(5)


def test_concurrent_agent_threads_lose_nothing(memory, tmp_path):
    tracer = _tracer(memory, tmp_path)
    run_ids: list[str] = []

    def agent(n: int) -> None:
        with tracer.run(f"agent-{n}") as run:
            run_ids.append(run.run_id)
            for i in range(100):
                with run.step("tool", f"t{i}"):
                    pass

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert tracer.flush(10)
    runs = memory.runs()
    assert sorted(runs) == sorted(run_ids)
    for events in runs.values():
        assert [e["seq"] for e in events] == list(range(102))
    tracer.close(5)


def test_a_sampled_out_run_never_arrives(memory, tmp_path):
    tracer = _tracer(memory, tmp_path, sample_rate=0.0)
    with tracer.run("fine") as run:
        run.tool_call("x", latency_ms=1)
    assert tracer.flush(10)
    assert memory.events(run.run_id) == []
    assert tracer.stats()["sampled_out"] == 3
    tracer.close(5)


def test_the_example_in_docs_sdk_md_runs(tmp_path):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "sdk.md").read_text()
    section = text.split("## Testing your agent without Kafka", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]

    class my_agent:  # the reader's instrumented agent
        @staticmethod
        def triage(question: str, tracer: Tracer) -> str:
            with tracer.run("triage") as run:
                with run.step("tool", "retrieve", query_chars=len(question)):
                    pass
                run.failure("retrieval", "empty_result")
            return run.run_id

    ns: dict = {"my_agent": my_agent}
    exec(compile(block, "docs/sdk.md", "exec"), ns)
    ns["test_triage_agent_reports_an_empty_retrieval"](tmp_path)


def test_a_producer_that_cannot_be_created_spools_until_it_can(memory, tmp_path):
    """A failing producer factory (bad config, a library error) never reaches the agent: events
    are spooled, and delivered in order once a probe manages to create the producer."""
    attempts = []

    def flaky(conf):
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("librdkafka refused the configuration")
        return memory.producer_factory(conf)

    tracer = Tracer("acme", "a", "1", "test", producer_factory=flaky, commands_enabled=False,
                    spool_dir=str(tmp_path / "spool"), probe_interval_s=0.05)
    with tracer.run("r") as run:
        for _ in range(30):
            run.tool_call("x", latency_ms=1)
    _settle(tracer, memory, [run.run_id])
    assert [e["seq"] for e in memory.events(run.run_id)] == list(range(32))
    assert len(attempts) >= 3 and tracer.stats()["dropped"] == 0
    tracer.close(5)


def test_a_full_librdkafka_queue_spools_in_order(memory, tmp_path):
    """``produce`` raising BufferError (librdkafka's local queue full) sends the record to the
    spool, and the run's events still arrive complete and in seq order."""

    class Congested:
        def __init__(self, conf):
            self.inner = memory.producer_factory(conf)
            self.refusals = 0

        def produce(self, topic, value, key=None, **kw):
            if self.refusals < 20 and len(self.inner) >= 5:
                self.refusals += 1
                raise BufferError("Local: Queue full")
            return self.inner.produce(topic, value, key, **kw)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __len__(self):
            return len(self.inner)

    tracer = Tracer("acme", "a", "1", "test", producer_factory=Congested, commands_enabled=False,
                    spool_dir=str(tmp_path / "spool"), probe_interval_s=0.05)
    with tracer.run("r") as run:
        for _ in range(100):
            run.tool_call("x", latency_ms=1)
    _settle(tracer, memory, [run.run_id])
    events = memory.events(run.run_id)
    assert [e["seq"] for e in events] == list(range(102))
    assert tracer.stats()["spooled"] > 0 and tracer.stats()["dropped"] == 0
    tracer.close(5)


def test_an_action_class_tool_runs_in_memory_and_a_named_durable_class_is_audited_first(memory, tmp_path):
    # no broker, so no policy to follow: an action_class alone must not fail closed here
    tracer = _tracer(memory, tmp_path)
    calls = []

    @tracer.tool(action_class="payments.refund")
    def refund(amount: int) -> str:
        calls.append(amount)
        return "ok"

    with tracer.run() as run:
        assert refund(5) == "ok"
        tracer.set_durable_tools(["payments.*"])  # the explicit override names it durable
        assert refund(6) == "ok"
    assert calls == [5, 6]
    _settle(tracer, memory, [run.run_id])
    events = memory.events(run.run_id)
    audits = [e for e in events if e["kind"] == "DECISION"
              and e["payload"].get("decision_type") == "durable_action"]
    tools = [e for e in events if e["kind"] == "STEP" and e["payload"]["step_kind"] == "TOOL"]
    assert len(tools) == 2 and len(audits) == 1  # only the second call was audited
    assert events.index(audits[0]) < events.index(tools[1])
    memory.set_reachable(False)  # a broker outage: the durable action must not run unaudited
    with tracer.run():
        with pytest.raises(AuditUnavailable):
            refund(7)
    assert calls == [5, 6]
    memory.set_reachable(True)
    tracer.close()


def test_the_deterministic_example_in_docs_sdk_md_runs(tmp_path):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "sdk.md").read_text()
    section = text.split("## Testing your agent without Kafka", 1)[1].split("\n## ", 1)[0]
    block = section.split("**Deterministic tests**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    ns: dict = {}
    exec(compile(block, "docs/sdk.md", "exec"), ns)
    ns["test_a_remote_stop_ends_the_run_at_the_next_step"](tmp_path)


def test_without_a_worker_thread_nothing_moves_until_flush_and_close_delivers_the_rest(memory, tmp_path):
    tracer = _tracer(memory, tmp_path, worker_thread=False)
    with tracer.run("r") as run:
        for _ in range(10):
            run.tool_call("x", latency_ms=1)
    assert memory.records() == [] and tracer.stats()["queued"] == 12
    assert tracer.flush(10) and tracer.stats()["queued"] == 0
    assert [e["seq"] for e in memory.events(run.run_id)] == list(range(12))
    with tracer.run("r2") as second:
        pass
    assert tracer.close(10)  # close flushes what is still queued
    assert [e["kind"] for e in memory.events(second.run_id)] == ["RUN_START", "RUN_END"]


def test_without_a_worker_thread_an_outage_spools_and_a_later_flush_replays(memory, tmp_path):
    tracer = _tracer(memory, tmp_path, worker_thread=False)
    memory.set_reachable(False)
    with tracer.run("r") as run:
        for _ in range(20):
            run.tool_call("x", latency_ms=1)
    tracer.flush(5)  # offline: spooled on the caller's thread, not lost
    stats = tracer.stats()
    assert stats["spooled"] > 0 and stats["state"] == "offline" and memory.events() == []
    memory.set_reachable(True)
    deadline = time.monotonic() + 30  # a bound on a hang: each flush probes once the interval is up
    while tracer.stats()["state"] != "online" and time.monotonic() < deadline:
        tracer.flush(5)
        time.sleep(0.05)
    assert tracer.flush(5)
    events = memory.events(run.run_id)
    assert [e["seq"] for e in events] == list(range(22))
    assert tracer.stats()["dropped"] == 0 and tracer.stats()["replayed"] > 0
    tracer.close(5)


def test_without_a_worker_thread_a_tracer_that_emitted_nothing_makes_no_producer(memory, tmp_path):
    made = []

    def factory(conf):
        made.append(conf)
        return memory.producer_factory(conf)

    tracer = Tracer("acme", "a", "1", "test", producer_factory=factory, commands_enabled=False,
                    follow_policy=False, worker_thread=False, spool_dir=str(tmp_path / "spool"))
    assert tracer.flush(1) and tracer.close(1) and made == []


def test_tracers_sharing_the_in_memory_client_keep_every_run_in_order(memory, tmp_path):
    """Several tracers on one InMemoryTransport share its client (the SDK shares a producer
    per configuration); one polls it, the others flush it from their own threads at once. A
    run's events still read back complete and in seq order."""
    tracers = [memory.tracer(f"tenant-{i}", f"agent-{i}", "1", "test",
                             spool_dir=str(tmp_path / f"spool-{i}")) for i in range(4)]
    run_ids: list[str] = []
    flushed: list[bool] = []
    lock = threading.Lock()

    def agent(tr: Tracer) -> None:
        for r in range(25):
            with tr.run("r") as run:
                for s in range(6):
                    run.tool_call(f"t{s}", latency_ms=1)
            with lock:
                run_ids.append(run.run_id)
            if r % 3 == 0:
                ok = tr.flush(5)
                with lock:
                    flushed.append(ok)

    threads = [threading.Thread(target=agent, args=(tr,)) for tr in tracers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(tr.flush(5) for tr in tracers) and len(flushed) == 36 and all(flushed)
    runs = memory.runs()
    assert len(run_ids) == 100 and set(run_ids) <= set(runs)
    for rid in run_ids:
        assert [e["seq"] for e in runs[rid]] == list(range(8)), rid
    for tr in tracers:
        tr.close(5)
