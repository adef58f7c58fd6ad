"""The raw path's view of tenant policies and the field reader's refusals, through ``Chain.process``.

- A tenant's policy is looked up once per batch by the stage and once by the detectors (on the
  worker each lookup goes through faust's table), not per event: a policy written while the
  stage runs applies from the next lookup, never to half of the stage's events.
- A record the field reader refuses (bad UTF-8 in a field the detectors never read) takes the
  full path and lands in the DLQ with fastavro's reason, exactly as before the reader existed.
"""
from __future__ import annotations

from agentstream.schemas import ALERT, DLQ_HEADERS, EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()


class CountingBook(PolicyBook):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def get(self, tenant_id: str) -> TenantPolicy:
        self.lookups += 1
        return super().get(tenant_id)


def _chain(book: PolicyBook) -> Chain:
    return Chain(ProcessorsSettings(topic_prefix="q."), codec, Redactor(b"k"), book, "q.fleet")


def _records(tenant: str, run: str, first: int, n: int) -> list[InRecord]:
    events = [syn.step(tenant, run, s, name=f"t{s}", args_digest=str(s)) for s in range(first, first + n)]
    return [InRecord("q.raw", 0, first + k, run.encode(), codec.encode(EVENT, e)) for k, e in enumerate(events)]


def test_one_lookup_per_tenant_per_batch_and_a_new_policy_from_the_next_batch():
    book = CountingBook()
    chain = _chain(book)
    state: dict = {}

    def run(batch: list[InRecord]) -> list:
        return chain.process(batch, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))

    run(_records("a", "ra", 1, 40) + _records("b", "rb", 1, 40))
    assert book.lookups == 4  # 80 events, two tenants: once in the stage, once in the detectors
    first = _records("a", "ra", 41, 5)
    book.set(TenantPolicy("a", version="p-2", budgets={"run_max_steps": 44, "hard_limit": True}))
    out = run(first)  # written before this batch: it applies to all of it
    events = [codec.decode_as(EVENT, o.value) for o in out if o.topic == "q.events"]
    assert {e["redaction"]["policy_version"] for e in events} == {"p-2"}
    alerts = [codec.decode_as(ALERT, o.value) for o in out if o.topic == "q.alerts"]
    assert [a["alert_type"] for a in alerts] == ["budget_warning", "budget_breach"]


def test_a_policy_written_during_the_stage_waits_for_the_next_lookup():
    book = PolicyBook()
    chain = _chain(book)
    seen: list[str] = []
    real_get = chain.policies.book.get

    def get_then_write(tenant_id: str) -> TenantPolicy:
        policy = real_get(tenant_id)
        seen.append(policy.version)
        book.set(TenantPolicy(tenant_id, version=f"v{len(seen)}"))  # another thread's write, mid-batch
        return policy

    chain.policies.book.get = get_then_write  # type: ignore[method-assign]
    out = chain.process(_records("a", "r", 1, 10), lambda p, k: None, lambda p, k, v: None)
    versions = {codec.decode_as(EVENT, o.value)["redaction"]["policy_version"] for o in out if o.topic == "q.events"}
    # one policy for every event of the stage (then the detectors' own lookup saw the write)
    assert versions == {"default"} and seen == ["default", "v1"]
    out = chain.process(_records("a", "r", 11, 3), lambda p, k: None, lambda p, k, v: None)
    assert {codec.decode_as(EVENT, o.value)["redaction"]["policy_version"] for o in out
            if o.topic == "q.events"} == {"v2"}


def test_a_record_the_reader_refuses_goes_to_the_dlq_with_fastavros_reason():
    chain = _chain(PolicyBook())
    good = codec.encode(EVENT, {**syn.step("t", "r", 1), "environment": "prod-XY"})
    bad = good.replace(b"prod-XY", b"prod-\xff\xfe")
    assert chain.redaction.reader.read(bad) is None and chain.redaction.reader.read(good) is not None
    out = chain.process([InRecord("q.raw", 0, 0, b"r", bad), InRecord("q.raw", 0, 1, b"r", good)],
                        lambda p, k: None, lambda p, k, v: None)
    dlq = [o for o in out if o.topic == "q.dlq"]
    assert len(dlq) == 1 and dlq[0].value == bad
    reason = dict(dlq[0].headers)[DLQ_HEADERS["reason"]].decode()
    assert "decode" in reason.lower() or "utf" in reason.lower(), reason
    assert [o.value for o in out if o.topic == "q.events"][0][:5] == good[:5]
    assert chain.redaction.counts.passed_bytes == 1 and chain.redaction.counts.dlq == 1


def test_detect_on_its_own_sees_the_book_as_it_is_now():
    """Replays and the record-by-record isolation call ``detect`` without ``process``: each call
    is a batch of its own, so a policy written to the book between calls is seen."""
    from agentstream.stream_processors.records import Redacted

    book = PolicyBook()
    chain = _chain(book)
    state: dict = {}

    def detect(first: int, n: int) -> list:
        passed = [Redacted(codec.decode_as(EVENT, r.value), r) for r in _records("a", "r", first, n)]
        return chain.detect(passed, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))

    assert not [o for o in detect(1, 3) if o.topic == "q.alerts"]
    book.set(TenantPolicy("a", budgets={"run_max_steps": 3, "hard_limit": False, "warn_fraction": 0}))
    assert [codec.decode_as(ALERT, o.value)["alert_type"] for o in detect(4, 1) if o.topic == "q.alerts"] == \
        ["budget_breach"]
