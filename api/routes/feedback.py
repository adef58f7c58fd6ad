"""POST /v1/feedback (bounded values, checked against the tenant's own runs) and GET (paged).

Feedback travels as a FEEDBACK event on the raw topic, like any SDK event: redaction, the sink
and detectors treat it the same way. The interaction id is an untrusted lookup key: it must be
one of the caller's run ids (or a run's ``interaction_id`` attribute), else 404.
"""
from __future__ import annotations

import json
import time
import uuid
from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentstream.schemas import EVENT
from agentstream.schemas.feedback_values import VALUES_BY_TYPE

from ..auth import Principal
from ..db import Db
from ..deps import AppState, PageParams, get_db, get_state, page_params, require_read, require_write
from ..errors import ERROR_RESPONSES, not_found
from ..pagination import decode_cursor, page_of
from .policies import writer_for

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], responses=ERROR_RESPONSES)

# One vocabulary with the SDK and the gateway (this list lacked two of the SDK's signals).
ALLOWED_VALUES = VALUES_BY_TYPE
INTERACTION_ATTRS = ("interaction_id", "app.interaction.id")


class FeedbackType(str, Enum):
    user_rating = "user_rating"
    negative_signal = "negative_signal"


class FeedbackIn(BaseModel):
    # No free text: free text is content, and content needs a capture policy.
    model_config = ConfigDict(extra="forbid")
    interaction_id: str = Field(..., min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:-]+$")
    feedback_type: FeedbackType
    value: str = Field(..., min_length=1, max_length=64,
                       description="; ".join(f"{t}: {'|'.join(sorted(v))}" for t, v in VALUES_BY_TYPE.items()))
    source: str = Field("api", min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")

    @model_validator(mode="after")
    def _bounded(self) -> "FeedbackIn":
        allowed = ALLOWED_VALUES[self.feedback_type.value]
        if self.value not in allowed:
            raise ValueError(f"value must be one of {sorted(allowed)} for {self.feedback_type.value}")
        return self


class FeedbackAccepted(BaseModel):
    event_id: str
    run_id: str
    interaction_id: str
    accepted: bool = True


class FeedbackOut(BaseModel):
    event_id: str
    run_id: str
    ts_us: int
    interaction_id: str
    feedback_type: str
    value: str
    source: str


class FeedbackPage(BaseModel):
    items: list[FeedbackOut]
    next_cursor: str | None = None


def find_interaction(db: Db, tenant: str, interaction_id: str) -> dict[str, Any] | None:
    return db.one(
        "SELECT run_id, any(agent_id) AS agent_id, any(agent_version) AS agent_version, "
        "any(environment) AS environment, max(seq) AS max_seq FROM events "
        "WHERE tenant_id = {tenant:String} AND (run_id = {i:String} "
        + "".join(f" OR attributes['{a}'] = {{i:String}}" for a in INTERACTION_ATTRS)
        + ") GROUP BY run_id ORDER BY run_id LIMIT 1",
        {"tenant": tenant, "i": interaction_id},
    )


@router.post("", response_model=FeedbackAccepted, status_code=202,
             summary="Record bounded user feedback for one of your interactions")
def post_feedback(body: FeedbackIn, who: Principal = Depends(require_write),
                  state: AppState = Depends(get_state)) -> FeedbackAccepted:
    run = find_interaction(state.db, who.tenant_id, body.interaction_id)
    if run is None:
        raise not_found("interaction", body.interaction_id)
    now = int(time.time() * 1_000_000)
    event_id = str(uuid.uuid4())
    record = {
        "event_id": event_id, "tenant_id": who.tenant_id, "agent_id": run["agent_id"],
        "agent_version": run["agent_version"], "environment": run["environment"],
        "run_id": run["run_id"], "seq": int(run["max_seq"]) + 1, "ts_us": now, "emitted_us": now,
        "sdk_version": "agentstream-api/1", "attributes": {"feedback.source": body.source},
        "kind": "FEEDBACK",
        "payload": {"interaction_id": body.interaction_id, "feedback_type": body.feedback_type.value,
                    "value": body.value, "source": body.source},
    }
    writer_for(state).write("raw", run["run_id"], EVENT, record)
    return FeedbackAccepted(event_id=event_id, run_id=run["run_id"], interaction_id=body.interaction_id)


@router.get("", response_model=FeedbackPage, summary="Feedback events, newest first")
def list_feedback(who: Principal = Depends(require_read), page: PageParams = Depends(page_params),
                  db: Db = Depends(get_db)) -> FeedbackPage:
    params: dict[str, Any] = {"tenant": who.tenant_id, "limit": page.limit + 1}
    where = "tenant_id = {tenant:String} AND kind = 'FEEDBACK'"
    after = decode_cursor("feedback", page.cursor, (int, str))
    if after is not None:
        where += " AND (toUnixTimestamp64Micro(ts), event_id) < ({c_ts:Int64}, {c_id:String})"
        params["c_ts"], params["c_id"] = after
    rows = db.rows(
        "SELECT event_id, run_id, toUnixTimestamp64Micro(ts) AS ts_us, payload FROM events FINAL "
        f"WHERE {where} ORDER BY ts_us DESC, event_id DESC LIMIT {{limit:UInt32}}", params)
    rows, next_cursor = page_of("feedback", rows, page.limit, ["ts_us", "event_id"])
    items = []
    for r in rows:
        try:
            p = json.loads(r["payload"] or "{}")
        except ValueError:
            p = {}
        items.append(FeedbackOut(event_id=r["event_id"], run_id=r["run_id"], ts_us=r["ts_us"],
                                 interaction_id=str(p.get("interaction_id", "")),
                                 feedback_type=str(p.get("feedback_type", "")),
                                 value=str(p.get("value", "")), source=str(p.get("source", ""))))
    return FeedbackPage(items=items, next_cursor=next_cursor)
