"""The ``agentstream`` command: each part contributes its subcommands through ``register(app)``.

This package is the one place that composes the parts. ``up`` starts them as processes rather
than importing them into one another.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="agentstream",
    help="Kafka-native, privacy-safe telemetry for fleets of AI agents.",
    no_args_is_help=True,
    add_completion=False,
)

# Each module has register(app). A part that failed to import must not take the whole CLI
# down with it (e.g. an optional extra missing), but its error is shown, never swallowed.
PART_COMMANDS = [
    "agentstream.cli.stack_commands",
    "agentstream.cli.schema_commands",
    "agentstream.cli.runs",
    "agentstream.cli.compare_commands",
    "agentstream.cli.digest_commands",
    "agentstream.cli.export_commands",
    "agentstream.cli.plan",
    "agentstream.cli.mcp_commands",
    "agentstream.cli.audit_commands",
    "agentstream.cli.hooks_commands",
    "agentstream.cli.dlq_commands",
    "agentstream.stream_processors.cli",
    "agentstream.sink.cli",
    "agentstream.api.cli",
    "agentstream.api.gateway.cli",
    "agentstream.producer.cli",
]


_registered: list[str] | None = None


def register_parts() -> list[str]:
    """Adds every part's commands once; returns the parts that could not be loaded."""
    global _registered
    if _registered is not None:
        return _registered
    problems: list[str] = []
    for name in PART_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that part has no commands (yet)
                continue
            problems.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - report, keep the rest of the CLI usable
            problems.append(f"{name}: {exc}")
            continue
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    _registered = problems
    return problems


@app.callback()
def _options(
    bootstrap_servers: str = typer.Option(
        None, "--bootstrap-servers", metavar="HOST:PORT",
        help="Kafka for every part and command (also accepted after the command name). Without "
             "it: the AGENTSTREAM_*_BOOTSTRAP_SERVERS variables, else the running embedded stack "
             "(its data dir's stack.json, AGENTSTREAM_DATA_DIR or .agentstream), else 127.0.0.1:9092."),
    data_dir: str = typer.Option(
        None, "--data-dir", metavar="DIR",
        help="The running embedded stack's data dir, where its stack.json says where everything "
             "listens (also accepted after the command name; up and demo take it as their own)."),
) -> None:
    """Kafka-native, privacy-safe telemetry for fleets of AI agents."""
    # applied in main() before any command runs (so it works after the command name too)


# Commands that start the stack themselves: an address found in a data dir must not leak into
# the stack they start.
STACK_COMMANDS = {"up", "demo", "serve-embedded"}
# Client commands that talk to Kafka and nothing else: checked for a listening broker first, so
# a wrong address is one clear line, not librdkafka retrying into the terminal.
KAFKA_CLIENT_COMMANDS = {("alerts", "tail"), ("alerts", "forward"), ("policy", "set"),
                         ("policy", "show"), ("topics", "create"), ("dlq", "tail"), ("dlq", "summary")}


def take_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Removes ``NAME X`` / ``NAME=X`` wherever it is in argv; the last one given wins."""
    out, value, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a == name and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if a.startswith(name + "="):
            value, i = a.split("=", 1)[1], i + 1
            continue
        out.append(a)
        i += 1
    return out, value


def take_bootstrap(argv: list[str]) -> tuple[list[str], str | None]:
    return take_option(argv, "--bootstrap-servers")


def resolve_kafka(argv: list[str]) -> tuple[list[str], str | None]:
    """Sets every part's Kafka address for this command; returns argv without the global options
    and where the address came from (None: nothing found, the parts' defaults apply)."""
    from .stack_state import apply_bootstrap_defaults, read_state

    argv, named = take_bootstrap(argv)
    rest, named_dir = take_option(argv, "--data-dir")
    words = [a for a in rest if not a.startswith("-")]
    stack = bool(words) and words[0] in STACK_COMMANDS
    # up and demo take --data-dir as their own, wherever it was given
    argv = rest + ["--data-dir", named_dir] if stack and named_dir is not None else rest
    if named:
        apply_bootstrap_defaults(named, None, override=True)
        return argv, "--bootstrap-servers"
    if stack:
        return argv, None
    data_dir = Path(named_dir or os.environ.get("AGENTSTREAM_DATA_DIR", ".agentstream"))
    state = read_state(data_dir)
    if state and state.get("bootstrap_servers"):
        apply_bootstrap_defaults(state["bootstrap_servers"], state.get("topic_prefix"), override=False)
        return rest, str(data_dir / "stack.json")
    if named_dir:
        print(f"agentstream: no running stack in {data_dir} (no live stack.json there)", file=sys.stderr)
    return rest, None


def is_kafka_client_command(argv: list[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    return tuple(words[:2]) in KAFKA_CLIENT_COMMANDS and "--help" not in argv


def parses(argv: list[str]) -> bool:
    """True when the arguments parse for the command they name: a usage error is then reported
    by the command line itself, not hidden behind a missing broker. (Typer vendors its own click,
    so the classes are reached through the command objects, not imported.)"""
    cmd: Any = typer.main.get_command(app)
    ctx: Any = None
    args = list(argv)
    # The groups' own options (the global ones) were taken out by resolve_kafka.
    while hasattr(cmd, "get_command"):
        ctx = cmd.context_class(cmd, info_name=cmd.name, parent=ctx)
        if not args or args[0].startswith("-"):
            return True  # --help or nothing: answered without a broker anyway
        sub = cmd.get_command(ctx, args[0])
        if sub is None:
            return False
        cmd, args = sub, args[1:]
    try:
        cmd.make_context(cmd.name or "", args, parent=ctx)
    except Exception:  # noqa: BLE001 - any refusal: let the real run report it
        return False
    return True


def check_broker(argv: list[str], source: str | None) -> None:
    from .stack_state import reachable

    if not is_kafka_client_command(argv) or not parses(argv):
        return
    bootstrap = (os.environ.get("AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS")
                 or os.environ.get("AGENTSTREAM_BOOTSTRAP_SERVERS") or "127.0.0.1:9092")
    if not reachable(bootstrap):
        where = f" (from {source})" if source else ""
        print(f"agentstream: no Kafka broker listens at {bootstrap}{where}; start one with "
              "'agentstream up', or name yours with --bootstrap-servers HOST:PORT", file=sys.stderr)
        raise SystemExit(2)


def main() -> None:
    argv, source = resolve_kafka(sys.argv[1:])
    problems = register_parts()  # before check_broker: it parses the arguments first
    check_broker(argv, source)
    if is_kafka_client_command(argv):
        from .kafka_log_quiet import QuietKafkaLog

        QuietKafkaLog().start()  # a broker that goes away later: one line, not hundreds
    for p in problems:
        print(f"agentstream: commands unavailable: {p}", file=sys.stderr)
    app(args=argv, prog_name="agentstream")


if __name__ == "__main__":
    main()
