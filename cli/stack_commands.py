"""``agentstream up``, ``agentstream demo`` and ``serve-embedded`` (the sink and API process)."""
from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer

DEMO_TENANTS = ("acme", "globex")


def ensure_demo_keys(data_dir: Path) -> dict[str, str]:
    """Random demo keys, made once per data dir; the keys file the API reads holds only hashes."""
    from agentstream.api.auth import add_key

    plain_path = data_dir / "demo_keys.json"
    if plain_path.exists():
        return json.loads(plain_path.read_text())
    keys = {t: f"as_demo_{t}_{secrets.token_urlsafe(18)}" for t in DEMO_TENANTS}
    for tenant, key in keys.items():
        add_key(data_dir / "api_keys.json", tenant, key, scopes=["read", "write"], name="demo")
    plain_path.write_text(json.dumps(keys, indent=2))
    plain_path.chmod(0o600)
    return keys


def _print_where_to_look(stack, keys: dict[str, str]) -> None:
    api = stack.api_url
    typer.echo("")
    typer.echo("agentstream is running on the embedded default (Tansu broker + chDB).")
    typer.echo(f"  query API + dashboard  {api}    (OpenAPI docs: {api}/docs)")
    typer.echo(f"  dashboard              {api}/ui   (log in with a demo key)")
    if stack.config.with_gateway:
        typer.echo(f"  ingest gateway         {stack.gateway_url}/v1/ingest  and  /v1/traces (OTLP/HTTP)")
    typer.echo(f"  Kafka bootstrap        {stack.broker.bootstrap_servers}")
    typer.echo(f"  logs and data          {stack.config.data_dir.resolve()}")
    for what, (default, used) in stack.config.moved.items():
        typer.echo(f"  NOTE: the default {what} port {default} was in use; {what} is on {used}"
                   f" (other agentstream commands find it in {stack.config.data_dir}/stack.json)")
    for tenant, key in keys.items():
        typer.echo(f"  demo key for {tenant:7}   {key}")
    first = next(iter(keys.values()))
    typer.echo("")
    typer.echo(f'  curl -H "Authorization: Bearer {first}" {api}/v1/runs')
    typer.echo(f'  curl -H "Authorization: Bearer {first}" {api}/v1/stats')
    typer.echo("")


def _watch(stack, stop: threading.Event, interval: float = 5.0) -> None:
    """Prints the parts' status when it changes (every ``interval``), and each second starts an
    exited part again when its restart policy says (``Stack.supervise``)."""
    last, checked = None, float("-inf")
    while not stop.is_set():
        stack.supervise(say=_say)
        if time.monotonic() - checked >= interval:
            checked = time.monotonic()
            st = stack.status()
            line = "  ".join(f"{k}={v}" for k, v in st.items())
            if line != last:
                typer.echo(f"[{time.strftime('%H:%M:%S')}] {line}")
                last = line
        stop.wait(1.0)


class Stopping(BaseException):
    """SIGTERM/SIGINT: unwinds the main thread into the ordered stop (BaseException, so no
    ``except Exception`` on the way swallows it)."""


def _on_signal(signum, _frame) -> None:
    # Restored to ignore once the stop has begun: a second Ctrl-C or a repeated SIGTERM must not
    # interrupt the ordered stop halfway (the stop is bounded on its own).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Stopping(signal.Signals(signum).name)


