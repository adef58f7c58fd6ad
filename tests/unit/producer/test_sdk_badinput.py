"""The red-team's bad inputs (/tmp/s17/badinput/sdk_*.py) as tests: a record Kafka refuses for
good must not wedge the spool, over-long names and ids are cut, approval actions of any shape
digest without raising, and stats() says where every event went."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from agentstream.producer import Tracer
from agentstream.producer.bounds import ID_MAX, NAME_MAX
from agentstream.producer.spool import Spool
from agentstream.producer.testing import InMemoryTransport
from agentstream.producer.transport_reports import is_permanent

from tests.kafka_reports import Err

KEY = "k" * 32


def _tracer(mem: InMemoryTransport, tmp_path, **kw) -> Tracer:
    kw.setdefault("probe_interval_s", 0.05)
    return mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path / "spool"), digest_key=KEY,
                      **kw)


def test_a_record_kafka_refuses_is_dropped_counted_and_the_rest_flow(tmp_path):
    mem = InMemoryTransport()
    # message.max.bytes 1000 (librdkafka's least): a step named with 1 KB is over it
    t = _tracer(mem, tmp_path, client_conf={"message.max.bytes": "1000"})
    with t.run("r") as run:
        run.tool_call("N" * 1024, {"q": 1}, latency_ms=1.0)
        for i in range(100):
            run.tool_call("small", {"i": i}, latency_ms=1.0)
    assert t.flush(5)
    s = t.stats()
    assert s["rejected"] == 1 and s["dropped"] == 1 and s["spooled"] == 0 and s["online"]
    assert len(mem.events(run.run_id)) == 102  # RUN_START, 100 steps, RUN_END
    t.close(2)


def test_a_refused_record_at_the_spool_head_is_skipped_not_retried_forever(tmp_path):
    spool = Spool(str(tmp_path / "spool"), 64 * 1024 * 1024, 1024 * 1024)
    mem = InMemoryTransport()
    donor = mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path / "other"))
    with donor.run("small") as run:
        for i in range(5):
            run.tool_call("x", {"i": i}, latency_ms=1.0)
    assert donor.flush(5)
    good = mem.records()
    donor.close(2)
    mem.clear()
    # as an older SDK left it: an oversized record first, then good ones
    spool.append([(1, good[0][1], b"\x00" * 2_000_000)]
                 + [(i + 2, k, v) for i, (_, k, v) in enumerate(good)])
    spool.close()
    def replayed() -> int:
        return len([r for r in mem.records() if r[2] in {v for _, _, v in good}])

    rejected = []
    for _ in range(2):  # the second process would have found the same head again
        t = _tracer(mem, tmp_path)
        deadline = time.monotonic() + 10
        while replayed() < len(good) and time.monotonic() < deadline:
            with t.run("tick"):
                pass
            t.flush(0.2)
        t.close(2)
        assert replayed() == len(good)
        rejected.append(t.stats()["rejected"])
    assert rejected == [1, 0] and t.stats()["spool_bytes"] == 0


def test_a_delivery_refused_by_the_broker_keeps_the_delivery_online(tmp_path):
    mem = InMemoryTransport()
    t = _tracer(mem, tmp_path, worker_thread=False)  # flush does the delivery's turns here
    mem.fail_next(10)  # MSG_SIZE_TOO_LARGE in the delivery report: refused for good
    with t.run("r") as run:  # its RUN_START is the record refused
        run.tool_call("t", {"i": 1}, latency_ms=1.0)
    assert t.flush(5)
    s = t.stats()
    assert s["online"] and s["rejected"] == 1 and s["spooled"] == 0 and s["spool_bytes"] == 0
    assert [e["kind"] for e in mem.events(run.run_id)] == ["STEP", "RUN_END"]
    with t.run("after") as after:  # still online: the next run goes straight through
        pass
    assert t.flush(5) and t.stats()["online"] and t.stats()["spooled"] == 0
    assert len(mem.events(after.run_id)) == 2
    t.close(2)
    assert is_permanent(Err(10)) and not is_permanent(Err(-185))


def test_a_delivery_that_timed_out_is_spooled_and_replayed_not_rejected(tmp_path):
    mem = InMemoryTransport()
    t = _tracer(mem, tmp_path, worker_thread=False)  # flush does the delivery's turns here
    mem.fail_next(-192)  # _MSG_TIMED_OUT in the delivery report: an outage, not a refusal
    with t.run("r") as run:  # its RUN_START is the record that times out
        run.tool_call("t", {"i": 1}, latency_ms=1.0)
    assert t.flush(5)
    s = t.stats()
    # offline for the failed record (only an outage spools it), replayed once the broker
    # answered the probe, and online again
    assert s["rejected"] == 0 and s["spooled"] == 1 and s["replayed"] == 1 and s["dropped"] == 0
    assert sorted(e["kind"] for e in mem.events(run.run_id)) == ["RUN_END", "RUN_START", "STEP"]
    assert s["online"] and s["spool_bytes"] == 0
    t.close(2)


def test_over_long_names_and_ids_are_cut_and_counted(tmp_path):
    mem = InMemoryTransport()
    t = _tracer(mem, tmp_path)
    with t.run("N" * 5000, run_id="r" * 300, session_id="s" * 300) as run:
        run.tool_call("N" * 12_000_000, {"q": 1}, latency_ms=1.0, call_id="c" * 300)
        run.handoff("A" * 5000, role="R" * 5000, to_run_id="x" * 300)
        run.failure("tool", "F" * 5000, message="M" * 5000)
        with run.step("tool", "ok") as s:
            s.set_attribute("K" * 5000, "v")
    assert t.flush(5)
    events = mem.events()
    assert len(events) == 6
    for e in events:
        assert len(e["run_id"]) == ID_MAX and len(e["session_id"]) == ID_MAX
    assert len(events[0]["payload"]["entrypoint"]) == NAME_MAX
    tool = events[1]["payload"]
    assert len(tool["name"]) == NAME_MAX and len(tool["tool"]["tool_name"]) == NAME_MAX
    assert len(tool["tool"]["call_id"]) == ID_MAX
    h = events[2]["payload"]["handoff"]
    assert len(h["to_agent_id"]) == NAME_MAX and len(h["to_run_id"]) == ID_MAX
    assert len(events[3]["payload"]["message"]) == NAME_MAX
    assert all(len(k) <= NAME_MAX for k in events[4]["attributes"])
    assert t.stats()["truncated"] >= 10
    t.close(2)


class Evil:
    def __getattr__(self, n):
        raise RuntimeError("getattr boom " + n)

    def __str__(self):
        raise RuntimeError("str boom")

    def __bool__(self):
        raise RuntimeError("bool boom")

    def __hash__(self):
        return 1


def _odd_actions():
    rec: dict = {"a": 1}
    rec["self"] = rec
    deep: list = []
    x = deep
    for _ in range(100_000):
        x.append([])
        x = x[0]
    return [{1: "refund", "amount": 5}, {(1, 2): "x"}, {None: 1, "a": 2}, rec, deep, Evil(),
            {"a": Evil()}, {1: Evil(), "b": [Evil()]}, {10 ** 5000: 1}]


@pytest.mark.parametrize("i", range(9))
def test_approval_request_of_any_action_never_raises(tmp_path, i):
    mem = InMemoryTransport()
    t = _tracer(mem, tmp_path)
    action = _odd_actions()[i]
    with t.run("r") as run:
        with run.approval_request(action) as req:
            req.decide("approved")
        again = run.approval(action, "approved", 1.0)
    assert req.digest is not None and req.digest == again
    assert t.flush(5)
    kinds = [e["payload"].get("step_kind") for e in mem.events(run.run_id) if e["kind"] == "STEP"]
    assert kinds == ["APPROVAL", "APPROVAL"]
    t.close(2)


def test_mixed_keys_digest_deterministically_and_apart(tmp_path):
    t = _tracer(InMemoryTransport(), tmp_path)
    with t.run("r") as run:
        a = run.approval({1: "refund", "amount": 5}, "approved", 1.0)
        same = run.approval({"amount": 5, 1: "refund"}, "approved", 1.0)
        other = run.approval({1: "refund", "amount": 6}, "approved", 1.0)
    assert a is not None and a == same and a != other
    t.close(1)


@pytest.mark.parametrize("action", [{"tool": "refund", "amount": 40, "to": "alice"},
                                    {"b": [1, 2.5, None, True], "a": {"z": "é", "y": "\u2603"}},
                                    "plain text", [1, "two"], 3])
def test_json_able_actions_digest_as_the_gateway_does(tmp_path, action):
    from agentstream.api.gateway.span_digest import keyed

    mem = InMemoryTransport()
    t = _tracer(mem, tmp_path)
    with t.run("r") as run:
        with run.approval_request(action) as req:
            req.decide("approved")
    assert req.digest == keyed(KEY.encode(), action)
    expected = hmac.new(KEY.encode(), json.dumps(action, sort_keys=True, separators=(",", ":"),
                                                 ensure_ascii=False).encode(), hashlib.sha256)
    assert req.digest == expected.hexdigest()
    t.close(1)


def test_odd_keys_and_ids_never_raise(tmp_path):
    mem = InMemoryTransport()
    t = _tracer(mem, tmp_path)
    with t.run("r") as run:
        with run.step("tool", "x") as s:
            s.set_attribute(Evil(), "v")
            s.set_attribute(7, "v")
        child = run.handoff("b", to_run_id=Evil())
    assert isinstance(child, str) and child
    assert t.flush(5)
    assert t.stats()["failed"] >= 2
    t.close(2)


def test_stats_say_where_events_went_when_kafka_is_unreachable(tmp_path):
    mem = InMemoryTransport()
    mem.set_reachable(False)
    t = _tracer(mem, tmp_path, flush_timeout_s=1.0)
    for i in range(5):
        with t.run(f"r{i}") as run:
            run.tool_call("t", {"i": i}, latency_ms=1.0)
    t.close(1)
    assert t.stats()["spooled"] == 15 and t.stats()["queued"] == 0
    with t.run("after close") as run:  # events after close: spooled by the next close
        run.tool_call("t", {}, latency_ms=1.0)
    assert t.stats()["queued"] == 3
    t.close(1)
    s = t.stats()
    assert s["spooled"] == 18 and s["queued"] == 0 and s["dropped"] == 0
