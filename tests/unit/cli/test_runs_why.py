"""`agentstream runs why` on timelines built here: step lookup, decisions in scope and time,
retry chains, root cause and consequences, and data that would loop a naive walk."""
from __future__ import annotations

import pytest

from agentstream.cli.runs_why import StepNotFound, find, lines, why


def span(sid, seq, name, start, dur, parent="", status="OK", kind="TOOL", attempt=1, root=""):
    return {"span_id": sid, "parent_span_id": parent, "seq": seq, "kind": kind, "name": name, "status": status,
            "start_ms": start, "duration_ms": dur, "end_ms": start + dur, "depth": 0, "attempt": attempt,
            "retry_of": root, "retry_root": root, "retried": False, "is_wait": False}


def timeline(*spans):
    return {"run_id": "r1", "started_us": 1_000_000, "spans": [span("run", 0, "main", 0, 100, kind="RUN"), *spans]}


def decision(step_id, at_ms, selected="a", candidates=("a", "b")):
    return {"decision_type": "route", "selected": selected, "candidates": list(candidates), "reason_code": "why",
            "confidence": None, "step_id": step_id, "ts_us": 1_000_000 + int(at_ms * 1000)}


TL = timeline(span("outer", 1, "handle", 0, 90, status="ERROR", kind="CUSTOM"),
              span("t1", 2, "call", 10, 20, parent="outer", status="TIMEOUT"),
              span("t2", 3, "call", 35, 20, parent="outer", status="TIMEOUT", attempt=2, root="t1"),
              span("other", 4, "elsewhere", 60, 5))
DETAIL = {"decisions": [decision("", 5), decision("outer", 8, "c", ["c"]), decision("other", 9), decision("", 40)],
          "failures": [{"step_id": "t1", "failure_type": "TOOL", "failure_code": "timeout"},
                       {"step_id": "t2", "failure_type": "TOOL", "failure_code": "timeout"}]}


def test_decisions_in_its_scope_and_before_it_only():
    doc = why(TL, DETAIL, "t2")
    # the run's decision at 5 ms and handle's at 8 ms; not the one in a sibling step, not the later one
    assert [(d["selected"], d["at_ms"]) for d in doc["decided_before"]] == [("a", 5.0), ("c", 8.0)]
    assert doc["decided_before"][1]["candidates"] == []  # the chosen option is not an alternative
    assert [a["span_id"] for a in doc["attempts"]] == ["t1", "t2"]
    assert [c["span_id"] for c in doc["caused"]] == ["outer"]
    assert [p["span_id"] for p in doc["inside"]] == ["outer"]


def test_root_cause_inside_and_lookups():
    assert why(TL, DETAIL, "outer")["root_cause_inside"]["span_id"] == "t1"
    assert find(TL["spans"], "#3")["span_id"] == "t2"
    assert find(TL["spans"], "call")["span_id"] == "t2"  # a name: its last attempt
    with pytest.raises(StepNotFound):
        find(TL["spans"], "#99")
    with pytest.raises(StepNotFound):
        why(TL, DETAIL, "main")  # the run itself is not a step


def test_a_healthy_step_has_no_failure_story():
    doc = why(TL, DETAIL, "other")
    assert doc["attempts"] == [] and doc["caused"] == [] and doc["root_cause_inside"] is None
    text = "\n".join(lines(doc))
    assert "It ran at the top of the run." in text and "carried up" not in text


def test_parent_links_that_loop_end_the_walk():
    tl = timeline(span("a", 1, "a", 0, 10, parent="b"), span("b", 2, "b", 0, 10, parent="a", status="ERROR"))
    doc = why(tl, {}, "a")
    assert [p["span_id"] for p in doc["inside"]] == ["b"]
    assert [s["span_id"] for s in why(tl, {}, "b")["inside"]] == ["a"]
    assert why(tl, {}, "b")["root_cause_inside"] is None  # b is not inside itself
    lines(doc)
