"""CPU seconds of a process, or of a process and all its descendants, read from /proc (Linux)."""
from __future__ import annotations

import os
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


def tree_cpu(root: int) -> float:
    """utime + stime of ``root`` and every live descendant."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (st := _stat(int(d))) is not None:
            procs[int(d)] = st
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            total += procs[pid][1]
            todo += [p for p, (pp, _) in procs.items() if pp == pid]
    return total
