"""Multi-agent governance over the tenant's run graph: handoff loops across runs, delegation
depth and fan-out; links arriving out of order, twice, or forming run-id cycles."""
from __future__ import annotations

import random

from agentstream.stream_processors.detectors import governance_topology as topo
from agentstream.stream_processors.policies import governance_of


def chain(agents, prefix="r"):
    """Links of a straight handoff chain: run i (agent i) hands off to run i+1."""
    return [[f"{prefix}{i + 1}", f"{prefix}{i}", agents[i + 1], agents[i], i] for i in range(len(agents) - 1)]


def run(links, **gov):
    st = topo.new_state()
    return st, topo.apply(st, links, governance_of(gov))


def test_a_b_a_is_allowed_once_and_the_loop_is_found_at_the_second_return():
    _, f = run(chain(list("ABA")))
    assert f == []
    _, f = run(chain(list("ABABAB")))
    assert [(x.alert_type, x.evidence["run_id"], x.alert) for x in f] == [
        ("handoff_loop", "r4", True), ("handoff_loop", "r5", True)]  # A's and B's second return
    a = f[0]
    assert a.severity == "CRITICAL" and a.stop_runs == ["r4"] and a.evidence["agents"] == "A -> B -> A -> B -> A"
    assert a.evidence["root_run_id"] == "r0"


def test_loop_limit_zero_turns_it_off_and_a_higher_limit_allows_more():
    assert run(chain(list("ABABABAB")), max_handoff_cycles=0)[1] == []
    assert run(chain(list("ABABA")), max_handoff_cycles=2)[1] == []
    assert run(chain(list("ABABABA")), max_handoff_cycles=2)[1][0].evidence["reappearances"] == "3"


def test_depth_limit_alerts_once_per_root_and_stops_every_run_below_it():
    _, f = run(chain(list("ABCDEF")), max_delegation_depth=3)
    assert [(x.evidence["run_id"], x.alert) for x in f] == [("r4", True), ("r5", False)]
    assert all(x.alert_type == "delegation_limit" and x.stop_runs for x in f)
    _, f = run(chain(list("ABCDEF")), max_delegation_depth=3, stop_on_multi_agent=False)
    assert [(x.severity, x.stop_runs, x.alert) for x in f] == [("WARNING", [], True)]


def test_fan_out_counts_distinct_children_once_even_when_reported_twice():
    links = [[f"c{i}", "root", "worker", "boss", i] for i in range(5)]
    links += [[f"c{i}", "root", "worker", "", i] for i in range(5)]  # the child's RUN_START, too
    _, f = run(links, max_fan_out=5)
    assert f == []
    _, f = run(links + [["c5", "root", "worker", "", 9]], max_fan_out=5)
    assert [(x.evidence["limit_name"], x.evidence["children"], x.stop_runs) for x in f] == \
        [("max_fan_out", "6", ["c5"])]


def test_child_before_parent_and_run_id_cycles_never_hang_or_crash():
    links = chain(list("ABABAB"))
    random.Random(3).shuffle(links)
    st, f = run(links)
    assert len(st["nodes"]) == 6  # judged on what is known at each link: a lower bound, no crash
    st, f = run([["x", "y", "A", "B", 0], ["y", "x", "B", "A", 1], ["x", "x", "A", "A", 2]])
    assert topo.ancestry(st["nodes"], "x") == ["y"]


