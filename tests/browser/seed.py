"""Demo-like data for the browser tests: Avro events and alerts produced to the pipeline's topics.

The records go to ``events`` and ``alerts`` (what the redaction processor and the detectors would
have written), so the real sink stores them and the dashboard reads them back through the API.
The fleet mirrors the demo's: several agents and versions, a drifting release, retries linked to
the attempt they retry, nested steps, approvals (human waits), handoffs, decisions, a looping run
stopped by a command, and a budget breach.
"""
from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agentstream.schemas import ALERT, EVENT, Codec, topic_name

MIN_US = 60_000_000


@dataclass
class Profile:
    agent_id: str
    version: str
    failure_rate: float
    tools: tuple[str, ...]
    provider: str
    model: str
    slow: float = 1.0  # latency multiplier; the drifting release gets slower over time


def profiles(acme: str, globex: str) -> dict[str, list[Profile]]:
    return {
        acme: [
            Profile("support-agent", "1.4.0", 0.04, ("order_lookup", "kb_search", "refund_api"), "openai", "gpt-4o-mini"),
            Profile("support-agent", "1.5.0", 0.20, ("order_lookup", "web_search", "refund_api"), "openai", "gpt-4o", 1.6),
            Profile("billing-agent", "2.1.0", 0.05, ("invoice_api", "ledger_query"), "anthropic", "claude-sonnet-4-5"),
        ],
        globex: [
            Profile("research-agent", "0.9.2", 0.08, ("web_search", "pdf_reader", "vector_search"), "anthropic", "claude-haiku-4-5"),
        ],
    }


@dataclass
class RunBuilder:
    tenant: str
    p: Profile
    start_us: int
    rng: random.Random
    run_id: str = field(default_factory=lambda: "run-" + uuid.uuid4().hex[:16])
    events: list[dict[str, Any]] = field(default_factory=list)
    clock: int = 0
    steps: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0

    def __post_init__(self) -> None:
        self.clock = self.start_us
        self.session = f"sess-{self.rng.randrange(60)}"

    def emit(self, kind: str, payload: dict[str, Any], ts: int | None = None, parent: str | None = None,
             attributes: dict[str, str] | None = None) -> None:
        ts = ts if ts is not None else self.clock
        self.events.append({
            "event_id": uuid.uuid4().hex, "tenant_id": self.tenant, "agent_id": self.p.agent_id,
            "agent_version": self.p.version, "environment": "production", "run_id": self.run_id,
            "session_id": self.session, "parent_run_id": None, "parent_step_id": parent,
            "seq": len(self.events), "ts_us": ts, "emitted_us": ts, "sdk_version": "seed-1",
            "capture_mode": "METADATA_ONLY", "policy_version": "default", "attributes": attributes or {},
            "redaction": None, "kind": kind, "payload": payload,
        })

    def step(self, kind: str, name: str, ms: float, *, status: str = "OK", parent: str | None = None,
             attempt: int = 1, retry_of: str | None = None, advance: bool = True, sid: str | None = None,
             started: int | None = None, **extra: Any) -> str:
        sid = sid or "st-" + uuid.uuid4().hex[:10]
        started = self.clock if started is None else started
        end = started + int(ms * 1000)
        payload = {"step_id": sid, "step_kind": kind, "name": name, "status": status, "started_us": started,
                   "latency_ms": float(ms), "attempt": attempt, "retry_of": retry_of, "llm": None, "tool": None,
                   "handoff": None, "approval": None, "fallback": None, "content": None}
        payload.update(extra)
        self.emit("STEP", payload, ts=end, parent=parent)
        self.steps += 1
        if advance:
            self.clock = end + self.rng.randrange(200, 2000)
        return sid

    def tool(self, name: str, ms: float, **kw: Any) -> str:
        return self.step("TOOL", name, ms, tool={"tool_name": name, "call_id": uuid.uuid4().hex[:8],
                                                  "args_digest": "hmac:" + uuid.uuid4().hex[:16]}, **kw)

    def llm(self, ms: float, parent: str | None = None) -> str:
        tin, tout = self.rng.randint(400, 3000), self.rng.randint(50, 600)
        cost = round(tin * 2.5e-6 + tout * 1e-5, 6)
        self.llm_calls += 1
        self.tokens_in += tin
        self.tokens_out += tout
        self.cost += cost
        return self.step("LLM", f"{self.p.provider}.chat", ms, parent=parent, llm={
            "provider": self.p.provider, "operation": "chat", "request_model": self.p.model,
            "response_model": self.p.model, "input_tokens": tin, "output_tokens": tout,
            "cache_read_tokens": tin // 3 if self.rng.random() < 0.4 else 0, "cache_write_tokens": 0,
            "cost_usd": cost, "finish_reasons": ["stop"], "tool_calls": []})

    def end(self, status: str, outcome: str) -> None:
        self.emit("RUN_END", {"status": status, "outcome": outcome, "started_us": self.start_us,
                              "duration_ms": (self.clock - self.start_us) / 1000, "step_count": self.steps,
                              "llm_calls": self.llm_calls, "input_tokens": self.tokens_in,
                              "output_tokens": self.tokens_out, "cost_usd": self.cost})


