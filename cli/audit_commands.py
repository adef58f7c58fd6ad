"""``agentstream audit``: the governance rules evaluated over stored runs.

Rows come through the query API (``/v1/sql``, the key's tenant only) or straight from ClickHouse
(``--clickhouse-dsn``, an operator's view of every tenant or ``--tenant``). The rules are the
``--policy`` file, else each tenant's current policy (through the API, or from the policies
topic). Each run is replayed through the processors' own governance detector, so the audit and
the live alerts agree. Exit status: 0 no violation, 1 violations printed, 2 bad input or an
unreachable source.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import typer

from .runs_client import ApiClient, CliError, resolve

PAGE = 50_000


def parse_since(text: str, now_us: int | None = None) -> int:
    """``30m``/``24h``/``7d``/seconds ago, or an ISO 8601 time (UTC when it names no zone)."""
    now_us = now_us if now_us is not None else int(time.time() * 1e6)
    t = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    try:
        if t and t[-1].lower() in units and t[:-1].replace(".", "", 1).isdigit():
            return now_us - int(float(t[:-1]) * units[t[-1].lower()] * 1e6)
        if t.replace(".", "", 1).isdigit():
            return now_us - int(float(t) * 1e6)
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--since {text!r} is not like 30m, 24h, 7d or an ISO 8601 time") from exc
    return int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp() * 1e6)


def load_rule_file(path: Path) -> dict[str, Any]:
    """A rule file: the ``governance`` object of a policy, or a whole policy document (the
    ``GET /v1/policies`` JSON) holding one. Validated as strictly as ``policy set``."""
    from agentstream.stream_processors.policies import GOVERNANCE_DEFAULTS, governance_of

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read rule file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{path}: expected a JSON object")
    rules = doc.get("governance", doc)
    unknown = sorted(set(rules) - set(GOVERNANCE_DEFAULTS))
    if unknown:
        raise CliError(f"{path}: unknown rule(s) {', '.join(unknown)}; known: {', '.join(GOVERNANCE_DEFAULTS)}")
    try:
        return governance_of(rules, strict=True)
    except (ValueError, TypeError) as exc:
        raise CliError(f"{path}: {exc}") from exc


def api_rows(client: Any, sql: str) -> Iterator[dict[str, Any]]:
    """Every row of ``sql`` through ``/v1/sql``, page by page (``client.post(path, body)``)."""
    cursor = None
    while True:
        body: dict[str, Any] = {"sql": sql, "limit": PAGE}
        if cursor:
            body["cursor"] = cursor
        page = client.post("/v1/sql", body)
        names = [c["name"] for c in page["columns"]]
        for r in page["rows"]:
            yield dict(zip(names, r))
        cursor = page.get("next_cursor")
        if not cursor:
            return


def clickhouse_rows(client: Any, sql: str) -> Iterator[dict[str, Any]]:
    res = client.query(sql)
    names = list(res.column_names)
    for r in res.result_rows:
        yield dict(zip(names, r))


def render(v: dict[str, Any]) -> str:
    ts = datetime.fromtimestamp(v["ts_us"] / 1e6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    action = "STOP " if v["stop"] else ""
    return (f"{ts}  {v['tenant_id']}  run {v['run_id']} #{v['seq']}  {v['severity']:<8} "
            f"{action}{v['rule']}: {v['title']}")


def audit_command(
    since: str = typer.Option(..., "--since", help="runs active since: 30m, 24h, 7d or ISO 8601"),
    until: Optional[str] = typer.Option(None, "--until", help="ISO 8601 or 30m/24h ago (default now)"),
    policy: Optional[Path] = typer.Option(None, "--policy", help="JSON rule file (governance object or "
                                          "policy document); default: each tenant's current policy"),
    clickhouse_dsn: Optional[str] = typer.Option(None, "--clickhouse-dsn", help="read ClickHouse directly "
                                                 "(e.g. chdb:///path) instead of the query API"),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="with --clickhouse-dsn: only this tenant"),
    api_url: Optional[str] = typer.Option(None, "--api-url", help="query API [env AGENTSTREAM_API_URL]"),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="tenant API key [env AGENTSTREAM_API_KEY]"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per violation"),
) -> None:
    """Evaluate governance rules over stored runs and print the violations."""
    try:
        since_us = parse_since(since)
        until_us = parse_since(until) if until else None
        rules = load_rule_file(policy) if policy else None
        violations = run_audit(since_us, until_us, rules, clickhouse_dsn, tenant, api_url, api_key)
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for v in violations:
        typer.echo(json.dumps(v, sort_keys=True) if as_json else render(v))
    if not as_json:
        runs = len({(v["tenant_id"], v["run_id"]) for v in violations})
        typer.echo(f"{len(violations)} violation(s) in {runs} run(s)", err=True)
    if violations:
        raise typer.Exit(1)


def run_audit(since_us: int, until_us: int | None, rules: dict[str, Any] | None, clickhouse_dsn: str | None,
              tenant: str | None, api_url: str | None, api_key: str | None,
              api_client: Any = None) -> list[dict[str, Any]]:
    from agentstream.stream_processors.governance_audit import audit, audit_sql

    if clickhouse_dsn:
        from agentstream.sink.storage import make_client

        try:
            client = make_client(clickhouse_dsn)
            rows = list(clickhouse_rows(client, audit_sql(since_us, until_us, tenant)))
        except Exception as exc:  # one line for the user, not a traceback
            raise CliError(f"cannot read {clickhouse_dsn}: {exc}") from exc
        return audit(rows, stored_policies() if rules is None else _same_for_all(rules))
    client = api_client or ApiClient(resolve(api_url, api_key))
    rows = list(api_rows(client, audit_sql(since_us, until_us)))
    if rules is None:
        current = client.get("/v1/policies") if hasattr(client, "get") else {}
        rules = current.get("governance") or {}
    return audit(rows, _same_for_all(rules))


def _same_for_all(rules: Mapping[str, Any]) -> Callable[[str], Mapping[str, Any]]:
    """One governance mapping for every tenant (a --policy file, or the API's)."""
    return lambda _tenant: rules


def stored_policies() -> Callable[[str], Mapping[str, Any]]:
    """Each tenant's governance from the policies topic (the stack's or AGENTSTREAM_PROCESSORS_*)."""
    from agentstream.stream_processors.policy_io import read_policies
    from agentstream.stream_processors.settings import ProcessorsSettings

    try:
        found = read_policies(ProcessorsSettings())
    except Exception as exc:
        raise CliError(f"cannot read the policies topic ({exc}); pass --policy FILE") from exc
    return lambda t: (found.get(t) or {}).get("governance") or {}


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
