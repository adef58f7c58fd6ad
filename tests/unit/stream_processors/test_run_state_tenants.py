"""Two tenants using one run id never share detector state (a red-team finding, HIGH).

Run ids are the client's choice (OTLP: the trace id, which ``traceparent`` sets), and two tenants
may legitimately share one. The processors kept per-run state under the run id alone, so tenant
acme, sending 4 identical TOOL steps under a run id tenant globex was using, made globex's 2nd
identical call a CRITICAL loop ("seen 6 times") with a STOP; acme could also end globex's run
(RUN_END deleted the shared state: budgets reset), spend globex's run budget, approve globex's
high-risk call, or pre-send globex's (seq, ts) pairs so redelivery dedup skipped globex's events.

The property, checked on generated interleavings rather than one example: whatever another
tenant sends under the same run id, in whatever order and batching, each tenant's alerts, STOP
commands, per-run state and fleet state are exactly what they are when it is alone.
"""
from __future__ import annotations

import random
import time
from typing import Any

import orjson
import pytest

from agentstream.schemas import ALERT, COMMAND, EVENT, Codec
from agentstream.schemas.run_keys import run_key
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import FLEET_APPLIED, Chain
from agentstream.stream_processors.policies import (BUDGET_DEFAULTS, LOOP_DEFAULTS, PolicyBook, TenantPolicy,
                                                    governance_of)
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()
S = 1_000_000
T0 = int(time.time() * S) - 600 * S  # in the past: no event is clamped, no run goes idle
RUN = "4bf92f3577b34da6a3ce929d0e0e4736"  # an OTLP trace id both tenants' runs carry
VICTIM, ATTACKER, BYSTANDER = "globex", "acme", "initech"
REDACTOR = Redactor(b"k")  # built once (~0.4 s of CPU): every worker here redacts alike


def _book() -> PolicyBook:
    book = PolicyBook()
    book.set(TenantPolicy(VICTIM, loops={**LOOP_DEFAULTS},
                          budgets={**BUDGET_DEFAULTS, "run_max_cost_usd": 0.5, "run_max_steps": 12},
                          governance=governance_of({"require_approval": ["wire_*"],
                                                    "max_calls_per_tool": {"send_email": 2},
                                                    "max_delegation_depth": 1})))
    # the attacker's own policy is lax: nothing of its own trips, only what leaks would
    book.set(TenantPolicy(ATTACKER, loops={**LOOP_DEFAULTS, "max_repeats": 50, "stop_on_loop": False}))
    return book


def _t(seq: int, lane: int) -> int:
    return T0 + seq * S + lane  # distinct times per tenant unless a scenario copies them


def tool(tenant, seq, name="search", digest="a", lane=0, **kw):
    return syn.step(tenant, RUN, seq, name=name, args_digest=digest, ts_us=_t(seq, lane), **kw)


def llm(tenant, seq, cost, lane=0):
    return syn.llm_step(tenant, RUN, seq, cost_usd=cost, ts_us=_t(seq, lane))


def approval(tenant, seq, digest, lane=0):
    e = syn.step(tenant, RUN, seq, name="approve", step_kind="APPROVAL", args_digest=None, ts_us=_t(seq, lane))
    e["payload"]["approval"] = {"action_digest": digest, "decision": "approved", "approval_latency_ms": 5.0}
    return e


def start(tenant, lane=0, parent=None):
    e = syn.run_start(tenant, RUN, ts_us=_t(0, lane))
    e["parent_run_id"] = parent
    return e


def end(tenant, seq, lane=0):
    return syn.run_end(tenant, RUN, seq, ts_us=_t(seq, lane))


# Each scenario: tenant -> its events in order. The attacker's lane is 1 (other times) unless it
# copies the victim's (seq, ts) pairs on purpose.
def loop_pushed():
    """The live finding: 2 calls of the victim's, 4 of the attacker's, one run id."""
    return {VICTIM: [start(VICTIM), tool(VICTIM, 1), tool(VICTIM, 2), llm(VICTIM, 3, 0.01)],
            ATTACKER: [tool(ATTACKER, s, lane=1) for s in range(1, 5)]}


