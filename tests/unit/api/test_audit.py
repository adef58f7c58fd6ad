"""``agentstream audit`` over stored runs: rows written by the sink's own row mapper into chDB,
read back through the query API (tenant-walled) and straight from ClickHouse; the violations
are the ones the in-flight detector raises, and another tenant's runs never appear."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import typer

from agentstream.cli.audit_commands import api_rows, clickhouse_rows, parse_since, register, run_audit
from agentstream.sink.rows import EVENT_COLUMNS, event_row
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.governance_audit import audit, audit_sql

from api_fleet import now_us

RULES = {"tool_deny": ["shell"], "require_approval": ["pay"], "max_calls_per_tool": {"search": 2}}


def tool(tenant, run, seq, name, digest="d", ts=None):
    return syn.step(tenant, run, seq, name=name, args_digest=digest, ts_us=ts)


def approval(tenant, run, seq, digest, ts=None):
    e = syn.step(tenant, run, seq, name="approve", step_kind="APPROVAL", args_digest=None, ts_us=ts)
    e["payload"]["approval"] = {"action_digest": digest, "decision": "approved", "approval_latency_ms": 1.0}
    return e


def store(ch, events):
    ch.insert("events", [event_row(e) for e in events], column_names=list(EVENT_COLUMNS))


class Api:
    """The CLI's client interface (``post``/``get`` returning JSON) over the test app."""

    def __init__(self, api, auth):
        self.api, self.auth = api, auth

    def post(self, path, body):
        r = self.api.post(path, json=body, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def stored(ch, tenant, unique):
    t0 = now_us() - 3_600_000_000
    other = "victim-" + unique
    ev = [
        syn.run_start(tenant, f"deny-{unique}", ts_us=t0), tool(tenant, f"deny-{unique}", 1, "shell", ts=t0 + 1),
        # the approval is two hours old, the call after it recent: the run is judged whole
        approval(tenant, f"pay-{unique}", 1, "a1", ts=t0 - 3_600_000_000),
        tool(tenant, f"pay-{unique}", 2, "pay", "a1", ts=t0 + 2),
        approval(tenant, f"swap-{unique}", 1, "a1", ts=t0), tool(tenant, f"swap-{unique}", 2, "pay", "a2", ts=t0 + 3),
        *[tool(tenant, f"calls-{unique}", i, "search", f"q{i}", ts=t0 + 10 + i) for i in range(1, 4)],
        tool(other, f"theirs-{unique}", 1, "shell", ts=t0),
    ]
    store(ch, ev + ev[:3])  # a row stored twice (before a merge) is one event
    return t0, other


def expected(unique):
    return [(f"calls-{unique}", 3, "max_tool_calls"), (f"deny-{unique}", 1, "tool_denied"),
            (f"swap-{unique}", 2, "approval_mismatch")]


def test_audit_through_the_query_api_sees_only_the_keys_tenant(api, auth, tenant, unique, stored):
    t0, other = stored
    got = run_audit(t0 - 1000, None, RULES, None, None, None, None, api_client=Api(api, auth))
    assert [(v["run_id"], v["seq"], v["rule"]) for v in got] == expected(unique)
    assert {v["tenant_id"] for v in got} == {tenant}
    swap = [v for v in got if v["rule"] == "approval_mismatch"][0]
    assert swap["stop"] and swap["severity"] == "CRITICAL" and swap["evidence"]["approved_digest"] == "a1"


def test_audit_straight_from_clickhouse_per_tenant_and_paged_api_rows(ch, api, auth, tenant, unique, stored):
    t0, other = stored
    rows = list(clickhouse_rows(ch, audit_sql(t0 - 1000, None, tenant)))
    got = audit(rows, lambda t: RULES)
    assert [(v["run_id"], v["seq"], v["rule"]) for v in got] == expected(unique)
    theirs = audit(list(clickhouse_rows(ch, audit_sql(t0 - 1000, None, other))), lambda t: RULES)
    assert [(v["tenant_id"], v["rule"]) for v in theirs] == [(other, "tool_denied")]
    # --until before the recent calls leaves only what happened before it
    early = audit(list(clickhouse_rows(ch, audit_sql(t0 - 1000, t0 + 5, tenant))), lambda t: RULES)
    assert [(v["run_id"], v["rule"]) for v in early] == [(f"deny-{unique}", "tool_denied"),
                                                          (f"swap-{unique}", "approval_mismatch")]

    class Paged(Api):  # pages of 2 rows: every page is read
        def post(self, path, body):
            return super().post(path, {**body, "limit": 2})
    assert len(list(api_rows(Paged(api, auth), audit_sql(t0 - 1000)))) == len(rows)


def test_cli_refuses_bad_input_with_one_line(tmp_path):
    runner, cli_app = CliRunner(), typer.Typer()
    register(cli_app)
    cli_app.command("noop")(lambda: None)  # two commands, so "audit" is a subcommand as in agentstream
    bad = tmp_path / "rules.json"
    bad.write_text(json.dumps({"tool_denny": ["x"]}))
    r = runner.invoke(cli_app, ["audit", "--since", "1h", "--policy", str(bad), "--clickhouse-dsn", "x://"])
    assert r.exit_code == 2 and "unknown rule(s) tool_denny" in r.output
    bad.write_text(json.dumps({"governance": {"stop_on": ["everything"]}}))
    r = runner.invoke(cli_app, ["audit", "--since", "1h", "--policy", str(bad), "--clickhouse-dsn", "x://"])
    assert r.exit_code == 2 and "stop_on" in r.output
    r = runner.invoke(cli_app, ["audit", "--since", "yesterday-ish"])
    assert r.exit_code == 2 and "--since" in r.output


def test_parse_since():
    now = 1_000_000 * 1_000_000
    assert parse_since("30m", now) == now - 1800 * 1_000_000
    assert parse_since("2d", now) == now - 2 * 86400 * 1_000_000
    assert parse_since("2026-12-06T00:00:00Z") == parse_since("2026-12-06T00:00:00")


def test_render_names_rule_stop_run_and_step():
    from agentstream.cli.audit_commands import render

    line = render({"ts_us": 1_765_000_000_000_000, "tenant_id": "acme", "run_id": "r1", "seq": 4,
                   "severity": "CRITICAL", "stop": True, "rule": "approval_mismatch", "title": "tool pay ran ..."})
    assert line == "2025-12-06T05:46:40Z  acme  run r1 #4  CRITICAL STOP approval_mismatch: tool pay ran ..."


def test_audit_finds_handoff_loops_and_delegation_limits_across_stored_runs(ch, tenant, unique):
    t0 = now_us() - 1_800_000_000
    runs = [f"h{i}-{unique}" for i in range(5)]
    ev = []
    for i, run in enumerate(runs):
        e = syn.run_start(tenant, run, agent_id="AB"[i % 2], ts_us=t0 + i * 10)
        e["parent_run_id"] = runs[i - 1] if i else None
        ev.append(e)
    h = syn.step(tenant, runs[0], 1, name="handoff", step_kind="HANDOFF", args_digest=None, agent_id="A",
                 ts_us=t0 + 100)
    h["payload"]["handoff"] = {"to_agent_id": "C", "to_run_id": f"extra-{unique}", "role": None}
    ev.append(h)
    store(ch, ev)
    rows = list(clickhouse_rows(ch, audit_sql(t0 - 1000, None, tenant)))
    got = audit(rows, lambda t: {"max_fan_out": 1})
    assert [(v["run_id"], v["alert_type"], v["rule"]) for v in got] == [
        (f"extra-{unique}", "delegation_limit", "max_fan_out"), (runs[4], "handoff_loop", "handoff_loop")]
    assert got[1]["evidence"]["agents"] == "A -> B -> A -> B -> A" and got[1]["stop"]
