"""A synthetic multi-tenant fleet for the demo: several agents and versions, tools, LLM calls,
retries, failures, decisions, a drifting version, a looping run and a budget breach.

It drives the real producer SDK, so everything it shows went through the real pipeline.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from agentstream.producer import EnforcementError, ProducerSettings, Tracer


@dataclass(frozen=True)
class AgentProfile:
    tenant_id: str
    agent_id: str
    version: str
    failure_rate: float
    tools: tuple[str, ...]
    model: tuple[str, str]  # provider, model
    llm_calls: tuple[int, int]


FLEET = [
    AgentProfile("acme", "support-agent", "1.4.0", 0.03, ("order_lookup", "kb_search", "refund_api"), ("openai", "gpt-4o-mini"), (1, 3)),
    # 1.5.0 is the drifting release: more tool timeouts, another tool mix.
    AgentProfile("acme", "support-agent", "1.5.0", 0.15, ("order_lookup", "web_search", "refund_api"), ("openai", "gpt-4o"), (2, 4)),
    AgentProfile("acme", "billing-agent", "2.1.0", 0.05, ("invoice_api", "ledger_query"), ("anthropic", "claude-sonnet-4-5"), (1, 2)),
    AgentProfile("globex", "research-agent", "0.9.2", 0.08, ("web_search", "pdf_reader", "vector_search"), ("anthropic", "claude-haiku-4-5"), (2, 5)),
    AgentProfile("globex", "triage-agent", "3.0.0", 0.02, ("ticket_api", "kb_search"), ("openai", "gpt-4o-mini"), (1, 2)),
]

PLANTED_SECRETS = [
    "customer jane.doe@example.com asked about order ORDER-1182",
    "retrying with key AKIAIOSFODNN7EXAMPLE",
    "card on file 4111 1111 1111 1111",
]


# The demo's clock runs fast: an LLM call of 15-90 ms stands for one of 0.3-2.5 s. Every step
# really takes the time it reports, inside its run, so waterfalls and durations agree.
LLM_MS = (15, 90)


def _pause(lo_ms: float, hi_ms: float, rng: random.Random) -> None:
    time.sleep(rng.uniform(lo_ms, hi_ms) / 1000)


def _args(tool: str, rng: random.Random) -> dict:
    """Arguments of a tool call (they travel only as a keyed digest)."""
    return {"tool": tool, "query_id": rng.randrange(10_000)}


def run_once(tracer: Tracer, profile: AgentProfile, rng: random.Random, *, looping: bool = False) -> str:
    """One agent run; returns its outcome. Enforcement stops end the run, never the fleet."""
    provider, model = profile.model
    try:
        with tracer.run(name="handle_request", session_id=f"sess-{rng.randrange(500)}") as run:
            with run.step("plan", "plan_request"):
                _pause(2, 8, rng)
            run.decision("tool_selection", selected=profile.tools[0], candidates=list(profile.tools),
                         reason_code="fresh_data_required", confidence=round(rng.uniform(0.55, 0.98), 2))
            with run.step("retrieval", "fetch_context", documents=str(rng.randrange(1, 8))):
                _pause(3, 15, rng)
            repeats = 40 if looping else 1
            for _ in range(repeats):
                tool = profile.tools[0] if looping else rng.choice(profile.tools)
                attrs = {"note": rng.choice(PLANTED_SECRETS)} if rng.random() < 0.05 else {}
                # a looping run repeats the same call: same tool, same arguments
                args = {"tool": tool, "query_id": 1} if looping else _args(tool, rng)
                with run.tool_step(tool, args, **attrs):
                    _pause(5, 40, rng)
            if rng.random() < 0.25:  # a timeout and its retry, linked by the SDK
                tool = profile.tools[-1]
                args = _args(tool, rng)
                with run.tool_step(tool, args) as first:
                    _pause(20, 60, rng)
                    first.set_status("TIMEOUT")
                run.failure("tool", "timeout", message="upstream timed out after 30s",
                            step_id=first.step_id, retryable=True)
                with run.tool_step(tool, args, retry_of=first):
                    _pause(5, 30, rng)
            for _ in range(rng.randint(*profile.llm_calls)):
                tokens_in = rng.randint(400, 3000)
                with run.llm_step(provider, model, estimated_tokens=tokens_in) as llm:
                    _pause(*LLM_MS, rng)
                    llm.record_llm(provider, model, input_tokens=tokens_in,
                                   output_tokens=rng.randint(50, 600),
                                   cache_read_tokens=tokens_in // 3 if rng.random() < 0.4 else 0)
            run.quality_signal("schema_valid", "full_match", value=rng.random() > 0.1)
            if rng.random() < profile.failure_rate:
                run.failure("tool", rng.choice(["timeout", "rate_limited", "schema_invalid"]))
                raise RuntimeError("agent failed")
            with run.step("respond", "compose_answer"):
                _pause(1, 5, rng)
        return "success"
    except EnforcementError as exc:
        return type(exc).__name__
    except RuntimeError:
        return "failure"


class Fleet:
    """Runs the profiles on a few threads until stopped or ``total_runs`` is reached."""

    def __init__(self, settings: ProducerSettings, seed: int = 7, threads: int = 4) -> None:
        self.settings = settings
        self.rng = random.Random(seed)
        self.threads = threads
        self.tracers = {
            (p.tenant_id, p.agent_id, p.version): Tracer(p.tenant_id, p.agent_id, p.version, "production", settings=settings)
            for p in FLEET
        }
        self.outcomes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._count = 0

    def _tracer(self, p: AgentProfile) -> Tracer:
        return self.tracers[(p.tenant_id, p.agent_id, p.version)]

    def _worker(self, seed: int, total_runs: int, stop: threading.Event) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            with self._lock:
                if self._count >= total_runs:
                    return
                self._count += 1
                n = self._count
            profile = rng.choice(FLEET)
            outcome = run_once(self._tracer(profile), profile, rng, looping=(n % 97 == 0))
            with self._lock:
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def run(self, total_runs: int, stop: threading.Event | None = None) -> dict[str, int]:
        stop = stop or threading.Event()
        workers = [threading.Thread(target=self._worker, args=(self.rng.randrange(1 << 30), total_runs, stop), daemon=True)
                   for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return dict(self.outcomes)

    def close(self, timeout: float = 10.0) -> None:
        for t in self.tracers.values():
            t.flush(timeout)
            t.close()
