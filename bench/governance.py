"""What governance costs the processors' hot path: ``Chain.detect`` (the code every worker runs)
over the same tool-heavy multi-agent fleet under the default policy and under a full governance
policy (50 deny/allow patterns, per-tool limits, 1,000 forbidden digests, required approvals with
approvals before each high-risk call, delegation limits), interleaved rounds, side by side.

    python bench/governance.py [--runs 2000] [--rounds 5]

Prints events/s of each and their ratio per round, then one line of JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy, governance_of
from agentstream.stream_processors.records import InRecord, Redacted
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.schemas import Codec

TOOLS = ["search", "fetch", "sql_query", "send_email", "pay_invoice", "fs_read", "fs_write", "calc"]


def fleet(runs: int, tenant: str) -> list[dict]:
    events = []
    for r in range(runs):
        run = f"{tenant}-r{r}"
        start = syn.run_start(tenant, run, agent_id="AB"[r % 2])
        start["parent_run_id"] = f"{tenant}-r{r - 1}" if r % 4 else None  # chains of four runs
        events.append(start)
        for i in range(1, 21):
            name = TOOLS[(r + i) % len(TOOLS)]
            if name in ("pay_invoice", "send_email"):  # compliant: the bench measures checks, not alerts
                a = syn.step(tenant, run, i * 2 - 1, name="approve", step_kind="APPROVAL", args_digest=None)
                a["payload"]["approval"] = {"action_digest": f"d{r}-{i}", "decision": "approved",
                                            "approval_latency_ms": 1.0}
                events.append(a)
            events.append(syn.step(tenant, run, i * 2, name=name, args_digest=f"d{r}-{i}"))
        events.append(syn.run_end(tenant, run, 42))
    return events


def rich_policy(tenant: str) -> TenantPolicy:
    return TenantPolicy(tenant, governance=governance_of({
        "tool_deny": [f"danger_{i}*" for i in range(25)], "tool_allow": [f"{t}*" for t in TOOLS] + [
            f"extra_{i}" for i in range(17)],
        "max_calls_per_tool": {"search": 100, "fetch": 100, "*": 1000},
        "forbidden_arg_digests": [f"bad{i}" for i in range(1000)], "require_approval": ["pay_*", "send_*"],
        "max_delegation_depth": 10, "max_fan_out": 20, "stop_on": ["tool_denied", "forbidden_args"],
    }, strict=True))


def measure(chain: Chain, passed: list[Redacted]) -> float:
    state: dict[bytes, bytes] = {}
    t0 = time.perf_counter()
    out = chain.detect(passed, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    fleet_in = [InRecord("b.fleet", 0, i, o.key, o.value) for i, o in enumerate(out) if o.topic == "b.fleet"]
    chain.process_fleet(fleet_in, lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    return len(passed) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    settings, codec = ProcessorsSettings(topic_prefix="b."), Codec()
    chains = {}
    for name, policy in (("default", TenantPolicy("t")), ("governed", rich_policy("t"))):
        book = PolicyBook()
        book.set(policy)
        chains[name] = Chain(settings, codec, Redactor(b"k"), book, "b.fleet")
    events = fleet(args.runs, "t")
    passed = [Redacted(e, InRecord("b.raw", 0, i, e["run_id"].encode(), b"")) for i, e in enumerate(events)]
    ratios, rates = [], {"default": [], "governed": []}
    for rnd in range(args.rounds):
        order = ("default", "governed") if rnd % 2 == 0 else ("governed", "default")
        got = {n: measure(chains[n], passed) for n in order}
        for n in got:
            rates[n].append(got[n])
        ratios.append(got["governed"] / got["default"])
        print(f"round {rnd + 1}: default {got['default']:,.0f} ev/s, governed {got['governed']:,.0f} ev/s, "
              f"ratio {ratios[-1]:.3f}")
    fig = {"events": len(events), "default_ev_s": round(statistics.median(rates["default"])),
           "governed_ev_s": round(statistics.median(rates["governed"])),
           "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios]}
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
