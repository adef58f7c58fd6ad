"""``agentstream up`` starts a part that exited again, with crash-loop backoff (cli/supervision.py).

The policy is pure; ``Stack.supervise`` is exercised on a real child process (a sleeping Python),
killed with SIGKILL as an OOM kill or a crash would end it."""
from __future__ import annotations

import os
import signal
import sys

from agentstream.cli.stack import Part, Stack, StackConfig
from agentstream.cli.supervision import RestartPolicy


def test_the_delay_doubles_with_each_exit_in_a_row_up_to_the_cap_and_a_stable_run_resets_it():
    p = RestartPolicy(first_s=1.0, max_s=8.0, stable_s=60.0)
    now, delays = 0.0, []
    for _ in range(6):
        p.started(now)
        now += 2.0  # crashes 2 s after each start
        delays.append(p.exited(now))
        assert not p.due(now) and p.due(now + delays[-1])
        now += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    p.started(now)
    assert p.exited(now + 61.0) == 1.0  # it ran for a minute: the count starts over
    assert p.exited(now + 61.5) == 0.5  # found exited again before its start: the same schedule


def _stack(tmp_path, restart=True) -> tuple[Stack, Part]:
    part = Part("worker", [sys.executable, "-c", "import time; time.sleep(120)"], None, log=tmp_path / "w.log")
    stack = Stack(StackConfig(data_dir=tmp_path, restart=restart), parts=[part])
    stack.launch(part, dict(os.environ))
    return stack, part


def _kill(part: Part) -> int:
    assert part.proc is not None
    pid = part.proc.pid
    os.killpg(pid, signal.SIGKILL)
    part.proc.wait(10)
    return pid


def test_an_exited_part_is_started_again_after_its_delay_and_said_so(tmp_path):
    stack, part = _stack(tmp_path)
    said: list[str] = []
    try:
        first = _kill(part)
        t = part.policy.started_at + 5.0
        stack.supervise(said.append, now=t)
        assert not part.alive() and "worker exited (code -9); starting it again in 1 s" in said[0]
        assert "starting again in" in stack.status()["worker"]
        stack.supervise(said.append, now=t + 1.0)
        assert part.alive() and part.proc.pid != first and said[-1].startswith("worker started again")
        assert (tmp_path / "stack.json").exists()  # the new pid is where other commands look
    finally:
        stack.stop(drain_s=0)
    assert not part.alive()


def test_nothing_is_started_again_with_restart_off_or_once_the_stack_is_stopping(tmp_path):
    for restart in (False, True):
        stack, part = _stack(tmp_path, restart=restart)
        if restart:
            stack.stop(drain_s=0)
        else:
            _kill(part)
        stack.supervise(now=part.policy.started_at + 100.0)
        assert not part.alive()
        stack.stop(drain_s=0)
