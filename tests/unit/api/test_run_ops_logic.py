"""The pure parts of run operations: step alignment, explain rules, pseudonyms, OTLP mapping."""
from __future__ import annotations

import json
import random

import pytest

from agentstream.api.store import diff as diff_mod
from agentstream.api.store.anonymize import Pseudonymizer, anonymize_detail
from agentstream.api.store.diff import align, diff_runs
from agentstream.api.store.explain import explain_run
from agentstream.api.store.otlp_export import run_to_otlp


def _step(seq, name, kind="TOOL", digest="d1", status="OK", latency=10.0, attempt=1, retry_of="",
          parent="", step_id=None, cost=0.0, tokens=0):
    sid = step_id or f"s{seq}"
    llm = ({"provider": "p", "request_model": digest, "input_tokens": tokens, "output_tokens": 0,
            "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": cost} if kind == "LLM" else None)
    return {"seq": seq, "event_id": f"e{seq}", "step_id": sid, "step_kind": kind, "name": name,
            "status": status, "parent_step_id": parent, "started_us": 1_000_000 + seq * 100_000,
            "ts_us": 1_000_000 + seq * 100_000 + int(latency * 1000), "latency_ms": latency,
            "attempt": attempt, "retry_of": retry_of, "llm": llm,
            "tool": {"tool_name": name, "args_digest": digest} if kind == "TOOL" else None,
            "details": {}, "attributes": {}}


def _detail(steps, status="SUCCESS", run_id="r", failures=(), duration=None, outcome="completed"):
    run = {"run_id": run_id, "agent_id": "ag", "agent_version": "v1", "environment": "prod",
           "session_id": "", "parent_run_id": "", "entrypoint": "main", "status": status,
           "outcome": outcome, "started_us": 1_000_000, "last_us": 9_000_000,
           "duration_ms": duration if duration is not None else 8000.0, "event_count": len(steps),
           "step_count": len(steps), "llm_calls": 0, "tool_calls": len(steps),
           "retry_count": sum(s["attempt"] > 1 for s in steps), "failure_count": len(failures),
           "input_tokens": sum((s["llm"] or {}).get("input_tokens", 0) for s in steps),
           "output_tokens": 0, "cost_usd": sum((s["llm"] or {}).get("cost_usd", 0.0) for s in steps)}
    return {"run": run, "steps": steps, "failures": list(failures), "decisions": [], "signals": [],
            "other_events": []}


# ---- alignment --------------------------------------------------------------------------------

def test_an_inserted_step_shifts_nothing_after_it():
    a = [("TOOL", n, "d") for n in "abcdef"]
    b = a[:2] + [("TOOL", "x", "d")] + a[2:]
    pairs = align(a, b)
    assert (None, 2) in pairs
    assert all(i == j for i, j in pairs if i is not None and j is not None and j < 2)
    assert all(j == i + 1 for i, j in pairs if i is not None and i >= 2)


def test_same_tool_other_arguments_is_a_change_not_remove_plus_insert():
    a = _detail([_step(0, "plan", "PLAN"), _step(1, "search", digest="q1"), _step(2, "reply", "RESPOND")])
    b = _detail([_step(0, "plan", "PLAN"), _step(1, "search", digest="q2", status="ERROR"),
                 _step(2, "reply", "RESPOND")])
    d = diff_runs(a, b)
    assert [o["op"] for o in d["ops"]] == ["same", "changed", "same"]
    assert d["ops"][1]["changes"] == ["arguments", "status"] and d["first_divergence"] == 1


def test_exact_match_is_preferred_over_a_similar_one():
    # b repeats 'search' with the old arguments after a new call: the old call pairs exactly
    a = _detail([_step(0, "search", digest="q1")])
    b = _detail([_step(0, "search", digest="q9"), _step(1, "search", digest="q1")])
    ops = diff_runs(a, b)["ops"]
    assert [o["op"] for o in ops] == ["inserted", "same"]


def test_different_kinds_never_pair():
    a = _detail([_step(0, "x", "TOOL")])
    b = _detail([_step(0, "x", "RETRIEVAL")])
    assert [o["op"] for o in diff_runs(a, b)["ops"]] == ["removed", "inserted"]


