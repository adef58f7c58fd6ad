"""The run detector through ``Chain.detect`` as the workers run it: STOP reasons, and events the
SDK delivered twice (a lost ack, then a spool replay) counted once."""
from __future__ import annotations

import orjson

from agentstream.schemas import ALERT, COMMAND, EVENT, Codec
from agentstream.schemas.run_keys import run_key
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS, PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction.engine import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()


class Worker:
    def __init__(self, loops=None, budgets=None):
        book = PolicyBook()
        book.set(TenantPolicy("t", loops={**LOOP_DEFAULTS, **(loops or {})},
                              budgets={**BUDGET_DEFAULTS, **(budgets or {})}))
        self.chain = Chain(ProcessorsSettings(topic_prefix="w."), codec, Redactor(b"k"), book, "w.fleet")
        self.state: dict[bytes, bytes] = {}
        self.fstate: dict[bytes, bytes] = {}
        self.offset = self.foffset = 0
        self.alerts, self.commands = [], []

    def feed(self, events, batch=100):
        for i in range(0, len(events), batch):
            recs = []
            for e in events[i:i + batch]:
                recs.append(InRecord("w.raw", 0, self.offset, e["run_id"].encode(), codec.encode(EVENT, e)))
                self.offset += 1
            out = self.chain.process(recs, lambda p, k: self.state.get(k), self._put(self.state))
            fin = []
            for o in out:
                if o.topic == "w.fleet":
                    fin.append(InRecord("w.fleet", 0, self.foffset, o.key, o.value))
                    self.foffset += 1
            out += self.chain.process_fleet(fin, lambda p, k: self.fstate.get(k), self._put(self.fstate))
            for o in out:
                if o.topic == "w.alerts":
                    self.alerts.append(codec.decode_as(ALERT, o.value))
                elif o.topic == "w.commands":
                    self.commands.append(codec.decode_as(COMMAND, o.value))
        return self

    @staticmethod
    def _put(d):
        def put(p, k, v):
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        return put

    def types(self):
        return [a["alert_type"] for a in self.alerts]


def test_a_loop_stop_reason_names_the_loop_once():
    w = Worker().feed([syn.step("t", "r", i, name="search", args_digest="a") for i in range(1, 8)])
    assert w.types() == ["loop"]
    (cmd,) = w.commands
    assert cmd["reason"] == "loop: repeat"


def _research_run(run="r"):
    """One $0.12 call, then three legal identical lookups each followed by a $0.12 call."""
    evs = [syn.run_start("t", run), syn.llm_step("t", run, 1, cost_usd=0.12)]
    for i in range(3):
        evs.append(syn.step("t", run, 2 + 2 * i, name="crm_lookup", args_digest="acme"))
        evs.append(syn.llm_step("t", run, 3 + 2 * i, cost_usd=0.12))
    return evs


def _day_spend(w):
    spend = orjson.loads(w.fstate[b"t"])["spend"]
    return round(sum(v for k, v in spend.items() if k.startswith("t|d|")), 6)


BUDGET = {"run_max_cost_usd": 0.5, "hard_limit": True, "warn_fraction": 0}


def test_events_replayed_after_a_lost_ack_count_once():
    evs = _research_run()
    # the broker stored seq 2..7, their acks were lost, the SDK's spool sends them again
    w = Worker(loops={"max_repeats": 3}, budgets=BUDGET).feed(evs + evs[2:] + [syn.step("t", "r", 8, name="w")])
    assert w.types() == [] and w.commands == []
    assert _day_spend(w) == 0.48


def test_a_replay_in_a_later_batch_counts_once():
    evs = _research_run()
    w = Worker(loops={"max_repeats": 3}, budgets=BUDGET).feed(evs, batch=3).feed(evs[1:], batch=2)
    assert w.types() == [] and _day_spend(w) == 0.48


def test_distinct_events_reusing_a_seq_still_count():
    # a run resumed by another process (its seq starts again, its event ids are new), or OTLP
    # spans numbered by two gateway replicas: the same seq, other events
    evs = _research_run()
    again = [dict(e, event_id=f"other-{i}", ts_us=e["ts_us"] + 1_000_000) for i, e in enumerate(evs[1:])]
    w = Worker(loops={"max_repeats": 3}, budgets=BUDGET).feed(evs + again)
    assert "loop" in w.types() and "budget_breach" in w.types()
    assert _day_spend(w) == 0.96


def test_a_late_event_never_seen_counts():
    evs = _research_run()
    late = evs.pop(3)  # spooled and replayed after newer ones were delivered
    w = Worker(loops={"max_repeats": 3}, budgets=BUDGET).feed(evs + [late, late])
    assert w.types() == [] and _day_spend(w) == 0.48


def test_the_memory_of_applied_events_is_bounded():
    from agentstream.stream_processors.detectors import redelivery

    evs = [syn.run_start("t", "big")] + [syn.step("t", "big", i, name=f"s{i}", args_digest=str(i))
                                         for i in range(1, 5000)]
    w = Worker().feed(evs, batch=500)
    st = orjson.loads(w.state[run_key("t", "big")])
    assert len(st[redelivery.KEY][1]) <= redelivery.WINDOW