def test_state_is_bounded():
    st = topo.new_state()
    for i in range(topo.MAX_NODES // 2 + 10):
        topo.apply(st, [[f"c{i}", f"p{i}", "a", "b", i]], governance_of(None))
    assert len(st["nodes"]) <= topo.MAX_NODES


def test_chain_links_runs_by_parent_run_id_and_handoff_steps_through_the_fleet_path():
    from agentstream.schemas import ALERT, COMMAND, EVENT, Codec
    from agentstream.stream_processors import synthetic as syn
    from agentstream.stream_processors.chain import Chain
    from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
    from agentstream.stream_processors.records import InRecord
    from agentstream.stream_processors.redaction import Redactor
    from agentstream.stream_processors.settings import ProcessorsSettings

    codec = Codec()
    book = PolicyBook()
    book.set(TenantPolicy("t", governance=governance_of({"max_delegation_depth": 10})))
    chain_ = Chain(ProcessorsSettings(topic_prefix="m."), codec, Redactor(b"k"), book, "m.fleet")
    agents = list("ABABA")
    events = []
    for i, a in enumerate(agents):
        start = syn.run_start("t", f"r{i}", agent_id=a)
        if i and i % 2:  # odd runs are linked only by their RUN_START, even ones only by the handoff step
            start["parent_run_id"] = f"r{i - 1}"
        events.append(start)
        if i + 1 < len(agents) and (i + 1) % 2 == 0:
            h = syn.step("t", f"r{i}", 1, name="handoff", step_kind="HANDOFF", args_digest=None, agent_id=a)
            h["payload"]["handoff"] = {"to_agent_id": agents[i + 1], "to_run_id": f"r{i + 1}", "role": None}
            events.append(h)
    state: dict[bytes, bytes] = {}
    get, put = (lambda p, k: state.get(k)), (lambda p, k, v: state.__setitem__(k, v))
    batch = [InRecord("m.raw", 0, off, e["run_id"].encode(), codec.encode(EVENT, e)) for off, e in enumerate(events)]
    fleet_recs = [o for o in chain_.process(batch, get, put) if o.topic == "m.fleet"]
    out = chain_.process_fleet([InRecord("m.fleet", 0, i, o.key, o.value) for i, o in enumerate(fleet_recs)],
                               get, put)
    alerts = [codec.decode_as(ALERT, o.value) for o in out if o.topic == "m.alerts"]
    stops = [codec.decode_as(COMMAND, o.value) for o in out if o.topic == "m.commands"]
    assert [(a["alert_type"], a["run_id"], a["agent_id"]) for a in alerts] == [("handoff_loop", "r4", "A")]
    assert [s["run_id"] for s in stops] == ["r4"] and stops[0]["alert_id"] == alerts[0]["alert_id"]


def test_runs_that_ended_alone_are_forgotten_chains_are_kept():
    st = topo.new_state()
    topo.apply(st, [["solo", None, "A", "", 0]] + chain(list("AB")), governance_of(None))
    topo.forget_ended(st, ["solo", "r0", "r1", "unknown"])
    assert sorted(st["nodes"]) == ["r0", "r1"]


def test_every_arrival_order_of_a_looping_chain_finds_the_loop_once():
    links = chain(list("ABABA")) + [["r0", None, "A", "", 0]]
    for seed in range(200):
        shuffled = list(links)
        random.Random(seed).shuffle(shuffled)
        st, f = run(shuffled)
        loops = [x for x in f if x.alert]
        assert [(x.alert_type, x.evidence["run_id"]) for x in loops] == [("handoff_loop", "r4")], (seed, shuffled)
        assert [x.evidence["run_id"] for x in f] == ["r4"]  # one STOP, never repeated on re-judging


def test_a_run_naming_another_tenants_run_as_parent_joins_nothing_of_that_tenant():
    """The graph is per tenant (the fleet state is keyed by tenant): a forged parent_run_id
    pointing into another tenant's tree neither completes a loop there nor counts in its fan-out."""
    from agentstream.schemas import ALERT, EVENT, Codec
    from agentstream.stream_processors import synthetic as syn
    from agentstream.stream_processors.chain import Chain
    from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
    from agentstream.stream_processors.records import InRecord
    from agentstream.stream_processors.redaction import Redactor
    from agentstream.stream_processors.settings import ProcessorsSettings

    codec = Codec()
    book = PolicyBook()
    book.set(TenantPolicy("victim", governance=governance_of({"max_fan_out": 1})))
    c = Chain(ProcessorsSettings(topic_prefix="x."), codec, Redactor(b"k"), book, "x.fleet")
    events = []
    for i, a in enumerate("ABAB"):  # the victim's chain A -> B -> A -> B: allowed
        e = syn.run_start("victim", f"v{i}", agent_id=a)
        e["parent_run_id"] = f"v{i - 1}" if i else None
        events.append(e)
    for i in range(3):  # the attacker's runs claim the victim's runs as parents
        e = syn.run_start("attacker", f"x{i}", agent_id="A")
        e["parent_run_id"] = "v3" if i == 0 else "v0"
        events.append(e)
    state: dict[bytes, bytes] = {}
    get, put = (lambda p, k: state.get(k)), (lambda p, k, v: state.__setitem__(k, v))
    batch = [InRecord("x.raw", 0, i, e["run_id"].encode(), codec.encode(EVENT, e)) for i, e in enumerate(events)]
    fleet_recs = [o for o in c.process(batch, get, put) if o.topic == "x.fleet"]
    out = c.process_fleet([InRecord("x.fleet", 0, i, o.key, o.value) for i, o in enumerate(fleet_recs)], get, put)
    victim = [codec.decode_as(ALERT, o.value) for o in out if o.topic == "x.alerts" and o.key == b"victim"]
    assert victim == []