def test_deltas_sum_to_the_step_totals():
    a = _detail([_step(0, "m", "LLM", "gpt", latency=100, cost=0.01, tokens=10),
                 _step(1, "t", latency=50)])
    b = _detail([_step(0, "m", "LLM", "gpt", latency=130, cost=0.03, tokens=25)])
    d = diff_runs(a, b)
    assert d["ops"][0]["delta"] == {"latency_ms": 30, "tokens": 15, "cost_usd": 0.02}
    assert d["ops"][1]["op"] == "removed" and d["ops"][1]["delta"]["latency_ms"] == -50
    assert d["total_delta"]["steps"] == -1 and d["total_delta"]["cost_usd"] == pytest.approx(0.02)


@pytest.mark.parametrize("seed", range(5))
def test_alignment_is_a_valid_alignment_on_random_runs(seed, monkeypatch):
    rnd = random.Random(seed)
    names = ["a", "b", "c", "d"]
    a = [("TOOL", rnd.choice(names), rnd.choice("xy")) for _ in range(rnd.randint(0, 40))]
    b = [("TOOL", rnd.choice(names), rnd.choice("xy")) for _ in range(rnd.randint(0, 40))]
    for cells in (diff_mod.MAX_CELLS, 10):  # the DP and the bounded fallback
        monkeypatch.setattr(diff_mod, "MAX_CELLS", cells)
        pairs = align(a, b)
        assert [i for i, _ in pairs if i is not None] == list(range(len(a)))
        assert [j for _, j in pairs if j is not None] == list(range(len(b)))
        assert all(a[i][:2] == b[j][:2] for i, j in pairs if i is not None and j is not None)


def test_alignment_matches_as_many_exact_steps_as_an_lcs():
    import difflib

    rnd = random.Random(7)
    a = [("TOOL", rnd.choice("abc"), "") for _ in range(60)]
    b = [("TOOL", rnd.choice("abc"), "") for _ in range(60)]
    matched = sum(1 for i, j in align(a, b) if i is not None and j is not None)
    # difflib's blocks are a lower bound on the longest common subsequence the DP finds
    lower = sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    assert matched >= lower


# ---- explain rules ------------------------------------------------------------------------------

def test_explain_is_deterministic_and_names_the_root_failure():
    steps = [_step(0, "outer", "CUSTOM", status="ERROR", step_id="o", latency=300),
             _step(1, "fetch", status="ERROR", parent="o", step_id="f1", latency=100),
             _step(2, "fetch", status="OK", parent="o", step_id="f2", attempt=2, retry_of="f1", latency=120)]
    failures = [{"seq": 3, "event_id": "x", "ts_us": 1_300_000, "failure_type": "TOOL",
                 "failure_code": "http_500", "step_id": "f1", "details": {}}]
    d = _detail(steps, status="FAILURE", failures=failures)
    one, two = explain_run(d), explain_run(json.loads(json.dumps(d)))
    assert one == two
    assert one["failure"]["root"]["step_id"] == "f1"
    assert [c["step_id"] for c in one["failure"]["chain"]] == ["f1", "o"]
    assert one["retries"][0]["recovered"] and one["retries"][0]["retried_ms"] == 100
    assert any("tried 2 times after TOOL:http_500 then succeeded" in s for s in one["summary"])
    # own time: the outer step's 300 ms minus its children's 220 ms
    assert {k["step_kind"]: k["ms"] for k in one["time"]["by_kind"]} == {"TOOL": 220, "CUSTOM": 80}


def test_explain_of_a_running_run_and_an_empty_one():
    d = _detail([], status="RUNNING", duration=None)
    d["run"]["duration_ms"] = None
    out = explain_run(d)
    assert out["summary"][0].endswith("$0.0000.") and "still running" in out["summary"][0]
    assert out["failure"]["root"] is None and out["retries"] == []


def test_explain_says_who_stopped_a_run():
    d = _detail([_step(0, "poll")], status="PARTIAL", outcome="stopped_by_command")
    alerts = [{"alert_type": "manual_stop", "title": "Stopped by hand by ann (key ops)",
               "evidence": {"actor": "ann", "reason": "runaway"}, "detected_us": 1_500_000}]
    out = explain_run(d, alerts)
    assert "It was stopped by a stop command." in out["summary"]
    assert out["enforcement"] == [{"source": "alert", "what": "manual_stop", "at_ms": 500.0,
                                   "detail": "Stopped by hand by ann (key ops) (by ann: runaway)"}]


