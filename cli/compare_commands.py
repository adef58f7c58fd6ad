"""``agentstream compare``: a candidate version of an agent against its baseline, with a verdict,
as a CI gate (exit 1 on a regression). The figures and tests are the query API's ``/v1/compare``;
the verdict is ``version_gate.judge``'s."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .runs import API_KEY, API_URL, fail
from .runs_client import ApiClient, CliError, resolve
from .version_gate import (
    CHANGED, IMPROVED, INSUFFICIENT, NO_DATA, PASS, REGRESSED, GateLimits, Verdict, format_change, format_value,
    judge,
)

# Exit code of an API or usage error: distinct from a regression (1) and too little data (3).
ERROR_EXIT = 2
STATUS_STYLE = {REGRESSED: "bold red", IMPROVED: "green", CHANGED: "yellow", NO_DATA: "dim"}
OUTCOME_STYLE = {PASS: "bold green", "regression": "bold red", INSUFFICIENT: "bold yellow"}


def compare_command(
    agent: str = typer.Argument(..., help="the agent (its agent_id)"),
    baseline: str = typer.Argument(..., help="the version to compare against, e.g. the one in production"),
    candidate: str = typer.Argument(..., help="the version under test"),
    environment: Optional[str] = typer.Option(None, help="only runs of this environment"),
    since: Optional[str] = typer.Option(None, help="ISO 8601 lower bound of the runs compared"),
    until: Optional[str] = typer.Option(None, help="ISO 8601 upper bound (exclusive)"),
    hours: Optional[float] = typer.Option(None, min=0.01, help="the last N hours (instead of --since)"),
    max_failure_rate_increase: float = typer.Option(
        2.0, "--max-failure-rate-increase", min=0, help="percentage points the failure rate may rise"),
    max_latency_increase: float = typer.Option(
        10.0, "--max-latency-increase", min=0, help="percent the latency p50 and p95 may rise"),
    max_cost_increase: float = typer.Option(10.0, "--max-cost-increase", min=0,
                                            help="percent the cost per run may rise"),
    min_runs: int = typer.Option(30, "--min-runs", min=1, help="finished runs each version needs"),
    fail_on_tool_mix: bool = typer.Option(False, "--fail-on-tool-mix",
                                          help="a significant change in which tools are called fails too"),
    allow_insufficient: bool = typer.Option(False, "--allow-insufficient",
                                            help="too little data passes (exit 0) instead of exit 3"),
    api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY,
    as_json: bool = typer.Option(False, "--json", help="the verdict and the API's comparison as JSON"),
) -> None:
    """Compare two versions of an agent and gate on it: exit 0 when the candidate is no worse, 1 on a regression, 3 when there is too little data to tell, 2 on an error.

    A metric regresses when it is worse by more than its limit and the API's test finds the difference significant: failure rate (two-proportion z), latency p50 (Mann-Whitney U), latency p95 (Kolmogorov-Smirnov), cost per run (Mann-Whitney U)."""
    if hours is not None and since is not None:
        raise typer.BadParameter("give --since or --hours, not both", param_hint="--hours")
    if hours is not None:
        since = (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat(timespec="seconds")
    limits = GateLimits(max_failure_rate_increase, max_latency_increase, max_cost_increase, min_runs,
                        fail_on_tool_mix, allow_insufficient)
    try:
        client = ApiClient(resolve(api_url, api_key))
        try:
            doc = client.get("/v1/compare", agent=agent, a=baseline, b=candidate, environment=environment,
                             since=since, until=until)
        finally:
            client.close()
    except CliError as exc:
        fail(exc, ERROR_EXIT)
    verdict = judge(doc, limits)
    if as_json:
        sys.stdout.write(json.dumps({**verdict.as_dict(), "comparison": doc}, indent=2, sort_keys=True) + "\n")
    else:
        Console().print(verdict_view(doc, verdict))
    raise typer.Exit(verdict.exit_code)


def verdict_view(doc: dict[str, Any], verdict: Verdict) -> Group:
    a, b = doc.get("a") or {}, doc.get("b") or {}
    head = Text.assemble((f"{doc.get('agent')}: ", "bold"), f"{a.get('version')} (baseline, "
                         f"{a.get('finished_runs', 0)} finished runs) vs {b.get('version')} (candidate, "
                         f"{b.get('finished_runs', 0)} finished runs), alpha {doc.get('alpha')}")
    table = Table(title_justify="left")
    for col, justify in (("metric", "left"), ("baseline", "right"), ("candidate", "right"), ("change", "right"),
                         ("limit", "right"), ("test", "left"), ("p", "right"), ("status", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in verdict.checks:
        pts = c.unit == "pts"
        table.add_row(c.metric, format_value(c.baseline, c.metric), format_value(c.candidate, c.metric),
                      format_change(c) if c.metric != "tool mix" else "",
                      "" if c.limit is None else f"{c.limit:g}{' pts' if pts else '%'}", c.test,
                      "" if c.p_value is None else f"{c.p_value:.3g}",
                      Text(c.status + (f" ({c.note})" if c.note else ""), style=STATUS_STYLE.get(c.status, "")))
    out = Text(verdict.outcome.upper(), style=OUTCOME_STYLE[verdict.outcome])
    lines = [Text.assemble(out, "  ", r) for r in verdict.reasons] or [out]
    return Group(head, table, *lines)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
