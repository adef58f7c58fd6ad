"""Alert lifecycle and routing: acknowledge / resolve / reopen an alert, silences (an expiry and
a matcher on type, agent and severity), and the tenant's routing rules (type or severity →
webhook, Slack or PagerDuty). All of it lives on the compacted policies topic
(schemas/alerting.py), where ``agentstream alerts forward`` reads it.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from agentstream.schemas.alerting import (AlertingError, AlertState, Matcher, Rule, Silence, encode,
                                          make_key, parse_rules, routing_doc)
from agentstream.schemas.webhook_hosts import host_problem

from ..alerting_io import AlertingCache
from ..auth import Principal
from ..db import Db
from ..deps import AppState, get_db, get_state, require_read, require_write
from ..errors import ERROR_RESPONSES, bad_request, not_found
from ..kafka_io import KafkaWriter
from ..store.alerts import get_alert

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=ERROR_RESPONSES)

ALERT_ID = Path(..., min_length=1, max_length=256)


def alerting(state: AppState) -> AlertingCache:
    cache = state.extras.get("alerting")
    if cache is None:
        cache = state.extras["alerting"] = AlertingCache(state.settings)
    return cache


def alerting_if_configured(state: AppState) -> AlertingCache | None:
    return alerting(state) if state.settings.bootstrap_servers else None


def _writer(state: AppState) -> KafkaWriter:
    if state.kafka is None:
        state.kafka = KafkaWriter(state.settings, state.metrics)
    return state.kafka


def publish(state: AppState, key: bytes, doc: dict[str, Any] | None) -> None:
    """Writes one alerting record (acked by the broker) and folds it into this replica's view."""
    value = encode(doc) if doc is not None else None
    cache = alerting(state)
    _writer(state).write_bytes("policies", key, value)
    cache.remember(key, value)


def now_us() -> int:
    return int(time.time() * 1_000_000)


# ---- one alert's lifecycle -------------------------------------------------------------------

class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2048)


class AlertStateOut(BaseModel):
    alert_id: str
    state: Literal["open", "acknowledged", "resolved"]
    at_us: int | None = None
    by: str = ""
    note: str = ""


def _set_state(alert_id: str, new: str, body: StateIn, who: Principal, state: AppState, db: Db) -> AlertStateOut:
    if get_alert(db, who.tenant_id, alert_id) is None:
        raise not_found("alert", alert_id)
    st = AlertState(alert_id, new, now_us(), who.name or "api", body.note)
    publish(state, make_key(who.tenant_id, "state", alert_id), st.to_doc())
    return AlertStateOut(**st.to_doc())


@router.post("/{alert_id}/acknowledge", response_model=AlertStateOut, summary="Acknowledge an alert")
def acknowledge(body: StateIn | None = None, alert_id: str = ALERT_ID, who: Principal = Depends(require_write),
                state: AppState = Depends(get_state), db: Db = Depends(get_db)) -> AlertStateOut:
    return _set_state(alert_id, "acknowledged", body or StateIn(), who, state, db)


@router.post("/{alert_id}/resolve", response_model=AlertStateOut, summary="Resolve an alert")
def resolve(body: StateIn | None = None, alert_id: str = ALERT_ID, who: Principal = Depends(require_write),
            state: AppState = Depends(get_state), db: Db = Depends(get_db)) -> AlertStateOut:
    return _set_state(alert_id, "resolved", body or StateIn(), who, state, db)


@router.post("/{alert_id}/reopen", response_model=AlertStateOut, summary="Reopen an acknowledged or resolved alert")
def reopen(body: StateIn | None = None, alert_id: str = ALERT_ID, who: Principal = Depends(require_write),
           state: AppState = Depends(get_state), db: Db = Depends(get_db)) -> AlertStateOut:
    return _set_state(alert_id, "open", body or StateIn(), who, state, db)


# ---- silences --------------------------------------------------------------------------------

class MatcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_type: str | None = Field(None, min_length=1, max_length=128)
    agent_id: str | None = Field(None, min_length=1, max_length=256)
    severity: Literal["INFO", "WARNING", "CRITICAL"] | None = None


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matcher: MatcherIn = Field(default_factory=MatcherIn,
                               description="equality on each field given; empty silences every alert")
    duration_s: float = Field(..., gt=0, le=90 * 86_400, description="the silence expires this long from now")
    comment: str = Field("", max_length=512)


class SilenceOut(BaseModel):
    silence_id: str
    matcher: dict[str, str]
    starts_us: int
    expires_us: int
    created_by: str
    comment: str
    active: bool


def _silence_out(s: Silence, now: int) -> SilenceOut:
    return SilenceOut(**{k: v for k, v in s.to_doc().items() if k != "v"}, active=s.active(now))