def budget_spent():
    return {VICTIM: [start(VICTIM), llm(VICTIM, 1, 0.2), llm(VICTIM, 2, 0.2), tool(VICTIM, 3, digest="b")],
            ATTACKER: [llm(ATTACKER, s, 0.15, lane=1) for s in range(1, 4)]
            + [tool(ATTACKER, s, name=f"t{s}", digest=f"x{s}", lane=1) for s in range(4, 13)]}


def dedup_masked():
    """The victim's real loop (7 identical calls) must be found whatever copies of its (seq, ts)
    the attacker sends first."""
    victim = [start(VICTIM)] + [tool(VICTIM, s) for s in range(1, 8)]
    return {VICTIM: victim, ATTACKER: [tool(ATTACKER, s, name="noise", digest=f"n{s}") for s in range(0, 8)]}


def ended_early():
    """The attacker's RUN_END must not delete the victim's state (loop count, spend)."""
    victim = [start(VICTIM)] + [tool(VICTIM, s) for s in range(1, 4)] + [llm(VICTIM, 4, 0.3)]
    victim += [tool(VICTIM, s) for s in range(5, 8)] + [llm(VICTIM, 8, 0.3)]
    return {VICTIM: victim, ATTACKER: [start(ATTACKER, lane=1), end(ATTACKER, 1, lane=1), end(ATTACKER, 2, lane=1)]}


def approval_forged():
    """An approval of the attacker's must not let the victim's unapproved wire through, nor make
    the victim's approved call a mismatch."""
    victim = [start(VICTIM), tool(VICTIM, 1, name="wire_transfer", digest="w1"),
              approval(VICTIM, 2, "w2"), tool(VICTIM, 3, name="wire_transfer", digest="w2")]
    return {VICTIM: victim, ATTACKER: [approval(ATTACKER, 1, "w1", lane=1), approval(ATTACKER, 2, "zz", lane=1),
                                       approval(ATTACKER, 3, "w1", lane=1)]}


def calls_counted():
    victim = [start(VICTIM), tool(VICTIM, 1, name="send_email", digest="e1"),
              tool(VICTIM, 2, name="send_email", digest="e2")]
    return {VICTIM: victim,
            ATTACKER: [tool(ATTACKER, s, name="send_email", digest=f"m{s}", lane=1) for s in range(1, 4)]}


def linked():
    """Topology is per tenant: the attacker's parent links on the victim's run id stay its own."""
    return {VICTIM: [start(VICTIM), tool(VICTIM, 1)],
            ATTACKER: [start(ATTACKER, lane=1, parent="p1"), tool(ATTACKER, 1, lane=1)]}


def everything():
    """Every attack at once, and a third tenant on the same run id."""
    out: dict[str, list[dict[str, Any]]] = {VICTIM: [], ATTACKER: []}
    for k, sc in enumerate((loop_pushed, ended_early, approval_forged)):
        for tenant, evs in sc().items():  # one after the other in each run: seqs and times moved on
            out[tenant] += [{**e, "seq": e["seq"] + 20 * k, "ts_us": e["ts_us"] + 20 * k * S} for e in evs]
    out[BYSTANDER] = [start(BYSTANDER, lane=2)] + [tool(BYSTANDER, s, lane=2) for s in range(1, 5)]
    return out


