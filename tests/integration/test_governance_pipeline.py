"""Governance through the real worker on the embedded broker: a Policy v2 written over the
policies topic (``set_policy``, as ``agentstream policy set`` does) drives the tool rules, the
binding approvals, the loop repeat window and the budget warn fraction in flight; the alerts
they raise reach the chDB ``alerts`` table through the real sink (``pipeline_stack``)."""
from __future__ import annotations

import json
import time

import pytest
from pipeline_stack import stack_fixtures
from test_sink_support import wait_for
from test_processors_detectors import Reader, produce

from agentstream.schemas.loop_repeats import RESULT_DIGEST_ATTR
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.policy_io import read_policy, set_policy
from agentstream.stream_processors.settings import ProcessorsSettings

pytestmark = pytest.mark.integration
topic_prefix, stack = stack_fixtures()  # the worker, and the sink into chDB


@pytest.fixture
def reader(bootstrap, topic_prefix):
    r = Reader(bootstrap, topic_prefix)
    yield r
    r.close()


def tool(tenant, run, seq, name, digest="d", **kw):
    return syn.step(tenant, run, seq, name=name, args_digest=digest, **kw)


def approval(tenant, run, seq, digest, decision="approved"):
    e = syn.step(tenant, run, seq, name="approve", step_kind="APPROVAL", args_digest=None)
    e["payload"]["approval"] = {"action_digest": digest, "decision": decision, "approval_latency_ms": 3.0}
    return e


