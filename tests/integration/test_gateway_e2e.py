"""Issue 8's whole path: the real OpenTelemetry SDK (OTLP/HTTP exporter) and a curl-style JSON
batch -> gateway -> raw -> redaction -> events -> sink -> chDB -> the query API."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(bootstrap, topic_prefix, chdb_path, chdb_client, tmp_path_factory):
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.gateway import GatewaySettings
    from agentstream.api.gateway.server import ThreadedGateway, free_port
    from agentstream.api.settings import ApiSettings
    from agentstream.sink import Sink, SinkSettings
    from agentstream.stream_processors.worker_process import start_worker

    tmp = tmp_path_factory.mktemp("gw-e2e")
    worker = start_worker(bootstrap, topic_prefix, app_id=f"gw-e2e-{uuid.uuid4().hex[:6]}",
                          data_dir=tmp / "processors", log_path=tmp / "processors.log")
    sink = Sink(SinkSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                             group_id=f"gw-e2e-sink-{uuid.uuid4().hex[:6]}",
                             clickhouse_dsn=f"chdb://{chdb_path}", batch_max_seconds=0.2,
                             session_timeout_ms=6000), client=chdb_client).start()
    keys_file = tmp / "api_keys.json"
    tenant = "gw-e2e-" + uuid.uuid4().hex[:6]
    key = add_key(keys_file, tenant, scopes=("read", "write"))
    gw = ThreadedGateway(GatewaySettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                                         api_keys_file=str(keys_file), port=free_port())).start()
    port = free_port()
    app = create_app(ApiSettings(api_keys_file=str(keys_file),
                                 clickhouse_dsn=f"chdb://{chdb_path}", port=port),
                     client=chdb_client)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    worker.wait_ready()
    gw.wait_ready()
    while not server.started:
        time.sleep(0.05)
    yield {"api": f"http://127.0.0.1:{port}", "gw": gw.url, "key": key, "tenant": tenant}
    server.should_exit = True
    thread.join(10)
    gw.stop()
    sink.stop()
    worker.stop()


def get_run(api: str, key: str, run_id: str, deadline_s: float = 90) -> dict:
    start = time.monotonic()
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
        while True:
            r = c.get(f"/v1/runs/{run_id}")
            if r.status_code == 200 and r.json()["run"]["status"] not in ("", "RUNNING", None):
                return r.json()
            if time.monotonic() - start > deadline_s:
                pytest.fail(f"run {run_id} not queryable: {r.status_code} {r.text[:300]}")
            time.sleep(0.25)


def test_otel_sdk_run_is_queryable_through_the_api(stack):
    provider = TracerProvider(resource=Resource.create({
        "service.name": "otel-support", "service.version": "4.2.0",
        "deployment.environment.name": "e2e"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=stack["gw"] + "/v1/traces",
        headers={"authorization": f"Bearer {stack['key']}"}), schedule_delay_millis=50))
    tracer = provider.get_tracer("e2e")
    with tracer.start_as_current_span("invoke_agent support", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}) as root:
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300}):
            pass
        with tracer.start_as_current_span("execute_tool refund", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund"}) as t:
            t.set_status(Status(StatusCode.ERROR, "card declined"))
        with tracer.start_as_current_span("chat claude-sonnet-4", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-20250514",
                "gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 100}):
            pass
        run_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(30_000)
    provider.shutdown()

    body = get_run(stack["api"], stack["key"], run_id)
    run = body["run"]
    assert run["entrypoint"] == "support"
    assert (run["agent_id"], run["agent_version"], run["environment"]) == \
        ("otel-support", "4.2.0", "e2e")
    assert run["status"] == "SUCCESS"
    assert run["input_tokens"] == 2000 and run["output_tokens"] == 400
    expected = (1200 * 0.15 + 300 * 0.60 + 800 * 3.0 + 100 * 15.0) / 1e6
    assert run["cost_usd"] == pytest.approx(expected)
    steps = body["steps"]
    assert [s["name"] for s in steps] == ["chat gpt-4o-mini", "refund", "chat claude-sonnet-4"]
    assert [s["step_kind"] for s in steps] == ["LLM", "TOOL", "LLM"]
    assert len(body["failures"]) == 1


def test_json_batch_is_queryable_through_the_api(stack):
    run_id = "json-" + uuid.uuid4().hex[:10]
    t0 = int(time.time() * 1e6)

    def ev(seq, kind, payload):
        return {"agent_id": "ts-agent", "agent_version": "0.3.0", "environment": "e2e",
                "run_id": run_id, "seq": seq, "ts_us": t0 + seq * 1000, "kind": kind,
                "event_id": str(uuid.uuid4()), "payload": payload}
    events = [
        ev(0, "RUN_START", {"entrypoint": "triage"}),
        ev(1, "STEP", {"step_id": "s1", "step_kind": "LLM", "name": "chat", "status": "OK",
                       "started_us": t0, "latency_ms": 50.0,
                       "llm": {"provider": "openai", "request_model": "gpt-4o",
                               "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.00045}}),
        ev(2, "RUN_END", {"status": "SUCCESS", "started_us": t0, "duration_ms": 60.0}),
    ]
    r = httpx.post(stack["gw"] + "/v1/ingest", json={"events": events}, timeout=60,
                   headers={"X-API-Key": stack["key"]})
    assert r.status_code == 200 and r.json()["accepted"] == 3
    body = get_run(stack["api"], stack["key"], run_id)
    assert body["run"]["entrypoint"] == "triage" and body["run"]["status"] == "SUCCESS"
    assert body["run"]["input_tokens"] == 100 and body["run"]["cost_usd"] == pytest.approx(0.00045)
    assert [s["name"] for s in body["steps"]] == ["chat"]