def normal_run(tenant: str, p: Profile, start_us: int, rng: random.Random, drift: float = 0.0,
               force_retry: bool = False) -> RunBuilder:
    r = RunBuilder(tenant, p, start_us, rng)
    slow = 1 + (p.slow - 1) * drift
    r.emit("RUN_START", {"entrypoint": "handle_request", "role": None, "sampled": True})
    r.step("PLAN", "plan_request", rng.uniform(40, 150) * slow)
    r.emit("DECISION", {"decision_type": "tool_selection", "selected": p.tools[0], "candidates": list(p.tools),
                        "reason_code": "fresh_data_required", "confidence": round(rng.uniform(0.55, 0.98), 2),
                        "step_id": None})
    r.step("RETRIEVAL", "fetch_context", rng.uniform(80, 400) * slow)
    # An enclosing step with tool calls nested under it.
    outer_start = r.clock
    outer_id = "st-" + uuid.uuid4().hex[:10]
    for _ in range(rng.randint(1, 3)):
        r.tool(rng.choice(p.tools), rng.uniform(100, 900) * slow, parent=outer_id)
    if force_retry or rng.random() < 0.25 + 0.3 * drift:
        first = r.tool(p.tools[-1], 3000 * slow, status="TIMEOUT", parent=outer_id)
        r.emit("FAILURE", {"failure_type": "TOOL", "failure_code": "timeout", "step_id": first,
                           "message": "upstream timed out after 3s", "retryable": True})
        r.tool(p.tools[-1], rng.uniform(150, 700) * slow, parent=outer_id, attempt=2, retry_of=first)
    # The enclosing step ends (and is emitted) after its children, as an SDK would emit it.
    r.step("CUSTOM", "act", (r.clock - outer_start) / 1000, sid=outer_id, started=outer_start)
    if "refund_api" in p.tools and (force_retry or rng.random() < 0.3):
        wait = rng.uniform(2000, 9000)
        r.step("APPROVAL", "refund_approval", wait, approval={"action_digest": "hmac:" + uuid.uuid4().hex[:16],
                                                              "decision": "approved", "approval_latency_ms": wait})
    for _ in range(rng.randint(1, 3)):
        r.llm(rng.uniform(400, 2500) * slow)
    if p.agent_id == "research-agent" and rng.random() < 0.3:
        r.step("HANDOFF", "handoff_to_writer", 30, handoff={"to_agent_id": "writer-agent", "to_run_id": None, "role": "writer"})
    r.emit("QUALITY_SIGNAL", {"signal_type": "schema_valid", "signal_code": "full_match",
                              "value": rng.random() > 0.1, "weight": None, "step_id": None})
    if rng.random() < p.failure_rate * (1 + 2 * drift):
        code = rng.choice(["timeout", "rate_limited", "schema_invalid"])
        r.emit("FAILURE", {"failure_type": "TOOL", "failure_code": code, "step_id": None,
                           "message": None, "retryable": False})
        r.end("FAILURE", "error")
    else:
        r.step("RESPOND", "compose_answer", rng.uniform(20, 120))
        r.end("SUCCESS", "completed")
    return r


def looping_run(tenant: str, p: Profile, start_us: int, rng: random.Random) -> RunBuilder:
    r = RunBuilder(tenant, p, start_us, rng)
    r.emit("RUN_START", {"entrypoint": "handle_request", "role": None, "sampled": True})
    r.step("PLAN", "plan_request", 60)
    for _ in range(8):
        r.tool(p.tools[0], rng.uniform(100, 200))
    r.emit("COMMAND_ACK", {"command_id": "cmd-" + r.run_id[-8:], "command_type": "STOP", "status": "applied",
                           "detail": "loop: order_lookup repeated 8 times with identical arguments"})
    r.end("FAILURE", "stopped_by_command")
    return r