def test_policy_v2_rules_alert_and_stop_in_flight(stack, bootstrap, topic_prefix, unique, reader):
    tenant = f"gov-{unique}"
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    rec = set_policy(settings, tenant, version="g1", base={},
                     loops=["repeat_window=0", "max_repeats=2"],
                     budgets=["run_max_steps=10", "warn_fraction=0.5"],
                     governance=["tool_deny=shell", "max_calls_per_tool=search:3",
                                 "forbidden_arg_digests=deadbeef00", "require_approval=pay*"])
    assert rec["loops"]["repeat_window"] == 0 and rec["budgets"]["warn_fraction"] == 0.5
    back = read_policy(settings, tenant)  # v2 round trip over the topic
    assert back["governance"]["require_approval"] == ["pay*"] and back["loops"]["repeat_window"] == 0
    time.sleep(1.0)  # the policy reaches the workers' global table
    same_result = {RESULT_DIGEST_ATTR: "5e4f3a2b1c0d9e8f"}  # a result digest (Step.record_result)
    r = {k: f"{k}-{unique}" for k in ("deny", "calls", "forbid", "ok", "swap", "missing", "window", "warn")}
    produce(bootstrap, topic_prefix, [
        syn.run_start(tenant, r["deny"]), tool(tenant, r["deny"], 1, "shell"),
        *[tool(tenant, r["calls"], i, "search", f"q{i}") for i in range(1, 5)],
        tool(tenant, r["forbid"], 1, "fetch", "deadbeef00"),
        approval(tenant, r["ok"], 1, "a1"), tool(tenant, r["ok"], 2, "payout", "a1"),
        approval(tenant, r["swap"], 1, "a1"), tool(tenant, r["swap"], 2, "payout", "a2"),
        tool(tenant, r["missing"], 1, "pay", "a1"),
        # one call three times, 30 other calls apart: a loop only over the whole run (window 0).
        # It returns the same result each time: the 30 new calls between its calls are new work,
        # which makes a call whose result is unknown count afresh (the novelty test,
        # schemas/loop_repeats.count_repeat), but a call that reports its result is judged by it:
        # the same result again is no progress whatever went on around it.
        *[tool(tenant, r["window"], i, "lookup", "same", attributes=same_result) if i % 31 == 0
          else tool(tenant, r["window"], i, f"other{i}", f"x{i}") for i in range(0, 63)],
        *[syn.llm_step(tenant, r["warn"], i, cost_usd=0.0) for i in range(1, 6)],
    ])
    want = {(r["deny"], "policy_violation"), (r["calls"], "policy_violation"), (r["forbid"], "policy_violation"),
            (r["swap"], "approval_violation"), (r["missing"], "approval_violation"), (r["window"], "loop"),
            (r["warn"], "budget_warning")}

    def seen(rd):
        return {(a["run_id"], a["alert_type"]) for a in rd.alerts if a["tenant_id"] == tenant}

    assert reader.poll_until(lambda rd: want <= seen(rd), timeout=60, settle=2.0), seen(reader)
    mine = [a for a in reader.alerts if a["tenant_id"] == tenant]
    assert not [a for a in mine if a["run_id"] == r["ok"]]  # the bound approval passes
    by_run = {a["run_id"]: a for a in mine if a["alert_type"] != "budget_warning"}
    assert by_run[r["deny"]]["evidence"]["rule"] == "tool_denied"
    assert by_run[r["calls"]]["evidence"]["rule"] == "max_tool_calls"
    assert by_run[r["calls"]]["severity"] == "WARNING"  # max_tool_calls is not in the default stop_on
    assert by_run[r["forbid"]]["evidence"]["rule"] == "forbidden_args"
    assert by_run[r["swap"]]["evidence"]["rule"] == "approval_mismatch"
    assert by_run[r["swap"]]["severity"] == "CRITICAL"
    assert by_run[r["missing"]]["evidence"]["rule"] == "approval_missing"
    warn = next(a for a in mine if a["alert_type"] == "budget_warning" and a["run_id"] == r["warn"])
    assert warn["evidence"]["step_seq"] == "5"  # 5 of 10 steps at warn_fraction 0.5 (default 0.8: 8)
    stopped = {c["run_id"]: c for c in reader.commands if c["tenant_id"] == tenant}
    assert set(stopped) == {r["deny"], r["forbid"], r["swap"], r["missing"], r["window"]}
    assert stopped[r["swap"]]["alert_id"] == by_run[r["swap"]]["alert_id"]
    stored = stack.wait_alerts(tenant, lambda rows: {a["alert_id"] for a in mine} <= {a["alert_id"] for a in rows})
    assert want <= {(a["run_id"], a["alert_type"]) for a in stored}
    stored_by_id = {a["alert_id"]: a for a in stored}
    for a in mine:  # each alert stored as raised: type, severity, run and the rule's evidence
        row = stored_by_id[a["alert_id"]]
        assert (row["alert_type"], row["severity"], row["run_id"]) == (a["alert_type"], a["severity"], a["run_id"])
        assert row["evidence"] == a["evidence"]


