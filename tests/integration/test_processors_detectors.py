"""Detectors through the real worker on the embedded broker: a looping run gets a STOP command,
a tenant's daily budget breach is alerted once, a failure-rate drift between versions is
alerted, and a worker killed with SIGKILL and restarted keeps its state and repeats no alert."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from agentstream.schemas.codec import DecodeError
from agentstream.schemas import ALERT, COMMAND, EVENT, Codec, topic_name
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.policy_io import set_policy
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.worker_process import start_worker

pytestmark = pytest.mark.integration
codec = Codec()


@pytest.fixture(scope="module")
def app_id():
    return "test-detectors-" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def worker(bootstrap, topic_prefix, tmp_path_factory, app_id):
    d = tmp_path_factory.mktemp("processors-det")
    state = {"w": start_worker(bootstrap, topic_prefix, app_id, d / "data", d / "worker.log").wait_ready(),
             "dir": d}
    yield state
    state["w"].stop()


def produce(bootstrap, prefix, events):
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    for e in events:
        p.produce(topic_name("raw", prefix), codec.encode(EVENT, e), e["run_id"].encode())
    assert p.flush(30) == 0


class Reader:
    """Reads alerts and commands from the beginning and keeps everything seen."""

    def __init__(self, bootstrap, prefix):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-" + uuid.uuid4().hex,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "session.timeout.ms": 6000})
        self.alerts_t, self.commands_t = topic_name("alerts", prefix), topic_name("commands", prefix)
        self.c.subscribe([self.alerts_t, self.commands_t])
        self.alerts, self.commands = [], []

    def poll_until(self, cond, timeout=60.0, settle=0.0):
        deadline = time.monotonic() + timeout
        ok_at = None
        while time.monotonic() < deadline:
            for m in self.c.consume(500, 0.3):
                if m.error() is None:
                    try:
                        if m.topic() == self.alerts_t:
                            self.alerts.append(codec.decode_as(ALERT, m.value()))
                        else:
                            self.commands.append(codec.decode_as(COMMAND, m.value()))
                    except DecodeError:
                        pass  # the session's shared topics carry other tests' deliberately bad records
            if cond(self):
                ok_at = ok_at or time.monotonic()
                if time.monotonic() - ok_at >= settle:
                    return True
        return cond(self)

    def close(self):
        self.c.close()


@pytest.fixture
def reader(bootstrap, topic_prefix):
    r = Reader(bootstrap, topic_prefix)
    yield r
    r.close()


def test_looping_run_gets_a_stop_command(worker, bootstrap, topic_prefix, unique, reader):
    tenant, run = f"loop-{unique}", f"run-{unique}"
    # max_repeats (5) identical calls are allowed; the 6th is the loop
    events = [syn.run_start(tenant, run)] + [syn.step(tenant, run, i, name="search", args_digest="abc")
                                              for i in range(1, 7)]
    produce(bootstrap, topic_prefix, events)
    assert reader.poll_until(lambda r: any(c["run_id"] == run for c in r.commands))
    cmd = [c for c in reader.commands if c["run_id"] == run]
    assert len(cmd) == 1 and cmd[0]["command_type"] == "STOP" and cmd[0]["tenant_id"] == tenant
    alert = [a for a in reader.alerts if a["run_id"] == run]
    assert [a["alert_type"] for a in alert] == ["loop"]
    assert cmd[0]["alert_id"] == alert[0]["alert_id"]
    assert alert[0]["source_offsets"][0]["topic"] == topic_name("raw", topic_prefix)


def test_another_tenant_on_the_same_run_id_does_not_count_in_the_run(worker, bootstrap, topic_prefix, unique,
                                                                     reader):
    """The red team's reproduction: acme's 4 identical calls under the run id globex uses made
    globex's 2nd identical call a CRITICAL loop and a STOP. Run state is per (tenant, run) now
    (test_run_state_tenants.py has the interleavings); a third tenant's real loop on the same
    run id, produced last (raw is keyed by run id: one partition, read in order), says when the
    worker has read globex's events, and is found on its own count."""
    run = uuid.uuid4().hex  # an OTLP trace id, shared
    acme, globex, initech = f"acme-{unique}", f"globex-{unique}", f"initech-{unique}"
    produce(bootstrap, topic_prefix, [syn.step(acme, run, i, name="search", args_digest="q") for i in range(1, 5)])
    produce(bootstrap, topic_prefix, [syn.run_start(globex, run)] +
            [syn.step(globex, run, i, name="search", args_digest="q") for i in range(1, 3)])
    produce(bootstrap, topic_prefix, [syn.step(initech, run, i, name="search", args_digest="q") for i in range(1, 7)])
    assert reader.poll_until(lambda r: any(a["tenant_id"] == initech for a in r.alerts), settle=2.0)
    found = [(a["tenant_id"], a["alert_type"], a["evidence"].get("count")) for a in reader.alerts if a["run_id"] == run]
    assert [f[:2] for f in found] == [(initech, "loop")], found
    stops = [(c["tenant_id"], c["command_type"]) for c in reader.commands if c["run_id"] == run]
    assert stops == [(initech, "STOP")]


