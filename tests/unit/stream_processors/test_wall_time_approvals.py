"""The run wall-time budget (``run_max_wall_s``) is the run's own time: event time since its first
event less its approval waits (docs/processors.md, Run budgets).

Found by an adversarial probe: a run with a 10-minute budget that waited 20 minutes for a human
to approve a refund got a ``budget_breach`` (and, with ``hard_limit``, a STOP) at the approval,
after two minutes of work. The rule: an APPROVAL step's ``approval_latency_ms`` is taken off,
but only back to the run's previous event (a wait that overlaps the run's own events, or a
claimed wait longer than the run's quiet time, hides none of its work).

Runs are generated from seeds (limits, work, waits, claims), through ``runs.observe`` and
through ``Chain.process`` on encoded records (the hot path's field reader).
"""
from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from agentstream.schemas import ALERT, EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.detectors import drift, runs
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

T0 = 1_767_600_000_000_000
S = 1_000_000


def _budgets(limit_s: float) -> dict[str, Any]:
    return {"run_max_wall_s": limit_s, "hard_limit": True, "warn_fraction": 0.8}


def _run(rng: random.Random, run_id: str, limit_s: float, work_share: float, claims: float = 0.0
         ) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """Events of one run and the seqs at which its own time first reaches 80 % of the limit and
    first goes over it (None: never). ``claims``: the chance an approval claims a wait longer
    than the run was quiet."""
    events = [syn.run_start("t", run_id, ts_us=T0)]
    t, active, seq = T0, 0.0, 1
    warn_at = breach_at = None
    budget = work_share * limit_s
    first_approval = rng.randint(1, 4)
    while active < budget or seq <= first_approval:
        if seq == first_approval or rng.random() < 0.2:  # an approval: a little work to ask, then the human's wait
            ask = rng.uniform(0.1, 5.0)
            wait = rng.uniform(0.5, 5.0) * limit_s
            t += int((ask + wait) * S)
            claimed = wait * rng.uniform(2, 50) if rng.random() < claims else wait
            # taken off back to the previous event at most: an inflated claim hides the asking
            active += ask - (min(claimed, ask + wait) - wait)
            e = syn.step("t", run_id, seq, name="approve refund", step_kind="APPROVAL", latency_ms=0.0, ts_us=t)
            e["payload"]["approval"] = {"action_digest": f"a{seq}", "decision": "approved",
                                        "approval_latency_ms": claimed * 1000}
        else:
            work = rng.uniform(0.2, 0.12 * limit_s)
            t += int(work * S)
            active += work
            e = syn.step("t", run_id, seq, name=rng.choice(["search", "fetch"]), args_digest=f"d{seq}",
                         latency_ms=work * 500, ts_us=t)
        events.append(e)
        if warn_at is None and active >= 0.8 * limit_s:
            warn_at = seq
        if breach_at is None and active > limit_s:
            breach_at = seq
        seq += 1
    return events, warn_at, breach_at


def _wall_findings(events: list[dict[str, Any]], budgets: dict[str, Any]) -> list[tuple[str, int]]:
    st = runs.new_state()
    out = []
    for e in events:
        out += [(f.alert_type, e["seq"]) for f in runs.observe(st, e, {}, budgets) if f.evidence.get("metric") == "wall_s"]
    return out


@pytest.mark.parametrize("seed", range(40))
def test_approval_waits_are_not_run_time(seed):
    rng = random.Random(seed)
    limit = rng.choice([60.0, 600.0, 3600.0])
    events, warn_at, breach_at = _run(rng, f"r{seed}", limit, rng.uniform(0.2, 0.75))
    assert warn_at is None and breach_at is None
    assert (events[-1]["ts_us"] - T0) / S > limit  # elapsed, waits included, is over the limit
    assert _wall_findings(events, _budgets(limit)) == []


@pytest.mark.parametrize("seed", range(40))
def test_a_run_over_its_own_time_is_still_breached_at_the_step_that_goes_over(seed):
    rng = random.Random(500 + seed)
    limit = rng.choice([60.0, 600.0, 3600.0])
    events, warn_at, breach_at = _run(rng, f"r{seed}", limit, rng.uniform(1.2, 2.5), claims=0.5)
    assert breach_at is not None
    assert _wall_findings(events, _budgets(limit)) == [("budget_warning", warn_at), ("budget_breach", breach_at)]


