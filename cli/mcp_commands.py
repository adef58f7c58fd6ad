"""``agentstream mcp proxy``: records an MCP server's tool calls as a run's TOOL steps.

stdio:  agentstream mcp proxy --tenant acme --agent-id coder -- npx some-mcp-server
HTTP:   agentstream mcp proxy --tenant acme --upstream http://127.0.0.1:8000/mcp --listen 127.0.0.1:8765

Kafka and the digest key come from the producer settings (AGENTSTREAM_PRODUCER_*, or the
running stack's address). In stdio mode stdout is the protocol channel: everything the proxy
says goes to stderr.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:  # the SDK is imported when the proxy starts, not for `agentstream --help`
    from agentstream.producer import Tracer

mcp_app = typer.Typer(help="Capture MCP tool calls (a proxy between client and server).",
                      no_args_is_help=True)


def _tracer(tenant: str, agent_id: str, agent_version: str, environment: str,
            max_steps: Optional[int], max_wall_time_s: Optional[float]) -> Tracer:
    from agentstream.producer import Tracer

    # only the limits given, so AGENTSTREAM_PRODUCER_* fills the rest
    overrides: dict[str, Any] = {k: v for k, v in (("max_steps", max_steps),
                                   ("max_wall_time_s", max_wall_time_s)) if v is not None}
    return Tracer(tenant, agent_id, agent_version, environment, **overrides)


@mcp_app.command("proxy", context_settings={"allow_extra_args": True,
                                            "ignore_unknown_options": True})
def proxy(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", help="tenant the run belongs to"),
    agent_id: str = typer.Option("mcp-client", "--agent-id"),
    agent_version: str = typer.Option("0.0.0", "--agent-version"),
    environment: str = typer.Option("development", "--environment"),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="stdio: the session's run id "
                                         "(default: a new UUID, printed on stderr)"),
    session_id: Optional[str] = typer.Option(None, "--session-id", help="stdio: a session id "
                                             "to group this run with others"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="tool calls allowed per "
                                            "session; the next is refused"),
    max_wall_time_s: Optional[float] = typer.Option(None, "--max-wall-time-s"),
    upstream: Optional[str] = typer.Option(None, "--upstream", help="HTTP mode: the MCP "
                                           "server's streamable-HTTP URL"),
    listen: str = typer.Option("127.0.0.1:8765", "--listen", help="HTTP mode: HOST:PORT"),
    idle_s: float = typer.Option(1800.0, "--idle-s", help="HTTP mode: a session without "
                                 "traffic this long ends its run"),
) -> None:
    """Proxy one MCP server; every tools/call becomes a TOOL step (tool name, keyed argument
    digest, latency, status), never its content. A stopped or over-budget session's next call
    gets a tool error result and the server is not called."""
    command = [a for a in ctx.args if a != "--"]
    if upstream and command:
        typer.echo("error: give either a server command (stdio) or --upstream (HTTP), not both",
                   err=True)
        raise typer.Exit(2)
    if not upstream and not command:
        typer.echo("error: no MCP server: agentstream mcp proxy [options] -- COMMAND [ARGS...] "
                   "or --upstream URL", err=True)
        raise typer.Exit(2)
    try:
        tracer = _tracer(tenant, agent_id, agent_version, environment, max_steps,
                         max_wall_time_s)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        if upstream:
            from agentstream.producer.mcp_http import serve

            host, _, port = listen.rpartition(":")
            if not port.isdigit():
                typer.echo(f"error: --listen wants HOST:PORT, got {listen!r}", err=True)
                raise typer.Exit(2)
            print(f"agentstream: MCP proxy on http://{host or '127.0.0.1'}:{port} -> {upstream}",
                  file=sys.stderr, flush=True)
            serve(tracer, upstream, host or "127.0.0.1", int(port), idle_s=idle_s)
            code = 0
        else:
            from agentstream.producer.mcp_stdio import StdioProxy

            import uuid

            run_id = run_id or str(uuid.uuid4())
            p = StdioProxy(tracer, command, run_id=run_id, session_id=session_id)
            print(f"agentstream: MCP session -> run {run_id}", file=sys.stderr, flush=True)
            try:
                code = p.run()
            except FileNotFoundError as exc:
                p.session.close(exc)
                typer.echo(f"error: cannot start the MCP server: {exc}", err=True)
                code = 127
    finally:
        tracer.close()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp")