# ---- pseudonyms and OTLP -----------------------------------------------------------------------

def test_pseudonyms_are_keyed_stable_and_per_namespace():
    p, q = Pseudonymizer(b"k" * 16), Pseudonymizer(b"j" * 16)
    assert p("run", "r1") == Pseudonymizer(b"k" * 16)("run", "r1") != q("run", "r1")
    assert p("run", "x") != p("agent", "x") and p("run", "") == ""
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def test_anonymize_keeps_only_known_fields():
    s = _step(0, "secret_tool", digest="abc")
    s["details"] = {"approval": {"decision": "approved", "approval_latency_ms": 5.0, "note": "PII"},
                    "content": {"preview": "hello alice@example.com"}, "brand_new": "x"}
    s["attributes"] = {"gen_ai.request.model": "m", "user.email": "alice@example.com"}
    d = _detail([s], failures=[{"seq": 1, "event_id": "e", "ts_us": 1, "failure_type": "TOOL",
                                "failure_code": "c", "step_id": "s0",
                                "details": {"message": "alice@example.com failed", "retryable": True}}])
    out = json.dumps(anonymize_detail(d, Pseudonymizer(b"k" * 16)))
    for leaked in ("secret_tool", "alice", "PII", "brand_new", "abc", "user.email"):
        assert leaked not in out
    assert '"approval_latency_ms": 5.0' in out and "gen_ai.request.model" in out


