"""``agentstream processors run``, ``redact``, ``alerts tail|forward`` and ``policy set``.

Imports stay inside the commands so ``agentstream --help`` does not load faust.
"""
from __future__ import annotations

import sys
import time
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
    import signal
    import threading

    from .alerts_io import tail_alerts
    from .settings import ProcessorsSettings

    # Ctrl-C and SIGTERM end the loop between polls: an interrupt raised inside a librdkafka call
    # could leave the consumer half made, its close at exit waiting on a broker that is gone.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tail_alerts(ProcessorsSettings(), tenant=tenant, from_beginning=from_beginning, limit=limit,
                as_json=json_out, out=sys.stdout, stop=stop)


@alerts_app.command("forward")
def alerts_forward(webhook: Optional[str] = typer.Option(None, "--webhook", help="send every alert to this "
                                                         "one URL (default: each tenant's routing rules)"),
                   fmt: str = typer.Option("slack", "--format", help="with --webhook: slack, pagerduty or webhook"),
                   routing_key: str = typer.Option("", help="PagerDuty Events v2 routing key (with --webhook)"),
                   tenant: Optional[str] = typer.Option(None),
                   ledger: Optional[str] = typer.Option(
                       ".agentstream/alerts-forward.ledger", "--ledger",
                       help="delivery ledger file: never the same alert twice to one destination"),
                   max_retries: int = typer.Option(6),
                   probe_port: Optional[int] = typer.Option(
                       None, "--probe-port", help="serve /healthz, /readyz and /metrics on this port "
                       "(host: AGENTSTREAM_PROCESSORS_FORWARDER_PROBE_HOST, default 127.0.0.1)")) -> None:
    """Forward alerts by the tenants' routing rules (or to one --webhook), minus silenced ones."""
    from agentstream.schemas.consumer_errors import ConsumerCrash

    from .alerts_io import forward_alerts
    from .forward_steps import WebhookUnavailable
    from .settings import ProcessorsSettings

    try:
        settings = (ProcessorsSettings() if probe_port is None
                    else ProcessorsSettings(forwarder_probe_port=probe_port))
        forward_alerts(settings, webhook, fmt=fmt, routing_key=routing_key, tenant=tenant,
                       max_retries=max_retries, ledger=ledger or None)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (WebhookUnavailable, ConsumerCrash) as exc:
        # one line, not a traceback: the alert is uncommitted and a restart resumes there
        typer.echo(f"error: {exc} (the alert's offset is not committed; a restart resumes there)", err=True)
        raise typer.Exit(1) from exc


def _state_command(state: str):
    def command(alert_id: str = typer.Argument(..., help="the alert id"),
                tenant: str = typer.Option(..., "--tenant"),
                note: str = typer.Option("", "--note")) -> None:
        from .alerting_io import set_state
        from .settings import ProcessorsSettings

        st = set_state(ProcessorsSettings(), tenant, alert_id, state, note)
        typer.echo(f"alert {st.alert_id} {st.state} for tenant {tenant}")

    command.__doc__ = f"Mark an alert {state} (on the policies topic; the API and dashboard show it)."
    return command


alerts_app.command("ack")(_state_command("acknowledged"))
alerts_app.command("resolve")(_state_command("resolved"))
alerts_app.command("reopen")(_state_command("open"))


@alerts_app.command("silence")
def alerts_silence(tenant: str = typer.Option(..., "--tenant"),
                   duration: str = typer.Option("1h", "--for", help="how long: 30m, 2h, 1d or seconds"),
                   alert_type: Optional[str] = typer.Option(None, "--type"),
                   agent: Optional[str] = typer.Option(None, "--agent"),
                   severity: Optional[str] = typer.Option(None, "--severity", help="INFO, WARNING or CRITICAL"),
                   comment: str = typer.Option("", "--comment"),
                   expire: Optional[str] = typer.Option(None, "--expire", help="end this silence id now"),
                   list_: bool = typer.Option(False, "--list", help="list the tenant's silences")) -> None:
    """Silence matching alerts (type, agent, severity) until an expiry; --list and --expire ID too."""
    from .alerting_io import add_silence, expire_silence, now_us, read_book
    from .settings import ProcessorsSettings

    settings = ProcessorsSettings()
    try:
        if list_:
            now = now_us()
            for s in read_book(settings).tenant(tenant).silences.values():
                state = "active" if s.active(now) else "expired"
                typer.echo(f"{s.silence_id} {state} until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(s.expires_us / 1e6))} "
                           f"{s.matcher.to_doc()} {s.comment}")
            return
        if expire:
            s = expire_silence(settings, tenant, expire)
            typer.echo(f"silence {s.silence_id} expired")
            return
        s = add_silence(settings, tenant, parse_duration(duration), alert_type, agent, severity, comment)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"silence {s.silence_id} until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(s.expires_us / 1e6))}")


