"""Enforcement against the real broker: remote stop/throttle commands, budgets, no-progress."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from agentstream.producer import (Budget, BudgetExceeded, EnforcementError, LackOfProgress,
                                  RunStopped, Tracer)
from agentstream.producer.testing import read_events
from agentstream.schemas import COMMAND, Codec, topic_name

pytestmark = pytest.mark.integration


@pytest.fixture
def make_tracer(bootstrap, topic_prefix, tmp_path, unique):
    made = []

    def make(**kw):
        conf = dict(bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                    spool_dir=str(tmp_path / "spool"), session_timeout_ms=6000,
                    commands_enabled=False)
        conf.update(kw)
        t = Tracer(f"tenant-{unique}", "enforced-agent", "2.0", "test", **conf)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close(5)


def _send_command(bootstrap, topic_prefix, tenant_id, run_id, command_type, throttle_ms=None):
    from confluent_kafka import Producer

    cmd = {"command_id": str(uuid.uuid4()), "tenant_id": tenant_id, "run_id": run_id,
           "command_type": command_type, "reason": "loop detected", "issued_by": "test",
           "issued_us": time.time_ns() // 1000, "throttle_ms": throttle_ms, "alert_id": None}
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic_name("commands", topic_prefix), Codec().encode(COMMAND, cmd),
              run_id.encode())
    assert p.flush(10) == 0
    return cmd


def _events(bootstrap, topic_prefix, run_id):
    return read_events(bootstrap, topic_name("raw", topic_prefix), [run_id], timeout=30)[run_id]


def test_remote_stop_ends_a_running_agent_before_its_next_step(make_tracer, bootstrap,
                                                               topic_prefix):
    tracer = make_tracer(commands_enabled=True)
    live = threading.Event()
    steps_done: list[int] = []
    outcome: dict = {}

    def agent() -> None:
        try:
            with tracer.run("looping-agent") as run:
                outcome["run"] = run
                i = 0
                while i < 2000:  # would run ~100 s if nothing stopped it
                    with run.step("tool", "poll"):
                        time.sleep(0.05)
                    steps_done.append(i)
                    live.set()
                    i += 1
        except RunStopped as exc:
            outcome["stopped"] = exc

    assert tracer.commands_ready(20)
    worker = threading.Thread(target=agent)
    worker.start()
    assert live.wait(10)
    run = outcome["run"]
    cmd = _send_command(bootstrap, topic_prefix, tracer.tenant_id, run.run_id, "STOP")
    worker.join(30)
    assert not worker.is_alive(), "the agent was not stopped"
    exc = outcome["stopped"]
    assert isinstance(exc, EnforcementError) and exc.command_id == cmd["command_id"]
    assert len(steps_done) < 2000
    assert tracer.flush(10)
    events = _events(bootstrap, topic_prefix, run.run_id)
    kinds = [e["kind"] for e in events]
    assert kinds[-2:] == ["COMMAND_ACK", "RUN_END"]
    # every step that started also finished before the ack: none began after the stop
    assert kinds.count("STEP") == len(steps_done)
    ack = events[-2]["payload"]
    assert ack["command_id"] == cmd["command_id"] and ack["status"] == "applied"
    end = events[-1]["payload"]
    assert end["status"] == "PARTIAL" and end["outcome"] == "stopped_by_command"


def test_throttle_command_is_acknowledged_and_slows_steps(make_tracer, bootstrap, topic_prefix):
    tracer = make_tracer(commands_enabled=True)
    assert tracer.commands_ready(20)
    with tracer.run("throttled") as run:
        with run.step("plan", "first"):
            pass
        _send_command(bootstrap, topic_prefix, tracer.tenant_id, run.run_id, "THROTTLE", 200)
        deadline = time.monotonic() + 20
        while not run._gate and time.monotonic() < deadline:
            time.sleep(0.05)
        with run.step("plan", "second"):
            pass
        # a command for some other run is not ours
        _send_command(bootstrap, topic_prefix, tracer.tenant_id, str(uuid.uuid4()), "STOP")
        with run.step("plan", "third"):
            pass
    events = _events(bootstrap, topic_prefix, run.run_id)
    kinds = [e["kind"] for e in events]
    assert kinds == ["RUN_START", "STEP", "COMMAND_ACK", "STEP", "STEP", "RUN_END"]
    assert events[2]["payload"]["command_type"] == "THROTTLE"
    assert events[2]["payload"]["detail"] == "throttle 200 ms per step"
    assert events[-1]["payload"]["status"] == "SUCCESS"


def test_budgets_are_checked_before_the_operation(make_tracer, bootstrap, topic_prefix,
                                                  monkeypatch):
    # environment sets a model-call limit; the explicit argument beats it
    monkeypatch.setenv("AGENTSTREAM_PRODUCER_MAX_MODEL_CALLS", "1")
    tracer = make_tracer()
    assert tracer.settings.max_model_calls == 1
    calls = []
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("budgeted", budget=Budget(max_model_calls=2)) as run:
            for _ in range(5):
                with run.llm_step("openai", "gpt-4o-mini") as s:
                    calls.append(1)  # the "provider call": must never run a third time
                    s.record_llm("openai", "gpt-4o-mini", input_tokens=10, output_tokens=5)
    assert len(calls) == 2
    assert info.value.budget_type == "model_calls" and info.value.limit == 2
    assert tracer.flush(10)
    events = _events(bootstrap, topic_prefix, run.run_id)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "STEP", "FAILURE", "RUN_END"]
    failure = events[3]
    assert failure["payload"]["failure_type"] == "BUDGET"
    assert failure["payload"]["failure_code"] == "model_calls_budget_exceeded"
    assert failure["attributes"]["agentstream.budget.limit"] == "2"
    end = events[-1]["payload"]
    assert (end["status"], end["outcome"], end["llm_calls"]) == ("PARTIAL", "budget_stopped", 2)

    # env limit applies when no explicit argument is given; cost budget stops the next call
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("cost", budget=Budget(max_cost_usd=0.01, max_model_calls=10)) as run2:
            for _ in range(3):
                with run2.llm_step("anthropic", "claude-opus-4") as s:
                    s.record_llm("anthropic", "claude-opus-4", input_tokens=1000,
                                 output_tokens=1000)  # $0.09 per call
    assert info.value.budget_type == "cost_usd"
    with pytest.raises(BudgetExceeded) as info:
        with tracer.run("env-limit") as run3:
            for _ in range(3):
                with run3.llm_step("openai", "gpt-4o"):
                    pass
    assert info.value.limit == 1 and run3.llm_calls == 1


def test_no_progress_stops_repeated_identical_tool_calls(make_tracer, bootstrap, topic_prefix):
    tracer = make_tracer(max_repeated_fingerprints=2, max_steps=50)
    executed = []

    @tracer.tool
    def fetch_order(order_id: str) -> str:
        executed.append(order_id)
        return "pending"

    runs = []

    @tracer.agent
    def stuck_agent() -> None:
        runs.append(tracer.current_run())
        fetch_order("o-1")
        fetch_order("o-2")
        while True:
            fetch_order("o-1")

    with pytest.raises(LackOfProgress):
        stuck_agent()
    # o-2 is another signature, and new work between o-1's first two calls: its second call
    # counts afresh (the novelty test, schemas/loop_repeats.count_repeat: a call is a repeat only
    # when no more new calls than identical ones went on since its last time). The loop is the
    # calls back to back: two in a row are allowed, the third is refused before it runs.
    assert executed == ["o-1", "o-2", "o-1", "o-1"]
    assert tracer.flush(10)
    events = _events(bootstrap, topic_prefix, runs[0].run_id)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "STEP", "STEP", "STEP", "FAILURE",
                                           "RUN_END"]
    digests = [e["payload"]["tool"]["args_digest"] for e in events[1:5]]
    assert digests[0] == digests[2] == digests[3] != digests[1]
    assert events[5]["payload"]["failure_code"] == "no_progress"
    assert events[-1]["payload"]["outcome"] == "no_progress_stopped"
