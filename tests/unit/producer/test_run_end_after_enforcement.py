"""A run whose enforcement exception the agent caught still ends as stopped: RUN_END says PARTIAL
with the enforcement's outcome, never SUCCESS/completed, whichever enforcement it was (a budget,
a remote STOP, no progress). An explicit set_status by the agent still wins."""
from __future__ import annotations

import pytest

from agentstream.producer import Budget, BudgetExceeded, EnforcementError, LackOfProgress, RunStopped
from agentstream.producer.testing import InMemoryTransport


@pytest.fixture
def setup(tmp_path):
    memory = InMemoryTransport()
    tracer = memory.tracer("acme", "bot", "1", "test", worker_thread=False, spool_dir=str(tmp_path / "spool"))
    yield memory, tracer
    tracer.close(0)


def _end(memory, tracer, run_id):
    assert tracer.flush()
    (end,) = memory.events(run_id, kind="RUN_END")
    return end["payload"]["status"], end["payload"]["outcome"]


def _swallow(run, make_step):
    try:
        with make_step():
            pass
    except EnforcementError:
        pass  # the agent's own handler: logs it and returns


def test_a_caught_budget_stop_ends_partial_budget_stopped(setup):
    memory, tracer = setup
    with tracer.run("r", budget=Budget(max_steps=1)) as run:
        with run.step("tool", "a"):
            pass
        with pytest.raises(BudgetExceeded):
            with run.step("tool", "b"):
                pass
    assert _end(memory, tracer, run.run_id) == ("PARTIAL", "budget_stopped")
    with tracer.run("r2", budget=Budget(max_steps=1)) as run2:
        _swallow(run2, lambda: run2.step("tool", "a"))
        _swallow(run2, lambda: run2.step("tool", "b"))
    assert _end(memory, tracer, run2.run_id) == ("PARTIAL", "budget_stopped")


def test_a_caught_remote_stop_and_a_caught_loop_end_as_stopped(setup):
    memory, tracer = setup
    with tracer.run("r") as run:
        run.apply_command({"command_id": "c1", "command_type": "STOP", "reason": "runaway"})
        with pytest.raises(RunStopped):
            with run.step("tool", "a"):
                pass
    assert _end(memory, tracer, run.run_id) == ("PARTIAL", "stopped_by_command")

    with tracer.run("loop", budget=Budget(max_repeated_fingerprints=2)) as run2:
        caught = 0
        for _ in range(5):
            try:
                with run2.tool_step("search", {"q": "same"}):
                    pass
            except LackOfProgress:
                caught += 1
        assert caught >= 1
    assert _end(memory, tracer, run2.run_id) == ("PARTIAL", "no_progress_stopped")


def test_without_enforcement_and_with_an_explicit_status_nothing_changes(setup):
    memory, tracer = setup
    with tracer.run("ok") as run:
        with run.step("tool", "a"):
            pass
    assert _end(memory, tracer, run.run_id) == ("SUCCESS", "completed")
    with tracer.run("override", budget=Budget(max_steps=1)) as run2:
        _swallow(run2, lambda: run2.step("tool", "a"))
        _swallow(run2, lambda: run2.step("tool", "b"))
        run2.set_status("FAILURE", "gave_up")  # the agent's own verdict is kept
    assert _end(memory, tracer, run2.run_id) == ("FAILURE", "gave_up")
