"""Issue 2's whole path on real components: SDK → Tansu raw → faust redaction → events → sink →
chDB → the query API over HTTP. One pipeline per test process (pipeline_stack); tests isolate by
tenant and run id."""
from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from pipeline_stack import stack_fixtures

pytestmark = pytest.mark.integration

topic_prefix, stack = stack_fixtures()
EMAIL = "jane.doe.e2e@example.com"


@pytest.fixture(scope="module")
def pipeline(stack, chdb_path, chdb_client, tmp_path_factory):
    """The module's stack (worker + sink) and the query API over HTTP on the same chDB."""
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.settings import ApiSettings
    from agentstream.cli.embedded_broker import free_port

    tmp = tmp_path_factory.mktemp("e2e")
    keys_file = tmp / "api_keys.json"
    keys = {t: add_key(keys_file, t, scopes=("read", "write")) for t in ("e2e-acme", "e2e-globex")}
    port = free_port()
    app = create_app(ApiSettings(api_keys_file=str(keys_file), clickhouse_dsn=f"chdb://{chdb_path}",
                                 port=port), client=chdb_client)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield {"api": f"http://127.0.0.1:{port}", "keys": keys, "stack": stack}
    server.should_exit = True
    thread.join(10)


def tracer_for(tenant, bootstrap, topic_prefix, tmp_path, agent="e2e-agent", version="1.0.0"):
    from agentstream.producer import Tracer

    return Tracer(tenant, agent, version, "test", bootstrap_servers=bootstrap,
                  topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"),
                  session_timeout_ms=6000)


def get_run(api: str, key: str, run_id: str, deadline_s: float):
    """Polls the API until the finished run is there; returns (seconds waited, body)."""
    start = time.monotonic()
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
        while True:
            r = http.get(f"/v1/runs/{run_id}")
            if r.status_code == 200 and r.json()["run"]["status"] not in ("", "RUNNING", None):
                return time.monotonic() - start, r.json()
            if time.monotonic() - start > deadline_s:
                pytest.fail(f"run {run_id} not queryable after {deadline_s}s: {r.status_code} {r.text[:300]}")
            time.sleep(0.2)


def test_decorated_agent_run_is_queryable_with_steps_in_order_and_totals(pipeline, bootstrap, topic_prefix, tmp_path):
    tracer = tracer_for("e2e-acme", bootstrap, topic_prefix, tmp_path)
    seen = {}

    @tracer.tool
    def lookup(order_id: str) -> str:
        return "shipped"

    @tracer.agent(name="support")
    def support_agent(question: str) -> str:
        from agentstream.producer import get_current_run

        run = get_current_run()
        seen["run_id"] = run.run_id
        with run.step("plan", "plan_request"):
            pass
        lookup("ORDER-1")
        run.llm_call("openai", "gpt-4o-mini", input_tokens=1200, output_tokens=300, latency_ms=12.0)
        run.llm_call("anthropic", "claude-sonnet-4-5", input_tokens=800, output_tokens=100, latency_ms=9.0)
        with run.step("respond", "compose_answer"):
            pass
        return "done"

    assert support_agent("where is my order?") == "done"
    assert tracer.flush(10)
    waited, body = get_run(pipeline["api"], pipeline["keys"]["e2e-acme"], seen["run_id"], 10)
    steps = body["steps"]
    assert [s["name"] for s in steps] == ["plan_request", "lookup", "chat gpt-4o-mini",
                                          "chat claude-sonnet-4-5", "compose_answer"]
    assert [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)
    run = body["run"]
    assert run["status"] == "SUCCESS"
    assert run["input_tokens"] == 2000 and run["output_tokens"] == 400
    from agentstream.producer.pricing import PriceTable

    prices = PriceTable.load()
    expected = (prices.cost("openai", "gpt-4o-mini", 1200, 300)
                + prices.cost("anthropic", "claude-sonnet-4-5", 800, 100))
    assert expected > 0
    assert run["cost_usd"] == pytest.approx(expected)
    assert sum(s["llm"]["cost_usd"] for s in steps if s["llm"]) == pytest.approx(expected)
    assert waited < 10
    tracer.close()


