"""Generated from schemas/avro by ``python -m agentstream.schemas.codegen``. Do not edit."""
# ruff: noqa
from __future__ import annotations

from typing import Literal, NotRequired, TypedDict, Union


Severity = Literal['INFO', 'WARNING', 'CRITICAL']
SEVERITY_SYMBOLS = ('INFO', 'WARNING', 'CRITICAL',)


class SourceOffset(TypedDict):
    topic: str
    partition: int
    offset: int


class Alert(TypedDict):
    """A finding of a detector, on the alerts topic keyed by tenant_id."""

    alert_id: str
    alert_type: str
    severity: Severity
    tenant_id: str
    agent_id: NotRequired[str | None]
    agent_version: NotRequired[str | None]
    run_id: NotRequired[str | None]
    title: str
    evidence: NotRequired[dict[str, str]]
    detected_us: int
    source_offsets: NotRequired[list[SourceOffset]]


CommandType = Literal['STOP', 'THROTTLE']
COMMAND_TYPE_SYMBOLS = ('STOP', 'THROTTLE',)


class Command(TypedDict):
    """A control command for one live run, keyed by run_id on the commands topic."""

    command_id: str
    tenant_id: str
    run_id: str
    command_type: CommandType
    reason: str
    issued_by: str
    issued_us: int
    throttle_ms: NotRequired[int | None]
    alert_id: NotRequired[str | None]


CaptureMode = Literal['METADATA_ONLY', 'REDACTED', 'SECURE_REFERENCE']
CAPTURE_MODE_SYMBOLS = ('METADATA_ONLY', 'REDACTED', 'SECURE_REFERENCE',)


class RedactionSummary(TypedDict):
    """Set by the redaction processor: what was redacted, counted per rule, never the values."""

    policy_version: str
    rule_counts: NotRequired[dict[str, int]]


EventKind = Literal['RUN_START', 'RUN_END', 'STEP', 'FAILURE', 'DECISION', 'QUALITY_SIGNAL', 'FEEDBACK', 'COMMAND_ACK']
EVENT_KIND_SYMBOLS = ('RUN_START', 'RUN_END', 'STEP', 'FAILURE', 'DECISION', 'QUALITY_SIGNAL', 'FEEDBACK', 'COMMAND_ACK',)


class RunStart(TypedDict):
    entrypoint: str
    role: NotRequired[str | None]
    sampled: NotRequired[bool]


RunStatus = Literal['SUCCESS', 'FAILURE', 'PARTIAL']
RUN_STATUS_SYMBOLS = ('SUCCESS', 'FAILURE', 'PARTIAL',)


class RunEnd(TypedDict):
    status: RunStatus
    outcome: NotRequired[str]
    started_us: int
    duration_ms: float
    step_count: NotRequired[int]
    llm_calls: NotRequired[int]
    input_tokens: NotRequired[int]
    output_tokens: NotRequired[int]
    cost_usd: NotRequired[float]


StepKind = Literal['PLAN', 'RETRIEVAL', 'TOOL', 'LLM', 'RESPOND', 'HANDOFF', 'APPROVAL', 'GUARDRAIL', 'CUSTOM']
STEP_KIND_SYMBOLS = ('PLAN', 'RETRIEVAL', 'TOOL', 'LLM', 'RESPOND', 'HANDOFF', 'APPROVAL', 'GUARDRAIL', 'CUSTOM',)


StepStatus = Literal['OK', 'ERROR', 'TIMEOUT', 'CANCELLED']
STEP_STATUS_SYMBOLS = ('OK', 'ERROR', 'TIMEOUT', 'CANCELLED',)


class LlmCall(TypedDict):
    provider: str
    operation: NotRequired[str]
    request_model: str
    response_model: NotRequired[str | None]
    input_tokens: NotRequired[int]
    output_tokens: NotRequired[int]
    cache_read_tokens: NotRequired[int]
    cache_write_tokens: NotRequired[int]
    cost_usd: NotRequired[float]
    finish_reasons: NotRequired[list[str]]
    tool_calls: NotRequired[list[str]]
    request_digest: NotRequired[str | None]


class ToolCall(TypedDict):
    tool_name: str
    call_id: NotRequired[str | None]
    args_digest: NotRequired[str | None]


class Handoff(TypedDict):
    to_agent_id: str
    to_run_id: NotRequired[str | None]
    role: NotRequired[str | None]


class Approval(TypedDict):
    action_digest: str
    decision: str
    approval_latency_ms: float


class Fallback(TypedDict):
    source: str
    target: str
    reason: str
    preserves_safety_posture: bool


class ContentCapture(TypedDict):
    """present only when the capture policy permits"""

    preview: NotRequired[str | None]
    reference: NotRequired[str | None]