def test_a_wait_overlapping_the_runs_own_events_hides_none_of_them():
    """Steps of another thread end during the wait: the wait counts only back to the last."""
    events = [syn.run_start("t", "r", ts_us=T0)]
    for i in range(1, 11):  # 10 steps, one a minute, while the approval is pending
        events.append(syn.step("t", "r", i, name="worker", args_digest=f"d{i}", ts_us=T0 + i * 60 * S))
    e = syn.step("t", "r", 11, name="approve", step_kind="APPROVAL", latency_ms=0.0, ts_us=T0 + 601 * S)
    e["payload"]["approval"] = {"action_digest": "a", "decision": "approved", "approval_latency_ms": 601_000.0}
    events.append(e)
    events.append(syn.step("t", "r", 12, name="refund", args_digest="a", ts_us=T0 + 700 * S))
    # 700 s elapsed, 1 s of it a quiet wait: over a 600 s budget
    assert ("budget_breach", 12) in _wall_findings(events, _budgets(600.0))


def _chain_alerts(events: list[dict[str, Any]], budgets: dict[str, Any]) -> list[dict[str, Any]]:
    codec = Codec()
    book = PolicyBook()
    book.set(TenantPolicy("t", budgets=budgets))
    chain = Chain(ProcessorsSettings(topic_prefix="w."), codec, Redactor(b"k"), book, "w.fleet")
    state: dict = {}
    out = chain.process([InRecord("w.raw", 0, n, e["run_id"].encode(), codec.encode(EVENT, e))
                         for n, e in enumerate(events)],
                        lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    return [codec.decode_as(ALERT, o.value) for o in out if o.topic == "w.alerts"]


@pytest.mark.parametrize("seed", range(6))
def test_the_hot_path_reads_the_wait(seed):
    """Encoded records through the chain (the field reader, not a full decode)."""
    rng = random.Random(900 + seed)
    limit = rng.choice([60.0, 600.0])
    events, _, _ = _run(rng, f"hot{seed}", limit, rng.uniform(0.2, 0.75))
    alerts = _chain_alerts(events, {"run_max_wall_s": limit, "hard_limit": True, "warn_fraction": 0.8})
    assert [a for a in alerts if a["evidence"].get("metric") == "wall_s"] == []


def _fleet_latencies(events: list[dict[str, Any]]) -> dict[str, int]:
    codec = Codec()
    chain = Chain(ProcessorsSettings(topic_prefix="w."), codec, Redactor(b"k"), PolicyBook(), "w.fleet")
    state: dict = {}
    out = chain.process([InRecord("w.raw", 0, n, e["run_id"].encode(), codec.encode(EVENT, e))
                         for n, e in enumerate(events)],
                        lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    lat: dict[str, int] = {}
    for o in out:
        if o.topic == "w.fleet":
            for sample in orjson.loads(o.value)["drift"].values():
                for b, n in sample["lat"].items():
                    lat[b] = lat.get(b, 0) + n
    return lat


@pytest.mark.parametrize("seed", range(8))
def test_a_runs_approval_waits_are_not_its_latency_for_drift(seed):
    """A version whose approvers are slower is not a latency regression: the drift sample of a
    run that waited for a human holds its own time, as its wall-time budget does."""
    rng = random.Random(1300 + seed)
    events, ends = [], []
    for i in range(6):
        run_id = f"d{seed}-{i}"
        t = T0 + i * 7200 * S
        events.append(syn.run_start("t", run_id, ts_us=t))
        own = 0.0
        for seq in range(1, rng.randint(3, 8)):
            if seq == 2:
                wait = rng.uniform(600, 5400)  # 10 to 90 minutes for the human
                t += int(wait * S)
                e = syn.step("t", run_id, seq, name="approve", step_kind="APPROVAL", latency_ms=0.0, ts_us=t)
                e["payload"]["approval"] = {"action_digest": f"a{seq}", "decision": "approved",
                                            "approval_latency_ms": wait * 1000}
            else:
                work = rng.uniform(0.5, 20.0)
                t += int(work * S)
                own += work
                e = syn.step("t", run_id, seq, name="search", args_digest=f"{run_id}{seq}", latency_ms=work * 1000,
                             ts_us=t)
            events.append(e)
        events.append(syn.run_end("t", run_id, seq + 1, duration_ms=(t - (T0 + i * 7200 * S)) / 1000, ts_us=t))
        ends.append(own * 1000)
    expected: dict[str, int] = {}
    for ms in ends:
        b = drift.lat_bucket(ms)
        expected[b] = expected.get(b, 0) + 1
    assert _fleet_latencies(events) == expected