def _copies(scenario: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The attacker's events carrying the victim's (seq, ts) pairs: what redelivery dedup keys on."""
    by_seq = {e["seq"]: e["ts_us"] for e in scenario[VICTIM]}
    out = dict(scenario)
    out[ATTACKER] = [{**e, "ts_us": by_seq.get(e["seq"], e["ts_us"])} for e in scenario[ATTACKER]]
    return out


SCENARIOS = {f.__name__: f for f in (loop_pushed, budget_spent, dedup_masked, ended_early, approval_forged,
                                     calls_counted, linked, everything)}


class Worker:
    """The raw path and the fleet path as the worker runs them, over dicts."""

    def __init__(self) -> None:
        self.chain = Chain(ProcessorsSettings(topic_prefix="w."), codec, REDACTOR, _book(), "w.fleet")
        self.state: dict[bytes, bytes] = {}
        self.fstate: dict[bytes, bytes] = {}
        self.foffset = 0
        self.found: dict[str, list[tuple[Any, ...]]] = {}

    def feed(self, batches: list[list[InRecord]]) -> "Worker":
        for recs in batches:
            out = self.chain.process(recs, lambda p, k: self.state.get(k), _put(self.state))
            fin = []
            for o in out:
                if o.topic == "w.fleet":
                    fin.append(InRecord("w.fleet", 0, self.foffset, o.key, o.value))
                    self.foffset += 1
            out += self.chain.process_fleet(fin, lambda p, k: self.fstate.get(k), _put(self.fstate))
            for o in out:
                if o.topic == "w.alerts":
                    a = codec.decode_as(ALERT, o.value)
                    self.found.setdefault(a["tenant_id"], []).append(
                        ("alert", a["alert_id"], a["alert_type"], a["severity"], a["title"], a["run_id"],
                         sorted(a["evidence"].items())))
                elif o.topic == "w.commands":
                    c = codec.decode_as(COMMAND, o.value)
                    assert o.key == c["run_id"].encode()
                    self.found.setdefault(c["tenant_id"], []).append(
                        ("stop", c["command_id"], c["run_id"], c["reason"], c["alert_id"]))
        return self

    def fleet_of(self, tenant: str) -> dict[str, Any] | None:
        raw = self.fstate.get(tenant.encode())
        if raw is None:
            return None
        st = orjson.loads(raw)
        st.pop(FLEET_APPLIED)  # the fleet topic's offsets: other tenants' deltas interleave there
        return st


def _put(d: dict[bytes, bytes]):
    def put(p: int, k: bytes, v: bytes | None) -> None:
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return put


def _interleave(rng: random.Random, scenario: dict[str, list[dict[str, Any]]]) -> list[list[InRecord]]:
    """The tenants' events merged in a random order (each tenant's own order kept), on one raw
    partition (raw is keyed by run id) with consecutive offsets, cut into random batches."""
    lanes = {t: [codec.encode(EVENT, e) for e in evs] for t, evs in scenario.items()}
    merged: list[tuple[str, bytes]] = []
    pos = dict.fromkeys(lanes, 0)
    while any(pos[t] < len(v) for t, v in lanes.items()):
        t = rng.choice([t for t, v in lanes.items() if pos[t] < len(v)])
        merged.append((t, lanes[t][pos[t]]))
        pos[t] += 1
    recs = [(t, InRecord("w.raw", 0, i, RUN.encode(), v)) for i, (t, v) in enumerate(merged)]
    batches, i = [], 0
    while i < len(recs):
        n = rng.choice([1, 1, 2, 3, 5, len(recs)])
        batches.append(recs[i:i + n])
        i += n
    return batches


def _only(batches, tenant: str) -> list[list[InRecord]]:
    """The same records of one tenant (same offsets, same batch cuts), without the others'."""
    return [b for b in ([r for t, r in batch if t == tenant] for batch in batches) if b]


def _check(scenario: dict[str, list[dict[str, Any]]], seed: int) -> None:
    rng = random.Random(seed)
    batches = _interleave(rng, scenario)
    together = Worker().feed([[r for _, r in b] for b in batches])
    expected_state: dict[bytes, bytes] = {}
    for tenant in scenario:
        alone = Worker().feed(_only(batches, tenant))
        assert together.found.get(tenant, []) == alone.found.get(tenant, []), (tenant, seed)
        assert together.fleet_of(tenant) == alone.fleet_of(tenant), (tenant, seed)
        assert set(alone.state) <= {run_key(tenant, RUN)}
        expected_state.update(alone.state)
    assert together.state == expected_state, seed


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("copied", [False, True], ids=["own-times", "victim-times"])
def test_another_tenant_on_the_same_run_id_changes_nothing(name, copied):
    scenario = SCENARIOS[name]()
    if copied:
        scenario = _copies(scenario)
    for seed in range(20):
        _check(scenario, seed)


