"""The alert forwarder's chain of steps (stream_processors/forward_steps.py) assembled as
``forward`` assembles it, with its I/O recorded instead of reaching Kafka and the receivers: the
order of effects (ledger check, post, ledger write, then the commit past the alert) is the
at-most-once-per-destination argument, checked here without a broker. The same chain against
the real broker and local HTTP receivers: tests/integration/test_processors_alerts_cli.py and
test_alert_lifecycle_routing.py."""
from __future__ import annotations

import time
from typing import Any

import pytest

from agentstream.schemas import ALERT, Codec
from agentstream.schemas.alerting import AlertingBook, Destination, encode, make_key
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioExceeded, DlqRatioGuard
from agentstream.schemas.steps import Abandoned
from agentstream.stream_processors.alert_forwarder import DeliveryLedger
from agentstream.stream_processors.forward_steps import (ForwardIO, ForwardStats, WebhookUnavailable,
                                                         build_forward_chain)

TOPIC = "agentstream.alerts"
TENANT = "acme"
codec = Codec()
A_URL, B_URL = "https://a.example/hook", "https://b.example/hook"


class Msg:
    """A consumed record of the alerts topic (the accessors the chain uses)."""

    def __init__(self, offset: int, value: bytes, partition: int = 0) -> None:
        self._o, self._v, self._p = offset, value, partition

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def error(self) -> None:
        return None


def alert(n: int, tenant: str = TENANT, agent: str = "planner", severity: str = "CRITICAL",
          alert_id: str | None = None) -> dict[str, Any]:
    return {"alert_id": alert_id or f"{tenant}-a{n}", "alert_type": "loop", "severity": severity,
            "tenant_id": tenant, "agent_id": agent, "agent_version": "1.2", "run_id": f"run-{n}",
            "title": f"step repeated {n} times", "evidence": {"repeats": str(n)},
            "detected_us": int(time.time() * 1e6), "source_offsets": []}


def msgs(*alerts: dict[str, Any] | bytes, start: int = 0) -> list[Msg]:
    return [Msg(start + i, a if isinstance(a, bytes) else codec.encode(ALERT, a)) for i, a in enumerate(alerts)]


class Response:
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        self.status_code, self.text, self.content = status, "{}", b"{}"
        self.headers = {"retry-after": retry_after} if retry_after else {}


class Client:
    """The receivers: ``script[url]`` lists what each post to it gets (a status or an exception),
    then 200. Every post is recorded in the shared ``events``."""

    def __init__(self, events: list[tuple], script: dict[str, list[Any]] | None = None) -> None:
        self.events, self.script = events, {k: list(v) for k, v in (script or {}).items()}

    def post(self, url: str, json: dict[str, Any], timeout: float, headers: dict[str, str]) -> Response:
        outcome = self.script.get(url, []).pop(0) if self.script.get(url) else 200
        self.events.append(("post", url, headers["Idempotency-Key"].split(":")[1], outcome))
        if isinstance(outcome, BaseException):
            raise outcome
        return Response(*outcome) if isinstance(outcome, tuple) else Response(outcome)


class RecordingLedger(DeliveryLedger):
    def __init__(self, events: list[tuple], path: Any = None) -> None:
        super().__init__(path)
        self.events = events

    def add(self, dest_id: str, alert_id: str) -> None:
        super().add(dest_id, alert_id)
        self.events.append(("ledger", dest_id, alert_id))


def book_with(*rules: dict[str, Any], silence_agent: str | None = None) -> AlertingBook:
    book = AlertingBook()
    book.apply(make_key(TENANT, "routing"), encode({"v": 1, "rules": list(rules)}))
    if silence_agent:
        now = int(time.time() * 1e6)
        book.apply(make_key(TENANT, "silence", "s1"), encode({
            "v": 1, "silence_id": "s1", "matcher": {"agent_id": silence_agent}, "starts_us": now - 10**6,
            "expires_us": now + 3600 * 10**6, "created_by": "t", "comment": ""}))
    return book


def rule(rid: str, url: str, **match: Any) -> dict[str, Any]:
    return {"rule_id": rid, "destination": {"kind": "webhook", "url": url}, **match}


