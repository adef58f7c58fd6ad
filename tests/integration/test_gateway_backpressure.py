"""Kafka down or slow: the gateway refuses with 503 + Retry-After rather than accepting what
it cannot deliver, and every batch it answered 2xx is on raw. Own broker: these tests stop it."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from agentstream.api.auth import add_key
from agentstream.api.gateway import GatewaySettings
from agentstream.api.gateway.server import ThreadedGateway, free_port
from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.schemas import topic_name
from agentstream.schemas.topics import create_topics

from raw_topic import read_raw

pytestmark = pytest.mark.integration
PREFIX = "bp."


def raw_event_ids(bootstrap: str, tenant: str, expected: set[str]) -> list[str]:
    return [rec["event_id"] for _, _, rec in read_raw(bootstrap, PREFIX, tenant, 0, event_ids=expected)]


def batch(n: int) -> list[dict]:
    run = "run-" + uuid.uuid4().hex[:8]
    return [{"event_id": str(uuid.uuid4()), "agent_id": "a", "agent_version": "1",
             "environment": "test", "run_id": run, "seq": i, "ts_us": time.time_ns() // 1000 + i,
             "kind": "FEEDBACK", "payload": {"interaction_id": f"i{i}", "feedback_type":
                                             "user_rating", "value": "positive"}}
            for i in range(n)]


def ensure_topics(bootstrap: str) -> None:
    # create_topics raises when it has nothing to create, so ask first.
    from confluent_kafka.admin import AdminClient

    existing = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    if topic_name("raw", PREFIX) not in existing:
        create_topics(bootstrap, PREFIX, partitions=2)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    b = EmbeddedBroker(log_path=str(tmp_path_factory.mktemp("bpbroker") / "tansu.log")).start()
    create_topics(b.bootstrap_servers, PREFIX, partitions=2)
    yield b
    b.stop()


@pytest.fixture
def broker_up(own_broker):
    if not own_broker.alive():
        own_broker.start()
    ensure_topics(own_broker.bootstrap_servers)  # Tansu forgets its topics when stopped
    return own_broker


@pytest.fixture
def tenant_key(tmp_path):
    path = tmp_path / "keys.json"
    tenant = "bp-" + uuid.uuid4().hex[:8]
    return str(path), tenant, add_key(path, tenant, scopes=["write"])


def post(url: str, key: str, events: list[dict]) -> httpx.Response:
    return httpx.post(url + "/v1/ingest", json={"events": events}, timeout=120,
                      headers={"authorization": f"Bearer {key}"})


def wait_for(pred, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_stopped_broker_gets_503_and_nothing_acknowledged_is_lost(broker_up, tenant_key):
    keys_path, tenant, key = tenant_key
    s = GatewaySettings(bootstrap_servers=broker_up.bootstrap_servers, topic_prefix=PREFIX,
                        api_keys_file=keys_path, port=free_port(), delivery_timeout_ms=3000,
                        health_probe_interval_s=0.5)
    with ThreadedGateway(s) as gw:
        gw.wait_ready()
        first = batch(5)
        assert post(gw.url, key, first).status_code == 200
        ids = raw_event_ids(broker_up.bootstrap_servers, tenant, {e["event_id"] for e in first})
        assert set(ids) == {e["event_id"] for e in first}

        broker_up.stop()
        second = batch(5)
        r = post(gw.url, key, second)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "kafka_unavailable"
        wait_for(lambda: httpx.get(gw.url + "/readyz").status_code == 503, what="not ready")
        # once the gateway knows Kafka is down it refuses at once, without queueing
        r = post(gw.url, key, second)
        assert r.status_code == 503 and "unreachable" in r.json()["error"]["message"]

        broker_up.start()
        ensure_topics(broker_up.bootstrap_servers)
        statuses = []

        def resend() -> bool:
            statuses.append(post(gw.url, key, second).status_code)
            return statuses[-1] == 200
        wait_for(resend, 90, "the gateway to deliver again after the broker came back")
        assert set(statuses) <= {200, 503}
        wait_for(lambda: httpx.get(gw.url + "/readyz").status_code == 200, what="ready")
        ids = raw_event_ids(broker_up.bootstrap_servers, tenant, {e["event_id"] for e in second})
        # the restarted broker is empty: exactly the batch that got its 2xx, once
        assert sorted(ids) == sorted(e["event_id"] for e in second)
        m = httpx.get(gw.url + "/metrics").text
        assert 'agentstream_gateway_requests_throttled_total{cause="kafka_unavailable",endpoint="/v1/ingest"}' in m


def test_full_queue_answers_503_with_retry_after(broker_up, tenant_key):
    keys_path, tenant, key = tenant_key
    s = GatewaySettings(bootstrap_servers=broker_up.bootstrap_servers, topic_prefix=PREFIX,
                        api_keys_file=keys_path, port=free_port(), max_inflight_events=10,
                        delivery_timeout_ms=4000, health_probe_interval_s=600, retry_after_s=2)
    with ThreadedGateway(s) as gw:
        gw.wait_ready()
        broker_up.stop()  # slow Kafka: records wait for an acknowledgement that will not come
        stuck: dict = {}
        t = threading.Thread(target=lambda: stuck.update(r=post(gw.url, key, batch(10))))
        t.start()
        wait_for(lambda: gw.app.state.gateway.delivery.inflight == 10, what="queue full")
        assert httpx.get(gw.url + "/readyz").json()["checks"]["queue_has_room"] is False
        r = post(gw.url, key, batch(1))
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
        assert r.headers["retry-after"] == "2"
        t.join(60)
        r = stuck["r"]
        assert r.status_code == 503 and r.json()["error"]["code"] == "kafka_unavailable"
        assert len(r.json()["error"]["details"]["failed"]) == 10
        assert r.json()["error"]["details"]["delivered"] == []
        assert gw.app.state.gateway.delivery.inflight == 0
        m = httpx.get(gw.url + "/metrics").text
        assert 'agentstream_gateway_requests_throttled_total{cause="overloaded",endpoint="/v1/ingest"} 1.0' in m
        assert 'agentstream_gateway_events_accepted_total{endpoint="/v1/ingest"} 0.0' in m or \
            'agentstream_gateway_events_accepted_total' not in m