def _install_signal_handlers() -> None:
    """SIGTERM (docker stop, systemd, Kubernetes) and SIGINT stop the stack in order. Both are
    set explicitly: a shell starts a background job with SIGINT ignored, and Python's default
    SIGTERM ends the process without running any cleanup."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def _say(msg: str) -> None:
    typer.echo(f"  {msg}")


PORT_DEFAULTS = {"api": 8000, "broker": 9092, "gateway": 8001, "processors": 6066}


def _start(data_dir: Path, ports: dict[str, Optional[int]], gateway: bool, restart: bool = True):
    from .stack import PortInUse, Stack, StackConfig

    _install_signal_handlers()
    chosen = {k: (v if v is not None else PORT_DEFAULTS[k]) for k, v in ports.items()}
    stack = Stack(StackConfig(data_dir=data_dir, api_port=chosen["api"], broker_port=chosen["broker"],
                              gateway_port=chosen["gateway"], processors_port=chosen["processors"],
                              with_gateway=gateway, restart=restart,
                              explicit=frozenset(k for k, v in ports.items() if v is not None)))
    keys = ensure_demo_keys(data_dir)
    typer.echo("starting the embedded broker, processors, sink and API ...")
    try:
        stack.start()
        stack.wait_ready()
    except PortInUse as exc:
        stack.stop(say=_say, drain_s=0)
        typer.echo(f"agentstream: {exc}", err=True)
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        stack.stop(say=_say, drain_s=0)
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except BaseException:  # noqa: BLE001 - Ctrl-C or a crash: stop the stack, then exit
        typer.echo("\nstopping ...")
        stack.stop(say=_say, drain_s=0)
        typer.echo("stopped.")
        raise typer.Exit(0) from None
    return stack, keys


def _port_options():
    return {
        "api_port": typer.Option(None, help="query API + dashboard port (default 8000, moved if "
                                 "taken). A port named here is used, or up fails."),
        "broker_port": typer.Option(None, help="embedded Kafka port (default 9092, moved if taken)"),
        "gateway_port": typer.Option(None, help="ingest gateway port (default 8001, moved if taken)"),
        "processors_port": typer.Option(None, help="processors' health/metrics port (default 6066, moved if taken)"),
    }


_P = _port_options()


def up(
    data_dir: Path = typer.Option(Path(".agentstream"), help="where chDB, the spool and logs live"),
    api_port: Optional[int] = _P["api_port"],
    broker_port: Optional[int] = _P["broker_port"],
    gateway_port: Optional[int] = _P["gateway_port"],
    processors_port: Optional[int] = _P["processors_port"],
    gateway: bool = typer.Option(True, help="also run the ingest gateway"),
    restart: bool = typer.Option(True, help="start a part that exits again, with crash-loop backoff "
                                 "(1 s doubling to 30 s), as compose and Kubernetes do"),
) -> None:
    """Run the embedded stack until Ctrl-C or SIGTERM: broker, processors, sink + API, gateway.
    A part that exits is started again (--no-restart: reported only). Stopping drains the
    pipeline first, so every acknowledged event is stored."""
    stack, keys = _start(data_dir, {"api": api_port, "broker": broker_port,
                                    "gateway": gateway_port, "processors": processors_port}, gateway, restart)
    _print_where_to_look(stack, keys)
    stop = threading.Event()
    try:
        _watch(stack, stop)
    except (Stopping, KeyboardInterrupt):
        typer.echo("\nstopping ...")
    finally:
        stop.set()
        stack.stop(say=_say)
        typer.echo("stopped.")


def demo(
    data_dir: Path = typer.Option(Path(".agentstream")),
    api_port: Optional[int] = _P["api_port"],
    broker_port: Optional[int] = _P["broker_port"],
    gateway_port: Optional[int] = _P["gateway_port"],
    processors_port: Optional[int] = _P["processors_port"],
    runs: int = typer.Option(600, help="runs in the first burst; the fleet then keeps a trickle going"),
    exit_after: bool = typer.Option(False, "--exit", help="stop after the first burst (for scripts)"),
) -> None:
    """Run the embedded stack and drive a synthetic multi-tenant fleet into it."""
    from agentstream.producer import ProducerSettings

    from .fleet import Fleet
    from .demo_policies import apply_demo_policies

    stack, keys = _start(data_dir, {"api": api_port, "broker": broker_port,
                                    "gateway": gateway_port, "processors": processors_port},
                         gateway=True)
    stop = threading.Event()
    fleet = None
    try:
        env = stack.env()
        settings = ProducerSettings(
            bootstrap_servers=stack.broker.bootstrap_servers,
            topic_prefix=stack.config.topic_prefix,
            spool_dir=str(data_dir / "spool"),
            session_timeout_ms=int(env["AGENTSTREAM_PRODUCER_SESSION_TIMEOUT_MS"]),
        )
        apply_demo_policies(stack.broker.bootstrap_servers, stack.config.topic_prefix)
        fleet = Fleet(settings)
        _print_where_to_look(stack, keys)
        typer.echo(f"driving {runs} runs of a synthetic fleet ({len(DEMO_TENANTS)} tenants) ...")
        outcomes = fleet.run(runs, stop)
        typer.echo(f"fleet outcomes: {json.dumps(outcomes, sort_keys=True)}")
        if exit_after:
            return
        typer.echo("the fleet keeps a trickle of runs going; Ctrl-C stops everything.")
        watcher = threading.Thread(target=_watch, args=(stack, stop, 15.0), daemon=True)
        watcher.start()
        while not stop.is_set():
            fleet.run(fleet._count + 20, stop)
            stop.wait(2.0)
    except (Stopping, KeyboardInterrupt):
        typer.echo("\nstopping ...")
    finally:
        stop.set()
        if fleet:  # the producers first: flushed, or spooled to disk for the next start
            _say("stopping the synthetic fleet ...")
            fleet.close()
        stack.stop(say=_say)
        typer.echo("stopped.")


SINK_STOPPED_EXIT = 3


def serve_embedded() -> None:
    """The sink and the query API in one process: chDB allows one owner per data directory.

    When the sink stops on its own (a bug, or a DLQ ratio over its limit), the process exits
    with ``SINK_STOPPED_EXIT``: an API that went on answering over a table nothing fills any more
    would hide it, while an exited part is what ``up``'s status line reports (with its log), and
    ``up`` starts it again with crash-loop backoff (cli/supervision.py), as Kubernetes would."""
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.settings import ApiSettings
    from agentstream.api.store.run_misses import RunMisses
    from agentstream.sink import Sink, SinkSettings, make_client
    from agentstream.sink.gc_policy import apply_gc_policy

    sink_settings = SinkSettings()
    api_settings = ApiSettings()
    apply_gc_policy(sink_settings.gc_gen0_threshold)
    client = make_client(sink_settings.clickhouse_dsn)
    # Each insert thread opens its own handle on the same engine (one process, so chDB's
    # one-owner rule holds), and so does the API: chDB serialises the calls on one handle, and
    # a point read on the sink's handle waited behind its inserts (measured: p50 210-250 ms vs
    # 17-26 ms on an own handle, docs/performance.md).
    # The process sees every insert into events (it owns the chDB directory), so the API may
    # answer a run it knows missing without a query: the sink tells it what each insert carries.
    misses = RunMisses(api_settings.run_miss_cache_size) if api_settings.run_miss_cache else None
    sink = Sink(sink_settings, client=client, client_factory=lambda: make_client(sink_settings.clickhouse_dsn),
                watch=misses)
    app = create_app(api_settings, client=make_client(sink_settings.clickhouse_dsn), run_misses=misses)
    server = uvicorn.Server(uvicorn.Config(app, host=api_settings.host, port=api_settings.port,
                                           log_level="warning"))
    stopping = threading.Event()

    def run_sink() -> None:
        try:
            sink.run()
        except BaseException:  # noqa: BLE001 - logged by Sink.run; surfaced as the exit below
            pass
        finally:
            if not stopping.is_set():
                server.should_exit = True

    sink_thread = threading.Thread(target=run_sink, name="agentstream-sink", daemon=True)
    sink_thread.start()
    try:
        server.run()
    finally:
        stopping.set()
        sink.stop()
        sink_thread.join(30.0)
    if sink.failed:
        print(f"agentstream: the sink stopped ({sink.failed}); the API stopped with it", file=sys.stderr)
        raise SystemExit(SINK_STOPPED_EXIT)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("demo")(demo)
    app.command("serve-embedded", hidden=True)(serve_embedded)
