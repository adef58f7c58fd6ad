"""A worker taking over fleet partitions recovers every tenant's spend state, including state
written in the same produce batch as another tenant's.

Faust recovers a table by reading its changelog up to the high watermark. Tansu reports that
watermark as the last batch's base offset + 1, so the records after the first one in the last
batch were never applied, and a tenant whose state was one of them lost its spend: the budget
breach it had nearly reached was never alerted (how tests/integration/test_many_workers.py
failed in CI). Here the changelog is written as a dead worker leaves it: one batch, the tenant's
state after another tenant's."""
from __future__ import annotations

import time
import uuid

import orjson
import pytest
from alerts_topic import read_alerts
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.topics import create_topics
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.changelog_tail import read_tail
from agentstream.stream_processors.detectors import fleet
from agentstream.stream_processors.policy_io import set_policy
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.worker_process import start_worker

pytestmark = pytest.mark.integration
codec = Codec()
PARTITIONS = 2


def _state(tenant: str, usd: float, now_us: int) -> bytes:
    """A tenant's fleet state as the fleet agent leaves it after ``usd`` of spend today."""
    st = fleet.new_state()
    d = fleet.new_delta(tenant)
    fleet.add_spend(d, "agent", now_us, usd)
    fleet.apply(st, d, {"tenant_usd_per_day": 1.0})
    return orjson.dumps(st)


def test_state_after_the_first_record_of_the_last_changelog_batch_is_recovered(bootstrap, tmp_path, unique):
    prefix = f"fsr{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=PARTITIONS)
    tenant = f"budget-{unique}"
    set_policy(ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix), tenant,
               version="b1", budgets=["tenant_usd_per_day=1.0"], base={})
    app_id = "fsr-" + uuid.uuid4().hex[:6]
    changelog = f"{app_id}-fleet-state-changelog"
    now_us = int(time.time() * 1_000_000)
    # as faust creates it: compacted, one partition per raw partition
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(changelog, PARTITIONS, 1, config={"cleanup.policy": "compact"})]).values():
        f.result()
    # One batch per partition, each tenant's $0.90 after another tenant's state: what a worker
    # killed after a fleet batch leaves (the agent writes every touched tenant at once).
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 200, "batch.num.messages": 100})
    for part in range(PARTITIONS):
        p.produce(changelog, _state(f"other-{unique}-{part}", 0.10, now_us), f"other-{unique}-{part}".encode(),
                  partition=part)
        p.produce(changelog, _state(tenant, 0.90, now_us), tenant.encode(), partition=part)
    assert p.flush(30) == 0
    wm = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-" + unique})
    highs = [wm.get_watermark_offsets(TopicPartition(changelog, part), timeout=10)[1] for part in range(PARTITIONS)]
    wm.close()
    print(f"\nchangelog: 2 records per partition, high watermarks reported {highs}")

    worker = start_worker(bootstrap, prefix, app_id, tmp_path / "data", tmp_path / "worker.log").wait_ready()
    try:
        run = f"run-{unique}"
        events = [syn.run_start(tenant, run), syn.llm_step(tenant, run, 1, cost_usd=0.30)]
        raw = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
        for e in events:
            raw.produce(topic_name("raw", prefix), codec.encode(EVENT, e), e["run_id"].encode())
        assert raw.flush(30) == 0
        # $0.90 recovered + $0.30 now = $1.20 > $1.00; with the $0.90 lost it would be $0.30
        found = read_alerts(bootstrap, prefix, PARTITIONS,
                            lambda a: a["tenant_id"] == tenant and a["alert_type"] == "budget_breach", bool, 60)
        assert found, "the recovered $0.90 was lost: no breach at $1.20 of $1.00"
        assert found[0]["evidence"]["used_usd"] == "1.2000"
    finally:
        worker.stop()


def test_read_tail_reads_past_the_reported_watermark_and_stops_when_quiet(bootstrap, unique):
    topic = f"tail-{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 200})
    for i in range(5):  # one batch: offsets 0..4
        p.produce(topic, f"v{i}".encode(), f"k{i}".encode(), partition=0)
    assert p.flush(30) == 0
    t0 = time.monotonic()
    tail = read_tail(bootstrap, {(topic, 0): 1}, idle_s=0.3)
    took = time.monotonic() - t0
    assert [(o, k, v) for _t, _p, o, k, v in tail] == [(i, f"k{i}".encode(), f"v{i}".encode()) for i in range(1, 5)]
    assert read_tail(bootstrap, {(topic, 0): 5}, idle_s=0.3) == []
    print(f"\nread_tail: 4 records past offset 1 in {took:.2f} s")
