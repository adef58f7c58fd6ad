"""Per-run governance (tool rules, binding approvals): hand-written attacks, then generated runs
checked against an independent reference model of the rules."""
from __future__ import annotations

import random
from fnmatch import fnmatchcase

import pytest

from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import governance
from agentstream.stream_processors.policies import GOVERNANCE_DEFAULTS, TenantPolicy, governance_of


def gov(**kw):
    return governance_of(kw, strict=True)


def tool(seq, name="search", digest="d0", **kw):
    return syn.step("t", "r", seq, name=name, args_digest=digest, **kw)


def approval(seq, digest, decision="approved"):
    e = syn.step("t", "r", seq, name="approve", step_kind="APPROVAL", args_digest=None)
    e["payload"]["approval"] = {"action_digest": digest, "decision": decision, "approval_latency_ms": 5.0}
    return e


def llm(seq):
    return syn.step("t", "r", seq, name="chat", step_kind="LLM", llm={"request_digest": f"q{seq}"})


def observe(events, g):
    st, out = governance.new_state(), []
    for e in events:
        out += [(e["seq"], f) for f in governance.observe(st, e, g)]
    return out


def rules(found):
    return [(seq, f.evidence["rule"]) for seq, f in found]


def test_deny_wins_over_allow_with_patterns_and_one_alert_per_tool():
    g = gov(tool_allow=["fs_*", "search"], tool_deny=["fs_delete*"])
    found = observe([tool(1, "fs_read"), tool(2, "fs_delete_tree"), tool(3, "fs_delete_tree"),
                     tool(4, "search"), tool(5, "shell")], g)
    assert rules(found) == [(2, "tool_denied"), (5, "tool_not_allowed")]
    assert all(f.stop and f.severity == "CRITICAL" and f.alert_type == "policy_violation" for _, f in found)
    assert found[0][1].evidence["tool"] == "fs_delete_tree"


def test_a_rule_outside_stop_on_alerts_without_stopping():
    found = observe([tool(1, "shell")], gov(tool_deny=["shell"], stop_on=[]))
    assert [(f.severity, f.stop) for _, f in found] == [("WARNING", False)]


def test_max_calls_exactly_at_the_limit_is_silent_and_the_strictest_pattern_applies():
    g = gov(max_calls_per_tool={"*": 10, "search": 3})
    assert observe([tool(i) for i in range(1, 4)], g) == []
    found = observe([tool(i) for i in range(1, 7)], g)
    assert rules(found) == [(4, "max_tool_calls")]
    assert found[0][1].evidence["limit"] == "3" and not found[0][1].stop  # not in the default stop_on
    # per tool, not over all tools: ten different tools twice each stay under "*": 10
    assert observe([tool(i, f"t{i % 10}") for i in range(20)], g) == []
    # retries are calls too (the tool runs again)
    assert rules(observe([tool(1), tool(2, attempt=2), tool(3, attempt=3), tool(4, attempt=4)], g)) == \
        [(4, "max_tool_calls")]


def test_forbidden_digest_whatever_the_tool_once_per_tool_and_digest():
    g = gov(forbidden_arg_digests=["bad1", "bad2"])
    found = observe([tool(1, "a", "ok"), tool(2, "a", "bad1"), tool(3, "b", "bad1"), tool(4, "a", "bad1"),
                     tool(5, "a", "bad2")], g)
    assert rules(found) == [(2, "forbidden_args"), (3, "forbidden_args"), (5, "forbidden_args")]


def test_approved_action_with_the_same_digest_runs_silently_even_after_an_llm_turn():
    g = gov(require_approval=["pay"])
    assert observe([approval(1, "x"), llm(2), tool(3, "pay", "x")], g) == []


@pytest.mark.parametrize("digest", ["y", None])
def test_approved_action_swapped_or_unprovable_is_critical_and_stops(digest):
    found = observe([approval(1, "x"), tool(2, "pay", digest)], gov())
    assert rules(found) == [(2, "approval_mismatch")]
    f = found[0][1]
    assert f.alert_type == "approval_violation" and f.severity == "CRITICAL" and f.stop
    assert f.evidence["approved_digest"] == "x" and f.evidence["approval_seq"] == "1"


@pytest.mark.parametrize("decision", ["rejected", "expired"])
def test_a_rejected_action_that_runs_anyway_stops_the_run(decision):
    assert rules(observe([approval(1, "x", decision), tool(2, "any", "x")], gov())) == \
        [(2, "approval_rejected_executed")]
    # a different action after a rejection is judged on its own (not required here: silent)
    assert observe([approval(1, "x", decision), tool(2, "any", "other")], gov()) == []


def test_required_approval_missing_and_an_approval_binds_one_call_only():
    g = gov(require_approval=["pay*"])
    assert rules(observe([tool(1, "payout", "x")], g)) == [(1, "approval_missing")]
    found = observe([approval(1, "x"), tool(2, "pay", "x"), tool(3, "pay", "x")], g)
    assert rules(found) == [(3, "approval_missing")]  # the approval was used by step 2
    found = observe([approval(1, "x", "rejected"), tool(2, "pay", "z")], g)
    assert rules(found) == [(2, "approval_missing")]
    # each unapproved call is its own incident
    assert rules(observe([tool(1, "pay", "a"), tool(2, "pay", "b")], g)) == \
        [(1, "approval_missing"), (2, "approval_missing")]


