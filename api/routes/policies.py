"""GET/PUT /v1/policies: the caller's tenant policy on the compacted policies topic."""
from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agentstream.schemas import POLICY

from ..auth import Principal
from ..deps import AppState, get_state, require_read, require_write
from ..errors import ERROR_RESPONSES
from ..kafka_io import KafkaWriter, PolicyCache

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=ERROR_RESPONSES)


class CaptureMode(str, Enum):
    METADATA_ONLY = "METADATA_ONLY"
    REDACTED = "REDACTED"
    SECURE_REFERENCE = "SECURE_REFERENCE"


class RedactionAction(str, Enum):
    mask = "mask"
    hash = "hash"
    drop = "drop"


Category = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")]


class LoopPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_repeats: int = Field(5, ge=1, le=10_000)
    max_ping_pong: int = Field(4, ge=1, le=10_000)
    max_no_progress: int = Field(3, ge=1, le=10_000)
    max_retries: int = Field(5, ge=0, le=10_000)
    stop_on_loop: bool = True
    repeat_window: int = Field(24, ge=0, le=100_000, description="logical steps a repeat is counted over; 0 = the whole run")


class BudgetPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_max_steps: int | None = Field(None, ge=1, le=10**9)
    run_max_tokens: int | None = Field(None, ge=1, le=10**15)
    run_max_cost_usd: float | None = Field(None, ge=0, le=1e9)
    run_max_wall_s: float | None = Field(None, gt=0, le=1e7)
    tenant_usd_per_hour: float | None = Field(None, ge=0, le=1e9)
    tenant_usd_per_day: float | None = Field(None, ge=0, le=1e9)
    agent_usd_per_day: float | None = Field(None, ge=0, le=1e9)
    hard_limit: bool = False
    warn_fraction: float = Field(0.8, ge=0, le=1, description="share of a budget that raises a warning; 0 = none")


ToolPattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Digest = Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9+/=_:-]+$")]


class GovernanceRule(str, Enum):
    tool_denied = "tool_denied"
    tool_not_allowed = "tool_not_allowed"
    max_tool_calls = "max_tool_calls"
    forbidden_args = "forbidden_args"


class GovernancePolicy(BaseModel):
    """What the tenant's agents may do; evaluated in flight by the processors. Tool names are
    fnmatch patterns (``fs_*``)."""
    model_config = ConfigDict(extra="forbid")
    tool_allow: list[ToolPattern] = Field(default_factory=list, max_length=1000, description="empty = every tool not denied")
    tool_deny: list[ToolPattern] = Field(default_factory=list, max_length=1000, description="wins over tool_allow")
    max_calls_per_tool: dict[ToolPattern, Annotated[int, Field(ge=0, le=10**9)]] = Field(
        default_factory=dict, max_length=1000, description="tool pattern -> calls allowed per run")
    forbidden_arg_digests: list[Digest] = Field(default_factory=list, max_length=10_000,
                                                description="keyed args digests no tool call may carry")
    require_approval: list[ToolPattern] = Field(
        default_factory=list, max_length=1000,
        description="tools that run only right after an approval of their exact arguments")
    stop_on: list[GovernanceRule] = Field(
        default_factory=lambda: [GovernanceRule.tool_denied, GovernanceRule.tool_not_allowed,
                                 GovernanceRule.forbidden_args],
        description="rules whose violation also stops the run (approval violations always do)")
    durable_tools: list[ToolPattern] = Field(default_factory=list, max_length=1000,
                                             description="action classes the SDK runs only once Kafka acknowledged their audit record")
    max_delegation_depth: int | None = Field(None, ge=0, le=10_000, description="handoff levels below a root run")
    max_fan_out: int | None = Field(None, ge=0, le=1_000_000, description="child runs one run may hand off to")
    max_handoff_cycles: int = Field(1, ge=0, le=10_000,
                                    description="times an agent may reappear in its handoff ancestry; 0 = off")
    stop_on_multi_agent: bool = True


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                                description="defaults to v<updated_us>")
    capture_mode: CaptureMode = CaptureMode.METADATA_ONLY
    redaction_actions: dict[Category, RedactionAction] = Field(
        default_factory=dict, max_length=64, description="redaction category -> mask, hash or drop")
    retention_days: int = Field(30, ge=1, le=3650)
    loops: LoopPolicy = Field(default_factory=LoopPolicy)
    budgets: BudgetPolicy = Field(default_factory=BudgetPolicy)
    governance: GovernancePolicy = Field(default_factory=GovernancePolicy)


class Policy(PolicyIn):
    tenant_id: str
    version: str
    updated_us: int
    source: str = Field(description="topic (read back), written (this request) or default (none set)")


def _default(tenant: str) -> dict[str, Any]:
    return {"tenant_id": tenant, "version": "default", "updated_us": 0,
            **PolicyIn().model_dump(mode="json", exclude={"version"})}


def _cache(state: AppState) -> PolicyCache:
    if state.policies is None:
        state.policies = PolicyCache(state.settings)
    return state.policies


def writer_for(state: AppState) -> KafkaWriter:
    if state.kafka is None:
        state.kafka = KafkaWriter(state.settings, state.metrics)
    return state.kafka


@router.get("", response_model=Policy, summary="The caller's current policy")
async def get_policy(who: Principal = Depends(require_read),
                     state: AppState = Depends(get_state)) -> Policy:
    cache = await asyncio.to_thread(_cache, state)
    await asyncio.to_thread(cache.caught_up.wait, state.settings.kafka_timeout_s)
    record = cache.get(who.tenant_id)
    if record is None:
        return Policy(**_default(who.tenant_id), source="default")
    clean = {k: v for k, v in record.items() if k in Policy.model_fields}
    clean["redaction_actions"] = {k: v for k, v in (clean.get("redaction_actions") or {}).items()
                                  if v in RedactionAction.__members__}
    gov = clean.get("governance")
    if gov:  # a record from another writer must not turn a read into a 500
        clean["governance"] = {**gov, "stop_on": [r for r in gov.get("stop_on") or []
                                                  if r in GovernanceRule.__members__]}
    return Policy(**clean, source="topic")


@router.put("", response_model=Policy, summary="Replace the caller's policy",
            description="Validated, then written to the compacted policies topic keyed by tenant "
                        "(Avro agentstream.v1.Policy v2); 200 only after the broker acknowledged. "
                        "Processors pick it up from their global table.")
def put_policy(body: PolicyIn, who: Principal = Depends(require_write),
               state: AppState = Depends(get_state)) -> Policy:
    now = int(time.time() * 1_000_000)
    record = {"tenant_id": who.tenant_id, "updated_us": now,
              **body.model_dump(mode="json"), "version": body.version or f"v{now}"}
    writer_for(state).write("policies", who.tenant_id, POLICY, record)
    if state.policies is not None:
        state.policies.remember(record)  # read-your-writes before the tail sees it
    return Policy(**record, source="written")
