"""Stop and throttle by hand, from the API route to the live agent, on the real broker and chDB.

The agent is a real instrumented process loop (the SDK's Tracer with its command listener). Its
run is made visible to the API the way the sink makes it (RUN_START rows in the contract tables),
then POST /v1/runs/{id}/stop must end it with RunStopped before its next step; the command, the
acknowledgement and the manual_stop alert (who, when, why) must all be on their topics.
"""
from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "api"))
from api_fleet import RunBuilder, apply_migrations, insert_runs

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings
from agentstream.producer import RunStopped, Tracer
from agentstream.producer.testing import read_events
from agentstream.schemas import ALERT, COMMAND, Codec, topic_name

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory, chdb_client, bootstrap, topic_prefix):
    # one tracer for the module: its command listener joins its consumer group once
    apply_migrations(chdb_client)
    tmp_path = tmp_path_factory.mktemp("ops")
    tenant = "ops-" + uuid.uuid4().hex[:10]
    keys = tmp_path / "keys.json"
    key = add_key(keys, tenant, scopes=["read", "write"], name="oncall-key")
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                           kafka_client_conf={"session.timeout.ms": "6000"})
    tracer = Tracer(tenant, "runaway-agent", "3.1", "test", bootstrap_servers=bootstrap,
                    topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"),
                    session_timeout_ms=6000, commands_enabled=True)
    with TestClient(create_app(settings, client=chdb_client)) as api:
        yield api, {"Authorization": f"Bearer {key}"}, tracer, tenant
    tracer.close(5)


def _visible(chdb_client, tenant, run_id):
    """What the sink would have stored by now: the run's start."""
    row = RunBuilder(tenant, agent="runaway-agent", version="3.1", environment="test", run_id=run_id)
    insert_runs(chdb_client, [row])


def _records(bootstrap, topic, schema, want, timeout=90.0):
    from confluent_kafka import Consumer

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    # assigned, not subscribed: no consumer-group join (half a session timeout) per read
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time_ns()}",
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    codec, found = Codec(), []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not found:
            msg = c.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            try:
                rec = codec.decode_as(schema, msg.value())
            except Exception:  # noqa: BLE001 - the session's shared topics also carry other tests' bad records
                continue
            if want(rec):
                found.append(rec)
    finally:
        c.close()
    assert found, f"no matching record on {topic}"
    return found[0]


def test_stop_route_ends_a_live_agent_with_run_stopped(stack, chdb_client, bootstrap, topic_prefix):
    api, auth, tracer, tenant = stack
    live, outcome, steps = threading.Event(), {}, []

    def agent() -> None:
        try:
            with tracer.run("runaway") as run:
                outcome["run"] = run
                for i in range(4000):  # ~200 s unless stopped
                    with run.step("tool", "poll"):
                        time.sleep(0.05)
                    steps.append(i)
                    live.set()
        except RunStopped as exc:
            outcome["stopped"] = exc

    assert tracer.commands_ready(20)
    worker = threading.Thread(target=agent)
    worker.start()
    assert live.wait(10)
    run_id = outcome["run"].run_id
    _visible(chdb_client, tenant, run_id)

    r = api.post(f"/v1/runs/{run_id}/stop", json={"reason": "burning tokens in a loop", "actor": "ann"},
                 headers=auth)
    assert r.status_code == 202, r.text
    issued = r.json()
    assert issued["issued_by"] == "ann (key oncall-key)" and issued["command_type"] == "STOP"
    worker.join(30)
    assert not worker.is_alive(), "the agent was not stopped"
    exc = outcome["stopped"]
    assert exc.command_id == issued["command_id"] and "burning tokens" in str(exc.reason)
    assert len(steps) < 4000

    # recorded: the command, the agent's ack in its own event stream, the manual_stop alert
    cmd = _records(bootstrap, topic_name("commands", topic_prefix), COMMAND,
                   lambda c: c["command_id"] == issued["command_id"])
    assert cmd["tenant_id"] == tenant and cmd["reason"] == "burning tokens in a loop"
    assert tracer.flush(10)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run_id], timeout=30)[run_id]
    assert [e["kind"] for e in events][-2:] == ["COMMAND_ACK", "RUN_END"]
    assert events[-2]["payload"]["command_id"] == issued["command_id"]
    assert events[-1]["payload"]["outcome"] == "stopped_by_command"
    alert = _records(bootstrap, topic_name("alerts", topic_prefix), ALERT,
                     lambda a: a["alert_id"] == issued["alert_id"])
    assert alert["alert_type"] == "manual_stop" and alert["run_id"] == run_id
    assert alert["evidence"]["actor"] == "ann" and alert["evidence"]["key_name"] == "oncall-key"
    assert alert["evidence"]["reason"] == "burning tokens in a loop"
    assert alert["detected_us"] == issued["issued_us"]


def test_throttle_route_slows_a_live_agent(stack, chdb_client, bootstrap, topic_prefix):
    api, auth, tracer, tenant = stack
    assert tracer.commands_ready(20)
    with tracer.run("throttled") as run:
        with run.step("plan", "first"):
            pass
        _visible(chdb_client, tenant, run.run_id)
        r = api.post(f"/v1/runs/{run.run_id}/throttle", json={"reason": "rate limit", "throttle_ms": 150},
                     headers=auth)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 20
        while not run._gate and time.monotonic() < deadline:
            time.sleep(0.05)
        with run.step("plan", "second"):
            pass
    assert tracer.flush(10)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id], timeout=30)[run.run_id]
    ack = next(e for e in events if e["kind"] == "COMMAND_ACK")["payload"]
    assert ack["command_id"] == r.json()["command_id"] and ack["detail"] == "throttle 150 ms per step"
    alert = _records(bootstrap, topic_name("alerts", topic_prefix), ALERT,
                     lambda a: a["alert_id"] == r.json()["alert_id"])
    assert alert["alert_type"] == "manual_throttle" and alert["evidence"]["throttle_ms"] == "150"
