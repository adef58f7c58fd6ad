"""The SDK's producer does not busy-loop while a slow broker answers (issue #18).

librdkafka's idempotent producer keeps one ProduceRequest in flight per partition; when a
partition's next batch has lingered (``linger_ms``) before the broker answered the last one,
its broker thread polls with a zero timeout until the answer comes: a spin as long as the round
trip exceeds the linger. With ``max_in_flight`` (2) below the partitions a broker leads, a third
partition's request waits in librdkafka's send queue instead, whose backpressure puts the thread
to sleep. Here the broker is 40 ms away (tests/integration/slow_link.py) and the SDK's linger is
20 ms (the default is 50: a broker farther away than the linger is the case): the wakeups librdkafka counts per ProduceRequest tell a spin (thousands) from a sleep
(a handful), without timing anything. The control arm (5 in flight: every partition its own
request, as before) shows the spin is real on this librdkafka; if an upgrade stops it spinning,
the control fails and the setting can be revisited.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest

from agentstream.producer import Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name
from agentstream.schemas.topics import create_topics

from slow_link import DelayedBroker

RUNS = 400        # x 8 events, spread over the topic's 4 partitions by run id
RATE_EV_S = 2400  # paced: linger, not the batch size, closes each batch


@pytest.fixture(scope="module")
def far_broker():
    b = DelayedBroker(delay_s=0.04).start()
    try:
        create_topics(b.bootstrap_servers, prefix="spin.", partitions=4)
        yield b
    finally:
        b.stop()


def _emit(far_broker, tmp_path, **overrides) -> tuple[dict, dict, list[str]]:
    """Paced runs through a Tracer whose producer reports librdkafka's statistics."""
    seen: dict = {}

    def stats(js: str) -> None:
        brokers = [b for b in json.loads(js)["brokers"].values() if b["nodeid"] >= 0]
        seen["wakeups"] = sum(b["wakeups"] for b in brokers)
        seen["produce_requests"] = sum(b["req"].get("Produce", 0) for b in brokers)

    def factory(conf: dict):
        from confluent_kafka import Producer

        return Producer({**conf, "statistics.interval.ms": 100, "stats_cb": stats})

    tracer = Tracer("spin", f"agent-{uuid.uuid4().hex[:6]}", "1.0.0", "test",
                    bootstrap_servers=far_broker.bootstrap_servers, topic_prefix="spin.",
                    spool_dir=str(tmp_path / "spool"), commands_enabled=False,
                    follow_policy=False, producer_factory=factory, **{"linger_ms": 20, **overrides})
    # the connection, the producer id and the topic's metadata, through the slow link first
    with tracer.run("warm-up"):
        pass
    assert tracer.flush(30)
    time.sleep(0.3)
    start = dict(seen)
    run_ids = []
    t0 = time.monotonic()
    for i in range(RUNS):
        ahead = i * 8 / RATE_EV_S - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        with tracer.run("spin", ticket=str(i)) as run:
            run_ids.append(run.run_id)
            for s in range(3):
                run.tool_call("search", {"q": i}, latency_ms=1.0)
                with run.llm_step("openai", "gpt-4o") as st:
                    st.record_llm("openai", "gpt-4o", input_tokens=10 + s, output_tokens=5)
    # The steady state, read before the tail: once records stop coming, the last partitions
    # with a request out are the only ones with data, nothing parks, and they spin until their
    # answer (flush() makes every batch ready at once: the same). docs/sdk.md says so.
    steady = {k: seen[k] - start[k] for k in seen}
    assert tracer.flush(30)
    out = tracer.stats()
    tracer.close(5)
    return steady, out, run_ids


def test_slow_broker_no_spin_and_every_run_in_order(far_broker, tmp_path):
    ours, sdk, run_ids = _emit(far_broker, tmp_path / "ours")
    assert sdk["sent"] == RUNS * 8 + 2 and not sdk["dropped"] and not sdk["spooled"], sdk
    assert ours["produce_requests"] > 0
    per_request = ours["wakeups"] / ours["produce_requests"]
    assert per_request < 100, ours

    control, _, _ = _emit(far_broker, tmp_path / "control",
                          client_conf={"max.in.flight.requests.per.connection": "5"})
    assert control["wakeups"] / control["produce_requests"] > 10 * max(per_request, 5), (
        ours, control)

    # fewer requests in flight must not cost order: each run arrives whole and in sequence
    got = read_events(far_broker.bootstrap_servers, topic_name("raw", "spin."), run_ids,
                      timeout=60)
    assert [len(got[r]) for r in run_ids] == [8] * RUNS
    for r in run_ids:
        assert [e["seq"] for e in got[r]] == list(range(8)), r
