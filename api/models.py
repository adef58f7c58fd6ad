"""Response models of the run-centric routes; they are what the OpenAPI document promises."""
from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, Field


def model_response(model: BaseModel) -> Response:
    """``model`` as the JSON response, for a route whose ``response_model`` is its class: it was
    validated when built, and FastAPI would validate it again (for a ``def`` route, in one more
    threadpool hop) before encoding the same bytes."""
    return Response(model.model_dump_json(), media_type="application/json")


class RunStatus(str, Enum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    PARTIAL = "PARTIAL"
    RUNNING = "RUNNING"  # no RUN_END yet


class Run(BaseModel):
    run_id: str
    agent_id: str
    agent_version: str
    environment: str
    session_id: str = ""
    parent_run_id: str = ""
    entrypoint: str = ""
    status: RunStatus
    outcome: str = ""
    started_us: int
    last_us: int
    duration_ms: float | None = Field(None, description="set once the run ended")
    event_count: int = 0
    step_count: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    retry_count: int = 0
    failure_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class RunPage(BaseModel):
    items: list[Run]
    next_cursor: str | None = None


class LlmInfo(BaseModel):
    provider: str
    request_model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float


class ToolInfo(BaseModel):
    tool_name: str
    args_digest: str = ""


class Step(BaseModel):
    seq: int
    event_id: str
    step_id: str
    step_kind: str
    name: str
    status: str
    parent_step_id: str = ""
    started_us: int
    ts_us: int
    latency_ms: float
    attempt: int
    retry_of: str = ""
    llm: LlmInfo | None = None
    tool: ToolInfo | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="the rest of the payload")
    attributes: dict[str, str] = Field(default_factory=dict)


class FailureOut(BaseModel):
    seq: int
    event_id: str
    ts_us: int
    failure_type: str
    failure_code: str
    step_id: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class DecisionOut(BaseModel):
    seq: int
    event_id: str
    ts_us: int
    decision_type: str
    selected: str
    candidates: list[str] = Field(default_factory=list)
    reason_code: str
    confidence: float | None = None
    step_id: str = ""


class SignalOut(BaseModel):
    seq: int
    event_id: str
    ts_us: int
    signal_type: str
    signal_code: str
    value: bool | None = None
    weight: float | None = None
    step_id: str = ""


class OtherEvent(BaseModel):
    seq: int
    event_id: str
    ts_us: int
    kind: str
    details: dict[str, Any] = Field(default_factory=dict)


class RunDetail(BaseModel):
    run: Run
    steps: list[Step]
    failures: list[FailureOut]
    decisions: list[DecisionOut]
    signals: list[SignalOut]
    other_events: list[OtherEvent] = Field(
        default_factory=list, description="RUN_START, RUN_END, FEEDBACK and COMMAND_ACK events"
    )


class StatsRow(BaseModel):
    agent_id: str
    agent_version: str
    runs: int
    finished_runs: int
    failures: int
    failure_rate: float | None = Field(None, description="failures / finished runs")
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    llm_calls: int
    tool_calls: int


class StatsPage(BaseModel):
    items: list[StatsRow]
    next_cursor: str | None = None
    quantile_function: str = Field(
        "quantileExact", description="the ClickHouse function behind latency_p*_ms, over the finished "
        "runs' duration_ms; docs/tables.md recommends the same one in SQL")
