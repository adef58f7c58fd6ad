"""Sampling, ordering and spool/replay of the transport, with an in-memory stand-in for the
librdkafka producer (the real-broker versions are in tests/integration/test_producer_*.py)."""
from __future__ import annotations

import time

from agentstream.producer import Tracer
from agentstream.schemas import EVENT, Codec

from tests.kafka_reports import Err, Msg


class FakeKafka:
    """Accepts while ``up``; while down every record fails like a delivery timeout. Reports
    as librdkafka does: to the record's ``on_delivery`` (else the conf's), successes too unless
    ``delivery.report.only.error``."""

    def __init__(self, conf: dict) -> None:
        self.conf = conf
        self.log: list[tuple[bytes, bytes]] = FakeKafka.shared
        self.pending: list = []

    shared: list = []
    up = True

    def produce(self, topic, value, key, on_delivery=None):
        self.pending.append((key, value, on_delivery))

    def poll(self, timeout=0):
        if timeout:
            time.sleep(min(timeout, 0.01))
        pending, self.pending = self.pending, []
        only_errors = self.conf.get("delivery.report.only.error", False)
        for key, value, cb in pending:
            cb = cb or self.conf.get("on_delivery")
            if FakeKafka.up:
                self.log.append((key, value))
                if cb is not None and not only_errors:
                    cb(None, Msg(key, value))
            else:
                cb(Err(-185), Msg(key, value))
        return len(pending)

    def flush(self, timeout=0):
        self.poll()
        return 0

    def __len__(self):
        return len(self.pending)

    def purge(self, **kw):
        pass

    def list_topics(self, topic, timeout=0):
        if not FakeKafka.up:
            raise RuntimeError("down")
        return type("MD", (), {"topics": {topic: type("T", (), {"error": None,
                                                                 "partitions": {0: 0}})()}})()


def _tracer(tmp_path, **kw):
    FakeKafka.shared = []
    FakeKafka.up = True
    return Tracer("t", "a", "1", "test", producer_factory=FakeKafka, commands_enabled=False,
                  spool_dir=str(tmp_path / "spool"), probe_interval_s=0.05, **kw)


def _decoded():
    codec = Codec()
    return [codec.decode_as(EVENT, v) for _, v in FakeKafka.shared]


def test_head_sampling_keeps_every_failed_run(tmp_path):
    t = _tracer(tmp_path, sample_rate=0.0)
    with t.run("ok") as ok:
        with ok.step("plan", "p"):
            pass
    try:
        with t.run("bad") as bad:
            with bad.step("tool", "x"):
                raise KeyError("boom")
    except KeyError:
        pass
    with t.run("soft-failure") as soft:
        soft.failure("retrieval", "empty_result")
    assert t.flush(5)
    events = _decoded()
    runs = {e["run_id"] for e in events}
    assert runs == {bad.run_id, soft.run_id}
    bad_events = [e for e in events if e["run_id"] == bad.run_id]
    assert [e["kind"] for e in bad_events] == ["RUN_START", "STEP", "FAILURE", "RUN_END"]
    assert bad_events[0]["payload"]["sampled"] is False
    assert [e["seq"] for e in bad_events] == [0, 1, 2, 3]
    assert t.stats()["sampled_out"] == 3
    t.close(2)


def test_outage_spools_and_replays_in_order(tmp_path):
    t = _tracer(tmp_path)
    with t.run("r") as run:
        for _ in range(5):
            run.tool_call("x", latency_ms=1)
        assert t.flush(5)
        FakeKafka.up = False
        for _ in range(50):
            run.tool_call("x", latency_ms=1)
        deadline = time.monotonic() + 5
        while t.stats()["spooled"] < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert t.stats()["spooled"] >= 50 and not t.stats()["online"]
        FakeKafka.up = True
    deadline = time.monotonic() + 10
    while not (t.stats()["online"] and t.stats()["spool_bytes"] == 0) and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert t.flush(5)
    seqs = [e["seq"] for e in _decoded()]
    assert seqs == list(range(57))
    t.close(2)


def test_sdk_errors_never_reach_the_agent(tmp_path):
    t = _tracer(tmp_path)
    with t.run("r") as run:
        run.feedback("i1", "free text is not allowed")  # rejected, counted
        run.negative_signal("i1", "not-a-signal")
        run.decision("d", "x", confidence="not a number")
        with run.step("tool", "x", weird=object()) as s:
            s.capture(object())
    assert t.flush(5)
    assert t.stats()["failed"] >= 3
    assert [e["kind"] for e in _decoded()][-1] == "RUN_END"
    t.close(2)
