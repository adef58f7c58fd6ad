"""Tracers of one process share a librdkafka handle (``share_producer``), and each still keeps
its own delivery: a failure reaches the tracer whose record it was, a flush waits for that
tracer's records only, and only the last tracer to close purges the handle. The handle here is
an in-memory stand-in that reports as librdkafka does (the broker versions:
tests/integration/test_producer_outage.py, test_producer_threads.py)."""
from __future__ import annotations

import gc
import threading
import time
import weakref

from agentstream.producer import Tracer
from agentstream.producer.shared_producer import POOL
from agentstream.schemas import EVENT, Codec

from tests.kafka_reports import Err, Msg


class Handle:
    """Delivers on ``poll``; records of a key in ``fail`` fail, of a key in ``hold`` wait."""

    made: list["Handle"] = []

    def __init__(self, conf: dict) -> None:
        self.conf = conf
        self.pending: list = []
        self.log: list[tuple[bytes, bytes]] = []
        self.fail: set[bytes] = set()
        self.hold: set[bytes] = set()
        self.purges = 0
        self.pollers: set[str] = set()
        self._lock = threading.Lock()
        Handle.made.append(self)

    def produce(self, topic, value, key, on_delivery=None):
        with self._lock:
            self.pending.append((key, value, on_delivery))

    def poll(self, timeout=0, *, flushing=False):
        if not flushing:
            self.pollers.add(threading.get_ident())
        with self._lock:
            due = [p for p in self.pending if p[0] not in self.hold]
            self.pending = [p for p in self.pending if p[0] in self.hold]
        for key, value, cb in due:
            if key in self.fail:
                cb(Err(), Msg(key, value))
            else:
                self.log.append((key, value))
                cb(None, Msg(key, value))
        if not due and timeout:
            time.sleep(min(timeout, 0.005))
        return len(due)

    def flush(self, timeout=0):
        self.poll(timeout, flushing=True)
        return len(self)

    def __len__(self):
        return len(self.pending)

    def purge(self, **kw):
        self.purges += 1
        with self._lock:
            gone, self.pending = self.pending, []
        for key, value, cb in gone:
            cb(Err(), Msg(key, value))

    def list_topics(self, topic, timeout=0):
        return type("MD", (), {"topics": {topic: type("T", (), {"error": None, "partitions": {0: 0}})()}})()


def _tracers(tmp_path, n: int, **kw) -> list[Tracer]:
    return [Tracer(f"tenant-{i}", f"agent-{i}", "1", "test", producer_factory=Handle,
                   commands_enabled=False, follow_policy=False, probe_interval_s=0.05,
                   spool_dir=str(tmp_path / f"spool-{i}"), **kw) for i in range(n)]


def _emit(tracer: Tracer, steps: int = 3) -> str:
    with tracer.run("r") as run:
        for s in range(steps):
            run.tool_call(f"t{s}", latency_ms=1)
    return run.run_id


def _runs(log) -> dict[str, list[int]]:
    codec, out = Codec(), {}
    for _key, value in log:
        e = codec.decode_as(EVENT, value)
        out.setdefault(e["run_id"], []).append(e["seq"])
    return out


def setup_function(_):
    Handle.made.clear()
    POOL.forget()  # a failed test's tracers must not lend their handle to the next test


def test_tracers_with_the_same_settings_share_one_handle_and_others_do_not(tmp_path):
    same = _tracers(tmp_path, 4)
    other = _tracers(tmp_path / "o", 1, linger_ms=7)
    alone = _tracers(tmp_path / "a", 2, share_producer=False)
    runs = [_emit(t) for t in same + other + alone]
    assert all(t.flush(5) for t in same + other + alone)
    assert len(Handle.made) == 1 + 1 + 2
    shared = Handle.made[0]
    got = _runs(shared.log)
    assert set(got) == set(runs[:4]) and all(seqs == list(range(5)) for seqs in got.values())
    # one tracer's thread polls the handle and serves every tracer's reports (each flush serves
    # them too, on its own thread)
    assert len(shared.pollers) == 1
    for t in same + other + alone:
        t.close(5)


def test_a_failure_goes_to_the_tracer_whose_record_it_was(tmp_path):
    a, b = _tracers(tmp_path, 2)
    rid_b0 = _emit(b)
    assert b.flush(5)
    handle = Handle.made[0]
    # a's next run fails in flight: a spools it, b is untouched
    with a.run("doomed") as run:
        handle.fail.add(run.run_id.encode())
        run.tool_call("x", latency_ms=1)
    deadline = time.monotonic() + 5
    while a.stats()["spooled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    rid_b1 = _emit(b)
    assert b.flush(5)
    sa, sb = a.stats(), b.stats()
    assert sa["spooled"] > 0 and sb["spooled"] == 0 and sb["online"]
    assert not (tmp_path / "spool-1").exists() or not any((tmp_path / "spool-1").iterdir())
    # the broker takes a's records again: a replays its spool on a fresh shared handle
    handle.fail.clear()
    deadline = time.monotonic() + 10
    while not (a.stats()["online"] and a.stats()["spool_bytes"] == 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a.stats()["online"] and a.stats()["replayed"] >= 3
    assert a.flush(5)
    assert len(Handle.made) == 2, "a came back on a fresh handle"
    logged = _runs(Handle.made[0].log + Handle.made[1].log)
    assert logged[run.run_id] == list(range(3))
    assert logged[rid_b0] == logged[rid_b1] == list(range(5))
    for t in (a, b):
        t.close(5)
    assert a.stats()["dropped"] == b.stats()["dropped"] == 0


def test_flush_waits_for_its_own_records_not_for_the_handles_queue(tmp_path):
    a, b = _tracers(tmp_path, 2)
    _emit(a)
    assert a.flush(5)
    handle = Handle.made[0]
    with b.run("held") as held:
        handle.hold.add(held.run_id.encode())
        held.tool_call("x", latency_ms=1)
    rid = _emit(a)
    t = time.monotonic()
    assert a.flush(5), "a's records are all delivered while b's wait in the same handle"
    assert time.monotonic() - t < 2
    assert not b.flush(0.3)
    assert b.stats()["in_flight"] > 0 and a.stats()["in_flight"] == 0
    handle.hold.clear()
    assert b.flush(5)
    assert _runs(handle.log)[rid] == list(range(5))
    a.close(5)
    b.close(5)


def test_only_the_last_tracer_to_close_purges_the_shared_handle(tmp_path):
    a, b = _tracers(tmp_path, 2)
    _emit(a)
    _emit(b)
    assert a.flush(5) and b.flush(5)
    handle = Handle.made[0]
    a.close(5)
    assert handle.purges == 0 and POOL.owners(handle) == 1
    rid = _emit(b)  # b goes on producing with it
    assert b.flush(5)
    assert _runs(handle.log)[rid] == list(range(5))
    b.close(5)
    assert handle.purges == 1 and POOL.owners(handle) == 0
    # the next tracer with those settings gets a handle of its own again
    c = _tracers(tmp_path / "c", 1)[0]
    _emit(c)
    assert c.flush(5) and len(Handle.made) == 2
    c.close(5)


def test_a_tracer_dropped_without_close_does_not_keep_the_handle(tmp_path):
    """The pool holds handles weakly: the deliveries producing with one keep it alive."""
    tracer = _tracers(tmp_path, 1, worker_thread=False)[0]
    _emit(tracer)
    assert tracer.flush(5)
    handle = weakref.ref(Handle.made.pop())
    del tracer
    gc.collect()
    assert handle() is None
