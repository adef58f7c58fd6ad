"""Operating one run: stop and throttle it by hand, explain it, diff it against another.

A manual stop or throttle is a ``Command`` on the commands topic (keyed by run id, so the SDK's
listener gets it before the run's next step) and an ``Alert`` on the alerts topic (``manual_stop``
/ ``manual_throttle``, the actor and reason in its evidence), so who did what, when and why is
stored and listed with the run's other findings; the SDK's COMMAND_ACK then lands in the run.
"""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentstream.schemas import ALERT, COMMAND

from ..auth import Principal
from ..db import Db
from ..deps import AppState, get_db, get_state, require_read, require_write
from ..errors import ERROR_RESPONSES, ApiError, not_found
from ..store.alerts import AlertFilters, list_alerts
from ..store.diff import diff_runs
from ..store.explain import explain_run
from ..store.runs import get_run, run_detail
from .policies import writer_for
from .runs import RUN_ID

router = APIRouter(prefix="/v1/runs", tags=["run operations"], responses=ERROR_RESPONSES)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ManualCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=500, description="why; stored with the action")
    actor: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[\w.@+ -]+$",
                              description="the person acting; the API key's name is always recorded too")

    @field_validator("reason")
    @classmethod
    def _printable(cls, v: str) -> str:
        v = _CONTROL.sub(" ", v).strip()
        if not v:
            raise ValueError("reason is blank")
        return v


class ThrottleIn(ManualCommand):
    throttle_ms: int = Field(..., ge=1, le=600_000, description="delay before each further step")


class CommandIssued(BaseModel):
    command_id: str
    alert_id: str
    run_id: str
    command_type: str
    throttle_ms: int | None = None
    reason: str
    issued_by: str
    issued_us: int


def _issue(state: AppState, who: Principal, run_id: str, body: ManualCommand,
           command_type: str, throttle_ms: int | None) -> CommandIssued:
    run = get_run(state.db, who.tenant_id, run_id)
    if run is None:
        raise not_found("run", run_id)
    if run["status"] != "RUNNING":
        raise ApiError(409, "run_finished", f"run {run_id!r} already ended ({run['status']}); "
                       "there is nothing to " + command_type.lower())
    key_name = who.name or "unnamed key"
    issued_by = f"{body.actor} (key {key_name})" if body.actor else f"key {key_name}"
    now = int(time.time() * 1_000_000)
    command_id = str(uuid.uuid4())
    writer = writer_for(state)
    writer.write("commands", run_id, COMMAND, {
        "command_id": command_id, "tenant_id": who.tenant_id, "run_id": run_id,
        "command_type": command_type, "reason": body.reason, "issued_by": issued_by,
        "issued_us": now, "throttle_ms": throttle_ms, "alert_id": command_id,
    })
    verb = "Stopped" if command_type == "STOP" else f"Throttled ({throttle_ms} ms/step)"
    evidence = {"actor": body.actor or key_name, "key_name": key_name, "reason": body.reason,
                "command_id": command_id, "command_type": command_type}
    if throttle_ms is not None:
        evidence["throttle_ms"] = str(throttle_ms)
    try:
        writer.write("alerts", who.tenant_id, ALERT, {
            "alert_id": command_id, "alert_type": f"manual_{command_type.lower()}",
            "severity": "WARNING", "tenant_id": who.tenant_id, "agent_id": run["agent_id"],
            "agent_version": run["agent_version"], "run_id": run_id,
            "title": f"{verb} by hand by {issued_by}", "evidence": evidence,
            "detected_us": now, "source_offsets": [],
        })
    except ApiError as exc:
        # The command is out and will act; say plainly that only its record is missing.
        raise ApiError(503, "not_recorded", f"the {command_type} command {command_id} was sent, "
                       f"but recording it on the alerts topic failed: {exc.message}",
                       {"command_id": command_id}) from exc
    return CommandIssued(command_id=command_id, alert_id=command_id, run_id=run_id,
                         command_type=command_type, throttle_ms=throttle_ms, reason=body.reason,
                         issued_by=issued_by, issued_us=now)


@router.post("/{run_id:path}/stop", response_model=CommandIssued, status_code=202,
             summary="Stop a running run by hand (write scope)",
             description="Sends a STOP command; the SDK raises RunStopped in the agent before its "
                         "next step and acknowledges with a COMMAND_ACK event. Recorded as a "
                         "`manual_stop` alert (actor, key name, reason). 409 if the run already ended.")
def stop_run(body: ManualCommand, run_id: str = RUN_ID, who: Principal = Depends(require_write),
             state: AppState = Depends(get_state)) -> CommandIssued:
    return _issue(state, who, run_id, body, "STOP", None)


@router.post("/{run_id:path}/throttle", response_model=CommandIssued, status_code=202,
             summary="Throttle a running run by hand (write scope)",
             description="Sends a THROTTLE command: the SDK waits throttle_ms before each further "
                         "step. Recorded as a `manual_throttle` alert. 409 if the run already ended.")
def throttle_run(body: ThrottleIn, run_id: str = RUN_ID, who: Principal = Depends(require_write),
                 state: AppState = Depends(get_state)) -> CommandIssued:
    return _issue(state, who, run_id, body, "THROTTLE", body.throttle_ms)


class Explanation(BaseModel):
    model_config = ConfigDict(extra="allow")
    run_id: str
    outcome: dict[str, Any]
    time: dict[str, Any]
    cost: dict[str, Any]
    failure: dict[str, Any]
    retries: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    enforcement: list[dict[str, Any]]
    summary: list[str] = Field(description="the account in plain sentences, in order")


def _detail(db: Db, tenant: str, run_id: str) -> dict[str, Any]:
    detail = run_detail(db, tenant, run_id)
    if detail is None:
        raise not_found("run", run_id)
    return detail


@router.get("/{run_id:path}/explain", response_model=Explanation,
            summary="A deterministic plain-language account of one run",
            description="Computed from the run's events and alerts, no model: outcome, where time "
                        "and cost went, the failure chain and its root step, retries, decisions, "
                        "enforcement (budgets, loops, stops), and human waits kept apart from "
                        "agent time.")
def get_explain(run_id: str = RUN_ID, who: Principal = Depends(require_read),
                db: Db = Depends(get_db)) -> Explanation:
    detail = _detail(db, who.tenant_id, run_id)
    alerts, _ = list_alerts(db, who.tenant_id, AlertFilters(run_id=run_id), 200, None)
    return Explanation(**explain_run(detail, alerts))


class Diff(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: dict[str, Any]
    b: dict[str, Any]
    total_delta: dict[str, Any]
    counts: dict[str, int]
    first_divergence: int | None = Field(None, description="index into ops of the first difference")
    identical: bool
    ops: list[dict[str, Any]] = Field(description="aligned steps: same, changed, inserted, removed")


@router.get("/{run_id:path}/diff/{other_run_id:path}", response_model=Diff,
            summary="Align two runs' steps and show what differs",
            description="A global sequence alignment of the steps by kind, name and argument "
                        "digest (or model), not by position: inserted, removed and changed steps, "
                        "the first divergence, and status, latency, token and cost deltas (b - a) "
                        "per step and in total.")
def get_diff(run_id: str = RUN_ID,
             other_run_id: str = Path(..., min_length=1, max_length=256, description="run b"),
             who: Principal = Depends(require_read), db: Db = Depends(get_db)) -> Diff:
    a = _detail(db, who.tenant_id, run_id)
    b = _detail(db, who.tenant_id, other_run_id)
    return Diff(**diff_runs(a, b))