def budget_run(tenant: str, p: Profile, start_us: int, rng: random.Random) -> RunBuilder:
    r = RunBuilder(tenant, p, start_us, rng)
    r.emit("RUN_START", {"entrypoint": "handle_request", "role": None, "sampled": True})
    r.step("PLAN", "plan_request", 80)
    for _ in range(6):
        r.llm(rng.uniform(800, 2000))
    r.emit("FAILURE", {"failure_type": "BUDGET", "failure_code": "run_max_cost_usd", "step_id": None,
                       "message": "run cost exceeded the run budget", "retryable": False})
    r.end("FAILURE", "budget_stopped")
    return r


def alert(tenant: str, alert_type: str, severity: str, title: str, detected_us: int, *, agent: str = "",
          version: str = "", run_id: str = "", evidence: dict[str, str] | None = None) -> dict[str, Any]:
    return {"alert_id": f"{alert_type}-{uuid.uuid4().hex[:12]}", "alert_type": alert_type, "severity": severity,
            "tenant_id": tenant, "agent_id": agent or None, "agent_version": version or None,
            "run_id": run_id or None, "title": title, "evidence": evidence or {}, "detected_us": detected_us,
            "source_offsets": []}


@dataclass
class Seeded:
    runs: dict[str, list[str]]          # tenant -> run ids
    loop_run: str
    budget_run: str
    retry_run: str
    retry_run_steps: int
    alerts: list[dict[str, Any]]
    events: int


def build(acme: str, globex: str, runs_per_profile: int = 30, seed: int = 7) -> tuple[list[dict], list[dict], Seeded]:
    rng = random.Random(seed)
    now = int(time.time() * 1e6)
    span = 120 * MIN_US
    all_events: list[dict] = []
    runs: dict[str, list[str]] = {acme: [], globex: []}
    retry_run = None
    for tenant, plist in profiles(acme, globex).items():
        for p in plist:
            for i in range(runs_per_profile):
                start = now - span + int(span * (i + rng.random()) / runs_per_profile) - 5 * MIN_US
                drift = i / runs_per_profile if p.slow > 1 else 0.0
                r = normal_run(tenant, p, start, rng, drift, force_retry=(retry_run is None and tenant == acme))
                if retry_run is None and tenant == acme:
                    retry_run = r
                runs[tenant].append(r.run_id)
                all_events += r.events
    sup15 = profiles(acme, globex)[acme][1]
    loop = looping_run(acme, sup15, now - 20 * MIN_US, rng)
    budget = budget_run(globex, profiles(acme, globex)[globex][0], now - 15 * MIN_US, rng)
    for r in (loop, budget):
        runs[r.tenant].append(r.run_id)
        all_events += r.events
    alerts = [
        alert(acme, "loop", "CRITICAL", "support-agent repeated order_lookup 8 times; run stopped", now - 19 * MIN_US,
              agent="support-agent", version="1.5.0", run_id=loop.run_id,
              evidence={"fingerprint": "order_lookup:hmac", "repeats": "8", "threshold": "5", "command": "STOP"}),
        alert(acme, "drift", "WARNING", "support-agent 1.5.0 failure rate drifted above its baseline", now - 30 * MIN_US,
              agent="support-agent", version="1.5.0",
              evidence={"metric": "failure_rate", "baseline": "0.04", "observed": "0.31", "z": "4.2"}),
        alert(globex, "budget_breach", "CRITICAL", "research-agent run exceeded run_max_cost_usd", now - 14 * MIN_US,
              agent="research-agent", version="0.9.2", run_id=budget.run_id,
              evidence={"budget": "run_max_cost_usd", "limit": "0.02", "spent": "0.05"}),
        alert(acme, "retry_storm", "WARNING", "billing-agent retries above threshold", now - 50 * MIN_US,
              agent="billing-agent", version="2.1.0", evidence={"retries": "6", "threshold": "5"}),
    ]
    assert retry_run is not None
    retry_steps = sum(1 for e in retry_run.events if e["kind"] == "STEP")
    info = Seeded(runs, loop.run_id, budget.run_id, retry_run.run_id, retry_steps, alerts, len(all_events))
    return all_events, alerts, info


def produce(bootstrap: str, prefix: str, events: list[dict], alerts: list[dict]) -> None:
    from confluent_kafka import Producer

    codec = Codec()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for e in events:
        producer.produce(topic_name("events", prefix), key=e["run_id"].encode(), value=codec.encode(EVENT, e))
    for a in alerts:
        producer.produce(topic_name("alerts", prefix), key=a["tenant_id"].encode(), value=codec.encode(ALERT, a))
    if producer.flush(30):
        raise RuntimeError("seed records were not all delivered")