@router.get("/silences", response_model=list[SilenceOut], summary="The tenant's silences, newest first")
def list_silences(include_expired: bool = Query(False), who: Principal = Depends(require_read),
                  state: AppState = Depends(get_state)) -> list[SilenceOut]:
    now = now_us()
    silences = alerting(state).read(lambda b: list(b.tenant(who.tenant_id).silences.values()))
    return [_silence_out(s, now) for s in sorted(silences, key=lambda s: -s.starts_us)
            if include_expired or s.expires_us > now]


@router.post("/silences", response_model=SilenceOut, status_code=201, summary="Silence matching alerts until the expiry")
def create_silence(body: SilenceIn, who: Principal = Depends(require_write),
                   state: AppState = Depends(get_state)) -> SilenceOut:
    now = now_us()
    s = Silence("sil-" + uuid.uuid4().hex[:16], Matcher(**body.matcher.model_dump()), now,
                now + int(body.duration_s * 1_000_000), who.name or "api", body.comment)
    publish(state, make_key(who.tenant_id, "silence", s.silence_id), s.to_doc())
    return _silence_out(s, now)


@router.delete("/silences/{silence_id}", response_model=SilenceOut, summary="Expire a silence now")
def expire_silence(silence_id: str = Path(..., min_length=1, max_length=128),
                   who: Principal = Depends(require_write), state: AppState = Depends(get_state)) -> SilenceOut:
    current = alerting(state).read(lambda b: b.tenant(who.tenant_id).silences.get(silence_id))
    if current is None:
        raise not_found("silence", silence_id)
    now = now_us()
    # Kept (expired) rather than deleted, so the listing shows what was silenced and when.
    s = Silence(current.silence_id, current.matcher, current.starts_us, max(now, current.starts_us + 1),
                current.created_by, current.comment)
    publish(state, make_key(who.tenant_id, "silence", s.silence_id), s.to_doc())
    return _silence_out(s, now)


# ---- routing rules ---------------------------------------------------------------------------

class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["webhook", "slack", "pagerduty"]
    url: str = Field(..., min_length=8, max_length=2048)
    routing_key: str = Field("", max_length=128, description="PagerDuty Events v2 routing key")


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule_id: str = Field(..., pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    alert_types: list[str] = Field(default_factory=list, max_length=64, description="any type if empty")
    severities: list[Literal["INFO", "WARNING", "CRITICAL"]] = Field(default_factory=list,
                                                                     description="any severity if empty")
    destination: DestinationIn


class RoutingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleIn] = Field(..., max_length=100)


class RoutingOut(BaseModel):
    rules: list[dict[str, Any]] = Field(description="destinations shown without their secrets")


def _routing_out(rules: tuple[Rule, ...]) -> RoutingOut:
    return RoutingOut(rules=[{**r.to_doc(), "destination": r.destination.redacted()} for r in rules])


@router.get("/routing", response_model=RoutingOut, summary="The tenant's alert routing rules")
def get_routing(who: Principal = Depends(require_read), state: AppState = Depends(get_state)) -> RoutingOut:
    return _routing_out(alerting(state).read(lambda b: b.tenant(who.tenant_id).rules))


@router.put("/routing", response_model=RoutingOut,
            summary="Replace the tenant's routing rules: each alert goes to every destination whose rule matches")
def put_routing(body: RoutingIn, who: Principal = Depends(require_write),
                state: AppState = Depends(get_state)) -> RoutingOut:
    doc = routing_doc((), now_us())
    doc["rules"] = [r.model_dump() for r in body.rules]
    try:
        rules = parse_rules(doc)  # the contract's own validation: what readers will accept
    except AlertingError as exc:
        raise bad_request("validation_error", str(exc)) from exc
    # the forwarder would POST to the host each rule names, from inside the deployment (SSRF)
    allowed = state.settings.alert_webhook_allowed_hosts.split(",")
    for r in rules:
        problem = host_problem(r.destination.url, allowed)
        if problem is not None:
            raise bad_request("validation_error", f"rule {r.rule_id}: {problem}")
    publish(state, make_key(who.tenant_id, "routing"), routing_doc(rules, doc["updated_us"]))
    return _routing_out(rules)


@router.get("/{alert_id}", summary="One alert with its lifecycle state")
def get_one(alert_id: str = ALERT_ID, who: Principal = Depends(require_read),
            state: AppState = Depends(get_state), db: Db = Depends(get_db)) -> dict[str, Any]:
    from .alerts import Alert, with_lifecycle

    alert = get_alert(db, who.tenant_id, alert_id)
    if alert is None:
        raise not_found("alert", alert_id)
    return Alert(**with_lifecycle([alert], who.tenant_id, state)[0]).model_dump()
