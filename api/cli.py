"""``agentstream api run`` and ``agentstream api keys create|list|revoke``.

Imports stay inside the commands so ``agentstream --help`` stays fast.
"""
from __future__ import annotations

from typing import List, Optional

import typer

api_app = typer.Typer(help="The query API (FastAPI) and its tenant API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="Tenant API keys (stored hashed in the keys file).", no_args_is_help=True)
api_app.add_typer(keys_app, name="keys")


def _settings(keys_file: Optional[str] = None):
    from .settings import ApiSettings

    s = ApiSettings()
    if keys_file:
        s = s.model_copy(update={"api_keys_file": keys_file})
    return s


@api_app.command("run")
def run(host: Optional[str] = typer.Option(None, help="bind address (default from settings)"),
        port: Optional[int] = typer.Option(None, help="port (default 8000)"),
        log_level: str = typer.Option("info")) -> None:
    """Serve the query API with settings from AGENTSTREAM_API_* (blocks)."""
    import uvicorn

    from .app import create_app

    s = _settings()
    uvicorn.run(create_app(s), host=host or s.host, port=port or s.port, log_level=log_level)


@keys_app.command("create")
def keys_create(tenant: str = typer.Option(..., "--tenant", help="tenant id the key reads"),
                scope: List[str] = typer.Option(["read"], "--scope", help="read or write; repeatable"),
                name: str = typer.Option("", help="a label for the key"),
                keys_file: Optional[str] = typer.Option(None, help="defaults to AGENTSTREAM_API_API_KEYS_FILE")) -> None:
    """Create a key; the plain key is printed once and never stored."""
    from .auth import add_key

    s = _settings(keys_file)
    try:
        key = add_key(s.api_keys_file, tenant, scopes=scope, name=name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(key)
    typer.echo(f"key for tenant {tenant!r} with scopes {scope} added to {s.api_keys_file}", err=True)


@keys_app.command("list")
def keys_list(keys_file: Optional[str] = typer.Option(None)) -> None:
    """List keys (tenant, scopes, name, hash prefix); plain keys are not recoverable."""
    from .auth import load_keys

    for k in load_keys(_settings(keys_file).api_keys_file):
        typer.echo(f"{k.tenant_id}\t{','.join(k.scopes)}\t{k.name}\t{k.key_hash[:19]}…")


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="the plain key or its sha256:... hash"),
                keys_file: Optional[str] = typer.Option(None)) -> None:
    """Remove a key from the keys file; servers pick the change up on the next request."""
    from .auth import revoke_key

    if not revoke_key(_settings(keys_file).api_keys_file, key):
        typer.echo("no such key", err=True)
        raise typer.Exit(1)


@api_app.command("row-policies")
def row_policies(table: List[str] = typer.Option([], "--table", help="readable table; repeatable "
                                                  "(default: discovered like /v1/sql does)"),
                 database: Optional[str] = typer.Option(None, help="default: the DSN's current database"),
                 user: str = typer.Option("agentstream_sql", help="the SQL pool's ClickHouse user"),
                 password: Optional[str] = typer.Option(None, help="hashed into the DDL; "
                                                        "default: a placeholder to fill in"),
                 cluster: Optional[str] = typer.Option(None, help="ON CLUSTER, with policies on the "
                                                       "shard tables too (migrate --cluster)")) -> None:
    """Print the DDL of /v1/sql's second wall on a ClickHouse server: a restricted user and a
    row policy per tenant table (docs/deploy.md, "Row policies")."""
    from .sql.row_policies import row_policy_ddl

    if not table or database is None:
        from .db import Db, connect
        from .store.sql import SqlRunner

        s = _settings()
        pw = s.clickhouse_password.get_secret_value() if s.clickhouse_password else None
        cat = SqlRunner(Db(factory=lambda: connect(s.clickhouse_dsn, pw)), s).catalog()
        table = table or sorted(cat.readable)
        database = database or cat.database
    try:
        stmts = row_policy_ddl(database, table, user=user, password=password, cluster=cluster)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for stmt in stmts:
        typer.echo(stmt + ";")


def register(app: typer.Typer) -> None:
    app.add_typer(api_app, name="api")
