"""Durable actions fail closed, against real brokers: with Kafka up the audit record is
acknowledged and lands before the tool's own step; with the broker stopped the tool body never
runs and the documented ``AuditUnavailable`` reaches the agent (sync, async, policy-named
action classes); non-durable tools keep running through the outage."""
from __future__ import annotations

import asyncio

import pytest

from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.producer import AuditUnavailable, EnforcementError, Tracer
from agentstream.producer.durable import AUDIT_SEQ_BASE
from agentstream.producer.testing import read_events
from agentstream.schemas import topic_name
from agentstream.schemas.topics import create_topics

pytestmark = pytest.mark.integration


def test_audit_record_is_acknowledged_before_the_action_and_lands_before_its_step(bootstrap, topic_prefix,
                                                                                     unique, tmp_path):
    tracer = Tracer(f"dur-{unique}", "payer", "1.0", "test", bootstrap_servers=bootstrap,
                    topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"), commands_enabled=False)
    ran = []

    @tracer.tool(durable=True)
    def transfer(account: str, amount: int) -> str:
        ran.append((account, amount))
        return "ok"

    with tracer.run("pay") as run:
        assert transfer("acct-1", 5) == "ok"
    assert tracer.flush(15)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id], timeout=30)[run.run_id]
    tracer.close(5)
    kinds = [(e["kind"], e["payload"].get("step_kind")) for e in events]
    audit_i = kinds.index(("DECISION", None))
    step_i = kinds.index(("STEP", "TOOL"))
    assert ran == [("acct-1", 5)] and audit_i < step_i  # same key, same partition: acked first
    audit, step = events[audit_i], events[step_i]
    assert audit["payload"]["decision_type"] == "durable_action" and audit["payload"]["selected"] == "transfer"
    assert audit["payload"]["step_id"] == step["payload"]["step_id"]
    assert audit["attributes"]["agentstream.args_digest"] == step["payload"]["tool"]["args_digest"]
    assert audit["seq"] >= AUDIT_SEQ_BASE and step["seq"] < AUDIT_SEQ_BASE
    assert step["attributes"]["agentstream.durable"] == "acknowledged" and step["payload"]["status"] == "OK"


def test_a_durable_tool_called_often_is_not_a_loop_of_its_audit_records(bootstrap, topic_prefix, unique, tmp_path):
    from agentstream.stream_processors.detectors import runs
    from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

    tracer = Tracer(f"dur-{unique}", "payer", "1.0", "test", bootstrap_servers=bootstrap,
                    topic_prefix=topic_prefix, spool_dir=str(tmp_path / "spool"), commands_enabled=False)

    @tracer.tool(durable=True)
    def transfer(account: str, amount: int) -> None:
        pass

    with tracer.run("pay-many") as run:
        for i in range(8):  # eight different transfers: eight audit records of one tool
            transfer(f"acct-{i}", i)
    assert tracer.flush(15)
    events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id], timeout=30)[run.run_id]
    tracer.close(5)
    assert sum(e["kind"] == "DECISION" for e in events) == 8
    st, found = runs.new_state(), []
    for e in events:
        found += runs.observe(st, e, LOOP_DEFAULTS, BUDGET_DEFAULTS)
    assert found == []


def test_broker_stopped_the_durable_action_does_not_run(tmp_path, unique):
    prefix = f"dur{unique[:6]}."
    broker = EmbeddedBroker(log_path=str(tmp_path / "tansu.log")).start()
    tracer = None
    try:
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=2)
        tracer = Tracer(f"dur-{unique}", "payer", "1.0", "test", bootstrap_servers=broker.bootstrap_servers,
                        topic_prefix=prefix, spool_dir=str(tmp_path / "spool"), commands_enabled=False,
                        delivery_timeout_ms=3000, probe_interval_s=0.5)
        tracer.set_durable_tools(["payments.*"])
        ran = []

        # the first durable call also connects the audit producer: a bound that covers that
        @tracer.tool(durable=True, durable_timeout_s=2.0)
        def wire_money(amount: int) -> None:
            ran.append(("wire", amount))

        @tracer.tool(action_class="payments.refund", durable_timeout_s=0.5)
        def refund(order: str) -> None:  # durable because the policy names its class
            ran.append(("refund", order))

        @tracer.tool(durable=True, durable_timeout_s=0.5)
        async def delete_repo(name: str) -> None:
            ran.append(("delete", name))

        @tracer.tool
        def search(q: str) -> str:
            ran.append(("search", q))
            return q

        with tracer.run("before") as run:
            wire_money(1)  # up: acknowledged, runs
        assert ran == [("wire", 1)]
        broker.stop()
        with tracer.run("during") as run:
            with pytest.raises(AuditUnavailable) as exc:
                wire_money(2)
            assert isinstance(exc.value, EnforcementError) and exc.value.run_id == run.run_id
            with pytest.raises(AuditUnavailable):
                refund("o-1")
            with pytest.raises(AuditUnavailable):
                asyncio.run(delete_repo("prod"))
            assert search("still works") == "still works"  # telemetry spools; ordinary tools run
        assert ran == [("wire", 1), ("search", "still works")]
        # outside any run a durable tool has nothing to audit under: it refuses too
        with pytest.raises(AuditUnavailable):
            wire_money(3)
        assert len(ran) == 2
    finally:
        if tracer is not None:
            tracer.close(2)
        broker.stop()


def test_no_broker_at_all_is_refused_within_the_bound(tmp_path, unique):
    from agentstream.cli.embedded_broker import free_port

    tracer = Tracer(f"dur-{unique}", "payer", "1.0", "test", bootstrap_servers=f"127.0.0.1:{free_port()}",
                    topic_prefix="nobroker.", spool_dir=str(tmp_path / "spool"), commands_enabled=False)
    try:
        @tracer.tool(durable=True, durable_timeout_s=0.5)
        def launch() -> None:
            raise AssertionError("must not run")

        with tracer.run("r"):
            with pytest.raises(AuditUnavailable, match="did not acknowledge"):
                launch()
    finally:
        tracer.close(1)