class Harness:
    def __init__(self, book: AlertingBook | None = None, static: Destination | None = None,
                 script: dict[str, list[Any]] | None = None, tenant: str | None = None, max_retries: int = 3,
                 ledger_path: Any = None, guard: DlqRatioGuard | None = None, stop: list[bool] | None = None,
                 commit_fails: list[BaseException] | None = None) -> None:
        self.events: list[tuple] = []
        self.client = Client(self.events, script)
        self.ledger = RecordingLedger(self.events, ledger_path)
        self.stats = ForwardStats()
        self.commit_fails = list(commit_fails or [])
        self.stop = stop if stop is not None else [False]
        self.io = ForwardIO(codec, book or book_with(rule("a", A_URL)), static, tenant, self.client, self.ledger,
                            self.stats, guard or DlqRatioGuard(1.0, 1000, 1), self.commit, lambda: self.stop[0],
                            max_retries=max_retries, base_s=0.001, cap_s=0.004)
        self.chain = build_forward_chain(self.io)

    def commit(self, topic: str, partition: int, offset: int) -> None:
        if self.commit_fails:
            raise self.commit_fails.pop(0)
        self.events.append(("commit", partition, offset))

    def run(self, batch: list[Msg]) -> None:
        self.chain.head.submit(batch)
        self.chain.head.close()
        self.chain.head.join()

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


def test_each_alert_is_posted_then_ledgered_then_committed_in_order():
    h = Harness()
    h.run(msgs(alert(0), alert(1)))
    assert h.events == [("post", A_URL, "acme-a0", 200), ("ledger", Destination("webhook", A_URL).dest_id, "acme-a0"),
                        ("commit", 0, 0),
                        ("post", A_URL, "acme-a1", 200), ("ledger", Destination("webhook", A_URL).dest_id, "acme-a1"),
                        ("commit", 0, 1)]
    assert h.stats.delivered == 2


def test_a_fan_out_commits_only_after_its_last_destination_and_one_destination_in_two_rules_gets_one_post():
    h = Harness(book_with(rule("a", A_URL), rule("b", B_URL), rule("a-again", A_URL, severities=["CRITICAL"])))
    h.run(msgs(alert(0)))
    assert h.kinds() == ["post", "ledger", "post", "ledger", "commit"]
    assert [e[1] for e in h.events if e[0] == "post"] == [A_URL, B_URL]


def test_silenced_unrouted_other_tenants_and_undecodable_records_are_committed_without_a_post(capsys):
    h = Harness(book_with(rule("crit", A_URL, severities=["CRITICAL"]), silence_agent="noisy"), tenant=TENANT)
    h.run(msgs(alert(0, agent="noisy"), alert(1, severity="INFO"), alert(2, tenant="other"), b"\x00\x00\x00\x00\x09junk",
               alert(4)))
    assert h.events[:4] == [("commit", 0, 0), ("commit", 0, 1), ("commit", 0, 2), ("commit", 0, 3)]
    assert h.kinds()[4:] == ["post", "ledger", "commit"]
    assert (h.stats.silenced, h.stats.unrouted, h.stats.undecodable, h.stats.delivered) == (1, 1, 1, 1)
    assert "undecodable alert at 0/3:" in capsys.readouterr().err


def test_a_transient_failure_is_retried_the_chain_is_failing_meanwhile_and_nothing_is_committed_until_it_settles():
    h = Harness(script={A_URL: [503, (429, "0"), ConnectionError("reset")]})
    h.chain.head.submit(msgs(alert(0), alert(1)))
    seen_failing = False
    for _ in range(2000):
        h.chain.head.poll()
        seen_failing |= h.chain.failing
        if h.chain.failing:
            assert "commit" not in h.kinds()
        if h.kinds().count("commit") == 2:
            break
        time.sleep(0.001)
    assert seen_failing and not h.chain.failing
    assert [e[3] for e in h.events if e[0] == "post"][:4] == [503, (429, "0"), h.events[2][3], 200]
    assert [e[2] for e in h.events if e[0] == "post"] == ["acme-a0"] * 4 + ["acme-a1"]
    assert h.stats.delivered == 2


def test_a_4xx_is_settled_as_rejected_without_a_retry_and_never_posted_again():
    h = Harness(script={A_URL: [400]})
    h.run(msgs(alert(0), alert(0, alert_id="acme-a0")))  # the same alert id again
    assert h.kinds() == ["post", "ledger", "commit", "commit"]
    assert (h.stats.rejected, h.stats.delivered, h.stats.duplicate) == (1, 0, 1)


