"""Replays a generated fleet (``scenarios.py``) through a real processors worker on a broker and
collects the alerts and commands it raised for the fleet's tenants (for ``scenario_score``).
Used by the scenario integration test and ``bench/detection.py``."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from agentstream.schemas import ALERT, COMMAND, EVENT, Codec, topic_name

from .policies import TenantPolicy
from .policy_io import write_policy
from .scenarios import Fleet
from .settings import ProcessorsSettings
from .worker_process import start_worker


def replay_on_broker(fleet: Fleet, bootstrap: str, prefix: str, workdir: Path, quiet_s: float = 6.0,
                     timeout: float = 300.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
    """(alerts, commands, timings): policies written, a worker started, every event produced to
    raw keyed by run_id; collection ends once the worker has read every event and nothing new
    arrived for ``quiet_s`` (the fleet stage runs after the raw stage)."""
    from confluent_kafka import Consumer, Producer

    codec = Codec()
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    for tenant, pol in fleet.policies.items():
        write_policy(settings, TenantPolicy(tenant, version="scenario", loops=pol["loops"],
                                            budgets=pol["budgets"]).to_record(int(time.time() * 1e6)))
    worker = start_worker(bootstrap, prefix, "scenario-" + uuid.uuid4().hex[:6], workdir / "data",
                          workdir / "worker.log").wait_ready()
    alerts_t, commands_t = topic_name("alerts", prefix), topic_name("commands", prefix)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "scenario-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([alerts_t, commands_t])
    tenants = set(fleet.policies)
    alerts: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    try:
        time.sleep(1.5)  # the policies reach the worker's policy follower
        p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
        raw = topic_name("raw", prefix)
        before = worker.records_in()
        t0 = time.monotonic()
        for i, e in enumerate(fleet.events):
            p.produce(raw, codec.encode(EVENT, e), e["run_id"].encode())
            if i % 5000 == 0:
                p.poll(0)
        if p.flush(60) != 0:
            raise RuntimeError("events not acknowledged by the broker")
        deadline, quiet_since, read_all_s = time.monotonic() + timeout, None, None
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.5)
            for m in msgs:
                if m.error() is not None:
                    continue
                if m.topic() == alerts_t:
                    a = codec.decode_as(ALERT, m.value())
                    if a["tenant_id"] in tenants:
                        alerts.append(a)
                else:
                    cmd = codec.decode_as(COMMAND, m.value())
                    if cmd["tenant_id"] in tenants:
                        commands.append(cmd)
            done = worker.records_in() >= before + len(fleet.events)
            if done and read_all_s is None:
                read_all_s = time.monotonic() - t0
            if msgs or not done:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > quiet_s:
                break
        if worker.records_in() < before + len(fleet.events):
            raise TimeoutError(f"the worker read {worker.records_in() - before:.0f} of {len(fleet.events)} "
                               f"events in {timeout}s:\n{worker.log_tail()}")
    finally:
        c.close()
        worker.stop()
    return alerts, commands, {"events_read_s": round(read_all_s or 0.0, 2)}
