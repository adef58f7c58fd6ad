"""``agentstream processors run``, ``redact``, ``alerts tail|forward`` and ``policy set``.

Imports stay inside the commands so ``agentstream --help`` does not load faust.
"""
from __future__ import annotations

import sys
from typing import Optional

import typer

processors_app = typer.Typer(help="Stream processors: redaction, loops, budgets, drift.", no_args_is_help=True)
alerts_app = typer.Typer(help="Detector alerts on the alerts topic.", no_args_is_help=True)
policy_app = typer.Typer(help="Per-tenant policies on the compacted policies topic.", no_args_is_help=True)


@processors_app.command("run")
def run(app: str = typer.Option("all", "--app", help="which worker to run; 'all' is the one chain "
                                "worker (redaction + every detector in one pass)")) -> None:
    """Run the processors worker with settings from AGENTSTREAM_PROCESSORS_* (blocks)."""
    from .app import run_worker
    from .settings import ProcessorsSettings

    if app not in ("all", "chain"):
        raise typer.BadParameter("the processors run as one chain worker: --app all (or chain)")
    run_worker(ProcessorsSettings())


def redact(jsonl: bool = typer.Option(True, "--jsonl/--no-jsonl",
                                      help='stdin: one {"id","text"} JSON object per line')) -> None:
    """Redact {"id","text"} JSON lines from stdin under the default policy; write them to stdout."""
    from .redaction.cli_redact import redact_lines
    from .settings import ProcessorsSettings

    bad = redact_lines(sys.stdin, sys.stdout, ProcessorsSettings().hash_key_bytes())
    if bad:
        typer.echo(f"{bad} input lines were not {{\"id\",\"text\"}} JSON objects (reported on stderr)",
                   err=True)
        raise typer.Exit(1)


@alerts_app.command("tail")
def alerts_tail(tenant: Optional[str] = typer.Option(None, help="only this tenant"),
                from_beginning: bool = typer.Option(False, "--from-beginning"),
                limit: int = typer.Option(0, help="stop after N alerts (0 = follow forever)"),
                json_out: bool = typer.Option(False, "--json", help="one JSON object per line")) -> None:
    """Follow the alerts topic in the terminal."""
    from .alerts_io import tail_alerts
    from .settings import ProcessorsSettings

    tail_alerts(ProcessorsSettings(), tenant=tenant, from_beginning=from_beginning, limit=limit,
                as_json=json_out, out=sys.stdout)


@alerts_app.command("forward")
def alerts_forward(webhook: str = typer.Option(..., "--webhook", help="URL to POST each alert to"),
                   fmt: str = typer.Option("slack", "--format", help="slack or pagerduty"),
                   routing_key: str = typer.Option("", help="PagerDuty Events v2 routing key"),
                   tenant: Optional[str] = typer.Option(None),
                   max_retries: int = typer.Option(6)) -> None:
    """Forward alerts to a webhook (Slack- or PagerDuty-style JSON), with retries and backoff."""
    from .alerts_io import forward_alerts
    from .settings import ProcessorsSettings

    forward_alerts(ProcessorsSettings(), webhook, fmt=fmt, routing_key=routing_key, tenant=tenant,
                   max_retries=max_retries)


@policy_app.command("set")
def policy_set(
    tenant: str = typer.Option(..., "--tenant"),
    version: Optional[str] = typer.Option(None, help="policy version label (default: a timestamp)"),
    capture_mode: Optional[str] = typer.Option(None, help="METADATA_ONLY, REDACTED or SECURE_REFERENCE"),
    action: list[str] = typer.Option([], "--action", help="category=mask|hash|drop, repeatable"),
    loop: list[str] = typer.Option([], "--loop", help="max_repeats=5, stop_on_loop=false, ... repeatable"),
    budget: list[str] = typer.Option([], "--budget", help="tenant_usd_per_day=50, hard_limit=true, ..."),
    retention_days: Optional[int] = typer.Option(None),
) -> None:
    """Write a tenant's policy to the compacted policies topic (merged over its current one)."""
    from .policy_io import set_policy
    from .settings import ProcessorsSettings

    try:
        rec = set_policy(ProcessorsSettings(), tenant, version=version, capture_mode=capture_mode,
                         actions=action, loops=loop, budgets=budget, retention_days=retention_days)
    except ValueError as exc:  # bad --action/--loop/--budget/--capture-mode: a message, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"policy {rec['version']} written for tenant {tenant}")


def register(app: typer.Typer) -> None:
    app.add_typer(processors_app, name="processors")
    app.command("redact")(redact)
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(policy_app, name="policy")
