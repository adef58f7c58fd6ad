"""Per-run state is bounded: runs that never end are evicted (detectors/run_eviction.py), and a
run that resumes after its state was evicted raises nothing it would not have raised with it.

Found by an adversarial probe: a crashed agent never sends RUN_END, and the processors deleted a
run's state only there, so 10,000 crashed runs left 10,000 states in the worker's store (and
its changelog) for good. The rule: a run quiet for ``run_state_idle_s`` of event time (its
partition's watermark) is compacted to its totals; past ``run_state_max_runs`` per partition the
least recently active are dropped, compacted ones first.

Fleets are generated from seeds: runs over several partitions that end, crash, or go quiet past
the idle time (a pause, a long approval wait) and resume, against loop, budget (steps, cost,
wall time, hard) and governance (approvals binding the next call) policies.
"""
from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from agentstream.schemas import ALERT, COMMAND, Codec
from agentstream.schemas.run_keys import run_key
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.detectors import run_eviction, runs
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy, governance_of
from agentstream.stream_processors.records import InRecord, Redacted
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

T0 = 1_767_600_000_000_000
S = 1_000_000
PARTS = 3
IDLE_S = 900.0


def _book() -> PolicyBook:
    book = PolicyBook()
    book.set(TenantPolicy("t", loops={"max_repeats": 3, "max_ping_pong": 3, "max_no_progress": 3, "max_retries": 2,
                                      "stop_on_loop": False, "repeat_window": 24},
                          budgets={"run_max_steps": 40, "run_max_cost_usd": 0.5, "run_max_wall_s": 1200.0,
                                   "hard_limit": True, "warn_fraction": 0.8},
                          governance=governance_of({"require_approval": ["pay"]})))
    return book


def _run(rng: random.Random, run_id: str, t: int, crash: bool) -> list[dict[str, Any]]:
    """One run: segments of steps with quiet gaps between them, some longer than the idle time
    (a pause, or a human deciding an approval)."""
    ev = [syn.run_start("t", run_id, ts_us=t)]
    seq = 1

    def add(e: dict[str, Any]) -> None:
        nonlocal seq
        ev.append(e)
        seq += 1

    for seg in range(rng.randint(1, 4)):
        if seg:
            gap = rng.choice([60, IDLE_S * 1.5, IDLE_S * 4])
            t += int(gap * S)
            if rng.random() < 0.5:  # the gap was a human deciding; the approved call follows
                digest = f"pay-{run_id}-{seg}"
                e = syn.step("t", run_id, seq, name="approve pay", step_kind="APPROVAL", latency_ms=0.0, ts_us=t)
                e["payload"]["approval"] = {"action_digest": digest, "decision": "approved",
                                            "approval_latency_ms": gap * 1000 * rng.choice([1.0, 0.5])}
                add(e)
                if rng.random() < 0.5:  # ... after another quiet spell
                    t += int(rng.choice([30, IDLE_S * 2]) * S)
                t += int(rng.uniform(1, 20) * S)
                add(syn.step("t", run_id, seq, name="pay", args_digest=digest, ts_us=t))
        for _ in range(rng.randint(2, 12)):
            t += int(rng.uniform(1, 40) * S)
            x = rng.random()
            if x < 0.35:
                add(syn.llm_step("t", run_id, seq, cost_usd=rng.choice([0.01, 0.05, 0.12]), ts_us=t))
            elif x < 0.8:  # a few calls over and over: repeats near and over the limit
                add(syn.step("t", run_id, seq, name="lookup", args_digest=f"a{rng.randrange(3)}", ts_us=t,
                             attributes={"agentstream.return_digest": f"r{rng.randrange(2)}"}
                             if rng.random() < 0.5 else None))
            elif x < 0.9:
                add(syn.step("t", run_id, seq, name="pay", args_digest=f"x{seq}", ts_us=t))  # no approval
            else:
                add(syn.step("t", run_id, seq, name="lookup", args_digest="a0", attempt=2, ts_us=t))
    if not crash:
        t += S
        ev.append(syn.run_end("t", run_id, seq, ts_us=t))
    return ev