def test_tenant_daily_budget_breach_alerted_once(worker, bootstrap, topic_prefix, unique, reader):
    tenant = f"budget-{unique}"
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    set_policy(settings, tenant, version="b1", budgets=["tenant_usd_per_day=1.0"], base={})
    time.sleep(1.0)  # the policy reaches the global table through its changelog
    # $0.30 per run: warning at run 3 ($0.90), breach at run 4, then more spend in the same day.
    for i in range(7):
        run = f"run-{unique}-{i}"
        produce(bootstrap, topic_prefix, [syn.run_start(tenant, run), syn.llm_step(tenant, run, 1, cost_usd=0.30),
                                          syn.run_end(tenant, run, 2)])
    assert reader.poll_until(lambda r: any(a["tenant_id"] == tenant and a["alert_type"] == "budget_breach"
                                           for a in r.alerts), settle=3.0)
    mine = [a for a in reader.alerts if a["tenant_id"] == tenant]
    # Exactly one breach; the 80 % warning is skipped when one batch carries the spend past 100 %.
    assert [a["alert_type"] for a in mine].count("budget_breach") == 1
    assert [a["alert_type"] for a in mine].count("budget_warning") <= 1
    breach = [a for a in mine if a["alert_type"] == "budget_breach"][0]
    assert breach["evidence"]["limit_name"] == "tenant_usd_per_day"
    assert float(breach["evidence"]["used_usd"]) >= 1.0


def test_failure_rate_drift_between_versions_is_alerted(worker, bootstrap, topic_prefix, unique, reader):
    tenant, agent = f"drift-{unique}", "planner"
    events = []
    for version, rate, n in (("1.0", 0.02, 1500), ("1.1", 0.10, 1500)):
        for i in range(n):
            run = f"r-{unique}-{version}-{i}"
            failed = (i * 7919) % 1000 < rate * 1000  # deterministic, exact rate
            events.append(syn.run_end(tenant, run, 1, status="FAILURE" if failed else "SUCCESS",
                                      agent_id=agent, agent_version=version, duration_ms=900 + (i % 200)))
    produce(bootstrap, topic_prefix, events)
    assert reader.poll_until(lambda r: any(a["tenant_id"] == tenant and a["alert_type"] == "drift"
                                           for a in r.alerts), timeout=90, settle=3.0)
    drift = [a for a in reader.alerts if a["tenant_id"] == tenant and a["alert_type"] == "drift"]
    assert [a["evidence"]["metric"] for a in drift] == ["failure_rate"]
    ev = drift[0]["evidence"]
    assert drift[0]["agent_version"] == "1.1" and ev["comparison"] == "version"
    # found at the first look where the always-valid p-value is under the metric's alpha
    assert 0.04 < float(ev["effect_size"]) < 0.12 and float(ev["p_value"]) <= float(ev["alpha"])


