"""A bounded shutdown for the faust worker: SIGTERM/SIGINT start a clean stop, and if it has not
finished within the grace period the process exits anyway.

faust's stop commits offsets and flushes its producer; with the broker gone, both retry without
end and the worker ignored SIGTERM for good (issue #21: >20 s, then SIGKILL). Leaving without the
final commit loses nothing: the records after the last committed offset are read again on the
next start (at-least-once; the sink drops the repeats by event id).
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any

_armed = threading.Event()


def arm(grace_s: float, exit_code: int = 3) -> None:
    """Starts the deadline once; later signals do not move it."""
    if _armed.is_set():
        return
    _armed.set()

    def give_up() -> None:
        sys.stderr.write(f"agentstream processors: clean shutdown did not finish in {grace_s:g} s"
                         " (is the broker reachable?); exiting without the final offset commit,"
                         " the uncommitted records are re-read on the next start\n")
        sys.stderr.flush()
        os._exit(exit_code)

    timer = threading.Timer(grace_s, give_up)
    timer.daemon = True
    timer.start()


def bounded_worker(grace_s: float) -> Any:
    """faust's Worker class, with every stop signal also arming the deadline."""
    from faust.worker import Worker

    class BoundedWorker(Worker):
        def _schedule_shutdown(self, signal: Any) -> None:  # mode's one path for SIGTERM/SIGINT
            arm(grace_s)
            super()._schedule_shutdown(signal)

    return BoundedWorker
