"""How long the calling thread has run on a CPU and waited for one (Linux's per-thread schedstat).

On chDB an insert runs inside ClickHouse on its caller's thread, so the difference over the
call says whether a slow insert was slow or starved: on the embedded stack at 10k events/s an
insert of ~0.25 s of CPU took 0.5-2 s, most of it runnable and waiting for one of the two cores
(docs/performance.md). Against a ClickHouse server it is the client's side only.
"""
from __future__ import annotations

SCHEDSTAT = "/proc/thread-self/schedstat"


def thread_sched() -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable but waiting for one) of the calling thread since it
    started, or None where the kernel does not say (not Linux, schedstats off)."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            on, wait, _slices = f.read().split()
        return int(on) / 1e9, int(wait) / 1e9
    except (OSError, ValueError):
        return None


def spent(before: tuple[float, float] | None) -> tuple[float, float] | None:
    """(CPU seconds, wait seconds) of the calling thread since ``before`` (a ``thread_sched()``)."""
    after = thread_sched() if before is not None else None
    if before is None or after is None:
        return None
    return after[0] - before[0], after[1] - before[1]
