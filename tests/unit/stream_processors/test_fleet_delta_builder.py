"""The chain's fleet deltas (``fleet.DeltaBuilder``) are the very bytes the per-event primitives
(``new_delta``, ``add_active``, ``add_spend``, ``drift_sample`` + ``drift.add_*``) build: the
reference below is the chain's per-event builder as it was before the per-batch memos, run on
generated batches that include the awkward cases (keys that format alike, a run ending twice,
steps after their run's end, handoffs, missing payloads, hours crossed, several sources)."""
from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from agentstream.stream_processors.detectors import drift, fleet

HOUR = fleet.HOUR_US


def reference(batch: list[tuple[dict[str, Any], str, int, int]]) -> dict[str, bytes]:
    deltas: dict[str, dict[str, Any]] = {}
    for e, topic, partition, offset in batch:
        kind = e["kind"]
        if kind not in ("STEP", "RUN_START", "RUN_END"):
            continue
        p = e.get("payload") or {}
        tenant = e["tenant_id"]
        d = deltas.get(tenant)
        if d is None:
            d = deltas[tenant] = fleet.new_delta(tenant)
            d["src"] = {}
        d["src"][f"{topic}|{partition}"] = offset
        ts, agent, version, run_id = e["ts_us"], e["agent_id"], e["agent_version"], e["run_id"]
        if kind == "RUN_START":
            fleet.add_active(d, run_id, agent, ts)
            d.setdefault("links", []).append([run_id, e.get("parent_run_id"), agent, "", ts])
        elif kind == "RUN_END":
            d["ended"].append(run_id)
            d["active"].pop(run_id, None)
            drift.add_run(fleet.drift_sample(d, agent, version, ts), p.get("status") != "SUCCESS",
                          float(p.get("duration_ms") or 0.0), float(p.get("cost_usd") or 0.0),
                          int(p.get("step_count") or 0))
        else:
            handoff = p.get("handoff")
            if handoff and handoff.get("to_run_id"):
                d.setdefault("links", []).append([handoff["to_run_id"], run_id, handoff.get("to_agent_id") or "",
                                                  agent, ts])
            llm = p.get("llm")
            if llm and llm.get("cost_usd"):
                fleet.add_spend(d, agent, ts, float(llm["cost_usd"]))
            drift.add_step(fleet.drift_sample(d, agent, version, ts), p.get("name") or "step",
                           float(p.get("latency_ms") or 0.0))
            if run_id not in d["ended"]:
                fleet.add_active(d, run_id, agent, ts)
    return {t: orjson.dumps(d) for t, d in deltas.items()}


def built(batch: list[tuple[dict[str, Any], str, int, int]]) -> dict[str, bytes]:
    deltas: dict[str, fleet.DeltaBuilder] = {}
    for e, topic, partition, offset in batch:
        if e["kind"] in fleet.FLEET_KINDS:
            b = deltas.get(e["tenant_id"])
            if b is None:
                b = deltas[e["tenant_id"]] = fleet.DeltaBuilder(e["tenant_id"])
            b.add(e, topic, partition, offset)
    return {t: orjson.dumps(b.finish()) for t, b in deltas.items()}


# (agent, version) pairs whose "agent|version" keys coincide, and agents whose spend keys could.
AGENTS = [("a|b", "c"), ("a", "b|c"), ("planner", "1.0"), ("planner", "1.1"), ("x|1", "v")]


def event(rng: random.Random, run: int, t0: int) -> dict[str, Any]:
    kind = rng.choice(["RUN_START", "STEP", "STEP", "STEP", "RUN_END", "DECISION", "RUN_END"])
    agent, version = rng.choice(AGENTS)
    payload: dict[str, Any] | None
    if kind == "STEP":
        payload = {"name": rng.choice(["search", "chat", None]), "latency_ms": rng.choice([0.5, 12.0, 3e4, None]),
                   "llm": rng.choice([None, {"cost_usd": 0.0}, {"cost_usd": rng.random() / 100}]),
                   "handoff": rng.choice([None, {"to_run_id": None}, {"to_run_id": f"r{run}c", "to_agent_id": None},
                                          {"to_run_id": f"r{run}d", "to_agent_id": "helper"}])}
    elif kind == "RUN_END":
        payload = {"status": rng.choice(["SUCCESS", "ERROR", None]), "duration_ms": rng.choice([None, 900.0]),
                   "cost_usd": rng.choice([None, 0.0, 0.02]), "step_count": rng.choice([None, 0, 7])}
    else:
        payload = rng.choice([None, {}])
    return {"tenant_id": rng.choice(["t1", "t2"]), "agent_id": agent, "agent_version": version,
            "run_id": f"r{run}", "parent_run_id": rng.choice([None, "root"]), "kind": kind,
            "ts_us": t0 + rng.randrange(0, 3 * HOUR), "payload": payload}


@pytest.mark.parametrize("seed", range(40))
def test_the_builder_gives_the_reference_bytes(seed: int) -> None:
    rng = random.Random(seed)
    t0 = 1_800_000_000_000_000
    batch = [(event(rng, rng.randrange(12), t0), rng.choice(["raw", "raw|x"]), rng.randrange(3), off)
             for off in range(rng.randrange(1, 300))]
    assert built(batch) == reference(batch)


def test_a_step_after_its_runs_end_in_the_batch_does_not_make_it_active_again() -> None:
    e = {"tenant_id": "t", "agent_id": "a", "agent_version": "1", "run_id": "r", "ts_us": 5 * HOUR,
         "payload": {"name": "s", "latency_ms": 3.0}}
    b = fleet.DeltaBuilder("t")
    for kind in ("RUN_START", "STEP", "RUN_END", "STEP"):
        b.add({**e, "kind": kind}, "raw", 0, 1)
    d = b.finish()
    assert d["active"] == {} and d["ended"] == ["r"] and d["ts_us"] == 5 * HOUR
    assert d["drift"]["a|1|5"]["n"] == 1 and d["drift"]["a|1|5"]["step_lat"]["s"]
