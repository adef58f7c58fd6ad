"""The raw loop's errors by class, without a broker: a record that makes the chain raise is
isolated (detector failure: its redacted event goes on and a copy to the DLQ with the reason;
redaction failure: its original bytes to the restricted quarantine), the rest of the batch is
processed as if nothing happened, and Kafka failures are classified for retry or crash."""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from agentstream.schemas import DLQ_HEADERS, EVENT, Codec
from agentstream.schemas.consumer_errors import ErrorClass
from agentstream.schemas.run_keys import run_key
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.errors import classify, delivery_transient, process_isolating
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()
SECRET = "the-message-quotes-this-datum"


class FaultyChain(Chain):
    """A chain with a detector bug for one run (an injected fault behind the public ``detect``)."""

    def detect(self, passed, get_state, put_state):
        for r in passed:
            if r.event["run_id"] == "boom":
                raise ZeroDivisionError(SECRET)
        return super().detect(passed, get_state, put_state)


class FaultyRedactor(Redactor):
    def redact_event(self, event, *a, **k):
        if event["run_id"] == "bad-redact" and event["kind"] == "RUN_START":
            raise TypeError(SECRET)
        return super().redact_event(event, *a, **k)


def make(chain_cls=Chain, redactor=None) -> Chain:
    book = PolicyBook()
    book.set(TenantPolicy("t", budgets={"run_max_steps": 2, "hard_limit": True}))
    return chain_cls(ProcessorsSettings(topic_prefix="u."), codec, redactor or Redactor(b"k"), book, "u.fleet")


def batch_of(run_ids: list[str], steps: int = 3, email: bool = False) -> list[InRecord]:
    recs, off = [], 0
    for run in run_ids:
        attrs = {"note": "mail bob@example.com"} if email else {}
        evs = [syn.run_start("t", run, attributes=attrs)] + [syn.step("t", run, i, name=f"tool{i}", args_digest=str(i))
                                                             for i in range(1, steps + 1)]
        for e in evs:
            recs.append(InRecord("u.raw", 0, off, run.encode(), codec.encode(EVENT, e), [("h", b"1")]))
            off += 1
    return recs


def run(chain: Chain, batch: list[InRecord], state: dict | None = None):
    state = {} if state is None else state
    return process_isolating(chain, batch, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v)), state


def headers(o) -> dict[str, bytes]:
    return dict(o.headers)


def test_without_a_failure_the_output_is_the_chains_own():
    batch = batch_of(["r1", "r2"])
    (out, failed), state = run(make(), batch)
    ref_state: dict = {}
    ref = make().process(batch, lambda p, k: ref_state.get(k), lambda p, k, v: ref_state.__setitem__(k, v))
    assert failed == 0 and state == ref_state
    strip = lambda outs: [(o.topic, o.key, o.value if o.topic == "u.events" else None) for o in outs]  # noqa: E731
    assert strip(out) == strip(ref)


def test_a_detector_failure_sends_that_record_to_the_dlq_and_the_rest_proceeds():
    chain = make(FaultyChain)
    batch = batch_of(["r1", "boom", "r2"])
    (out, failed), state = run(chain, batch)
    boom = [r for r in batch if r.key == b"boom"]
    assert failed == len(boom) == 4
    events = [o for o in out if o.topic == "u.events"]
    assert len(events) == len(batch)  # every event still reaches events, redacted
    dlq = [o for o in out if o.topic == "u.dlq"]
    assert [int(headers(o)[DLQ_HEADERS["source_offset"]]) for o in dlq] == [r.offset for r in boom]
    for o in dlq:
        h = headers(o)
        assert h[DLQ_HEADERS["stage"]] == b"detectors"
        reason = h[DLQ_HEADERS["reason"]].decode()
        assert reason.startswith("detectors failed: ZeroDivisionError at test_raw_errors.py:")
        assert SECRET not in reason
        assert o.value in {e.value for e in events}  # the redacted bytes, not the raw record
    # the healthy runs were detected as usual: 3 steps over a budget of 2 -> alert + STOP each
    assert sorted(o.key for o in out if o.topic == "u.commands") == [b"r1", b"r2"]
    assert run_key("t", "r1") in state and run_key("t", "r2") in state and run_key("t", "boom") not in state
    assert chain.redaction.counts.events == len(batch)  # the failed attempt was not counted twice


def test_a_redaction_failure_quarantines_the_original_and_never_sends_it_to_events():
    chain = make(redactor=FaultyRedactor(b"k"))
    batch = batch_of(["r1", "bad-redact"], email=True)  # the run starts carry an email: full path
    (out, failed), _ = run(chain, batch)
    bad = batch[4]  # bad-redact's RUN_START (the fault's target)
    assert failed == 1
    q = [o for o in out if o.topic == "u.quarantine"]
    assert [o.value for o in q] == [bad.value]
    assert headers(q[0])[DLQ_HEADERS["reason"]].startswith(b"redaction failed: TypeError at test_raw_errors.py")
    assert SECRET.encode() not in headers(q[0])[DLQ_HEADERS["reason"]]
    events = [o for o in out if o.topic == "u.events"]
    assert len(events) == len(batch) - 1 and not [o for o in out if o.topic == "u.dlq"]
    assert b"bob@example.com" not in b"".join(o.value for o in events)


def test_a_failure_on_every_record_is_counted_for_the_ratio_guard():
    (out, failed), _ = run(make(FaultyChain), batch_of(["boom"], steps=9))
    assert failed == 10 and len([o for o in out if o.topic == "u.dlq"]) == 10


@pytest.mark.parametrize("exc,expect", [
    (KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS)), ErrorClass.TRANSIENT),
    (KafkaException(KafkaError(KafkaError._TIMED_OUT)), ErrorClass.TRANSIENT),
    (KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION)), ErrorClass.BUG),
    (KafkaException(KafkaError(KafkaError._TRANSPORT, fatal=True)), ErrorClass.BUG),
    (ConnectionResetError(), ErrorClass.TRANSIENT),
    (KeyError("run_id"), ErrorClass.BUG),
])
def test_kafka_calls_of_the_loop_are_classified(exc, expect):
    assert classify(exc) is expect


def test_delivery_reports_worth_producing_again():
    assert delivery_transient(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert delivery_transient(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS))
    assert not delivery_transient(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert not delivery_transient(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