def test_out_of_retries_stops_uncommitted_and_a_restart_posts_only_to_the_destination_that_missed_it(tmp_path):
    book = book_with(rule("a", A_URL), rule("b", B_URL))
    path = tmp_path / "ledger.jsonl"
    h = Harness(book, script={B_URL: [503] * 10}, max_retries=2, ledger_path=path)
    with pytest.raises(WebhookUnavailable, match=r"webhook unavailable .*acme-a0.*after 3 tries.*offset 0 not committed"):
        h.run(msgs(alert(0), alert(1)))
    assert h.kinds() == ["post", "ledger", "post", "post", "post"] and "commit" not in h.kinds()
    h.chain.head.terminate()
    h.ledger.close()

    again = Harness(book, ledger_path=path)  # the restart: a new chain, the ledger read from disk
    again.run(msgs(alert(0), alert(1)))
    assert [(e[1], e[2]) for e in again.events if e[0] == "post"] == [(B_URL, "acme-a0"), (A_URL, "acme-a1"),
                                                                      (B_URL, "acme-a1")]
    assert again.stats.duplicate == 1 and again.stats.delivered == 3
    assert [e for e in again.events if e[0] == "commit"] == [("commit", 0, 0), ("commit", 0, 1)]
    again.ledger.close()


def test_a_bug_crashes_naming_the_alert_and_its_offset_and_is_not_retried():
    h = Harness(script={A_URL: [200, TypeError("body is not JSON serializable")]})
    with pytest.raises(ConsumerCrash, match=r"TypeError at alert acme-a1 .*alerts\[0\] offset 1"):
        h.run(msgs(alert(0), alert(1), alert(2)))
    assert [e[2] for e in h.events if e[0] == "post"] == ["acme-a0", "acme-a1"]  # tried once
    assert [e for e in h.events if e[0] == "commit"] == [("commit", 0, 0)]


def test_a_ledger_that_cannot_be_written_is_a_crash_not_a_second_post():
    class Full(RecordingLedger):
        def add(self, dest_id: str, alert_id: str) -> None:
            raise OSError(28, "No space left on device")

    h = Harness()
    h.io.ledger = Full(h.events)
    h.chain = build_forward_chain(h.io)
    with pytest.raises(ConsumerCrash, match=r"OSError at alert acme-a0 .*offset 0"):
        h.run(msgs(alert(0)))
    assert h.kinds() == ["post"]


def test_a_mostly_undecodable_batch_trips_the_guard_before_anything_of_it_is_posted_or_committed():
    h = Harness(guard=DlqRatioGuard(0.5, 10, 4))
    with pytest.raises(DlqRatioExceeded, match=r"alerts\[0\] offset 4"):
        h.run(msgs(b"junk", b"junk", b"junk", alert(3), b"junk"))
    assert h.events == []


def test_a_retriable_commit_failure_is_retried_without_posting_again():
    from confluent_kafka import KafkaError, KafkaException

    h = Harness(commit_fails=[KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT))])
    h.run(msgs(alert(0)))
    assert h.kinds() == ["post", "ledger", "commit"]


def test_stopping_while_retrying_abandons_the_alert_uncommitted():
    stop = [False]
    h = Harness(script={A_URL: [503] * 50}, max_retries=40, stop=stop)
    h.chain.head.submit(msgs(alert(0)))
    for _ in range(200):
        h.chain.head.poll()
        if h.chain.failing:
            break
        time.sleep(0.001)
    stop[0] = True
    with pytest.raises(Abandoned):
        for _ in range(200):
            h.chain.head.poll()
            time.sleep(0.001)
    assert "commit" not in h.kinds()


def test_a_static_destination_gets_every_alert_of_any_tenant_in_its_format():
    static = Destination("slack", A_URL)
    h = Harness(book=AlertingBook(), static=static)
    h.run(msgs(alert(0), alert(1, tenant="other")))
    assert [e[2] for e in h.events if e[0] == "post"] == ["acme-a0", "other-a1"]
    assert h.stats.by_destination == {static.dest_id: 2}