def test_the_reported_attack_raises_nothing_for_the_victim():
    """The live reproduction: acme's 4 calls first, then globex's 2nd identical call."""
    sc = loop_pushed()
    recs = [InRecord("w.raw", 0, i, RUN.encode(), codec.encode(EVENT, e))
            for i, e in enumerate(sc[ATTACKER] + sc[VICTIM])]
    w = Worker().feed([recs[:4], recs[4:]])
    assert w.found.get(VICTIM) is None
    assert w.found.get(ATTACKER) is None  # its own policy allows 50 repeats


def test_each_tenant_still_finds_its_own_loop_on_a_shared_run_id():
    """Isolation does not blind the detector: both tenants' real loops are found, each once."""
    evs = [tool(t, s, lane=i) for s in range(1, 8) for i, t in enumerate((VICTIM, BYSTANDER))]
    recs = [InRecord("w.raw", 0, i, RUN.encode(), codec.encode(EVENT, e)) for i, e in enumerate(evs)]
    w = Worker().feed([recs[i:i + 3] for i in range(0, len(recs), 3)])
    for tenant in (VICTIM, BYSTANDER):
        kinds = [f[0] for f in w.found[tenant]]
        assert kinds == ["alert", "stop"], tenant
        assert w.found[tenant][0][2] == "loop"
    assert set(w.state) == {run_key(VICTIM, RUN), run_key(BYSTANDER, RUN)}


@pytest.mark.parametrize("tenant,run", [("a", "b\xffc"), ("a\xff", "bc"), ("a|b", "c"), ("a", "b|c"),
                                        ("t", ""), ("", "t"), ("ü", "x"), ("\u00c3", "\u00bfx")])
def test_state_keys_never_collide_across_tenants(tenant, run):
    others = [("a", "b\xffc"), ("a\xff", "bc"), ("a|b", "c"), ("a", "b|c"), ("t", ""), ("", "t"),
              ("ü", "x"), ("\u00c3", "\u00bfx"), ("a", "b"), ("ab", "")]
    for o in others:
        if o != (tenant, run):
            assert run_key(*o) != run_key(tenant, run), (o, tenant, run)


# ---- upgrade: states an older version kept under the run id alone ------------------------------

def test_a_restore_deletes_states_under_the_run_id_alone():
    from agentstream.stream_processors.run_state_store import RunStateStore

    store = RunStateStore(ProcessorsSettings(topic_prefix="w."), "w.state")
    new = run_key(VICTIM, RUN)
    store.parts = {0: {RUN.encode(): b"{}", new: b"{}"}, 1: {b"other": b"{}"}, 2: {new: b"{}"}}
    assert store.forget_legacy([0, 1, 2]) == 2
    assert store.parts == {0: {new: b"{}"}, 1: {}, 2: {new: b"{}"}}
    assert store.legacy == {0: [RUN.encode()], 1: [b"other"]}
    # tombstones, sent with the next batch's outputs: compaction removes the old keys for good
    assert [(r.partition, r.key, r.value) for r in store.drain()] == [(0, RUN.encode(), None), (1, b"other", None)]
    store.drop([0])
    assert store.legacy == {1: [b"other"]}


def test_a_run_in_flight_across_the_upgrade_resumes_mid_run():
    """Its old state is gone, so it starts afresh, marked as begun mid-run: an approval it got
    before the upgrade is not demanded of its next tool call (no false CRITICAL and STOP)."""
    w = Worker()
    w.chain.idle.forgotten(0, [RUN.encode()])
    evs = [tool(VICTIM, 7, name="wire_transfer", digest="w9")]
    w.feed([[InRecord("w.raw", 0, 100, RUN.encode(), codec.encode(EVENT, evs[0]))]])
    assert w.found.get(VICTIM) is None
    assert orjson.loads(w.state[run_key(VICTIM, RUN)])["mid"] == 1
    w.chain.idle.forgotten(0, [])
    fresh = Worker()  # without the old state: the same call is judged, as for any new run
    fresh.feed([[InRecord("w.raw", 0, 100, RUN.encode(), codec.encode(EVENT, evs[0]))]])
    assert [f[2] for f in fresh.found[VICTIM] if f[0] == "alert"] == ["approval_violation"]