def test_two_versions_that_do_not_differ_raise_no_alert_over_10k_runs(worker, bootstrap, topic_prefix, unique,
                                                                      reader):
    tenant, agent = f"same-{unique}", "planner"
    settings = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    set_policy(settings, tenant, version="s1", budgets=["tenant_usd_per_day=1.0"], base={})
    time.sleep(1.0)
    events = []
    for i in range(10_000):
        version = "1.0" if i % 2 else "1.1"
        run = f"r-{unique}-{i}"
        # the same 5 % failure rate, duration mix, step count and cost in both versions
        failed = (i // 2 * 7919) % 1000 < 50
        events.append(syn.run_end(tenant, run, 1, status="FAILURE" if failed else "SUCCESS", agent_id=agent,
                                  agent_version=version, duration_ms=900 + (i // 2 % 200), cost_usd=0.0))
    w = worker["w"]
    before = w.records_in()
    produce(bootstrap, topic_prefix, events)
    deadline = time.monotonic() + 120
    while w.records_in() < before + len(events) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert w.records_in() >= before + len(events), w.log_tail()
    # Sentinel, produced once the raw stage has read all 10k runs: the fleet stage applies one
    # tenant's deltas in order, so once its spend breaches the budget, every run before it has
    # reached the drift detector.
    sentinel = f"sentinel-{unique}"
    produce(bootstrap, topic_prefix, [syn.run_start(tenant, sentinel), syn.llm_step(tenant, sentinel, 1, cost_usd=5.0)])
    assert reader.poll_until(lambda r: any(a["tenant_id"] == tenant and a["alert_type"] == "budget_breach"
                                           for a in r.alerts), timeout=180, settle=5.0)
    assert [a for a in reader.alerts if a["tenant_id"] == tenant and a["alert_type"] == "drift"] == []


def test_killed_worker_restarts_without_lost_state_or_repeated_alerts(worker, bootstrap, topic_prefix, unique,
                                                                     reader, app_id):
    tenant, run = f"restart-{unique}", f"run-{unique}"
    # 5 repeats: at the loop threshold (5 allowed), so the state must survive to catch the 6th.
    produce(bootstrap, topic_prefix, [syn.run_start(tenant, run)] +
            [syn.step(tenant, run, i, name="fetch", args_digest="same") for i in range(1, 6)])
    # and one finding already raised before the crash, for a second run
    run2 = f"run2-{unique}"
    produce(bootstrap, topic_prefix, [syn.run_start(tenant, run2)] +
            [syn.step(tenant, run2, i, name="fetch", args_digest="x") for i in range(1, 7)])
    assert reader.poll_until(lambda r: any(a["run_id"] == run2 for a in r.alerts))
    time.sleep(1.5)  # let the worker commit offsets of the batch (commit interval) before the crash
    # A state an older version kept under the run id alone (before states were keyed by
    # (tenant, run)): the restarted worker's restore deletes it (run_state_store.py).
    changelog = f"{topic_prefix}{app_id}-run-state-changelog"
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    p.produce(changelog, b'{"v": 2, "steps": 99}', run.encode())  # the partition run's events take
    assert p.flush(30) == 0
    w = worker["w"]
    w.kill()
    d = worker["dir"]
    worker["w"] = start_worker(bootstrap, topic_prefix, app_id, d / "data2", d / "worker2.log").wait_ready()
    produce(bootstrap, topic_prefix, [syn.step(tenant, run, 6, name="fetch", args_digest="same"),
                                      syn.step(tenant, run2, 7, name="fetch", args_digest="x")])
    assert reader.poll_until(lambda r: any(a["run_id"] == run for a in r.alerts), timeout=90, settle=3.0)
    assert [a["alert_type"] for a in reader.alerts if a["run_id"] == run] == ["loop"]
    assert len({a["alert_id"] for a in reader.alerts if a["run_id"] == run2}) == 1
    # at-least-once may redeliver a record, but never a second, different alert for run2
    assert len([c for c in reader.commands if c["run_id"] == run2 and c["command_type"] == "STOP"]) >= 1
    # the old-format state: deleted from the changelog too (its tombstone went with run's batch)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([changelog])
    values, deadline = [], time.monotonic() + 30
    try:
        while (not values or values[-1] is not None) and time.monotonic() < deadline:
            values += [m.value() for m in c.consume(500, 0.5) if m.error() is None and m.key() == run.encode()]
    finally:
        c.close()
    assert values == [b'{"v": 2, "steps": 99}', None], worker["w"].log_tail()
