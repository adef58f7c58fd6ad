"""The ``agentstream`` command: each part contributes its subcommands through ``register(app)``.

This package is the one place that composes the parts. ``up`` starts them as processes rather
than importing them into one another.
"""
from __future__ import annotations

import importlib
import sys

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
    "agentstream.stream_processors.cli",
    "agentstream.sink.cli",
    "agentstream.api.cli",
    "agentstream.api.gateway.cli",
    "agentstream.producer.cli",
]


def _register_parts() -> list[str]:
    problems = []
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
    return problems


def main() -> None:
    problems = _register_parts()
    for p in problems:
        print(f"agentstream: commands unavailable: {p}", file=sys.stderr)
    app()


if __name__ == "__main__":
    main()