def test_a_retry_of_an_approved_call_is_covered_but_not_with_other_arguments():
    g = gov(require_approval=["pay"])
    first = tool(2, "pay", "x", status="ERROR")
    retry = tool(3, "pay", "x", attempt=2)
    retry["payload"]["retry_of"] = first["payload"]["step_id"]
    assert observe([approval(1, "x"), first, retry], g) == []
    swapped = tool(3, "pay", "evil", attempt=2)
    swapped["payload"]["retry_of"] = first["payload"]["step_id"]
    assert rules(observe([approval(1, "x"), first, swapped], g)) == [(3, "approval_missing")]


def test_non_tool_events_and_default_policy_are_silent():
    events = [syn.run_start("t", "r"), llm(1), tool(2, "anything", "d"), tool(3, "anything", None),
              syn.run_end("t", "r", 4)]
    assert observe(events, governance_of(None)) == []


def test_writers_refuse_unknown_stop_rules_but_the_read_path_never_raises():
    with pytest.raises(ValueError, match="stop_on"):
        governance_of({"stop_on": ["tool_deny"]}, strict=True)
    assert governance_of({"stop_on": ["tool_deny", "forbidden_args"]})["stop_on"] == ["forbidden_args"]
    p = TenantPolicy.from_record({"tenant_id": "t", "governance": {"tool_deny": ["x"]}})
    assert p.governance["tool_deny"] == ["x"] and p.governance["max_handoff_cycles"] == 1


# ---- generated runs against a reference model ------------------------------------------------

def reference(events, g):
    """The rules as the docs state them, written independently of the detector."""
    out, raised, calls, pending, ok = [], set(), {}, None, {}

    def hit(seq, key, rule):
        if key not in raised:
            raised.add(key)
            out.append((seq, rule))

    for e in events:
        p = e["payload"]
        if p["step_kind"] == "APPROVAL":
            pending = (p["approval"]["action_digest"], p["approval"]["decision"])
            continue
        if p["step_kind"] != "TOOL":
            continue
        name, d, sid = p["tool"]["tool_name"], p["tool"]["args_digest"], p["step_id"]
        if any(fnmatchcase(name, x) for x in g["tool_deny"]):
            hit(e["seq"], ("deny", name), "tool_denied")
        elif g["tool_allow"] and not any(fnmatchcase(name, x) for x in g["tool_allow"]):
            hit(e["seq"], ("allow", name), "tool_not_allowed")
        calls[name] = calls.get(name, 0) + 1
        lims = [v for k, v in g["max_calls_per_tool"].items() if fnmatchcase(name, k)]
        if lims and calls[name] > min(lims):
            hit(e["seq"], ("max", name), "max_tool_calls")
        if d in g["forbidden_arg_digests"]:
            hit(e["seq"], ("forbid", name, d), "forbidden_args")
        was, pending = pending, None
        if was and was[1] == "approved":
            if d is not None and d == was[0]:
                ok[sid] = d
            else:
                out.append((e["seq"], "approval_mismatch"))
            continue
        if was and d is not None and d == was[0]:
            out.append((e["seq"], "approval_rejected_executed"))
            continue
        if any(fnmatchcase(name, x) for x in g["require_approval"]):
            r = p.get("retry_of")
            if r and d is not None and ok.get(r) == d:
                ok[sid] = d
            else:
                out.append((e["seq"], "approval_missing"))
    return out


def generated_run(rng):
    tools, digests = ["search", "pay", "payout", "fs_read", "fs_rm", "shell"], ["a", "b", "c", None]
    events, last_tool = [], None
    for seq in range(1, rng.randint(1, 40)):
        r = rng.random()
        if r < 0.2:
            events.append(approval(seq, rng.choice(digests[:3]), rng.choice(["approved", "approved", "rejected"])))
        elif r < 0.3:
            events.append(llm(seq))
        else:
            e = tool(seq, rng.choice(tools), rng.choice(digests))
            if last_tool and rng.random() < 0.2:
                e["payload"]["retry_of"] = last_tool["payload"]["step_id"]
                e["payload"]["tool"]["args_digest"] = rng.choice([last_tool["payload"]["tool"]["args_digest"], "c"])
            events.append(e)
            last_tool = e
    return events


def generated_policy(rng):
    pick = lambda pool: rng.sample(pool, rng.randint(0, 2))  # noqa: E731
    return governance_of({
        "tool_allow": pick(["search", "pay*", "fs_*"]), "tool_deny": pick(["fs_rm", "sh*"]),
        "max_calls_per_tool": dict(zip(pick(["*", "search", "pay"]), [rng.randint(0, 4) for _ in range(3)])),
        "forbidden_arg_digests": pick(["a", "b"]), "require_approval": pick(["pay", "payout", "fs_*"]),
        "stop_on": pick(list(GOVERNANCE_DEFAULTS["stop_on"]) + ["max_tool_calls"]),
    }, strict=True)


