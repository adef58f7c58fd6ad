"""``agentstream export otlp`` against a local OTLP/HTTP receiver, on the session broker: runs as
traces, steps as spans (GenAI conventions), retries, tenant filter, offsets after the ack."""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.sink.otlp_exporter import BackendUnavailable, OtlpExportSettings, run_export
from agentstream.sink.otlp_out import root_span_id, span_id, trace_id

pytestmark = pytest.mark.integration


class OtlpReceiver:
    def __init__(self, script=None):
        self.script, self.requests = list(script or []), []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = rec.script.pop(0) if rec.script else 200
                rec.requests.append((self.path, status, dict(self.headers), body))
                out = b"{}" if status == 200 else b'{"message":"busy"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        out = []
        for _, status, _, body in self.requests:
            if status == 200:
                for rs in body["resourceSpans"]:
                    res = {a["key"]: list(a["value"].values())[0] for a in rs["resource"]["attributes"]}
                    for ss in rs["scopeSpans"]:
                        for s in ss["spans"]:
                            out.append((res, s, {a["key"]: list(a["value"].values())[0] for a in s["attributes"]}))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _run(tenant, run_id, t0):
    base = {"tenant_id": tenant, "agent_id": "support-bot", "agent_version": "2.1", "environment": "prod",
            "run_id": run_id, "session_id": "sess-9", "parent_run_id": None, "parent_step_id": None,
            "emitted_us": t0, "sdk_version": "test", "capture_mode": "METADATA_ONLY", "policy_version": "p1",
            "attributes": {}, "redaction": None}

    def ev(seq, kind, payload, **over):
        return {**base, "event_id": uuid.uuid4().hex, "seq": seq, "ts_us": t0 + seq * 1000, "kind": kind,
                "payload": payload, **over}

    return [
        ev(0, "RUN_START", {"entrypoint": "main", "role": None, "sampled": True}),
        ev(1, "STEP", {"step_id": "plan", "step_kind": "PLAN", "name": "plan", "status": "OK",
                       "started_us": t0, "latency_ms": 2.0, "attempt": 1}),
        ev(2, "STEP", {"step_id": "llm1", "step_kind": "LLM", "name": "answer", "status": "OK",
                       "started_us": t0 + 2000, "latency_ms": 120.5, "attempt": 1,
                       "llm": {"provider": "openai", "operation": "chat", "request_model": "gpt-4o",
                               "response_model": "gpt-4o-2024", "input_tokens": 900, "output_tokens": 120,
                               "cache_read_tokens": 300, "cache_write_tokens": 0, "cost_usd": 0.004,
                               "finish_reasons": ["stop"], "tool_calls": []}},
           parent_step_id="plan", attributes={"customer.tier": "gold"}),
        ev(3, "STEP", {"step_id": "tool1", "step_kind": "TOOL", "name": "lookup", "status": "TIMEOUT",
                       "started_us": t0 + 3000, "latency_ms": 30.0, "attempt": 1,
                       "tool": {"tool_name": "lookup", "call_id": "c1", "args_digest": "ab12"}}),
        ev(4, "FAILURE", {"failure_type": "TOOL", "failure_code": "timeout", "step_id": "tool1",
                          "message": None, "retryable": True}),
        ev(5, "RUN_END", {"status": "FAILURE", "outcome": "error", "started_us": t0, "duration_ms": 200.0,
                          "step_count": 3, "llm_calls": 1, "input_tokens": 900, "output_tokens": 120,
                          "cost_usd": 0.004}),
    ]


def _produce(bootstrap, prefix, events):
    codec, p = Codec(), Producer({"bootstrap.servers": bootstrap})
    for e in events:
        p.produce(topic_name("events", prefix), codec.encode(EVENT, e), e["run_id"].encode())
    assert p.flush(30) == 0


@pytest.fixture
def receiver():
    made = []

    def make(script=None):
        made.append(OtlpReceiver(script))
        return made[-1]
    yield make
    for r in made:
        r.close()


