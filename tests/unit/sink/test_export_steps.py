"""The OTLP exporter's chain of steps (sink/export_steps.py) assembled as ``run_export``
assembles it, with its I/O recorded instead of reaching Kafka and a backend: a batch's offsets
(its skipped records' too) are committed only after the backend settled it, in order; retries,
refusals, bugs and a mostly undecodable topic each end as documented. The same chain against
the real broker and a local OTLP receiver: tests/integration/test_export_otlp.py."""
from __future__ import annotations

import time
from typing import Any

import pytest
from kafka_records import EVENTS as TOPIC
from kafka_records import Rec

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioExceeded, DlqRatioGuard
from agentstream.sink.export_steps import BackendUnavailable, ExportIO, build_export_chain

URL = "http://otel.example:4318/v1/traces"
codec = Codec()


class Msg(Rec):
    """A consumed record of the events topic holding ``value``."""

    def __init__(self, offset: int, value: bytes, partition: int = 0) -> None:
        super().__init__(offset, partition, topic=TOPIC)
        self._v = value

    def value(self) -> bytes:
        return self._v


def event(n: int, tenant: str = "acme") -> dict[str, Any]:
    t0 = 1_700_000_000_000_000
    return {"tenant_id": tenant, "agent_id": "bot", "agent_version": "1", "environment": "prod",
            "run_id": f"run-{n}", "session_id": None, "parent_run_id": None, "parent_step_id": None,
            "emitted_us": t0, "sdk_version": "t", "capture_mode": "METADATA_ONLY", "policy_version": "p",
            "attributes": {}, "redaction": None, "event_id": f"e{n}", "seq": 1, "ts_us": t0, "kind": "STEP",
            "payload": {"step_id": f"s{n}", "step_kind": "TOOL", "name": "lookup", "status": "OK",
                        "started_us": t0, "latency_ms": 1.0, "attempt": 1,
                        "tool": {"tool_name": "lookup", "call_id": None, "args_digest": None}}}


def msgs(*items: dict[str, Any] | bytes, start: int = 0, partition: int = 0) -> list[Msg]:
    return [Msg(start + i, x if isinstance(x, bytes) else codec.encode(EVENT, x), partition)
            for i, x in enumerate(items)]


class Response:
    def __init__(self, status: int, body: bytes = b"{}", retry_after: str | None = None) -> None:
        self.status_code, self.content, self.text = status, body, body.decode(errors="replace")
        self.headers = {"retry-after": retry_after} if retry_after else {}

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class Client:
    def __init__(self, events: list[tuple], script: list[Any] | None = None) -> None:
        self.events, self.script = events, list(script or [])

    def post(self, url: str, json: dict[str, Any], headers: dict[str, str], timeout: float) -> Response:
        outcome = self.script.pop(0) if self.script else 200
        spans = sum(len(ss["spans"]) for rs in json["resourceSpans"] for ss in rs["scopeSpans"])
        self.events.append(("post", spans, outcome if not isinstance(outcome, Response) else outcome.status_code))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome if isinstance(outcome, Response) else Response(outcome)


class Harness:
    def __init__(self, script: list[Any] | None = None, tenant: str | None = None, max_spans: int = 3,
                 linger_s: float = 60.0, guard: DlqRatioGuard | None = None, max_retries: int = 3) -> None:
        self.events: list[tuple] = []
        self.now = [0.0]
        self.stats = {"spans": 0, "batches": 0, "rejected_batches": 0, "undecodable": 0, "skipped": 0}
        self.io = ExportIO(codec, tenant, Client(self.events, script), URL, {"x-key": "k"}, self.stats,
                           guard or DlqRatioGuard(1.0, 1000, 1), self.commit, lambda: False,
                           batch_max_spans=max_spans, linger_s=linger_s, max_retries=max_retries,
                           retry_initial_s=0.001, retry_max_s=0.004, clock=lambda: self.now[0])
        self.chain = build_export_chain(self.io)

    def commit(self, last: dict[tuple[str, int], int]) -> None:
        self.events.append(("commit", sorted((p, o) for (_t, p), o in last.items())))

    def feed(self, batch: list[Msg]) -> None:
        self.chain.head.submit(batch)
        self.chain.head.poll()

    def finish(self) -> None:
        self.chain.head.close()
        self.chain.head.join()


