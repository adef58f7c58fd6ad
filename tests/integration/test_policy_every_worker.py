"""A policy written while several workers run applies on every worker, whichever holds a tenant's
partitions. The attack: two workers on four partitions, eight tenants given a daily budget at run
time (after both workers are ready), each then spending over it. With the policies in faust's
GlobalTable, only the worker that mirrored the policies topic applied them at once; the other saw
them through a standby stream applied in buffers of 1,000, so the tenants whose fleet partition
sat there were never alerted."""
from __future__ import annotations

import time
import uuid

import pytest
from alerts_topic import read_alerts
from confluent_kafka import Producer

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.topics import create_topics
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.policy_io import set_policy
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.worker_process import start_worker

pytestmark = pytest.mark.integration
codec = Codec()
PARTITIONS = 4
TENANTS = 8


def test_a_policy_set_at_run_time_applies_on_every_worker(bootstrap, tmp_path, unique):
    prefix = f"pew{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=PARTITIONS)
    app_id = "pew-" + uuid.uuid4().hex[:6]
    workers = [start_worker(bootstrap, prefix, app_id, tmp_path / f"d{i}", tmp_path / f"w{i}.log") for i in range(2)]
    try:
        for w in workers:
            w.wait_ready()
        tenants = {f"t{i}-{unique}" for i in range(TENANTS)}
        settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
        for t in sorted(tenants):
            set_policy(settings, t, version="b1", budgets=["tenant_usd_per_day=1.0"], base={})
        time.sleep(2.0)  # a poll or two of every worker's follower
        p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
        for t in sorted(tenants):
            for i in range(4):  # $0.40 each: $1.60 > $1.00
                run = f"{t}-r{i}"
                for e in (syn.run_start(t, run), syn.llm_step(t, run, 1, cost_usd=0.40), syn.run_end(t, run, 2)):
                    p.produce(topic_name("raw", prefix), codec.encode(EVENT, e), run.encode())
        assert p.flush(30) == 0
        found = read_alerts(bootstrap, prefix, PARTITIONS,
                            lambda a: a["tenant_id"] in tenants and a["alert_type"] == "budget_breach",
                            lambda got: {a["tenant_id"] for a in got} == tenants, 90)
        seen = {a["tenant_id"] for a in found}
        assert seen == tenants, f"no breach for {sorted(tenants - seen)}"
    finally:
        for w in workers:
            w.stop()