def _settings(bootstrap, prefix, url, **kw):
    return OtlpExportSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, endpoint=url,
                              session_timeout_ms=6000, linger_s=0.3, retry_initial_s=0.01, **kw)


def test_runs_become_traces_with_genai_spans_after_a_retry(bootstrap, topic_prefix, unique, receiver):
    tenant, t0 = "ox-" + unique, int(time.time() * 1e6)
    runs = [_run(tenant, f"run-{unique}-{i}", t0 + i * 10_000_000) for i in range(2)]
    _produce(bootstrap, topic_prefix, [e for r in runs for e in r] + _run("other-" + unique, "run-x", t0))
    r = receiver([503])
    settings = _settings(bootstrap, topic_prefix, r.url, tenant=tenant, group_id="g-" + unique,
                         headers="x-api-key=s3cret,x-team=ai")
    stats = run_export(settings, stop_after_spans=10, idle_timeout=20)
    assert stats["spans"] == 10  # per run: 3 steps, 1 failure, 1 root
    assert [s for _, s, _, _ in r.requests][0] == 503
    assert all(p == "/v1/traces" and h["x-api-key"] == "s3cret" for p, _, h, _ in r.requests)
    spans = r.spans()
    assert {res["agentstream.tenant_id"] for res, _, _ in spans} == {tenant}
    assert {(res["service.name"], res["service.version"], res["deployment.environment.name"])
            for res, _, _ in spans} == {("support-bot", "2.1", "prod")}
    for run in runs:
        rid = run[0]["run_id"]
        mine = {s["name"]: (s, a) for _, s, a in spans if s["traceId"] == trace_id(tenant, rid)}
        assert set(mine) == {"invoke_agent support-bot", "plan plan", "chat gpt-4o", "execute_tool lookup",
                             "failure TOOL"}
        root, ra = mine["invoke_agent support-bot"]
        assert root["spanId"] == root_span_id(tenant, rid) and "parentSpanId" not in root
        assert root["status"]["code"] == 2 and ra["gen_ai.conversation.id"] == "sess-9"
        assert int(root["endTimeUnixNano"]) - int(root["startTimeUnixNano"]) == 200_000_000
        llm, la = mine["chat gpt-4o"]
        assert llm["parentSpanId"] == span_id(tenant, rid, "plan") and llm["kind"] == 3
        assert (la["gen_ai.operation.name"], la["gen_ai.provider.name"], la["gen_ai.request.model"],
                la["gen_ai.response.model"], la["gen_ai.usage.input_tokens"], la["gen_ai.usage.output_tokens"],
                la["gen_ai.usage.cache_read.input_tokens"], la["customer.tier"]) == \
            ("chat", "openai", "gpt-4o", "gpt-4o-2024", "900", "120", "300", "gold")
        tool, ta = mine["execute_tool lookup"]
        assert tool["parentSpanId"] == root_span_id(tenant, rid) and tool["status"]["code"] == 2
        assert (ta["gen_ai.tool.name"], ta["gen_ai.tool.call.id"]) == ("lookup", "c1")
        fail, fa = mine["failure TOOL"]
        assert fail["parentSpanId"] == tool["spanId"] and fa["error.type"] == "timeout"
        assert fail["events"][0]["name"] == "exception"

    # Offsets were committed after the acks: the same group resumes after them, so a new run is
    # all it sends (none of the first runs' spans again).
    seen = len(spans)
    late = _run(tenant, f"run-{unique}-late", t0 + 60_000_000)
    _produce(bootstrap, topic_prefix, late)
    again = run_export(settings, stop_after_spans=5, idle_timeout=20)
    assert again["spans"] == 5
    assert {s["traceId"] for _, s, _ in r.spans()[seen:]} == {trace_id(tenant, late[0]["run_id"])}