def _fleet(seed: int, n: int = 120) -> list[tuple[int, dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        run_id = f"run-{seed}-{i}"
        t = T0 + int(rng.uniform(0, 3 * 3600) * S)
        out += [(hash(run_id) % PARTS, e) for e in _run(rng, run_id, t, crash=rng.random() < 0.4)]
    out.sort(key=lambda pe: (pe[1]["ts_us"], pe[1]["run_id"], pe[1]["seq"]))
    return out


class Store:
    def __init__(self) -> None:
        self.d: dict[tuple[int, bytes], bytes] = {}
        self.tombstones = 0

    def get(self, p: int, k: bytes) -> bytes | None:
        return self.d.get((p, k))

    def put(self, p: int, k: bytes, v: bytes | None) -> None:
        if v is None:
            self.tombstones += self.d.pop((p, k), None) is not None
        else:
            self.d[(p, k)] = v


def _replay(fleet, idle_s: float, max_runs: int, batch: int = 50):
    codec = Codec()
    chain = Chain(ProcessorsSettings(topic_prefix="e.", run_state_idle_s=idle_s, run_state_max_runs=max_runs),
                  codec, Redactor(b"k"), _book(), "e.fleet")
    chain.idle.clock = lambda: (T0 + 10 * 24 * 3600 * S) / S  # the processing clock: after the fleet
    store = Store()
    offsets = [0] * PARTS
    alerts, stops = {}, set()
    for i in range(0, len(fleet), batch):
        recs = []
        for p, e in fleet[i:i + batch]:
            recs.append(Redacted(e, InRecord("e.raw", p, offsets[p], None, None)))
            offsets[p] += 1
        for o in chain.detect(recs, store.get, store.put):
            if o.topic == "e.alerts":
                a = codec.decode_as(ALERT, o.value)
                alerts[a["alert_id"]] = (a["run_id"], a["alert_type"], a["title"])
            elif o.topic == "e.commands":
                stops.add(codec.decode_as(COMMAND, o.value)["command_id"])
    return chain, store, alerts, stops


@pytest.mark.parametrize("seed", range(4))
def test_the_state_of_runs_that_never_end_is_bounded(seed):
    fleet = _fleet(seed, 300)
    chain, store, _, _ = _replay(fleet, IDLE_S, 25)
    # each partition's watermark after each batch, and where it stood at a run's last event
    last, marks = {}, {}
    for i in range(0, len(fleet), 50):
        part = fleet[i:i + 50]
        for p, e in part:
            marks[p] = max(marks.get(p, 0), e["ts_us"])
        for p, e in part:
            last[(p, run_key("t", e["run_id"]))] = marks[p]
    per_part = [0] * PARTS
    for (p, k), v in store.d.items():
        per_part[p] += 1
        st = orjson.loads(v)
        if st["v"] == 2:  # a full state: its run had an event within the idle time
            assert marks[p] - last[(p, k)] <= IDLE_S * S, (p, k)
    assert max(per_part) <= 25
    crashed = {k for (p, k) in last if not any(e["kind"] == "RUN_END" and run_key("t", e["run_id"]) == k for _, e in fleet)}
    assert len(store.d) <= 25 * PARTS < len(crashed)  # without eviction every crashed run stays
    assert chain.idle.compacted > 0 and chain.idle.dropped > 0
    assert store.tombstones >= chain.idle.dropped - 3 * PARTS  # a drop deletes what was stored


@pytest.mark.parametrize("seed", range(8))
def test_a_resumed_run_raises_nothing_it_would_not_have(seed):
    fleet = _fleet(100 + seed)
    _, _, kept_alerts, kept_stops = _replay(fleet, 0, 0)
    assert kept_alerts  # the fleet trips every kind of rule
    for idle_s, max_runs in ((IDLE_S, 0), (IDLE_S, 10), (0, 6)):
        chain, _, alerts, stops = _replay(fleet, idle_s, max_runs)
        extra = {k: v for k, v in alerts.items() if k not in kept_alerts}
        assert extra == {}, (idle_s, max_runs)
        assert stops <= kept_stops
        if max_runs == 0:  # compacted, never dropped: budgets and approvals judged exactly
            assert chain.idle.compacted > 0
            missed = {v[1] for k, v in kept_alerts.items() if k not in alerts}
            assert missed <= {"loop"}, missed


def test_the_watermark_never_runs_ahead_of_the_clock():
    """One host whose clock runs hours ahead cannot age every other run of its partition."""
    idle = run_eviction.IdleRuns(600, 0, clock=lambda: T0 / S)
    idle.advance(0, T0)
    idle.seen(0, b"a")
    idle.advance(0, T0 + 5 * 3600 * S)  # a skewed host's event
    idle.seen(0, b"skewed")
    assert idle.due(0) == []
    assert idle.marks[0] == T0
    idle.clock = lambda: (T0 + 601 * S) / S
    idle.advance(0, T0 + 601 * S)  # both were last active when the partition stood at T0
    assert idle.due(0) == [(b"a", run_eviction.COMPACT), (b"skewed", run_eviction.COMPACT)]


def test_restored_runs_age_from_their_partitions_first_watermark_and_moved_ones_are_forgotten():
    idle = run_eviction.IdleRuns(600, 0, clock=lambda: 1e12)
    idle.adopt(1, [b"old1", b"old2"])
    idle.advance(1, T0)
    idle.seen(1, b"new")
    idle.advance(1, T0 + 300 * S)
    idle.seen(1, b"old2")  # resumed
    idle.advance(1, T0 + 700 * S)
    assert idle.due(1) == [(b"old1", run_eviction.COMPACT), (b"new", run_eviction.COMPACT)]
    idle.drop([1])
    assert idle.tracked(1) == 0 and idle.due(1) == []


def test_a_residue_is_made_whole_again_with_its_totals():
    st = runs.new_state()
    budgets = {"run_max_steps": 5, "hard_limit": True, "warn_fraction": 0}
    for i in range(4):
        runs.observe(st, syn.step("t", "r", i, args_digest=f"d{i}", ts_us=T0 + i * S), {}, budgets)
    left = runs.residue(st)
    assert left is not None and left["v"] == 0 and "win" not in left and runs.residue(left) is None
    found = []
    for i in range(4, 7):
        found += runs.observe(left, syn.step("t", "r", i, args_digest=f"d{i}", ts_us=T0 + i * 3600 * S), {}, budgets)
    assert [(f.alert_type, f.evidence["used"]) for f in found] == [("budget_breach", "6")]
