"""``agentstream digest``: a tenant's fleet over the last hours beside the hours before, as
Markdown or JSON (``digest_report`` says what goes in and what needs attention). Read-only: any
key with the read scope."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import typer

from .digest_report import Period, build, markdown
from .runs import API_KEY, API_URL, fail
from .runs_client import ApiClient, CliError, resolve

PAGE = 1000
MAX_ALERT_PAGES = 20  # 20,000 alerts: the digest says "20000+" beyond
MAX_STATS_PAGES = 50
DRIFT_MAX_HOURS = 24 * 90  # what /v1/drift takes as its window


def _pages(client: ApiClient, path: str, params: dict[str, Any], max_pages: int) -> tuple[list[dict], bool]:
    """Every item of a paged route (up to ``max_pages``); True when all of them were read."""
    items: list[dict] = []
    cursor = None
    for _ in range(max_pages):
        page = client.get(path, **params, limit=PAGE, cursor=cursor)
        items += page.get("items") or []
        cursor = page.get("next_cursor")
        if not cursor:
            return items, True
    return items, False


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def digest_command(
    hours: float = typer.Option(24.0, "--hours", min=0.1, max=24 * 366,
                                help="the period: the last N hours (compared with the N hours before)"),
    until: Optional[str] = typer.Option(None, "--until", help="the period's end (ISO 8601; default now)"),
    agent: Optional[str] = typer.Option(None, "--agent", help="one agent only"),
    environment: Optional[str] = typer.Option(None, "--environment", help="one environment only"),
    top: int = typer.Option(10, "--top", min=1, max=1000, help="versions and models listed"),
    as_json: bool = typer.Option(False, "--json", help="the digest as JSON instead of Markdown"),
    api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY,
) -> None:
    """What the fleet did over the last hours, beside the hours before: runs, failures, spend,
    alerts, drift, and what needs attention (Markdown: a terminal, a chat channel or an issue
    reads it)."""
    try:
        end = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else datetime.now(timezone.utc)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {until!r}", param_hint="--until") from None
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    start, before = end - timedelta(hours=hours), end - timedelta(hours=2 * hours)
    last_day = (end - timedelta(microseconds=1)).astimezone(timezone.utc).date()
    period = Period(_iso(start), _iso(end), hours, start.astimezone(timezone.utc).date().isoformat(),
                    last_day.isoformat())
    scope = {"agent": agent, "environment": environment}
    try:
        client = ApiClient(resolve(api_url, api_key))
        try:
            now, _ = _pages(client, "/v1/stats", {**scope, "since": period.since, "until": period.until},
                            MAX_STATS_PAGES)
            earlier, _ = _pages(client, "/v1/stats", {**scope, "since": _iso(before), "until": period.since},
                                MAX_STATS_PAGES)
            alerts, complete = _pages(client, "/v1/alerts", {"agent": agent, "since": period.since,
                                                             "until": period.until}, MAX_ALERT_PAGES)
            drift: list[dict] = []
            if until is None and hours <= DRIFT_MAX_HOURS:  # drift is judged against now only
                drift, _ = _pages(client, "/v1/drift", {"agent": agent, "window_hours": hours}, MAX_STATS_PAGES)
            models = client.get("/v1/costs", group_by="model", agent=agent, since=period.since,
                                until=period.until, limit=top).get("items") or []
            tenant = client.get("/v1/whoami").get("tenant_id") or "?"
        finally:
            client.close()
    except CliError as exc:
        fail(exc)
    doc = build(tenant, period, now, earlier, alerts, complete, drift, models, top)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(markdown(doc))


def register(app: typer.Typer) -> None:
    app.command("digest")(digest_command)
