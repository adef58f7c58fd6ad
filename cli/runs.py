"""``agentstream runs``: operate a live fleet through the query API (stop, throttle, explain,
diff, replay, why, export, sample, share). HTTP only: see runs_client.py for the URL, key and config file."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import typer
from rich.console import Console

from .runs_client import ApiClient, CliError, resolve, run_path

runs_app = typer.Typer(help="Operate runs through the query API: stop, throttle, explain, diff, "
                            "replay, why, export, sample, share.", no_args_is_help=True)

API_URL = typer.Option(None, "--api-url", help="query API base URL [env AGENTSTREAM_API_URL, "
                                                "config api_url, default http://127.0.0.1:8000]")
API_KEY = typer.Option(None, "--api-key", help="tenant API key [env AGENTSTREAM_API_KEY, config api_key]")
JSON = typer.Option(False, "--json", help="print the API's JSON instead of a terminal view")


def _client(api_url: Optional[str], api_key: Optional[str]) -> ApiClient:
    return ApiClient(resolve(api_url, api_key))


def fail(exc: CliError, code: int = 1) -> NoReturn:
    """The error as one line on stderr, then exit ``code``."""
    Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
    raise typer.Exit(code)


def _out(doc: Any, as_json: bool, view=None) -> None:
    if as_json or view is None:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        Console().print(view(doc))


def _command(kind: str, run_id: str, body: dict[str, Any], api_url, api_key, as_json) -> None:
    from .runs_render import issued_view

    try:
        doc = _client(api_url, api_key).post(run_path(run_id, kind), body)
    except CliError as exc:
        fail(exc)
    _out(doc, as_json, issued_view)


@runs_app.command("stop")
def stop(run_id: str = typer.Argument(..., help="the run to stop"),
         reason: str = typer.Option(..., "--reason", help="why (stored with the stop)"),
         actor: Optional[str] = typer.Option(None, help="your name, recorded with the key's name"),
         api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY, as_json: bool = JSON) -> None:
    """Stop a running run: the agent raises RunStopped before its next step."""
    _command("stop", run_id, {"reason": reason, "actor": actor}, api_url, api_key, as_json)


@runs_app.command("throttle")
def throttle(run_id: str = typer.Argument(...),
             delay_ms: int = typer.Option(..., "--delay-ms", min=1, max=600_000,
                                          help="wait this long before each further step"),
             reason: str = typer.Option(..., "--reason"),
             actor: Optional[str] = typer.Option(None),
             api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY,
             as_json: bool = JSON) -> None:
    """Slow a running run down: the agent waits before each further step."""
    _command("throttle", run_id, {"reason": reason, "actor": actor, "throttle_ms": delay_ms},
             api_url, api_key, as_json)


@runs_app.command("explain")
def explain(run_id: str = typer.Argument(...), api_url: Optional[str] = API_URL,
            api_key: Optional[str] = API_KEY, as_json: bool = JSON) -> None:
    """What happened in a run, in plain words (computed from the data, no model)."""
    from .runs_render import explain_view

    try:
        doc = _client(api_url, api_key).get(run_path(run_id, "explain"))
    except CliError as exc:
        fail(exc)
    _out(doc, as_json, explain_view)


@runs_app.command("diff")
def diff(run_a: str = typer.Argument(..., help="baseline run"),
         run_b: str = typer.Argument(..., help="the run to compare with it"),
         api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY, as_json: bool = JSON) -> None:
    """Align two runs' steps: first divergence, inserted/removed/changed steps, deltas."""
    from .runs_render import diff_view

    try:
        doc = _client(api_url, api_key).get(run_path(run_a, "diff", run_b))
    except CliError as exc:
        fail(exc)
    _out(doc, as_json, diff_view)


@runs_app.command("replay")
def replay(run_id: str = typer.Argument(...),
           speed: str = typer.Option("1x", help="10x plays ten times faster; max does not wait"),
           interactive: Optional[bool] = typer.Option(
               None, "--interactive/--no-interactive",
               help="live waterfall with keys (default: when stdin and stdout are a terminal)"),
           api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY) -> None:
    """Step through a run as it happened: a live waterfall (space pause, n step, q quit)."""
    from .runs_replay import parse_speed, play_live, play_log

    try:
        factor = parse_speed(speed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--speed") from None
    try:
        timeline = _client(api_url, api_key).get(run_path(run_id, "timeline"))
    except CliError as exc:
        fail(exc)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive and not tty:
        raise typer.BadParameter("needs a terminal on stdin and stdout", param_hint="--interactive")
    if interactive if interactive is not None else tty:
        play_live(timeline, factor, Console())
    else:
        play_log(timeline, factor, sys.stdout)


def _export(path: Optional[Path], params: dict[str, Any], anonymize: bool, api_url, api_key,
            what: str) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    try:
        client = _client(api_url, api_key)
        headers = {}
        if anonymize:
            if not client.settings.pseudonym_key:
                raise CliError("--anonymize needs a pseudonym key (at least 16 bytes): set "
                               "AGENTSTREAM_PSEUDONYM_KEY or pseudonym_key in the config file; "
                               "keep it to get the same pseudonyms next time")
            headers["X-Pseudonym-Key"] = client.settings.pseudonym_key
            params["anonymize"] = "true"
        out = open(path, "wb") if path is not None else sys.stdout.buffer
        err = Console(stderr=True)
        runs = size = 0
        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=err, transient=True, disable=not err.is_terminal) as progress:
                task = progress.add_task(what)
                for line in client.stream_lines("/v1/export", params, headers):
                    out.write(line)
                    runs += 1
                    size += len(line)
                    progress.update(task, description=f"{what}: {runs} runs, {size / 1e6:.1f} MB")
        finally:
            if path is not None:
                out.close()
            else:
                out.flush()
    except CliError as exc:
        fail(exc)
    err.print(f"{what}: {runs} runs, {size} bytes" + (f" → {path}" if path else ""), highlight=False)