def test_handoff_loop_across_runs_and_fan_out_limit_in_flight(stack, bootstrap, topic_prefix, unique, reader):
    tenant = f"multi-{unique}"
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    set_policy(settings, tenant, version="m1", base={}, governance=["max_fan_out=2"])
    time.sleep(1.0)
    # A -> B -> A -> B -> A: five runs keyed apart (so on different partitions), linked by
    # parent_run_id only; the fifth is A's second return.
    runs = [f"h{i}-{unique}" for i in range(5)]
    events = []
    for i, run in enumerate(runs):
        start = syn.run_start(tenant, run, agent_id="AB"[i % 2])
        start["parent_run_id"] = runs[i - 1] if i else None
        events.append(start)
    boss = f"boss-{unique}"
    events.append(syn.run_start(tenant, boss, agent_id="boss"))
    for i in range(3):  # the third child is over max_fan_out=2, linked by the boss's handoff steps
        h = syn.step(tenant, boss, i + 1, name="handoff", step_kind="HANDOFF", args_digest=None, agent_id="boss")
        h["payload"]["handoff"] = {"to_agent_id": "worker", "to_run_id": f"w{i}-{unique}", "role": None}
        events.append(h)
    produce(bootstrap, topic_prefix, events)

    def got(rd):
        return {(a["alert_type"], a["run_id"]) for a in rd.alerts if a["tenant_id"] == tenant}

    want = {("handoff_loop", runs[4]), ("delegation_limit", f"w2-{unique}")}
    assert reader.poll_until(lambda rd: want <= got(rd), timeout=60, settle=2.0), got(reader)
    assert got(reader) == want
    loop = next(a for a in reader.alerts if a["tenant_id"] == tenant and a["alert_type"] == "handoff_loop")
    assert loop["evidence"]["agents"] == "A -> B -> A -> B -> A" and loop["severity"] == "CRITICAL"
    stopped = {c["run_id"] for c in reader.commands if c["tenant_id"] == tenant}
    assert stopped == {runs[4], f"w2-{unique}"}
    stored = stack.wait_alerts(tenant, lambda rows: want <= {(a["alert_type"], a["run_id"]) for a in rows})
    assert {(a["alert_type"], a["run_id"]) for a in stored} == want
    (row,) = [a for a in stored if a["alert_type"] == "handoff_loop"]
    assert row["evidence"]["agents"] == "A -> B -> A -> B -> A" and row["severity"] == "CRITICAL"


def test_sdk_approval_of_the_tool_arguments_binds_end_to_end(stack, bootstrap, topic_prefix, unique, reader,
                                                             tmp_path):
    """The SDK digests an approved action and a tool's bound arguments with one key: approving the
    arguments and calling the tool with them passes; calling it with others is caught."""
    from agentstream.producer import Tracer

    tenant = f"sdk-gov-{unique}"
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    set_policy(settings, tenant, version="a1", base={}, governance=["require_approval=pay"])
    time.sleep(1.0)
    tracer = Tracer(tenant, "billing", "1.0", "test", bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                    spool_dir=str(tmp_path / "spool"), commands_enabled=False)

    @tracer.tool
    def pay(account: str, amount: int) -> None:
        pass

    with tracer.run("good") as good:
        with good.approval_request({"account": "a-1", "amount": 10}) as req:
            req.decide("approved")
        pay("a-1", 10)  # positional: the bound arguments are the same mapping
    with tracer.run("swapped") as bad:
        with bad.approval_request({"account": "a-1", "amount": 10}) as req:
            req.decide("approved")
        pay(account="a-666", amount=10)
    assert tracer.flush(15)
    tracer.close(5)
    assert reader.poll_until(lambda rd: any(a["run_id"] == bad.run_id for a in rd.alerts), timeout=60, settle=3.0)
    mine = [(a["run_id"], a["evidence"].get("rule")) for a in reader.alerts if a["tenant_id"] == tenant]
    assert mine == [(bad.run_id, "approval_mismatch")]
    stored = stack.wait_alerts(tenant, lambda rows: len(rows) >= 1)
    assert [(a["run_id"], a["evidence"].get("rule"), a["severity"]) for a in stored] == [
        (bad.run_id, "approval_mismatch", "CRITICAL")]
    for run_id in (good.run_id, bad.run_id):  # both runs stored whole: the approval and the call
        status = wait_for(lambda r=run_id: (stack.run(tenant, r) or {}).get("status"), 30, "the run")
        assert status == "SUCCESS" and stack.run(tenant, run_id)["step_count"] == 2


