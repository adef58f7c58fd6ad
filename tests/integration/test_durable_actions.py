"""Durable actions fail closed, against real brokers: with Kafka up the audit record is
acknowledged and lands before the tool's own step; with the broker stopped the tool body never
runs and the documented ``AuditUnavailable`` reaches the agent (sync, async, action classes the
tenant's policy names, which the SDK follows on the policies topic by itself); non-durable tools
keep running through the outage."""
from __future__ import annotations

import asyncio
import time

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


def _policy_cli(bootstrap, prefix, *args):
    import typer
    from typer.testing import CliRunner

    from agentstream.stream_processors.cli import register

    app = typer.Typer()
    register(app)
    env = {"AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS": bootstrap, "AGENTSTREAM_PROCESSORS_TOPIC_PREFIX": prefix}
    res = CliRunner().invoke(app, ["policy", *args], env=env)
    assert res.exit_code == 0, res.output
    return res


def test_broker_stopped_the_durable_action_does_not_run(tmp_path, unique):
    """The policy set from the CLI reaches a fresh tracer by itself (no set_durable_tools): with
    the broker then stopped, its named class refuses and others run; an explicit override beats
    the policy; a tracer that never read the policy fails closed for every action class."""
    prefix = f"dur{unique[:6]}."
    tenant = f"dur-{unique}"
    broker = EmbeddedBroker(log_path=str(tmp_path / "tansu.log")).start()
    tracers = []
    try:
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=2)
        _policy_cli(broker.bootstrap_servers, prefix, "set", "--tenant", tenant, "--version", "d1",
                    "--govern", "durable_tools=payments.*")

        def tracer(n):
            t = Tracer(tenant, "payer", "1.0", "test", bootstrap_servers=broker.bootstrap_servers,
                       topic_prefix=prefix, spool_dir=str(tmp_path / f"spool{n}"), commands_enabled=False,
                       delivery_timeout_ms=3000, probe_interval_s=0.5)
            tracers.append(t)
            return t

        followed, manual = tracer(0), tracer(1)
        manual.set_durable_tools(["ops.*"])  # the explicit override: the policy is not consulted
        assert followed.policy_ready(30)
        assert followed.stats()["policy_durable_tools"] == ["payments.*"]
        assert followed.stats()["policy_version"] == "d1"
        ran = []

        # the first durable call also connects the audit producer: a bound that covers that
        @followed.tool(durable=True, durable_timeout_s=2.0)
        def wire_money(amount: int) -> None:
            ran.append(("wire", amount))

        @followed.tool(action_class="payments.refund", durable_timeout_s=0.5)
        def refund(order: str) -> None:  # durable because the policy names its class
            ran.append(("refund", order))

        @followed.tool(action_class="search.web", durable_timeout_s=0.5)
        def web(q: str) -> str:  # a class the policy does not name: an ordinary tool
            ran.append(("web", q))
            return q

        @followed.tool(durable=True, durable_timeout_s=0.5)
        async def delete_repo(name: str) -> None:
            ran.append(("delete", name))

        @followed.tool
        def search(q: str) -> str:
            ran.append(("search", q))
            return q

        @manual.tool(action_class="payments.refund", durable_timeout_s=0.5)
        def manual_refund(order: str) -> None:  # not durable: the override names ops.* only
            ran.append(("manual_refund", order))

        @manual.tool(action_class="ops.restart", durable_timeout_s=0.5)
        def restart(svc: str) -> None:
            ran.append(("restart", svc))

        with followed.run("before") as run:
            wire_money(1)  # up: acknowledged, runs
            refund("o-0")  # up: its audit record is acknowledged, then it runs
        assert ran == [("wire", 1), ("refund", "o-0")]
        ran.clear()
        broker.stop()
        with followed.run("during") as run:
            with pytest.raises(AuditUnavailable) as exc:
                wire_money(2)
            assert isinstance(exc.value, EnforcementError) and exc.value.run_id == run.run_id
            with pytest.raises(AuditUnavailable):
                refund("o-1")
            with pytest.raises(AuditUnavailable):
                asyncio.run(delete_repo("prod"))
            assert web("still works") == "still works"  # telemetry spools; ordinary tools run
            assert search("too") == "too"
        with manual.run("override"):
            manual_refund("o-2")
            with pytest.raises(AuditUnavailable):
                restart("db")
        assert ran == [("web", "still works"), ("search", "too"), ("manual_refund", "o-2")]
        # outside any run a durable tool has nothing to audit under: it refuses too
        with pytest.raises(AuditUnavailable):
            wire_money(3)
        # a tracer started now cannot read the policy: any action class fails closed
        fresh = tracer(2)

        @fresh.tool(action_class="search.web", durable_timeout_s=0.5)
        def fresh_web(q: str) -> None:
            ran.append(("fresh_web", q))

        @fresh.tool
        def fresh_search(q: str) -> None:
            ran.append(("fresh_search", q))

        with fresh.run("unread"):
            with pytest.raises(AuditUnavailable):
                fresh_web("x")
            fresh_search("y")
        assert not fresh.stats()["policy_loaded"]
        assert ran[-1] == ("fresh_search", "y") and ("fresh_web", "x") not in ran
    finally:
        for t in tracers:
            t.close(2)
        broker.stop()


def test_the_sdk_follows_policy_changes_live(bootstrap, topic_prefix, unique, tmp_path):
    """A running tracer picks up a changed policy and a deleted one (tombstone) without a restart:
    the audit records on the raw topic show which calls were durable under which policy."""
    from confluent_kafka import Producer

    tenant = f"live-{unique}"
    _policy_cli(bootstrap, topic_prefix, "set", "--tenant", tenant, "--version", "l1",
                "--govern", "durable_tools=payments.*")
    tracer = Tracer(tenant, "payer", "1.0", "test", bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                    spool_dir=str(tmp_path / "spool"), commands_enabled=False)

    @tracer.tool(action_class="payments.refund")
    def refund(order: str) -> None:
        pass

    @tracer.tool(action_class="ops.restart")
    def restart(svc: str) -> None:
        pass

    def audited(name):
        with tracer.run(name) as run:
            refund("o")
            restart("s")
        assert tracer.flush(15)
        events = read_events(bootstrap, topic_name("raw", topic_prefix), [run.run_id], timeout=30)[run.run_id]
        return sorted(e["payload"]["selected"] for e in events if e["kind"] == "DECISION")

    def wait_patterns(want):
        deadline = time.monotonic() + 30
        while tracer.stats().get("policy_durable_tools") != want and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tracer.stats()["policy_durable_tools"] == want

    try:
        assert tracer.policy_ready(30)
        assert audited("v1") == ["refund"]
        _policy_cli(bootstrap, topic_prefix, "set", "--tenant", tenant, "--version", "l2",
                    "--govern", "durable_tools=ops.*")
        wait_patterns(["ops.*"])
        assert tracer.stats()["policy_version"] == "l2"
        assert audited("v2") == ["restart"]
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce(topic_name("policies", topic_prefix), key=tenant.encode(), value=None)  # deleted
        p.produce(topic_name("policies", topic_prefix), key=tenant.encode(), value=b"corrupt")
        assert p.flush(10) == 0
        deadline = time.monotonic() + 30
        while tracer.stats()["policy_undecodable"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tracer.stats()["policy_undecodable"] == 1  # skipped, counted, never raised
        wait_patterns([])
        assert audited("none") == []
    finally:
        tracer.close(5)


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