def test_generated_runs_match_the_reference_model():
    rng = random.Random(22)
    checked = 0
    for _ in range(600):
        events, g = generated_run(rng), generated_policy(rng)
        found = observe(events, g)
        assert rules(found) == reference(events, g), (g, [e["payload"] for e in events])
        for _, f in found:
            stop_expected = f.alert_type == "approval_violation" or f.evidence["rule"] in g["stop_on"]
            assert f.stop == stop_expected and (f.severity == "CRITICAL") == stop_expected
        checked += len(found)
    assert checked > 500  # the generator actually exercises the rules


# ---- through Chain: alerts and STOP commands, redelivery, policy parsing ----------------------

def test_chain_emits_the_alert_and_one_stop_and_a_redelivery_adds_nothing():
    from agentstream.schemas import ALERT, COMMAND, EVENT, Codec
    from agentstream.stream_processors.chain import Chain
    from agentstream.stream_processors.policies import PolicyBook
    from agentstream.stream_processors.records import InRecord
    from agentstream.stream_processors.redaction import Redactor
    from agentstream.stream_processors.settings import ProcessorsSettings

    codec = Codec()
    book = PolicyBook()
    book.set(TenantPolicy("t", governance=gov(tool_deny=["shell"], require_approval=["pay"])))
    chain = Chain(ProcessorsSettings(topic_prefix="g."), codec, Redactor(b"k"), book, "g.fleet")
    events = [syn.run_start("t", "r"), tool(1, "shell"), approval(2, "x"), tool(3, "pay", "y")]
    batch = [InRecord("g.raw", 0, off, b"r", codec.encode(EVENT, e)) for off, e in enumerate(events)]
    state: dict[bytes, bytes] = {}

    def run():
        return chain.process(batch, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))

    out = run()
    alerts = [codec.decode_as(ALERT, o.value) for o in out if o.topic == "g.alerts"]
    stops = [codec.decode_as(COMMAND, o.value) for o in out if o.topic == "g.commands"]
    assert [(a["alert_type"], a["evidence"]["rule"]) for a in alerts] == \
        [("policy_violation", "tool_denied"), ("approval_violation", "approval_mismatch")]
    assert [s["alert_id"] for s in stops] == [a["alert_id"] for a in alerts]
    assert all(s["command_type"] == "STOP" and s["run_id"] == "r" for s in stops)
    again = run()
    assert not [o for o in again if o.topic in ("g.alerts", "g.commands")]


def test_cli_governance_pairs_and_ranges():
    from agentstream.stream_processors.policy_io import governance_pairs, set_policy
    from agentstream.stream_processors.settings import ProcessorsSettings

    got = governance_pairs(["tool_deny=shell, fs_*", "max_calls_per_tool=search:3,*:50",
                            "require_approval=", "max_fan_out=8", "max_delegation_depth=none",
                            "stop_on_multi_agent=false", "max_handoff_cycles=2"])
    assert got == {"tool_deny": ["shell", "fs_*"], "max_calls_per_tool": {"search": 3, "*": 50},
                   "require_approval": [], "max_fan_out": 8, "max_delegation_depth": None,
                   "stop_on_multi_agent": False, "max_handoff_cycles": 2}
    for bad in ["tool_denny=x", "max_calls_per_tool=search", "max_fan_out=-1", "max_fan_out=x", "nothing"]:
        with pytest.raises(ValueError):
            governance_pairs([bad])
    # out-of-range values fail before the current policy is read: no broker at this address
    nowhere = ProcessorsSettings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ValueError, match="warn_fraction"):
        set_policy(nowhere, "t", budgets=["warn_fraction=1.5"])
    with pytest.raises(ValueError, match="repeat_window"):
        set_policy(nowhere, "t", loops=["repeat_window=-1"])


def test_a_tenants_rules_never_apply_to_another_tenant():
    from agentstream.schemas import ALERT, EVENT, Codec
    from agentstream.stream_processors.chain import Chain
    from agentstream.stream_processors.policies import PolicyBook
    from agentstream.stream_processors.records import InRecord
    from agentstream.stream_processors.redaction import Redactor
    from agentstream.stream_processors.settings import ProcessorsSettings

    codec = Codec()
    book = PolicyBook()
    book.set(TenantPolicy("strict", governance=gov(tool_deny=["*"])))
    chain = Chain(ProcessorsSettings(topic_prefix="y."), codec, Redactor(b"k"), book, "y.fleet")
    events = [syn.step(t, f"{t}-run", 1, name="search", args_digest="d") for t in ("strict", "relaxed")]
    out = chain.process([InRecord("y.raw", 0, i, e["run_id"].encode(), codec.encode(EVENT, e))
                         for i, e in enumerate(events)], lambda p, k: None, lambda p, k, v: None)
    alerts = [codec.decode_as(ALERT, o.value) for o in out if o.topic == "y.alerts"]
    assert [(a["tenant_id"], a["evidence"]["rule"]) for a in alerts] == [("strict", "tool_denied")]