FILTERS_HELP = "filters are those of /v1/runs"


def _filters(agent, version, status, environment, since, until, **search: Any) -> dict[str, Any]:
    return {"agent": agent, "version": version, "status": status, "environment": environment,
            "since": since, "until": until, **{k: (v or None) for k, v in search.items()}}


@runs_app.command("export")
def export(output: Optional[Path] = typer.Option(None, "-o", "--output", help="file (default stdout)"),
           fmt: str = typer.Option("jsonl", "--format", help="jsonl (run records) or otlp (OTLP/JSON lines)"),
           anonymize: bool = typer.Option(False, "--anonymize",
                                          help="ids and names become stable keyed pseudonyms"),
           limit: Optional[int] = typer.Option(None, min=1, help="at most this many runs"),
           agent: Optional[str] = typer.Option(None), version: Optional[str] = typer.Option(None),
           status: Optional[str] = typer.Option(None), environment: Optional[str] = typer.Option(None),
           since: Optional[str] = typer.Option(None, help="ISO 8601"),
           until: Optional[str] = typer.Option(None, help="ISO 8601"),
           session: Optional[str] = typer.Option(None),
           attribute: Optional[List[str]] = typer.Option(None, help="key=value, repeatable"),
           tool: Optional[str] = typer.Option(None), model: Optional[str] = typer.Option(None),
           failure_type: Optional[str] = typer.Option(None),
           failure_code: Optional[str] = typer.Option(None),
           end_user: Optional[str] = typer.Option(None, help="as stored: the SDK's keyed hash"),
           min_cost_usd: Optional[float] = typer.Option(None),
           min_latency_ms: Optional[float] = typer.Option(None),
           api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY) -> None:
    """Export selected runs (newest first), streamed, as JSONL or OTLP JSON."""
    params = _filters(agent, version, status, environment, since, until, session=session,
                      attribute=attribute, tool=tool, model=model, failure_type=failure_type,
                      failure_code=failure_code, end_user=end_user, min_cost_usd=min_cost_usd,
                      min_latency_ms=min_latency_ms)
    params.update(format=fmt, limit=limit)
    _export(output, params, anonymize, api_url, api_key, "exporting")


@runs_app.command("sample")
def sample(worst: int = typer.Option(50, "--worst", min=1, max=100_000, help="how many runs"),
           by: str = typer.Option("cost", "--by", help="cost | latency | failures | retries"),
           output: Optional[Path] = typer.Option(None, "-o", "--output"),
           fmt: str = typer.Option("jsonl", "--format"),
           anonymize: bool = typer.Option(False, "--anonymize"),
           agent: Optional[str] = typer.Option(None), version: Optional[str] = typer.Option(None),
           status: Optional[str] = typer.Option(None), environment: Optional[str] = typer.Option(None),
           since: Optional[str] = typer.Option(None, help="ISO 8601, e.g. 2026-12-05"),
           until: Optional[str] = typer.Option(None),
           api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY) -> None:
    """The N worst runs by cost, latency, failures or retries, exported like `export`."""
    if by not in ("cost", "latency", "failures", "retries"):
        raise typer.BadParameter("one of cost, latency, failures, retries", param_hint="--by")
    params = _filters(agent, version, status, environment, since, until)
    params.update(format=fmt, worst=worst, by=by)
    _export(output, params, anonymize, api_url, api_key, f"sampling the {worst} worst by {by}")


@runs_app.command("why")
def why(run_id: str = typer.Argument(...),
        step: str = typer.Argument(..., help="a step id, #seq, or a step name (its last attempt)"),
        api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY, as_json: bool = JSON) -> None:
    """Why a step ran as it did: the steps around it, the decisions before it, its attempts, the
    failure inside it and what its failure caused (computed from the data, no model)."""
    from .runs_why import StepNotFound, lines
    from .runs_why import why as account

    try:
        client = _client(api_url, api_key)
        try:
            timeline = client.get(run_path(run_id, "timeline"))
            detail = client.get(run_path(run_id))
        finally:
            client.close()
        doc = account(timeline, detail, step)
    except StepNotFound as exc:
        fail(CliError(str(exc)))
    except CliError as exc:
        fail(exc)
    if as_json:
        _out(doc, True)
    else:
        sys.stdout.write("\n".join(lines(doc)) + "\n")


@runs_app.command("share")
def share(run_id: str = typer.Argument(...),
          output: Path = typer.Option(..., "-o", "--output", help="the HTML file to write"),
          api_url: Optional[str] = API_URL, api_key: Optional[str] = API_KEY) -> None:
    """One run as a single HTML file anyone can open offline: the run page with its data inside,
    read-only, fetching nothing (the data as stored: already redacted)."""
    from datetime import datetime, timezone

    from .runs_share import requests, share_html

    answers: dict[str, Any] = {}
    try:
        client = _client(api_url, api_key)
        try:
            tenant = client.get("/v1/whoami").get("tenant_id") or "?"
            for key, (path, params) in requests(run_id).items():
                try:
                    answers[key] = client.get(path, **params)
                except CliError:
                    if not answers:  # the run itself: nothing to share without it
                        raise
        finally:
            client.close()
    except CliError as exc:
        fail(exc)
    taken = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    output.write_text(share_html(run_id, answers, tenant, taken), encoding="utf-8")
    Console(stderr=True).print(f"run {run_id} → {output} ({output.stat().st_size:,} bytes; open it in any "
                               "browser, it fetches nothing)", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