def test_full_batches_go_out_as_they_fill_each_committed_after_its_post():
    h = Harness(max_spans=3)
    h.feed(msgs(*[event(i) for i in range(7)]))
    assert h.events == [("post", 3, 200), ("commit", [(0, 2)])]
    h.chain.head.poll()  # each poll cuts the batch that filled
    assert h.events[2:] == [("post", 3, 200), ("commit", [(0, 5)])]
    h.finish()  # the rest goes at the end
    assert h.events[4:] == [("post", 1, 200), ("commit", [(0, 6)])]
    assert (h.stats["spans"], h.stats["batches"]) == (7, 3)


def test_a_partial_batch_waits_for_its_linger_and_skipped_records_are_committed_with_it():
    h = Harness(tenant="acme", max_spans=100, linger_s=1.0)
    h.feed(msgs(event(0), event(1, tenant="other"), b"\x00junk", partition=0)
           + msgs(event(3), start=10, partition=1))
    assert h.events == []
    h.now[0] = 0.5
    h.chain.head.poll()
    assert h.events == []
    h.now[0] = 1.0
    h.chain.head.poll()
    assert h.events == [("post", 2, 200), ("commit", [(0, 2), (1, 10)])]
    assert (h.stats["skipped"], h.stats["undecodable"]) == (1, 1)


def test_a_batch_of_skipped_records_only_is_committed_without_a_post():
    h = Harness(tenant="acme", linger_s=0.0)
    h.feed(msgs(event(0, tenant="other"), event(1, tenant="other")))
    assert h.events == [("commit", [(0, 1)])]


def test_retryable_answers_are_retried_and_the_batch_committed_once_accepted():
    h = Harness(script=[503, Response(429, retry_after="0"), ConnectionError("reset"), 200], max_spans=2)
    h.feed(msgs(event(0), event(1), event(2), event(3)))
    seen_failing = False
    for _ in range(2000):
        h.chain.head.poll()
        seen_failing |= h.chain.failing
        if h.chain.failing:
            assert not any(e[0] == "commit" for e in h.events)
        if sum(e[0] == "commit" for e in h.events) == 2:
            break
        time.sleep(0.001)
    assert seen_failing
    assert [e[2] for e in h.events if e[0] == "post"][:2] == [503, 429]
    assert [e for e in h.events if e[0] == "commit"] == [("commit", [(0, 1)]), ("commit", [(0, 3)])]
    assert h.stats["spans"] == 4


def test_a_refusal_for_good_is_logged_skipped_and_committed_without_a_retry():
    h = Harness(script=[500], max_spans=2)
    h.feed(msgs(event(0), event(1)))
    assert h.events == [("post", 2, 500), ("commit", [(0, 1)])]
    assert (h.stats["rejected_batches"], h.stats["spans"]) == (1, 0)


def test_a_2xx_with_a_partial_success_or_a_body_that_is_not_json_is_accepted():
    h = Harness(script=[Response(200, b'{"partialSuccess": {"rejectedSpans": 1, "errorMessage": "x"}}'),
                        Response(202, b"accepted"), Response(200, b"[]")], max_spans=1)
    h.feed(msgs(event(0), event(1), event(2)))
    h.finish()
    assert [e[0] for e in h.events] == ["post", "commit"] * 3 and h.stats["batches"] == 3


def test_out_of_retries_stops_with_the_batch_uncommitted():
    h = Harness(script=[503] * 10, max_spans=1, max_retries=2)
    with pytest.raises(BackendUnavailable, match="did not accept a batch after 3 tries"):
        h.feed(msgs(event(0), event(1)))
        h.finish()
    assert h.events == [("post", 1, 503)] * 3


def test_a_bug_crashes_naming_the_batch_offsets_and_is_not_retried():
    h = Harness(script=[200, KeyError("resourceSpans")], max_spans=1)
    with pytest.raises(ConsumerCrash, match=r"KeyError at agentstream.events\[0\] up to offset 1"):
        h.feed(msgs(event(0), event(1), event(2)))
        h.finish()
    assert [e for e in h.events if e[0] == "commit"] == [("commit", [(0, 0)])]
    assert len([e for e in h.events if e[0] == "post"]) == 2


def test_a_mostly_undecodable_topic_stops_the_exporter_before_committing_past_it():
    h = Harness(guard=DlqRatioGuard(0.5, 10, 4), linger_s=0.0)
    with pytest.raises(DlqRatioExceeded, match=r"agentstream.events\[0\] offset 3"):
        h.feed(msgs(b"junk", event(1), b"junk", b"junk"))
    assert h.events == []