def test_backend_down_commits_nothing_and_a_restart_sends_it_all(bootstrap, topic_prefix, unique, receiver):
    tenant, t0 = "od-" + unique, int(time.time() * 1e6)
    _produce(bootstrap, topic_prefix, _run(tenant, f"run-{unique}", t0))
    down = receiver([503] * 10)
    settings = _settings(bootstrap, topic_prefix, down.url, tenant=tenant, group_id="gd-" + unique, max_retries=2)
    with pytest.raises(BackendUnavailable):
        run_export(settings, idle_timeout=20)
    up = receiver()
    stats = run_export(settings.model_copy(update={"endpoint": up.url + "/v1/traces"}), stop_after_spans=5,
                       idle_timeout=20)
    assert stats["spans"] == 5 and len(up.spans()) == 5


def test_bad_headers_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="name=value"):
        OtlpExportSettings(headers="novalue").header_map()


def test_cli_refuses_bad_headers_with_a_message():
    import typer
    from typer.testing import CliRunner

    from agentstream.cli.export_commands import register

    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["export", "otlp", "--endpoint", "http://127.0.0.1:9", "--headers",
                                 "x-team=a,sk-SECRET-VALUE"])
    assert r.exit_code == 2 and "header #2" in r.output and "expected name=value" in r.output
    assert "SECRET" not in r.output  # a malformed header may be the key itself: never echoed


def test_two_exporters_in_one_group_share_the_partitions_and_a_rebalance_loses_nothing(
        bootstrap, topic_prefix, unique, receiver):
    """The second member's join revokes the first one's partitions mid-stream: its chain commits
    what the backend accepted and is rebuilt for its new assignment, the second member's chain
    sends from the partitions it got; every run arrives, and the group's committed offsets end
    past every record of it."""
    from confluent_kafka import Consumer, TopicPartition

    tenant, t0 = "og-" + unique, int(time.time() * 1e6)
    r = receiver()
    settings = _settings(bootstrap, topic_prefix, r.url, tenant=tenant, group_id="gg-" + unique, batch_max_spans=5)
    topic = topic_name("events", topic_prefix)
    last: dict[int, int] = {}  # partition -> the last offset of ours

    def produce(events):
        p = Producer({"bootstrap.servers": bootstrap})
        for e in events:
            p.produce(topic, Codec().encode(EVENT, e), e["run_id"].encode(),
                      on_delivery=lambda err, m: last.__setitem__(m.partition(), max(last.get(m.partition(), -1),
                                                                                    m.offset())))
        assert p.flush(30) == 0

    runs = [_run(tenant, f"run-{unique}-{i}", t0 + i * 1000) for i in range(4)]
    produce([e for run in runs for e in run])
    results: dict[str, dict] = {}

    def member(name: str) -> None:
        results[name] = run_export(settings.model_copy(update={"headers": SecretStr(f"x-member={name}")}),
                                   idle_timeout=6)

    def posted_by(name: str) -> bool:
        return any(h.get("x-member") == name for _, _, h, _ in r.requests)

    threads = {n: threading.Thread(target=member, args=(n,), daemon=True) for n in ("a", "b")}
    threads["a"].start()
    for _ in range(600):  # until the first member is sending
        if posted_by("a"):
            break
        time.sleep(0.05)
    threads["b"].start()
    # one run at a time until the second member (after the rebalance) sends some of them
    for i in range(4, 300):
        runs.append(_run(tenant, f"run-{unique}-{i}", t0 + i * 1000))
        produce(runs[-1])
        if posted_by("b"):
            break
        time.sleep(0.2)
    for t in threads.values():
        t.join(120)
    assert set(results) == {"a", "b"} and results["b"]["spans"] > 0
    expected = {trace_id(tenant, run[0]["run_id"]) for run in runs}
    assert {s["traceId"] for _, s, _ in r.spans()} == expected  # every run, at least once
    assert results["a"]["spans"] + results["b"]["spans"] >= 5 * len(expected)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": settings.group_id})
    try:
        committed = {tp.partition: tp.offset for tp in
                     probe.committed([TopicPartition(topic, p) for p in last], timeout=30)}
    finally:
        probe.close()
    assert all(committed[p] > off for p, off in last.items()), (committed, last)
