"""``agentstream alerts tail`` stops between polls and exits even when its broker is gone: its
consumer's close is bounded (a tail commits nothing; librdkafka's close may wait on a group
coordinator that never answers)."""
from __future__ import annotations

import io
import threading
import time

from agentstream.stream_processors.alerts_io import close_within, tail_alerts
from agentstream.stream_processors.settings import ProcessorsSettings


class _Stuck:
    def __init__(self) -> None:
        self.release = threading.Event()

    def close(self) -> None:
        self.release.wait(30)


class _Closes:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_close_that_hangs_is_given_up_after_the_bound_and_a_normal_one_completes():
    stuck = _Stuck()
    t0 = time.monotonic()
    assert close_within(stuck, 0.2) is False and time.monotonic() - t0 < 5
    stuck.release.set()
    ok = _Closes()
    assert close_within(ok, 5) is True and ok.closed


def test_a_tail_asked_to_stop_reads_nothing_and_returns_against_a_broker_that_is_not_there():
    stop = threading.Event()
    stop.set()
    t0 = time.monotonic()
    out = io.StringIO()
    n = tail_alerts(ProcessorsSettings(bootstrap_servers="127.0.0.1:9", topic_prefix="gone."), out=out, stop=stop)
    assert n == 0 and out.getvalue() == "" and time.monotonic() - t0 < 15
