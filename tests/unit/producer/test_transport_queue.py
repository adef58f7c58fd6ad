"""The transport's bounded queue, through the public SDK: when the agent outruns the worker, the
OLDEST events are dropped (counted, warned about at a limited rate), flushes are never dropped,
and both step cores behave the same.

The worker is held back by a producer factory that waits on an event: the worker opens its
producer before it takes anything off the queue, so until the event is set the queue only
fills, deterministically, with no timing involved."""
from __future__ import annotations

import gc
import logging
import threading

import pytest

from agentstream.producer import Tracer
from agentstream.producer.testing import InMemoryTransport


class HeldBack:
    """A producer factory that blocks the worker until ``release()``."""

    def __init__(self, memory: InMemoryTransport) -> None:
        self.memory = memory
        self.gate = threading.Event()

    def __call__(self, conf: dict):
        self.gate.wait(30)
        return self.memory.producer_factory(conf)

    def release(self) -> None:
        self.gate.set()


def _tracer(tmp_path, speedups: bool, factory, **kw) -> Tracer:
    return Tracer("acme", "agent", "1.0", "test", producer_factory=factory,
                  commands_enabled=False, speedups=speedups,
                  spool_dir=str(tmp_path / f"spool-{speedups}"), **kw)


def _held_tracer(tmp_path, speedups: bool) -> tuple[InMemoryTransport, HeldBack, Tracer]:
    """A tracer with a 16-event queue whose deliveries wait until ``held.release()``."""
    memory = InMemoryTransport()
    held = HeldBack(memory)
    return memory, held, _tracer(tmp_path, speedups, held, queue_size=16)


@pytest.fixture(params=[True, False], ids=["c-core", "python-core"])
def speedups(request):
    return request.param


def test_a_full_queue_keeps_the_newest_events(tmp_path, speedups):
    memory, held, t = _held_tracer(tmp_path, speedups)
    with t.run("r") as run:
        for i in range(40):
            with run.step("tool", f"s{i}"):
                pass
    # RUN_START, 40 steps, RUN_END = 42 items; the newest 16 fit
    assert t.stats()["dropped"] == 42 - 16
    assert t.stats()["queued"] == 16
    held.release()
    assert t.flush(30)
    events = memory.events(run.run_id)
    names = [e["payload"]["name"] for e in events if e["kind"] == "STEP"]
    assert names == [f"s{i}" for i in range(25, 40)]
    assert events[-1]["kind"] == "RUN_END"  # the run's end survives an overflow
    assert run.step_count == 40  # the agent-side count is not affected by drops
    t.close(5)


def test_a_run_started_and_ended_in_a_full_queue_keeps_its_start_and_end(tmp_path, speedups):
    memory, held, t = _held_tracer(tmp_path, speedups)
    with t.run("first") as first:
        for i in range(30):
            first.tool_call("x", {"i": str(i)})
    # the queue is full: the second run's RUN_START, its one step and RUN_END each drop the oldest
    with t.run("second", ticket="T-9") as second:
        second.tool_call("y", {"q": "z"})
    assert t.stats()["dropped"] == (32 - 16) + 3
    held.release()
    assert t.flush(30)
    events = memory.events(second.run_id)
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "RUN_END"]
    assert events[0]["attributes"] == {"ticket": "T-9"}
    assert [e["seq"] for e in events] == [0, 1, 2]
    t.close(5)


def test_overflow_warns_at_a_limited_rate(tmp_path, speedups, caplog):
    memory, held, t = _held_tracer(tmp_path, speedups)
    with caplog.at_level(logging.WARNING, logger="agentstream.producer"):
        with t.run("r") as run:
            for _ in range(500):
                run.tool_call("x", latency_ms=1)
    warnings = [r for r in caplog.records if "event queue full" in r.getMessage()]
    dropped = t.stats()["dropped"]
    assert dropped == 502 - 16
    assert 1 <= len(warnings) < dropped
    assert "queue_size=16" in warnings[0].getMessage()
    held.release()
    assert t.flush(30)
    t.close(5)


def test_a_flush_waiting_in_a_full_queue_is_never_dropped(tmp_path, speedups):
    memory, held, t = _held_tracer(tmp_path, speedups)
    run = t.run("r").__enter__()
    for i in range(10):
        run.tool_call(f"before{i}", latency_ms=1)
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(t.flush(30)))
    flusher.start()
    while t.stats()["queued"] < 11:  # the flush's marker is in the queue (not an event)
        flusher.join(0.01)
    for i in range(100):  # overflow many times over, past the marker
        run.tool_call(f"after{i}", latency_ms=1)
    held.release()
    flusher.join(30)
    assert result == [True]
    run.__exit__(None, None, None)
    assert t.flush(30)
    steps = [e["payload"]["name"] for e in memory.events(run.run_id, kind="STEP")]
    assert steps[-15:] == [f"after{i}" for i in range(85, 100)]
    assert t.stats()["dropped"] == 1 + 10 + 100 + 1 - len(memory.events(run.run_id))
    t.close(5)


def test_a_dropped_c_step_is_visible_to_the_gc_again(tmp_path):
    # The C core hides a queued step from the cyclic GC; a dropped one must not stay hidden,
    # or a cycle through it (the agent kept a reference) would never be collected.
    memory, held, t = _held_tracer(tmp_path, True)
    run = t.run("r").__enter__()
    kept = []
    for i in range(40):
        with run.step("tool", f"s{i}") as s:
            pass
        kept.append(s)
        if i == 14:  # RUN_START and 15 steps: the queue is full, nothing dropped yet
            assert not any(gc.is_tracked(s) for s in kept)
    # 41 items, 16 fit: RUN_START and s0..s23 were dropped, and are visible to the GC again
    assert all(gc.is_tracked(s) for s in kept[:24])
    held.release()
    run.__exit__(None, None, None)
    assert t.flush(30)
    t.close(5)


def test_a_disabled_tracer_queues_and_counts_nothing(tmp_path, speedups):
    t = Tracer("acme", "agent", "1.0", "test", enabled=False, commands_enabled=False,
               speedups=speedups, spool_dir=str(tmp_path / "spool"))
    with t.run("r") as run:
        for _ in range(20):
            with run.step("tool", "x"):
                pass
    assert t.stats()["queued"] == 0 and t.stats()["dropped"] == 0
    assert run.step_count == 20


def test_overflowing_threads_count_every_drop_exactly(tmp_path, speedups):
    """Several agent threads overflow a small queue while the worker drains it: every event
    emitted is either delivered or counted as dropped, none twice, and each run's delivered
    events are still in order."""
    memory = InMemoryTransport()
    t = _tracer(tmp_path, speedups, memory.producer_factory, queue_size=16)
    run_ids: list[str] = []

    def agent(n: int) -> None:
        with t.run(f"agent-{n}") as run:
            run_ids.append(run.run_id)
            for i in range(400):
                with run.step("tool", f"t{i}"):
                    pass

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.flush(30)
    delivered = memory.events()
    assert len(delivered) + t.stats()["dropped"] == 4 * 402
    for rid in run_ids:
        names = [e["payload"]["name"] for e in memory.events(rid, kind="STEP")]
        assert names == sorted(names, key=lambda s: int(s[1:]))
    t.close(5)
