"""The demo tenants' policies: a tight daily budget for globex so the demo shows a breach."""
from __future__ import annotations

import time

DEMO_POLICIES = {
    "acme": {"version": "demo-1", "retention_days": 30,
             "loops": {"max_repeats": 5, "max_ping_pong": 4, "max_no_progress": 3,
                       "max_retries": 5, "stop_on_loop": True},
             "budgets": {"run_max_steps": 200, "tenant_usd_per_day": 500.0, "hard_limit": False}},
    "globex": {"version": "demo-1", "retention_days": 14,
               "loops": {"max_repeats": 5, "max_ping_pong": 4, "max_no_progress": 3,
                         "max_retries": 5, "stop_on_loop": True},
               "budgets": {"tenant_usd_per_day": 0.5, "hard_limit": False}},
}


def apply_demo_policies(bootstrap_servers: str, prefix: str) -> None:
    from confluent_kafka import Producer

    from agentstream.schemas import PARTITIONER, POLICY, Codec, topic_name

    codec = Codec()
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "partitioner": PARTITIONER})
    now_us = int(time.time() * 1e6)
    for tenant, policy in DEMO_POLICIES.items():
        record = {"tenant_id": tenant, "updated_us": now_us, **policy}
        producer.produce(topic_name("policies", prefix), key=tenant.encode(),
                         value=codec.encode(POLICY, record))
    if producer.flush(10):
        raise RuntimeError("could not write the demo policies to Kafka")
