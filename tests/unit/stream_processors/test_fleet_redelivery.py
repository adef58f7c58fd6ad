"""Fleet deltas read again count once. A worker that dies after its fleet state reached the
changelog, but before it committed the deltas' offsets, leaves them to be read again by the next
owner; the state names the last delta it holds, so the spend is not doubled (no premature budget
breach), while a state from before this field, and every new delta, still apply."""
from __future__ import annotations

import orjson

from agentstream.schemas import ALERT, EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import FLEET_APPLIED, Chain
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction.engine import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()


def _setup():
    book = PolicyBook()
    book.set(TenantPolicy("t", budgets={**BUDGET_DEFAULTS, "tenant_usd_per_day": 1.0, "warn_fraction": 0}))
    c = Chain(ProcessorsSettings(topic_prefix="f."), codec, Redactor(b"k"), book, "f.fleet")
    state: dict[bytes, bytes] = {}
    get, put = (lambda p, k: state.get(k)), (lambda p, k, v: state.__setitem__(k, v))
    deltas = []
    for i in range(4):  # $0.30 a run, one fleet delta per raw batch
        run = f"r{i}"
        raw = [InRecord("f.raw", 0, 10 * i + j, run.encode(), codec.encode(EVENT, e)) for j, e in
               enumerate([syn.run_start("t", run), syn.llm_step("t", run, 1, cost_usd=0.30)])]
        deltas += [o for o in c.process(raw, get, put) if o.topic == "f.fleet"]
    return c, state, get, put, [InRecord("f.fleet", 0, i, o.key, o.value) for i, o in enumerate(deltas)]


def _day_spend(state) -> float:
    spend = orjson.loads(state[b"t"])["spend"]
    return round(sum(v for k, v in spend.items() if k.startswith("t|d|")), 4)


def _breaches(out):
    return [codec.decode_as(ALERT, o.value)["evidence"]["used_usd"] for o in out
            if o.topic == "f.alerts" and codec.decode_as(ALERT, o.value)["alert_type"] == "budget_breach"]


def test_a_delta_read_again_after_a_crash_counts_once():
    c, state, get, put, recs = _setup()
    assert _breaches(c.process_fleet(recs[:3], get, put)) == []  # $0.90 of $1.00
    assert orjson.loads(state[b"t"])[FLEET_APPLIED] == [0, 2]
    # the next owner reads from the last committed offset (none): the three again, then the fourth
    assert _breaches(c.process_fleet(recs, get, put)) == ["1.2000"]
    assert _day_spend(state) == 1.2  # not $2.10
    assert _breaches(c.process_fleet(recs, get, put)) == [] and _day_spend(state) == 1.2


def test_a_state_from_before_the_field_applies_every_delta():
    c, state, get, put, recs = _setup()
    c.process_fleet(recs[:3], get, put)
    old = orjson.loads(state[b"t"])
    del old[FLEET_APPLIED]
    state[b"t"] = orjson.dumps(old)
    assert _breaches(c.process_fleet(recs[3:], get, put)) == ["1.2000"] and _day_spend(state) == 1.2