@alerts_app.command("routing")
def alerts_routing(tenant: str = typer.Option(..., "--tenant"),
                   file: Optional[str] = typer.Option(None, "--file", help='JSON {"rules": [...]} to set; '
                                                      "without it, show the current rules")) -> None:
    """Set (--file) or show a tenant's routing rules: type or severity -> webhook, Slack or PagerDuty."""
    import json

    from agentstream.schemas.alerting import AlertingError

    from .alerting_io import read_book, set_routing
    from .settings import ProcessorsSettings

    settings = ProcessorsSettings()
    if file is None:
        for r in read_book(settings).tenant(tenant).rules:
            typer.echo(json.dumps({**r.to_doc(), "destination": r.destination.redacted()}))
        return
    try:
        with open(file, encoding="utf-8") as fh:
            n = set_routing(settings, tenant, json.load(fh))
    except (OSError, ValueError, AlertingError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{n} routing rules written for tenant {tenant}")


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError as exc:
        raise ValueError(f"duration {text!r} is not like 30m, 2h, 1d or seconds") from exc


@policy_app.command("set")
def policy_set(
    tenant: str = typer.Option(..., "--tenant"),
    version: Optional[str] = typer.Option(None, help="policy version label (default: a timestamp)"),
    capture_mode: Optional[str] = typer.Option(None, help="METADATA_ONLY, REDACTED or SECURE_REFERENCE"),
    action: list[str] = typer.Option([], "--action", help="category=mask|hash|drop, repeatable"),
    loop: list[str] = typer.Option([], "--loop", help="max_repeats=5, stop_on_loop=false, ... repeatable"),
    budget: list[str] = typer.Option([], "--budget", help="tenant_usd_per_day=50, hard_limit=true, ..."),
    retention_days: Optional[int] = typer.Option(None),
    govern: list[str] = typer.Option([], "--govern", help="governance: tool_deny=shell,fs_*  "
                                     "max_calls_per_tool=search:10,*:50  require_approval=pay  "
                                     "stop_on=tool_denied,...  max_delegation_depth=3  max_fan_out=8 ..."),
) -> None:
    """Write a tenant's policy to the compacted policies topic (merged over its current one)."""
    from .policy_io import set_policy
    from .settings import ProcessorsSettings

    try:
        rec = set_policy(ProcessorsSettings(), tenant, version=version, capture_mode=capture_mode,
                         actions=action, loops=loop, budgets=budget, retention_days=retention_days,
                         governance=govern)
    except ValueError as exc:  # bad --action/--loop/--budget/--govern/--capture-mode: a message, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"policy {rec['version']} written for tenant {tenant}")


@policy_app.command("show")
def policy_show(tenant: str = typer.Option(..., "--tenant")) -> None:
    """Print the tenant's current policy (Policy v2, every default filled) as JSON; "default"
    when none was ever set."""
    import json

    from .policies import TenantPolicy
    from .policy_io import read_policy
    from .settings import ProcessorsSettings

    rec = read_policy(ProcessorsSettings(), tenant)
    policy = TenantPolicy.from_record(rec) if rec else TenantPolicy.default(tenant)
    doc = policy.to_record(int(rec.get("updated_us") or 0) if rec else 0)
    typer.echo(json.dumps({**doc, "source": "topic" if rec else "default"}, indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    app.add_typer(processors_app, name="processors")
    app.command("redact")(redact)
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(policy_app, name="policy")