class Step(TypedDict):
    step_id: str
    step_kind: StepKind
    name: str
    status: StepStatus
    started_us: int
    latency_ms: float
    attempt: NotRequired[int]
    retry_of: NotRequired[str | None]
    llm: NotRequired[LlmCall | None]
    tool: NotRequired[ToolCall | None]
    handoff: NotRequired[Handoff | None]
    approval: NotRequired[Approval | None]
    fallback: NotRequired[Fallback | None]
    content: NotRequired[ContentCapture | None]


FailureType = Literal['TOOL', 'MODEL', 'RETRIEVAL', 'ORCHESTRATION', 'POLICY', 'BUDGET', 'UNKNOWN']
FAILURE_TYPE_SYMBOLS = ('TOOL', 'MODEL', 'RETRIEVAL', 'ORCHESTRATION', 'POLICY', 'BUDGET', 'UNKNOWN',)


class Failure(TypedDict):
    failure_type: FailureType
    failure_code: str
    step_id: NotRequired[str | None]
    message: NotRequired[str | None]
    retryable: NotRequired[bool]


class Decision(TypedDict):
    decision_type: str
    selected: str
    candidates: NotRequired[list[str]]
    reason_code: str
    confidence: NotRequired[float | None]
    step_id: NotRequired[str | None]


class QualitySignal(TypedDict):
    signal_type: str
    signal_code: str
    value: bool
    weight: NotRequired[float | None]
    step_id: NotRequired[str | None]


class Feedback(TypedDict):
    interaction_id: str
    feedback_type: str
    value: str
    source: NotRequired[str]


class CommandAck(TypedDict):
    command_id: str
    command_type: str
    status: str
    detail: NotRequired[str | None]


class Event(TypedDict):
    """One telemetry event of one agent run (version 2: adds end_user_id and LlmCall.request_digest; fields are appended, never reordered). Keyed by run_id on raw, events and commands. Timestamps are microseconds since the Unix epoch (UTC). Field docs name the OpenTelemetry GenAI attribute a field carries where one exists."""

    event_id: str
    tenant_id: str
    agent_id: str
    agent_version: str
    environment: str
    run_id: str
    session_id: NotRequired[str | None]
    parent_run_id: NotRequired[str | None]
    parent_step_id: NotRequired[str | None]
    seq: int
    ts_us: int
    emitted_us: int
    sdk_version: str
    capture_mode: NotRequired[CaptureMode]
    policy_version: NotRequired[str]
    attributes: NotRequired[dict[str, str]]
    redaction: NotRequired[RedactionSummary | None]
    kind: EventKind
    payload: Union[RunStart, RunEnd, Step, Failure, Decision, QualitySignal, Feedback, CommandAck]
    end_user_id: NotRequired[str | None]


class LoopPolicy(TypedDict):
    max_repeats: NotRequired[int]
    max_ping_pong: NotRequired[int]
    max_no_progress: NotRequired[int]
    max_retries: NotRequired[int]
    stop_on_loop: NotRequired[bool]
    repeat_window: NotRequired[int]


class BudgetPolicy(TypedDict):
    run_max_steps: NotRequired[int | None]
    run_max_tokens: NotRequired[int | None]
    run_max_cost_usd: NotRequired[float | None]
    run_max_wall_s: NotRequired[float | None]
    tenant_usd_per_hour: NotRequired[float | None]
    tenant_usd_per_day: NotRequired[float | None]
    agent_usd_per_day: NotRequired[float | None]
    hard_limit: NotRequired[bool]
    warn_fraction: NotRequired[float]


class GovernancePolicy(TypedDict):
    tool_allow: NotRequired[list[str]]
    tool_deny: NotRequired[list[str]]
    max_calls_per_tool: NotRequired[dict[str, int]]
    forbidden_arg_digests: NotRequired[list[str]]
    require_approval: NotRequired[list[str]]
    stop_on: NotRequired[list[str]]
    durable_tools: NotRequired[list[str]]
    max_delegation_depth: NotRequired[int | None]
    max_fan_out: NotRequired[int | None]
    max_handoff_cycles: NotRequired[int]
    stop_on_multi_agent: NotRequired[bool]


class Policy(TypedDict):
    """A tenant's policy, on the compacted policies topic keyed by tenant_id (version 2: adds loops.repeat_window, budgets.warn_fraction and governance; fields are appended, never reordered). Every field has a default so an empty policy is valid."""

    tenant_id: str
    version: NotRequired[str]
    updated_us: NotRequired[int]
    capture_mode: NotRequired[CaptureMode]
    redaction_actions: NotRequired[dict[str, str]]
    retention_days: NotRequired[int]
    loops: NotRequired[LoopPolicy]
    budgets: NotRequired[BudgetPolicy]
    governance: NotRequired[GovernancePolicy]
