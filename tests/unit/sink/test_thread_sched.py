"""The insert's CPU and CPU-wait split (sink/thread_sched.py): per thread, from Linux's schedstat."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from agentstream.sink import thread_sched as ts

linux = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists("/proc/thread-self/schedstat"),
                           reason="per-thread schedstat is Linux's")


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@linux
def test_spent_counts_the_calling_threads_cpu_and_not_another_threads() -> None:
    before = ts.thread_sched()
    assert before is not None
    other = threading.Thread(target=_spin, args=(0.2,))
    other.start()
    other.join()  # another thread's work is not ours
    mine = ts.spent(before)
    assert mine is not None and mine[0] < 0.1
    before = ts.thread_sched()
    _spin(0.05)
    cpu, wait = ts.spent(before)
    assert cpu >= 0.05 and wait >= 0.0


@linux
def test_a_thread_that_competes_for_one_cpu_waits() -> None:
    # Two spinning threads pinned to one CPU: each is runnable while the other runs.
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no affinity control")
    cpu0 = min(os.sched_getaffinity(0))
    results: list[tuple[float, float]] = []

    def spin_on_cpu0() -> None:
        os.sched_setaffinity(0, {cpu0})  # the calling thread only
        before = ts.thread_sched()
        _spin(0.15)
        results.append(ts.spent(before))

    threads = [threading.Thread(target=spin_on_cpu0) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and all(cpu >= 0.15 for cpu, _ in results)
    assert sum(wait for _, wait in results) > 0.0


def test_no_schedstat_means_no_figure_not_an_error(monkeypatch) -> None:
    monkeypatch.setattr(ts, "SCHEDSTAT", "/nonexistent/schedstat")
    assert ts.thread_sched() is None
    assert ts.spent(None) is None
    assert ts.spent((1.0, 2.0)) is None
