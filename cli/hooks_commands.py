"""``agentstream hooks``: coding-agent tool use → the ingest gateway.

    agentstream hooks install claude-code --gateway http://127.0.0.1:8001 [--scope user]
    export AGENTSTREAM_API_KEY=...      # a write key of your tenant, for the hook processes

``install`` merges hook entries into Claude Code's settings (other hooks are kept; installing
again replaces only agentstream's entries). Each hook runs ``hooks send claude-code``, which
maps the payload (cli/hooks_claude_code.py) and posts it. A hook never blocks or fails Claude
Code: it always exits 0; events the gateway could not take wait in an outbox and go with the
next hook.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

hooks_app = typer.Typer(help="Capture coding agents' tool use (Claude Code hooks).",
                        no_args_is_help=True)
HOOK_EVENTS = ("SessionStart", "PreToolUse", "PostToolUse", "PostToolUseFailure", "SessionEnd")
TOOL_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure"}
MARK = "hooks send claude-code"
DEFAULT_STATE = Path.home() / ".agentstream" / "claude-code"


def settings_path(scope: str, settings: Optional[Path]) -> Path:
    if settings is not None:
        return settings
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    if scope == "project":
        return Path(".claude") / "settings.json"
    if scope == "local":
        return Path(".claude") / "settings.local.json"
    raise typer.BadParameter("scope is user, project or local")


def merge_hooks(config: dict, command: str | None) -> dict:
    """``config`` with agentstream's hook entries replaced by ones running ``command`` (None:
    removed). Every other hook is kept as it was."""
    hooks = config.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError("the settings' 'hooks' is not an object")
    for event in HOOK_EVENTS:
        kept = [e for e in hooks.get(event) or [] if not (
            isinstance(e, dict) and any(MARK in str(h.get("command", ""))
                                        for h in e.get("hooks") or [] if isinstance(h, dict)))]
        if command is not None:
            entry: dict = {"hooks": [{"type": "command", "command": command, "timeout": 10}]}
            if event in TOOL_EVENTS:
                entry = {"matcher": "*", **entry}
            kept.append(entry)
        if kept:
            hooks[event] = kept
        else:
            hooks.pop(event, None)
    if not hooks:
        config.pop("hooks")
    return config


def _load(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except ValueError as exc:
        raise typer.BadParameter(f"{path} is not valid JSON ({exc}); not touching it") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} is not a JSON object; not touching it")
    return data


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def digest_key(state_dir: Path) -> bytes:
    """AGENTSTREAM_PRODUCER_DIGEST_KEY (the SDK's key: equal digests across both paths), else
    a key kept in the state dir (0600), made once, so every hook process digests alike."""
    env = os.environ.get("AGENTSTREAM_PRODUCER_DIGEST_KEY")
    if env:
        return env.encode()
    path = state_dir / "digest.key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@hooks_app.command("install")
def install(
    agent: str = typer.Argument(..., help="claude-code"),
    gateway: str = typer.Option(..., "--gateway", help="ingest gateway base URL"),
    scope: str = typer.Option("user", "--scope", help="user, project or local settings"),
    settings: Optional[Path] = typer.Option(None, "--settings", help="a settings file instead"),
    agent_id: str = typer.Option("claude-code", "--agent-id"),
    environment: str = typer.Option("development", "--environment"),
    api_key_env: str = typer.Option("AGENTSTREAM_API_KEY", "--api-key-env", help="the "
                                    "variable the hooks read the gateway key from (the key "
                                    "itself is never written to the settings)"),
    state_dir: Path = typer.Option(DEFAULT_STATE, "--state-dir"),
    max_tool_calls: Optional[int] = typer.Option(None, "--max-tool-calls", help="tool calls "
                                                 "allowed per session; later ones are denied"),
) -> None:
    """Writes Claude Code hook settings that send tool use (name + keyed argument digest,
    latency, status; never content) to the ingest gateway, one run per session."""
    if agent != "claude-code":
        typer.echo(f"error: unknown coding agent {agent!r} (supported: claude-code)", err=True)
        raise typer.Exit(2)
    path = settings_path(scope, settings)
    command = " ".join(shlex.quote(a) for a in (
        sys.executable, "-m", "agentstream.cli.main", "hooks", "send", "claude-code",
        "--gateway", gateway.rstrip("/"), "--agent-id", agent_id, "--environment", environment,
        "--api-key-env", api_key_env, "--state-dir", str(state_dir.expanduser().resolve()),
        *(("--max-tool-calls", str(max_tool_calls)) if max_tool_calls is not None else ())))
    try:
        data = merge_hooks(_load(path), command)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    digest_key(state_dir.expanduser())
    _write(path, data)
    typer.echo(f"wrote agentstream hooks ({', '.join(HOOK_EVENTS)}) to {path}; "
               f"set {api_key_env} to a write key of your tenant")


@hooks_app.command("uninstall")
def uninstall(agent: str = typer.Argument(..., help="claude-code"),
              scope: str = typer.Option("user", "--scope"),
              settings: Optional[Path] = typer.Option(None, "--settings")) -> None:
    """Removes agentstream's hook entries, keeping every other hook."""
    path = settings_path(scope, settings)
    if path.exists():
        _write(path, merge_hooks(_load(path), None))
    typer.echo(f"removed agentstream hooks from {path}")


@hooks_app.command("send")
def send(
    agent: str = typer.Argument(..., help="claude-code"),
    gateway: str = typer.Option(..., "--gateway"),
    agent_id: str = typer.Option("claude-code", "--agent-id"),
    environment: str = typer.Option("development", "--environment"),
    api_key_env: str = typer.Option("AGENTSTREAM_API_KEY", "--api-key-env"),
    state_dir: Path = typer.Option(DEFAULT_STATE, "--state-dir"),
    max_tool_calls: Optional[int] = typer.Option(None, "--max-tool-calls"),
) -> None:
    """Run by the hooks: one payload on stdin → events to the gateway. Always exits 0."""
    try:
        send_hook_event(gateway, agent_id, environment, api_key_env, state_dir.expanduser(),
                        sys.stdin.read(), max_tool_calls)
    except Exception as exc:  # noqa: BLE001 - a hook must never break the coding agent
        print(f"agentstream hook: {type(exc).__name__}: {exc}", file=sys.stderr)
    raise typer.Exit(0)


def send_hook_event(gateway: str, agent_id: str, environment: str, api_key_env: str, state_dir: Path,
                    raw: str, max_tool_calls: int | None = None) -> None:
    """One hook invocation: the payload mapped to events (a PreToolUse past the tool-call budget
    answered with Claude Code's deny decision on stdout), then delivered or kept in the outbox."""
    from .hooks_claude_code import HookMapper, session_state
    from .hooks_outbox import deliver

    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("hook payload is not a JSON object")
    mapper = HookMapper(digest_key(state_dir), agent_id, environment=environment,
                        max_tool_calls=max_tool_calls)
    with session_state(state_dir, str(payload.get("session_id") or "")) as state:
        events = mapper.map(payload, state)
    if mapper.denial:  # Claude Code's documented PreToolUse decision: the tool does not run
        print(json.dumps({"hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "deny",
            "permissionDecisionReason": mapper.denial}}), flush=True)
    deliver(gateway, os.environ.get(api_key_env, ""), state_dir, events)


def register(app: typer.Typer) -> None:
    app.add_typer(hooks_app, name="hooks")
