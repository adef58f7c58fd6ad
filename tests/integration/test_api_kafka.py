"""The query API's write paths against the real embedded broker: policies and feedback."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "api"))
from api_fleet import RunBuilder, apply_migrations, insert_runs

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings
from agentstream.schemas import EVENT, POLICY, Codec, topic_name

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_api(tmp_path, chdb_client, bootstrap, topic_prefix, unique):
    apply_migrations(chdb_client)
    keys = tmp_path / "keys.json"
    tenant = "kt-" + unique
    key = add_key(keys, tenant, scopes=["read", "write"])
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                           kafka_client_conf={"session.timeout.ms": "6000"})
    return settings, tenant, {"Authorization": f"Bearer {key}"}


def _consume(bootstrap, topic, want, timeout=30.0):
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-" + str(time.time()),
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None and want(msg):
                return msg
    finally:
        c.close()
    raise AssertionError(f"no matching record on {topic} within {timeout}s")


def test_put_policy_reaches_topic_and_reads_back(kafka_api, chdb_client, bootstrap, topic_prefix):
    settings, tenant, auth = kafka_api
    with TestClient(create_app(settings, client=chdb_client)) as api:
        r = api.put("/v1/policies", json={"retention_days": 14, "capture_mode": "REDACTED",
                                          "redaction_actions": {"email": "hash"},
                                          "budgets": {"run_max_cost_usd": 2.5, "hard_limit": True}},
                    headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "written" and r.json()["tenant_id"] == tenant
    msg = _consume(bootstrap, topic_name("policies", topic_prefix), lambda m: m.key() == tenant.encode())
    record = Codec().decode_as(POLICY, msg.value())
    assert record["retention_days"] == 14 and record["budgets"]["run_max_cost_usd"] == 2.5
    assert record["redaction_actions"] == {"email": "hash"}

    # A fresh app (a restarted API) reads the policy back from the compacted topic.
    with TestClient(create_app(settings, client=chdb_client)) as api:
        deadline = time.monotonic() + 30
        while True:
            got = api.get("/v1/policies", headers=auth).json()
            if got["source"] == "topic" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert got["source"] == "topic" and got["retention_days"] == 14
        assert got["capture_mode"] == "REDACTED"


def test_feedback_is_produced_to_raw(kafka_api, chdb_client, bootstrap, topic_prefix):
    settings, tenant, auth = kafka_api
    run = RunBuilder(tenant, agent="shop", version="v9")
    run.end()
    insert_runs(chdb_client, [run])
    with TestClient(create_app(settings, client=chdb_client)) as api:
        r = api.post("/v1/feedback", json={"interaction_id": run.run_id, "feedback_type": "user_rating",
                                           "value": "negative", "source": "conversation_footer"},
                     headers=auth)
        assert r.status_code == 202, r.text
        event_id = r.json()["event_id"]
    codec = Codec()
    msg = _consume(bootstrap, topic_name("raw", topic_prefix),
                   lambda m: m.key() == run.run_id.encode() and codec.decode_as(EVENT, m.value())["event_id"] == event_id)
    ev = codec.decode_as(EVENT, msg.value())
    assert ev["kind"] == "FEEDBACK" and ev["tenant_id"] == tenant and ev["agent_version"] == "v9"
    assert ev["seq"] == 2  # after RUN_START (0) and RUN_END (1)
    payload = ev["payload"][1] if isinstance(ev["payload"], tuple) else ev["payload"]
    assert payload["value"] == "negative" and payload["interaction_id"] == run.run_id
