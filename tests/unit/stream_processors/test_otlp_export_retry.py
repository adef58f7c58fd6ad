"""An OTLP export retried after its 200 was lost counts once (detectors/redelivery.py).

Found end to end by a red-team: the gateway numbers each accepted export afresh (new, higher
seqs), so the retried spans passed the redelivery check, which knew events by (seq, ts_us): the
run's 3 legal ticket reads became 6 (a ``repeat`` loop) and its spend doubled past the budget,
with STOPs. A span keeps its id (the event's ``step_id``) and times in every attempt."""
from __future__ import annotations

import random
import uuid
from typing import Any

from agentstream.stream_processors.detectors import redelivery

from .test_run_detector_redelivery import Worker

T0 = 1_767_600_000_000_000


def _spans(rng: random.Random, run: str, reads: int, cost: float) -> list[dict[str, Any]]:
    """A run's spans as the gateway maps them (seq 0 here; the gateway numbers each export)."""
    out, t = [], T0 + rng.randint(0, 10**9)
    ticket = f"ticket-{rng.getrandbits(20)}"
    for _ in range(reads):
        for kind in ("TOOL", "LLM"):
            t += rng.randint(1_000, 5_000_000)
            p: dict[str, Any] = {"step_id": uuid.UUID(int=rng.getrandbits(128)).hex[:16], "step_kind": kind,
                                 "name": "get_ticket" if kind == "TOOL" else "chat", "status": "OK",
                                 "started_us": t - 100_000, "latency_ms": 100.0, "attempt": 1}
            if kind == "TOOL":
                p["tool"] = {"tool_name": "get_ticket", "args_digest": ticket}
            else:
                p["llm"] = {"provider": "openai", "request_model": "gpt-4o", "request_digest": None,
                            "input_tokens": 1000, "output_tokens": 100, "cost_usd": cost}
            out.append({"event_id": str(uuid.uuid4()), "tenant_id": "t", "agent_id": "a", "agent_version": "1",
                        "environment": "default", "run_id": run, "seq": 0, "ts_us": t, "emitted_us": t,
                        "sdk_version": "otlp:probe", "attributes": {}, "kind": "STEP", "payload": p})
    return out


def _export(spans: list[dict[str, Any]], next_seq: list[int]) -> list[dict[str, Any]]:
    """One accepted export: the gateway's seqs for it, after every earlier one's."""
    out = []
    for s in spans:
        e = dict(s, event_id=str(uuid.uuid4()), seq=next_seq[0])
        next_seq[0] += 1
        out.append(e)
    return out


def test_retried_exports_count_once():
    for seed in range(40):
        rng = random.Random(seed)
        run = f"trace-{seed}"
        reads = rng.randint(2, 5)  # within max_repeats (5)
        cost = 0.10
        spans = _spans(rng, run, reads, cost)
        seqs = [1]
        events = _export(spans, seqs)
        for _ in range(rng.randint(1, 3)):  # the exporter retries all, or part, of the batch
            part = spans if rng.random() < 0.5 else rng.sample(spans, rng.randint(1, len(spans)))
            events += _export(part, seqs)
        # spend exactly at the limit (decimal), twice over it if a retry counted
        w = Worker(budgets={"run_max_cost_usd": round(reads * cost, 2), "hard_limit": True})
        w.feed(events, batch=rng.choice([1, 5, 50]))
        found = [a["title"] for a in w.alerts if a["alert_type"] != "budget_warning"]  # (at 80 %: due)
        assert found == [] and w.commands == [], (seed, found)


def test_new_spans_still_count():
    rng = random.Random(7)
    spans = _spans(rng, "trace-x", 6, 0.10)  # 6 reads: one over max_repeats
    w = Worker().feed(_export(spans, [1]))
    assert "loop" in w.types()


def test_a_step_id_is_known_whatever_its_seq_and_others_keep_the_seq_fast_path():
    st: dict[str, Any] = {}
    e = {"kind": "STEP", "seq": 5, "ts_us": T0, "payload": {"step_id": "s1"}}
    assert redelivery.first_delivery(st, e)
    assert not redelivery.first_delivery(st, dict(e, seq=900))  # the gateway's new number
    assert redelivery.first_delivery(st, dict(e, ts_us=T0 + 1))  # another span time: another event
    assert redelivery.first_delivery(st, dict(e, kind="FAILURE"))  # the step's failure: another event
    plain = {"kind": "RUN_END", "seq": 901, "ts_us": T0, "payload": {}}
    assert redelivery.first_delivery(st, plain) and not redelivery.first_delivery(st, plain)
