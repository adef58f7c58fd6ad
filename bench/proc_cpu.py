"""CPU seconds of a process, or of a process and all its descendants, read from /proc (Linux);
and how long their threads waited for a CPU (``tree_sched``)."""
from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK  # ppid, utime+stime


def process_cpu(pid: int) -> float:
    """utime + stime of one process (0.0 once it is gone)."""
    st = _stat(pid)
    return 0.0 if st is None else st[1]


def _tree(root: int) -> list[tuple[int, float]]:
    """(pid, utime + stime) of ``root`` and every live descendant."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (st := _stat(int(d))) is not None:
            procs[int(d)] = st
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append((pid, procs[pid][1]))
            todo += [p for p, (pp, _) in procs.items() if pp == pid]
    return out


def tree_cpu(root: int) -> float:
    """utime + stime of ``root`` and every live descendant."""
    return sum(cpu for _pid, cpu in _tree(root))


def tree_sched(root: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one), summed over the live threads of
    ``root`` and its descendants (``/proc/<pid>/task/<tid>/schedstat``; threads that ended are
    not counted, so take differences over a window in which the threads of interest live)."""
    on = wait = 0
    for pid, _cpu in _tree(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
            except OSError:
                continue
            on += int(fields[0])
            wait += int(fields[1])
    return on / 1e9, wait / 1e9


def cpu_probe_ms(rounds: int = 3, n: int = 1_000_000) -> float:
    """CPU milliseconds a fixed pure-Python loop takes, best of ``rounds``: how fast this machine's
    cores are right now. On a shared VM the same work varies by ±30 % from one minute to the
    next (measured 620-800 ms for 5M iterations on an idle machine), and every stage's CPU per
    event moves with it; a bench prints this beside its figures so runs can be compared."""
    best = float("inf")
    for _ in range(rounds):
        t, s = time.process_time(), 0
        for i in range(n):
            s += i * i
        best = min(best, time.process_time() - t)
    return round(best * 1000, 1)
