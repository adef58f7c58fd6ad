"""Alerts: paged listing and the incremental poll behind the SSE stream."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..db import Db
from ..pagination import decode_cursor, page_of

ALERT_COLUMNS = """
    alert_id, alert_type, severity, agent_id, agent_version, run_id, title, evidence,
    toUnixTimestamp64Micro(detected_ts) AS detected_us,
    toUnixTimestamp64Micro(inserted_at) AS inserted_us
"""


@dataclass
class AlertFilters:
    alert_type: str | None = None
    severity: str | None = None
    agent: str | None = None
    run_id: str | None = None
    since_us: int | None = None
    until_us: int | None = None

    def where(self, params: dict[str, Any]) -> str:
        parts = ["tenant_id = {tenant:String}"]
        for col, attr, typ in (("alert_type", "alert_type", "String"), ("severity", "severity", "String"),
                               ("agent_id", "agent", "String"), ("run_id", "run_id", "String")):
            v = getattr(self, attr)
            if v is not None:
                parts.append(f"{col} = {{f_{attr}:{typ}}}")
                params[f"f_{attr}"] = v
        if self.since_us is not None:
            parts.append("detected_ts >= fromUnixTimestamp64Micro({f_since:Int64})")
            params["f_since"] = self.since_us
        if self.until_us is not None:
            parts.append("detected_ts < fromUnixTimestamp64Micro({f_until:Int64})")
            params["f_until"] = self.until_us
        return " AND ".join(parts)


def shape_alert(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "evidence": dict(r["evidence"] or {})}


def list_alerts(db: Db, tenant: str, f: AlertFilters, limit: int, cursor: str | None,
                extra_where: str = "", extra_params: dict[str, Any] | None = None):
    """``extra_where``/``extra_params``: the lifecycle state condition (``state_condition``)."""
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1, **(extra_params or {})}
    where = f.where(params) + (f" AND {extra_where}" if extra_where else "")
    after = decode_cursor("alerts", cursor, (int, str))
    if after is not None:
        where += " AND (toUnixTimestamp64Micro(detected_ts), alert_id) < ({c_ts:Int64}, {c_id:String})"
        params["c_ts"], params["c_id"] = after
    rows = db.rows(
        f"SELECT {ALERT_COLUMNS} FROM alerts FINAL WHERE {where} "
        "ORDER BY detected_us DESC, alert_id DESC LIMIT {limit:UInt32}", params)
    rows, next_cursor = page_of("alerts", rows, limit, ["detected_us", "alert_id"])
    return [shape_alert(r) for r in rows], next_cursor


# Inserts are stamped (inserted_at) before they commit, so a concurrent insert can become
# visible with a stamp just below one already streamed: every poll looks back this far and
# drops alert ids it has sent.
LOOKBACK_US = 10_000_000


def alerts_after(db: Db, tenant: str, f: AlertFilters, after_us: int, limit: int = 500) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"tenant": tenant, "after": after_us - LOOKBACK_US, "limit": limit}
    where = f.where(params) + " AND inserted_at >= fromUnixTimestamp64Micro({after:Int64})"
    rows = db.rows(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {where} "
        "ORDER BY inserted_us, alert_id LIMIT {limit:UInt32}", params)
    return [shape_alert(r) for r in rows]


def server_now_us(db: Db) -> int:
    return int(db.rows("SELECT toUnixTimestamp64Micro(now64(6)) AS n")[0]["n"])


def get_alert(db: Db, tenant: str, alert_id: str) -> dict[str, Any] | None:
    row = db.one(f"SELECT {ALERT_COLUMNS} FROM alerts FINAL WHERE tenant_id = {{tenant:String}} "
                 "AND alert_id = {alert_id:String} LIMIT 1", {"tenant": tenant, "alert_id": alert_id})
    return shape_alert(row) if row else None


def state_condition(state: str, ids_by_state: dict[str, list[str]], params: dict[str, Any]) -> str:
    """The WHERE condition for alerts in lifecycle ``state``, given the ids the tenant's
    acknowledgement/resolution records name (an alert without a record is open)."""
    params["st_ack"] = ids_by_state.get("acknowledged", [])
    params["st_res"] = ids_by_state.get("resolved", [])
    if state == "acknowledged":
        return "alert_id IN {st_ack:Array(String)}"
    if state == "resolved":
        return "alert_id IN {st_res:Array(String)}"
    return "alert_id NOT IN {st_ack:Array(String)} AND alert_id NOT IN {st_res:Array(String)}"
