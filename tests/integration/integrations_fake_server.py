"""A local model server for the framework integration tests (no network): OpenAI chat
completions and Gemini generateContent, scripted from the request itself.

Chat: a request gets a call of the tool the ``route`` picks (default: the first offered tool
the conversation has not called yet); otherwise a text answer. Model ``fail-400`` answers HTTP 400. Usage is deterministic: 10 input tokens per message,
7 output tokens, so tests can assert tokens and cost exactly.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

IN_PER_MESSAGE, OUT_TOKENS = 10, 7


def _first_uncalled(tools: list[str], messages: list[dict]) -> str | None:
    called = {c["function"]["name"] for m in messages if m.get("role") == "assistant"
              for c in m.get("tool_calls") or ()}
    return next((t for t in tools if t not in called), None)


class FakeModels:
    def __init__(self, route: Callable[[list[str], list[dict]], str | None] | None = None):
        self.route = route or _first_uncalled
        self.requests: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeModels":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def chat(self, body: dict) -> tuple[int, dict]:
        model = body.get("model", "")
        if model == "fail-400":
            return 400, {"error": {"message": "bad request", "type": "invalid_request_error"}}
        messages = body.get("messages") or []
        tools = [t["function"]["name"] for t in body.get("tools") or ()]
        usage = {"prompt_tokens": IN_PER_MESSAGE * len(messages), "completion_tokens": OUT_TOKENS,
                 "total_tokens": IN_PER_MESSAGE * len(messages) + OUT_TOKENS}
        pick = self.route(tools, messages)
        if pick:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call_{len(self.requests)}", "type": "function",
                "function": {"name": pick, "arguments": json.dumps({"query": "weather in Oslo"})}}]}
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": "It is sunny."}, "stop"
        return 200, {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                     "created": 1700000000, "model": model,
                     "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                     "usage": usage}

    def gemini(self, path: str, body: dict) -> tuple[int, dict]:
        model = path.split("/models/")[-1].split(":")[0]
        if model == "fail-400":
            return 400, {"error": {"code": 400, "message": "bad request", "status":
                                   "INVALID_ARGUMENT"}}
        n = sum(len(c.get("parts") or ()) for c in body.get("contents") or ())  # 10 per part
        return 200, {"candidates": [{"content": {"role": "model", "parts": [{"text": "Sunny."}]},
                                     "finishReason": "STOP", "index": 0}],
                     "usageMetadata": {"promptTokenCount": IN_PER_MESSAGE * n,
                                       "candidatesTokenCount": OUT_TOKENS,
                                       "totalTokenCount": IN_PER_MESSAGE * n + OUT_TOKENS},
                     "modelVersion": model}

    def _handler(self) -> type:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))
                                  or b"{}")
                fake.requests.append({"path": self.path, "body": body})
                stream = "streamGenerateContent" in self.path
                if stream or "generateContent" in self.path:
                    status, out = fake.gemini(self.path, body)
                else:
                    status, out = fake.chat(body)
                data = json.dumps(out).encode()
                ctype = "application/json"
                if stream and status == 200:  # SSE: a text chunk, then usage on the last
                    first = {"candidates": [{"content": {"role": "model", "parts": [
                        {"text": "Sun"}]}, "index": 0}]}
                    data = b"data: " + json.dumps(first).encode() + b"\r\n\r\ndata: " + data \
                        + b"\r\n\r\n"
                    ctype = "text/event-stream"
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def tenant_runs(bootstrap: str, topic: str, tenant: str, want_runs: int,
                timeout: float = 45.0, forbidden: bytes | None = None) -> dict[str, list[dict]]:
    """Every event of ``tenant`` on ``topic``, per run, once ``want_runs`` runs have ended
    (never trusting the high watermark). ``forbidden`` must be in no record's bytes."""
    import time
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from agentstream.schemas import EVENT, Codec
    from agentstream.schemas.codec import DecodeError

    codec = Codec()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    runs: dict[str, list[dict]] = {}
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for evs in runs.values() if evs[-1]["kind"] == "RUN_END") >= want_runs:
                break
            msg = c.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            assert forbidden is None or forbidden not in msg.value()
            try:
                ev = codec.decode_as(EVENT, msg.value())
            except DecodeError:
                continue  # the session's shared topics carry other tests' deliberately bad records
            if ev["tenant_id"] == tenant:
                runs.setdefault(ev["run_id"], []).append(ev)
    finally:
        c.close()
    return runs


def steps(events: list[dict], kind: str | None = None) -> list[dict]:
    return [e["payload"] for e in events if e["kind"] == "STEP"
            and (kind is None or e["payload"]["step_kind"] == kind)]


def failures(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["payload"]["failure_type"], e["payload"]["failure_code"]) for e in events
            if e["kind"] == "FAILURE"]


class Tracers:
    """Tracers writing to the test broker, one tenant each (``<tenant>-<n>``), closed at exit."""

    def __init__(self, bootstrap: str, topic_prefix: str, tmp_path: Any, tenant: str,
                 agent_id: str) -> None:
        self.conf = dict(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, digest_key="k",
                         commands_enabled=False)
        self.tmp_path, self.tenant, self.agent_id = tmp_path, tenant, agent_id
        self.made: list = []

    def __call__(self, **kw: Any) -> Any:
        from agentstream.producer import Tracer

        n = len(self.made)
        t = Tracer(f"{self.tenant}-{n}", self.agent_id, "1.0", "test", **self.conf,
                   spool_dir=str(self.tmp_path / f"spool{n}"), **kw)
        self.made.append(t)
        return t

    def __enter__(self) -> "Tracers":
        return self

    def __exit__(self, *exc: Any) -> None:
        for t in self.made:
            t.close(5)