def test_otlp_ids_are_deterministic_and_well_formed():
    steps = [_step(0, "a", step_id="x"), _step(1, "b", parent="x", step_id="y")]
    one, two = run_to_otlp(_detail(steps)), run_to_otlp(_detail(steps))
    assert one == two
    spans = one["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert all(len(s["spanId"]) == 16 and len(s["traceId"]) == 32 for s in spans)
    assert spans[2]["parentSpanId"] == spans[1]["spanId"] and spans[1]["parentSpanId"] == spans[0]["spanId"]
    assert spans[0]["startTimeUnixNano"] == "1000000000"
    attrs = {a["key"]: a["value"] for a in spans[1]["attributes"]}
    assert attrs["gen_ai.tool.name"] == {"stringValue": "a"}
    assert attrs["agentstream.step.attempt"] == {"intValue": "1"}


def test_explain_and_diff_terminate_on_cyclic_links():
    # ids come from agents: a retry_of or parent cycle must not hang or recurse forever
    steps = [_step(0, "x", status="ERROR", step_id="a", retry_of="b", parent="b"),
             _step(1, "x", status="ERROR", step_id="b", retry_of="a", parent="a", attempt=2)]
    out = explain_run(_detail(steps, status="FAILURE"))
    assert out["failure"]["root"] is None or out["failure"]["root"]["step_id"] in {"a", "b"}
    assert len(out["failure"]["chain"]) <= 2
    assert diff_runs(_detail(steps), _detail(steps))["identical"]
    own = run_to_otlp(_detail([_step(0, "x", step_id="self", parent="self")]))
    assert own["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["parentSpanId"] == \
        own["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"]
    assert run_to_otlp(_detail(steps))["resourceSpans"]


def test_anonymized_otlp_keeps_no_original_identifier():
    s = _step(0, "charge_card", digest="4111111111111111")
    s["tool"]["tool_name"] = "charge_card"
    d = _detail([s], run_id="run-secret-123")
    d["run"].update(agent_id="billing-bot", session_id="sess-alice")
    d["other_events"] = [{"seq": 2, "event_id": "ev-9", "ts_us": 2, "kind": "COMMAND_ACK",
                          "details": {"command_id": "cmd-7", "command_type": "STOP", "status": "applied",
                                      "detail": "stopped by alice@example.com"}}]
    text = json.dumps(run_to_otlp(anonymize_detail(d, Pseudonymizer(b"k" * 16))))
    for leaked in ("run-secret-123", "billing-bot", "sess-alice", "charge_card", "4111111111111111",
                   "cmd-7", "ev-9", "alice"):
        assert leaked not in text, leaked
    assert '"STOP"' in text  # categorical metadata stays


KINDS = ["PLAN", "RETRIEVAL", "TOOL", "LLM", "RESPOND", "HANDOFF", "APPROVAL", "GUARDRAIL", "CUSTOM"]
STATUSES = ["OK", "OK", "OK", "ERROR", "TIMEOUT", "CANCELLED"]


def _random_detail(rng: random.Random, run_id: str):
    """Runs as odd as agents make them: empty and repeated step ids, dangling parents and retries,
    unicode names, approvals without decisions, failures on unknown steps, unfinished runs."""
    steps, ids = [], []
    for seq in range(rng.randint(0, 30)):
        kind = rng.choice(KINDS)
        sid = rng.choice(["", f"s{seq}", f"s{seq}", "dup"] + ids[-3:])
        s = _step(seq, rng.choice(["fetch", "plan", "naïve 名前", "", "a" * 300]), kind=kind,
                  digest=rng.choice(["", "d1", "d2"]), status=rng.choice(STATUSES),
                  latency=rng.choice([0.0, 0.5, 12.0, 1e7]), attempt=rng.randint(1, 4),
                  retry_of=rng.choice(["", "", "ghost"] + ids[-3:]),
                  parent=rng.choice(["", "", "ghost"] + ids[-3:]), step_id=sid,
                  cost=rng.random() / 10, tokens=rng.randint(0, 10_000))
        if kind == "APPROVAL" and rng.random() < 0.7:
            s["details"] = {"approval": {"decision": rng.choice(["approved", "rejected"]),
                                         "approval_latency_ms": rng.choice([0.0, 5.0, 1e6])}}
        steps.append(s)
        ids.append(sid)
    failures = [{"seq": 100 + k, "event_id": f"f{k}", "ts_us": 1_000_000 + k, "failure_type": "TOOL",
                 "failure_code": rng.choice(["timeout", "http_500"]),
                 "step_id": rng.choice(ids + ["", "ghost"]) if ids else "", "details": {"message": "secret"}}
                for k in range(rng.randint(0, 4))]
    d = _detail(steps, status=rng.choice(["SUCCESS", "FAILURE", "PARTIAL", "RUNNING"]), run_id=run_id,
                failures=failures, outcome=rng.choice(["completed", "stopped_by_command", ""]))
    if d["run"]["status"] == "RUNNING":
        d["run"]["duration_ms"] = None
    d["decisions"] = [{"seq": 200, "event_id": "dx", "ts_us": 1_000_001, "decision_type": "route",
                       "selected": "naïve 名前", "candidates": ["naïve 名前", "other"], "reason_code": "r",
                       "confidence": rng.choice([None, 0.5]), "step_id": rng.choice(ids + [""]) if ids else ""}]
    return d


@pytest.mark.parametrize("seed", range(40))
def test_every_operation_handles_odd_runs(seed):
    rng = random.Random(seed)
    a, b = _random_detail(rng, "run-a"), _random_detail(rng, "run-b")
    out = explain_run(a)
    assert out["summary"] and all(isinstance(x, str) for x in out["summary"])
    assert out["time"]["agent_ms"] >= 0 and out["time"]["human_wait_ms"] >= 0
    d = diff_runs(a, b)
    assert sum(d["counts"].values()) == len(d["ops"])
    assert [o["a"]["seq"] for o in d["ops"] if o["a"]] == sorted(s["seq"] for s in a["steps"])
    assert [o["b"]["seq"] for o in d["ops"] if o["b"]] == sorted(s["seq"] for s in b["steps"])
    spans = run_to_otlp(a)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    json.dumps(spans)  # serialisable, whatever the ids
    assert len({x["spanId"] for x in spans}) == len(spans) == len(a["steps"]) + 1
    assert {x["parentSpanId"] for x in spans[1:]} <= {x["spanId"] for x in spans}
    anon = json.dumps(anonymize_detail(a, Pseudonymizer(b"k" * 16)), ensure_ascii=False)
    assert "naïve 名前" not in anon and "secret" not in anon and "run-a" not in anon