def test_policy_cli_sets_and_shows_v2_over_the_topic(bootstrap, topic_prefix, unique):
    import json

    import typer
    from typer.testing import CliRunner

    from agentstream.stream_processors.cli import register

    app = typer.Typer()
    register(app)
    env = {"AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS": bootstrap, "AGENTSTREAM_PROCESSORS_TOPIC_PREFIX": topic_prefix}
    run = lambda *a: CliRunner().invoke(app, list(a), env=env)  # noqa: E731
    tenant = f"cli-gov-{unique}"
    shown = json.loads(run("policy", "show", "--tenant", tenant).stdout)
    assert shown["source"] == "default" and shown["governance"]["max_handoff_cycles"] == 1
    res = run("policy", "set", "--tenant", tenant, "--version", "g9", "--loop", "repeat_window=0",
              "--budget", "warn_fraction=0.25", "--govern", "tool_deny=shell,fs_rm*",
              "--govern", "max_calls_per_tool=search:3", "--govern", "stop_on=tool_denied,max_tool_calls")
    assert res.exit_code == 0, res.output
    res = run("policy", "set", "--tenant", tenant, "--version", "g10", "--govern", "max_fan_out=4")  # merges
    assert res.exit_code == 0, res.output
    shown = json.loads(run("policy", "show", "--tenant", tenant).stdout)
    g = shown["governance"]
    assert shown["source"] == "topic" and shown["version"] == "g10"
    assert g["tool_deny"] == ["shell", "fs_rm*"] and g["max_calls_per_tool"] == {"search": 3} and g["max_fan_out"] == 4
    assert g["stop_on"] == ["tool_denied", "max_tool_calls"]
    assert shown["loops"]["repeat_window"] == 0 and shown["budgets"]["warn_fraction"] == 0.25
    for bad, msg in ((["--govern", "stop_on=everything"], "stop_on"), (["--budget", "warn_fraction=2"], "warn_fraction"),
                     (["--govern", "tool_denny=x"], "unknown setting 'tool_denny'")):
        res = run("policy", "set", "--tenant", tenant, *bad)
        assert res.exit_code == 2 and msg in res.output, res.output
    assert json.loads(run("policy", "show", "--tenant", tenant).stdout)["version"] == "g10"  # nothing written


def test_policy_named_durable_class_is_audited_before_the_call_and_stored(stack, bootstrap, topic_prefix, unique,
                                                                          tmp_path):
    """durable_tools set on the policy reaches the SDK by itself; the action's audit record, acknowledged
    before the body ran, goes through the processors into chDB beside the TOOL step it guards."""
    from agentstream.producer import Tracer

    tenant = f"sdk-dur-{unique}"
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    set_policy(settings, tenant, version="d1", base={}, governance=["durable_tools=payments.*"])
    tracer = Tracer(tenant, "billing", "1.0", "test", bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                    spool_dir=str(tmp_path / "spool"), commands_enabled=False)
    ran = []

    @tracer.tool(action_class="payments.refund")
    def refund(order: str) -> None:
        ran.append(order)

    @tracer.tool(action_class="search.web")
    def web(q: str) -> None:
        ran.append(q)

    try:
        assert tracer.policy_ready(30)
        with tracer.run("refund") as run:
            refund("ORD-7731-secret")
            web("status")
        assert tracer.flush(15) and ran == ["ORD-7731-secret", "status"]
    finally:
        tracer.close(5)
    rows = wait_for(lambda: [r for r in stack.events(tenant, run.run_id) if r["kind"] == "RUN_END"]
                    and stack.events(tenant, run.run_id), 60, "the run in chDB")
    audits = [r for r in rows if r["kind"] == "DECISION"]
    tools = {r["name"]: r for r in rows if r["step_kind"] == "TOOL"}
    assert [(a["decision_type"], a["selected"], a["reason_code"]) for a in audits] == [
        ("durable_action", "refund", "audit_before_run")]
    assert audits[0]["step_id"] == tools["refund"]["step_id"]  # the call it guarded, same arguments
    assert audits[0]["attributes"]["agentstream.args_digest"] == tools["refund"]["args_digest"]
    assert audits[0]["attributes"]["agentstream.action_class"] == "payments.refund"
    assert set(tools) == {"refund", "web"}  # search.web is not named: no audit record
    assert "ORD-7731" not in json.dumps([r["payload"] for r in rows]) and stack.tables_containing("ORD-7731") == []
