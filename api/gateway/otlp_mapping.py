"""OpenTelemetry spans -> agentstream events. Pure: spans and a context in, event dicts out.

A trace is a run (run_id = the trace id): the gateway is stateless and a trace's spans arrive
over several exports, so the only identity every span carries is its trace. The root span is
the run (RUN_START, RUN_END); every other span is a step, typed by ``gen_ai.operation.name``;
spans without GenAI attributes are CUSTOM steps. Agent identity comes from the resource,
which every export repeats. Content attributes (prompts, completions, tool arguments and
results) never leave this module; tool arguments become a keyed digest. docs/ingest.md holds
the mapping table.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentstream.schemas.attribute_keys import attribute_verdict, credential_key, is_metadata_key
from agentstream.schemas.digests import end_user_digest
from agentstream.schemas.usage_numbers import TOKENS_MAX, usage_cost

from . import span_digest
from .otlp_decode import STATUS_ERROR, OtlpBytes, OtlpSpan

LLM_OPS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
AGENT_OPS = frozenset({"invoke_agent", "create_agent"})
# OpenInference's span kinds (openinference.span.kind) -> step kinds. CHAIN and unknown kinds are
# CUSTOM steps; an AGENT span is the run at the root and a handoff below it.
OI_KIND = "openinference.span.kind"
OI_STEP_KINDS = {"LLM": "LLM", "EMBEDDING": "LLM", "TOOL": "TOOL", "RETRIEVER": "RETRIEVAL",
                 "RERANKER": "RETRIEVAL", "GUARDRAIL": "GUARDRAIL", "AGENT": "HANDOFF"}
# Attributes that carry content. Prefix match, so indexed variants (gen_ai.prompt.0.content)
# are caught too.
CONTENT_PREFIXES = (
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "gen_ai.tool.definitions", "llm.prompts", "llm.completions",
    "input.value", "output.value", "traceloop.entity.input", "traceloop.entity.output",
    "db.statement", "db.query.text", "exception.stacktrace",
)
# Who the end user is (OTel enduser.*, user.*): it travels only as Event v2's end_user_id, the
# keyed digest of the first of END_USER_KEYS present (span before resource), never as attributes.
IDENTITY_PREFIXES = ("enduser.", "user.")
END_USER_KEYS = ("enduser.id", "user.id", "enduser.pseudo.id")
MAX_ATTRIBUTES = 32
MAX_VALUE_CHARS = 256
MAX_MESSAGE_CHARS = 512
ID_NAMESPACE = uuid.UUID("7d1e54a4-4d63-4a5e-9a43-3f6c1d0e2b90")

CostFn = Callable[[tuple[str | None, ...], int, int, int, int], float | None]


@dataclass
class MappingContext:
    tenant_id: str
    now_us: int
    cost: CostFn = lambda models, i, o, cr, cw: None
    args_digest_key: bytes | None = None


@dataclass
class MappedRun:
    run_id: str
    events: list[dict[str, Any]] = field(default_factory=list)  # seq relative: 0..n-1


@dataclass
class MappedSpans:
    runs: list[MappedRun] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (span ref, reason)

    @property
    def event_count(self) -> int:
        return sum(len(r.events) for r in self.runs)


def map_spans(spans: list[OtlpSpan], ctx: MappingContext) -> MappedSpans:
    out = MappedSpans()
    by_trace: dict[str, list[OtlpSpan]] = {}
    for s in spans:
        problem = span_problem(s)
        if problem:
            out.rejected.append((f"{s.trace_id or '?'}/{s.span_id or '?'}", problem))
            continue
        by_trace.setdefault(s.trace_id, []).append(s)
    for trace_id, group in by_trace.items():
        out.runs.append(_map_trace(trace_id, group, ctx))
    return out


def span_problem(s: OtlpSpan) -> str | None:
    if len(s.trace_id) != 32 or s.trace_id == "0" * 32:
        return "invalid trace id"
    if len(s.span_id) != 16 or s.span_id == "0" * 16:
        return "invalid span id"
    if s.start_ns <= 0 or s.end_ns < s.start_ns:
        return "span times missing or end before start"
    return None


def _map_trace(trace_id: str, spans: list[OtlpSpan], ctx: MappingContext) -> MappedRun:
    run = MappedRun(trace_id)
    spans = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    root = next((s for s in spans if not s.parent_span_id), None)
    if root is not None:
        run.events.append(_event(ctx, root, "RUN_START", root.start_ns // 1000, {
            "entrypoint": _agent_name(root) or root.name or "run",
            "role": _str(root.attributes.get("gen_ai.agent.role")),
            "sampled": True,
        }))
    totals = {"step_count": 0, "llm_calls": 0, "input_tokens": 0, "output_tokens": 0,
              "cost_usd": 0.0}
    root_step = None
    for s in spans:
        step = None
        if s is not root or _is_step_op(s):
            step = _step(s, ctx)
            run.events.append(_event(ctx, s, "STEP", s.end_ns // 1000, step))
            totals["step_count"] += 1
            if step["llm"] is not None:
                totals["llm_calls"] += 1
                totals["input_tokens"] += step["llm"]["input_tokens"]
                totals["output_tokens"] += step["llm"]["output_tokens"]
                totals["cost_usd"] += step["llm"]["cost_usd"]
        if s is root:
            root_step = step
        elif s.status_code == STATUS_ERROR:
            run.events.append(_event(ctx, s, "FAILURE", s.end_ns // 1000, _failure(s, step)))
    if root is not None:
        failed = root.status_code == STATUS_ERROR
        if failed:  # the run's own failure comes last, after the steps that led to it
            run.events.append(_event(ctx, root, "FAILURE", root.end_ns // 1000,
                                     _failure(root, root_step)))
        run.events.append(_event(ctx, root, "RUN_END", root.end_ns // 1000, {
            "status": "FAILURE" if failed else "SUCCESS",
            "outcome": "error" if failed else "completed",
            "started_us": root.start_ns // 1000,
            "duration_ms": (root.end_ns - root.start_ns) / 1e6,
            # each count is clamped (_int), but a run's sum of them may pass the bound
            **totals, "input_tokens": min(totals["input_tokens"], TOKENS_MAX),
            "output_tokens": min(totals["output_tokens"], TOKENS_MAX),
            "cost_usd": round(totals["cost_usd"], 10),
        }))
    for seq, ev in enumerate(run.events):
        ev["seq"] = seq
    return run


def _is_step_op(s: OtlpSpan) -> bool:
    """A root span that is itself an LLM or tool call is both the run and its one step."""
    op = _str(s.attributes.get("gen_ai.operation.name"))  # any AnyValue may come: a list, a kvlist
    oi = _oi_kind(s)
    if op is None and oi is not None:
        return oi in OI_STEP_KINDS and oi != "AGENT"
    return op not in AGENT_OPS and (op is not None or _looks_like_llm(s))


def _oi_kind(s: OtlpSpan) -> str | None:
    k = s.attributes.get(OI_KIND)
    return k.upper() if isinstance(k, str) and k else None


def _looks_like_llm(s: OtlpSpan) -> bool:
    # Instrumentations predating gen_ai.operation.name still set a model or token counts.
    a = s.attributes
    return any(k in a for k in ("gen_ai.request.model", "gen_ai.usage.input_tokens",
                                "gen_ai.usage.prompt_tokens", "llm.model_name", "llm.token_count.prompt"))


def _step(s: OtlpSpan, ctx: MappingContext) -> dict[str, Any]:
    a = s.attributes
    op = _str(a.get("gen_ai.operation.name"))
    oi = OI_STEP_KINDS.get(_oi_kind(s) or "") if op is None else None
    kind, llm, tool, handoff = "CUSTOM", None, None, None
    name = s.name or op or "span"
    if op in LLM_OPS or oi == "LLM" or (op is None and _oi_kind(s) is None and _looks_like_llm(s)):
        kind = "LLM"
        llm = _llm(s, op or ("embeddings" if _oi_kind(s) == "EMBEDDING" else "chat"), ctx)
    elif op == "execute_tool" or oi == "TOOL":
        kind = "TOOL"
        name = _str(a.get("gen_ai.tool.name")) or _str(a.get("tool.name")) or name
        tool = {"tool_name": name, "call_id": _str(a.get("gen_ai.tool.call.id")) or _str(a.get("tool_call.id")),
                "args_digest": _args_digest(a.get("gen_ai.tool.call.arguments"), ctx)
                or span_digest.tool_args_digest(a, ctx.args_digest_key)}
    elif oi in ("RETRIEVAL", "GUARDRAIL"):
        kind = oi
    elif op == "invoke_agent" or oi == "HANDOFF":
        kind = "HANDOFF"
        handoff = {"to_agent_id": _str(a.get("gen_ai.agent.id")) or _agent_name(s) or name,
                   "to_run_id": None, "role": _str(a.get("gen_ai.agent.role"))}
    return {
        "step_id": s.span_id, "step_kind": kind, "name": name,
        "status": _step_status(s), "started_us": s.start_ns // 1000,
        "latency_ms": (s.end_ns - s.start_ns) / 1e6, "attempt": 1, "retry_of": None,
        "llm": llm, "tool": tool, "handoff": handoff, "approval": None, "fallback": None,
        "content": None,
    }


def _llm(s: OtlpSpan, op: str, ctx: MappingContext) -> dict[str, Any]:
    a = s.attributes
    req = _str(a.get("gen_ai.request.model"))
    # OpenInference names one model (the response's where the client reports it)
    resp = _str(a.get("gen_ai.response.model")) or _str(a.get("llm.model_name"))
    tin = _int(_first(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"))
    tout = _int(_first(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                       "llm.token_count.completion"))
    cr = _int(_first(a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                     "llm.token_count.prompt_details.cache_read"))
    cw = _int(_first(a, "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                     "llm.token_count.prompt_details.cache_write"))
    cost = usage_cost(_first(a, "gen_ai.usage.cost", "llm.cost.total"))  # NaN, negative: priced instead
    if cost is None:
        cost = ctx.cost((resp, req), tin, tout, cr, cw)
    reasons = a.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, str):
        reasons = [reasons]
    return {
        "provider": _str(a.get("gen_ai.provider.name")) or _str(a.get("gen_ai.system"))
        or _str(a.get("llm.provider")) or _str(a.get("llm.system")) or "unknown",
        "operation": op, "request_model": req or resp or "unknown", "response_model": resp,
        "input_tokens": tin, "output_tokens": tout, "cache_read_tokens": cr,
        "cache_write_tokens": cw, "cost_usd": cost or 0.0,
        "finish_reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [],
        "tool_calls": [],
        "request_digest": span_digest.llm_request_digest(a, req or resp or "unknown", ctx.args_digest_key),
    }


def _failure(s: OtlpSpan, step: dict[str, Any] | None) -> dict[str, Any]:
    kind = step["step_kind"] if step else "RUN"
    exc_type, exc_msg = _exception(s)
    status = _int(_first(s.attributes, "http.response.status_code", "http.status_code"))
    code = _str(s.attributes.get("error.type")) or exc_type or (f"http_{status}" if status else "error")
    message = s.status_message or exc_msg
    return {
        "failure_type": {"LLM": "MODEL", "TOOL": "TOOL", "HANDOFF": "ORCHESTRATION", "RETRIEVAL": "RETRIEVAL",
                         "GUARDRAIL": "POLICY", "RUN": "ORCHESTRATION"}.get(kind, "UNKNOWN"),
        "failure_code": code[:64],
        "step_id": step["step_id"] if step else None,
        "message": message[:MAX_MESSAGE_CHARS] if message else None,
        "retryable": False,
    }


def _exception(s: OtlpSpan) -> tuple[str | None, str | None]:
    for name, attrs in s.events:
        if name == "exception":
            return _str(attrs.get("exception.type")), _str(attrs.get("exception.message"))
    return None, None


def _step_status(s: OtlpSpan) -> str:
    if s.status_code != STATUS_ERROR:
        return "OK"
    exc_type, _ = _exception(s)
    err = (_str(s.attributes.get("error.type")) or exc_type or "").lower()
    return "TIMEOUT" if "timeout" in err else "ERROR"


def _event(ctx: MappingContext, s: OtlpSpan, kind: str, ts_us: int,
           payload: dict[str, Any]) -> dict[str, Any]:
    res = s.resource
    a = s.attributes
    dropped: dict[str, int] = {}
    sdk = "-".join(str(x) for x in (res.get("telemetry.sdk.name"),
                                    res.get("telemetry.sdk.language")) if x)
    return {
        # Stable per (tenant, span, kind): an exporter retrying a batch yields the same ids,
        # and the sink keeps one copy.
        "event_id": str(uuid.uuid5(ID_NAMESPACE, f"{ctx.tenant_id}/{s.trace_id}/{s.span_id}/{kind}")),
        "tenant_id": ctx.tenant_id,
        "agent_id": _str(res.get("gen_ai.agent.id")) or _str(res.get("gen_ai.agent.name"))
        or _str(res.get("service.name")) or "unknown_service",
        "agent_version": _str(res.get("service.version")) or "unknown",
        "environment": _str(res.get("deployment.environment.name"))
        or _str(res.get("deployment.environment")) or "default",
        "run_id": s.trace_id,
        "session_id": _str(a.get("gen_ai.conversation.id")) or _str(a.get("session.id"))
        or _str(res.get("gen_ai.conversation.id")),
        "parent_run_id": None,
        "parent_step_id": s.parent_span_id or None,
        "seq": 0,
        "ts_us": ts_us,
        "emitted_us": ctx.now_us,
        "sdk_version": f"otlp:{sdk or 'unknown'}/{res.get('telemetry.sdk.version', '?')}",
        "capture_mode": "METADATA_ONLY",
        "policy_version": "default",
        "attributes": safe_attributes(s, dropped) if kind in ("STEP", "RUN_START") else {},
        # what the allow-list dropped, by count; the processors carry it into their summary
        "redaction": {"policy_version": "gateway", "rule_counts": dropped} if dropped else None,
        "kind": kind,
        "payload": payload,
        "end_user_id": _end_user(s, ctx),
    }


def _end_user(s: OtlpSpan, ctx: MappingContext) -> str | None:
    """The keyed digest of the span's (else the resource's) end-user id; None without an id or
    without a key (the raw id is never forwarded)."""
    if not ctx.args_digest_key:
        return None
    for attrs in (s.attributes, s.resource):
        for k in END_USER_KEYS:
            v = _str(attrs.get(k))
            if v:
                return end_user_digest(ctx.args_digest_key, v)
    return None


def safe_attributes(s: OtlpSpan, dropped: dict[str, int] | None = None) -> dict[str, str]:
    out = {"otel.span_name": s.name[:MAX_VALUE_CHARS], "otel.span_id": s.span_id}
    if s.scope:
        out["otel.scope"] = s.scope[:MAX_VALUE_CHARS]
    for k, v in sorted(s.attributes.items()):
        if len(out) >= MAX_ATTRIBUTES:
            out["agentstream.attributes_truncated"] = "true"
            break
        if v is None or k.startswith(IDENTITY_PREFIXES):
            continue
        text = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)
        # A list is judged by its items read as one text: as JSON (``["Maria","HIV positive"]``)
        # it never held four words in a row, so the prose verdict never saw what a list carried.
        judged = " ".join(map(str, v)) if isinstance(v, list) else text
        # the shared allow-list: content keys (OpenInference messages, tool schemas, invocation
        # parameters…) and long free values never reach the raw topic; nor does a value under a
        # name that says credential (db.password, http.request.header.authorization, x-api-key):
        # an edge has no redactor, and such a value has no part worth keeping. Names only weakly
        # sensitive (``*.key``) go on to the processors, which judge the value with its key.
        # Bytes (as base64) and maps are dropped whole: no rule reads inside base64, and a map
        # is a record of fields (a tool call's arguments), not one metadata value.
        reason = ("content_key" if k.startswith(CONTENT_PREFIXES)
                  else "credential_key" if credential_key(k) == "strong"
                  else "bytes_value" if _holds_bytes(v)
                  else "structured_value" if isinstance(v, dict) and not is_metadata_key(k)
                  else attribute_verdict(k, judged, "METADATA_ONLY"))
        if reason is None and judged is not text:  # a list: its JSON as stored, too (its length)
            reason = attribute_verdict(k, text, "METADATA_ONLY")
        if reason is not None:
            if dropped is not None:
                dropped["dropped_attribute:" + reason] = dropped.get("dropped_attribute:" + reason, 0) + 1
            continue
        out[k] = text[:MAX_VALUE_CHARS]
    return out


def _holds_bytes(v: Any) -> bool:
    if isinstance(v, OtlpBytes):
        return True
    if isinstance(v, list):
        return any(_holds_bytes(x) for x in v)
    return isinstance(v, dict) and any(_holds_bytes(x) for x in v.values())


def _args_digest(args: Any, ctx: MappingContext) -> str | None:
    if args is None or ctx.args_digest_key is None:
        return None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            pass  # not JSON: digest the text as sent
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(ctx.args_digest_key, canonical.encode(), hashlib.sha256).hexdigest()


def _agent_name(s: OtlpSpan) -> str | None:
    return _str(s.attributes.get("gen_ai.agent.name"))


def _first(a: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = a.get(k)
        if v is not None:
            return v
    return None


def _str(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, str) else str(v)


def _int(v: Any) -> int:
    """A count attribute as a whole number clamped to 0..TOKENS_MAX: OTLP's int64 (and a JSON
    "1e30") has no bound the events table keeps, and a count past Avro's long failed the
    RUN_END's encoding, leaving the run RUNNING for ever."""
    try:
        return min(max(0, int(v)), TOKENS_MAX) if v is not None and not isinstance(v, bool) else 0
    except (TypeError, ValueError, OverflowError):  # int(inf)
        return 0

