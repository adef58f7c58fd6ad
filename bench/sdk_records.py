"""Raw records as the real SDK writes them, made in memory (no broker), for in-process benches.

    from sdk_records import sdk_records
    data = sdk_records(20_000)          # [(key, framed Avro value)], clean
    data = sdk_records(20_000, dirty=0.02)  # ~2% of runs carry a secret in a free-text field
    data = e2e_records(20_000)          # the runs bench/e2e.py's agents emit (bench/e2e_sdk.py)

Every record goes through the SDK's whole path (``Tracer`` → queue → worker → wire encoding)
and lands in ``producer.testing.InMemoryTransport``: the bytes are exactly what the processors
read from raw. Why not bench/processors.py's synthetic events: those are built field by field
and encoded by fastavro, and the prefilter's false trips come from what the SDK really puts in a
record (UUID event/run/session ids, hex digests of tool arguments and requests, step ids made
of the run id, doubles next to strings). The shapes: several tenants, agents and versions; LLM
steps (request digest, usage, finish reasons, tool calls), tool calls (argument digests, call
ids), failures with messages, decisions, quality signals, approvals, handoffs, fallbacks, steps
that raise, end-user digests and sessions; seeded, so two runs make the same mix.
"""
from __future__ import annotations

import random
import uuid
from typing import Any, Callable

from agentstream.producer.testing import InMemoryTransport

# Secrets planted in free text when ``dirty`` > 0 (each of a different rule family).
PLANTED = ("contact jane.doe@example.com", "key AKIAIOSFODNN7EXAMPLE", "card 4111 1111 1111 1111",
           "call +1 415 555 0100", "ssn 123-45-6789", "token ghp_" + "a1B2" * 9)
_MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-3-5-sonnet"), ("openai", "gpt-4o-mini"),
           ("google", "gemini-1.5-pro"))
_TOOLS = ("search", "fetch_order", "crm.lookup", "send_email", "sql_query", "calendar.create")
_CODES = ("timeout", "rate_limited", "schema_invalid", "upstream_5xx", "not_found")
_MESSAGES = ("upstream returned 503 after 3 retries", "order lookup timed out at 30s",
             "model output failed schema validation", "the tool was rate limited by the provider",
             "connection reset by peer")


def _run(tr: Any, rnd: random.Random, i: int, secret: str | None) -> None:
    kw: dict[str, Any] = {"ticket": f"T-{i}", "lane": str(i % 7)}
    if rnd.random() < 0.5:
        kw["session_id"] = str(uuid.UUID(int=rnd.getrandbits(128)))
    if rnd.random() < 0.5:
        kw["end_user_id"] = f"user-{rnd.randrange(10_000)}"
    with tr.run(rnd.choice(("triage", "support_agent", "research", "checkout")), **kw) as run:
        for s in range(rnd.randint(2, 12)):
            what = rnd.random()
            if what < 0.42:
                provider, model = rnd.choice(_MODELS)
                with run.llm_step(provider, model, temperature=0.2) as st:
                    st.record_request(model, [{"role": "user", "content": f"question {i}.{s}"}])
                    st.record_llm(provider, model, input_tokens=rnd.randint(50, 4000),
                                  output_tokens=rnd.randint(10, 800), finish_reasons=["stop"],
                                  tool_calls=[rnd.choice(_TOOLS)] if rnd.random() < 0.3 else [])
            elif what < 0.80:
                run.tool_call(rnd.choice(_TOOLS), {"q": f"order {i}", "n": s}, latency_ms=rnd.uniform(0.5, 900),
                              call_id=f"call_{rnd.getrandbits(64):016x}" if rnd.random() < 0.5 else None,
                              status="OK" if rnd.random() < 0.9 else "ERROR")
            elif what < 0.86:
                msg = secret if secret and s == 1 else rnd.choice(_MESSAGES)
                run.failure(rnd.choice(("tool", "model", "retrieval")), rnd.choice(_CODES), msg,
                            retryable=rnd.random() < 0.5)
            elif what < 0.90:
                run.decision("tool_selection", rnd.choice(_TOOLS), candidates=list(_TOOLS[:3]),
                             reason_code="highest_score", confidence=rnd.random())
            elif what < 0.93:
                run.quality_signal("grounding", "cited_sources", rnd.random() < 0.8, weight=rnd.random())
            elif what < 0.95:
                run.approval({"action": "refund", "amount": rnd.randrange(1, 500)}, "approved",
                             rnd.uniform(1_000, 60_000))
            elif what < 0.97:
                run.handoff(f"agent-{rnd.randrange(5)}", role="specialist")
            elif what < 0.98:
                run.fallback("gpt-4o", "gpt-4o-mini", "rate_limited", True)
            else:
                try:
                    with run.step("custom", "parse_reply", attempt_note="first"):
                        raise ValueError("bad reply")
                except ValueError:
                    pass


def sdk_records(n: int, seed: int = 20261206, tenants: int = 4, agents: int = 3,
                dirty: float = 0.0) -> list[tuple[bytes, bytes]]:
    """At least ``n`` raw records (whole runs) from the real SDK, cut to ``n``."""
    mem = InMemoryTransport()
    rnd = random.Random(seed)
    tracers = [mem.tracer(f"tenant-{t}", f"agent-{a}", f"1.{a}.{t}", ("prod", "staging")[a % 2],
                          digest_key=f"bench-key-{t}")
               for t in range(tenants) for a in range(agents)]

    def one(i: int) -> None:
        secret = PLANTED[i % len(PLANTED)] if dirty and rnd.random() < dirty else None
        _run(tracers[i % len(tracers)], rnd, i, secret)

    return _collect(mem, tracers, n, one)


def _collect(mem: InMemoryTransport, tracers: list, n: int, run: Callable[[int], None]) -> list[tuple[bytes, bytes]]:
    """``run(i)`` for i = 0, 1, ... until ``mem`` holds ``n`` records; its first ``n``."""
    try:
        i = 0
        while len(mem.records()) < n:
            for _ in range(200):
                run(i)
                i += 1
            for tr in tracers:
                tr.flush(30)
    finally:
        for tr in tracers:
            tr.close(30)
    return [(k, v) for _topic, k, v in mem.records()[:n]]


def e2e_records(n: int, tenants: int = 3, agents: int = 4, steps: int = 6) -> list[tuple[bytes, bytes]]:
    """At least ``n`` raw records of the runs bench/e2e.py's agent process emits (its
    ``emit_run``: LLM and tool steps alternating, tool arguments digested), cut to ``n``."""
    from e2e_sdk import emit_run

    mem = InMemoryTransport()
    tracers = [mem.tracer(f"t-{t}", f"agent-{a}", f"1.{a % 2}.0", "bench") for t in range(tenants)
               for a in range(agents)]
    return _collect(mem, tracers, n, lambda i: emit_run(tracers[i % len(tracers)], i, steps))