def test_planted_email_is_absent_from_every_clickhouse_table(pipeline, bootstrap, topic_prefix, tmp_path):
    tracer = tracer_for("e2e-acme", bootstrap, topic_prefix, tmp_path)
    with tracer.run("planted") as run:
        # a short value is kept and redacted in place; a sentence is content under metadata_only
        with run.step("tool", "crm_lookup", customer=f"crm:{EMAIL}", note=f"contact {EMAIL} about the refund"):
            pass
        run.failure("tool", "not_found", message=f"no account for {EMAIL}")
        run_id = run.run_id
    assert tracer.flush(10)
    _, body = get_run(pipeline["api"], pipeline["keys"]["e2e-acme"], run_id, 15)
    assert EMAIL not in json.dumps(body)
    step = body["steps"][0]
    assert "customer" in step["attributes"] and EMAIL not in step["attributes"]["customer"]
    assert "note" not in step["attributes"] and step["attributes"]["agentstream.attributes_dropped"] == "1"
    assert pipeline["stack"].tables_containing(EMAIL) == []
    assert pipeline["stack"].tables_containing(run_id), "the scan must see the run it looks for"
    tracer.close()


def read_raw_records(bootstrap: str, topic: str, keys: list[str], timeout: float):
    """Records with these keys, read by assigning every partition (no group join); never
    stops at the high watermark, which Tansu reports short."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    wanted, found = {k.encode() for k in keys}, []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-reader", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    deadline = time.monotonic() + timeout
    while len(found) < len(wanted) and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and msg.error() is None and msg.key() in wanted:
            found.append(msg)
    c.close()
    return found


def test_undecodable_bytes_go_to_dlq_and_later_events_still_flow(pipeline, bootstrap, topic_prefix, tmp_path):
    from confluent_kafka import Producer

    from agentstream.schemas import DLQ_HEADERS, topic_name

    bad_key = f"garbage-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic_name("raw", topic_prefix), key=bad_key, value=b"definitely not avro")
    assert p.flush(10) == 0
    dlq = read_raw_records(bootstrap, topic_name("dlq", topic_prefix), keys=[bad_key], timeout=20)
    assert len(dlq) == 1
    headers = {k: v.decode() for k, v in dlq[0].headers()}
    assert dlq[0].value() == b"definitely not avro"
    assert "magic byte" in headers[DLQ_HEADERS["reason"]]
    assert headers[DLQ_HEADERS["source_topic"]] == topic_name("raw", topic_prefix)

    tracer = tracer_for("e2e-acme", bootstrap, topic_prefix, tmp_path)
    with tracer.run("after-garbage") as run:
        with run.step("plan", "still_flowing"):
            pass
        run_id = run.run_id
    assert tracer.flush(10)
    _, body = get_run(pipeline["api"], pipeline["keys"]["e2e-acme"], run_id, 15)
    assert [s["name"] for s in body["steps"]] == ["still_flowing"]
    tracer.close()


def test_one_tenants_key_never_reads_another_tenants_run(pipeline, bootstrap, topic_prefix, tmp_path):
    tracer = tracer_for("e2e-acme", bootstrap, topic_prefix, tmp_path)
    with tracer.run("private") as run:
        with run.step("plan", "secret_plan"):
            pass
        run_id = run.run_id
    assert tracer.flush(10)
    get_run(pipeline["api"], pipeline["keys"]["e2e-acme"], run_id, 15)
    other = {"Authorization": f"Bearer {pipeline['keys']['e2e-globex']}"}
    with httpx.Client(base_url=pipeline["api"], headers=other, timeout=5) as http:
        r = http.get(f"/v1/runs/{run_id}")
        assert r.status_code in (403, 404) and "secret_plan" not in r.text
        listed = http.get("/v1/runs", params={"limit": 500}).json()["items"]
        assert run_id not in {x["run_id"] for x in listed}
        assert all(x.get("tenant_id", "e2e-globex") == "e2e-globex" for x in listed)
    with httpx.Client(base_url=pipeline["api"], timeout=5) as http:
        assert http.get(f"/v1/runs/{run_id}").status_code == 401
        assert http.get("/v1/runs", headers={"Authorization": "Bearer nope-not-a-key-at-all-123"}).status_code == 401
    tracer.close()
