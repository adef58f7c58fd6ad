"""ClickHouse connection and versioned DDL migrations.

Migrations are ``migrations/NNNN_name.sql``; statements are separated by a line holding only
``;``. Each applied version is recorded in ``schema_migrations``; statements are idempotent
(``IF NOT EXISTS``), so a migration interrupted half-way is simply re-run.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clickhouse_client import ClickHouseClient

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([\w-]+)\.sql$")
# The Avro staging table's payload Variant holds two records of four strings each (Feedback,
# CommandAck); ClickHouse asks for this setting before it creates such a column.
DDL_SETTINGS = {"allow_suspicious_variant_types": 1}


def make_client(dsn: str, **kwargs: Any):
    """A clickhouse-connect client for ``chdb:///abs/path``, ``chdb://rel/path`` or http(s)://.

    clickhouse-connect reads ``chdb://host/db`` as location + database; agentstream's relative
    embedded default (``chdb://.agentstream/chdb``) means a directory, so it is resolved here.
    """
    import clickhouse_connect

    if dsn.startswith("chdb://"):
        rest = dsn[len("chdb://"):]
        if rest in ("", "memory", ":memory:") or rest.startswith("memory/"):
            return clickhouse_connect.get_client(dsn=dsn, **kwargs)
        path = Path(rest.split("?", 1)[0]).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(path), **kwargs)
    return clickhouse_connect.get_client(dsn=dsn, **kwargs)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.strip() == ";":
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current))
    out: list[str] = []
    for p in parts:
        body = "\n".join(ln for ln in p.splitlines() if not ln.strip().startswith("--")).strip()
        if body:
            out.append(p.strip())
    return out


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for f in sorted(directory.glob("*.sql")):
        m = _NAME.match(f.name)
        if not m:
            raise ValueError(f"migration file {f.name} is not named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), tuple(split_statements(f.read_text()))))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}: {versions}")
    return found


def applied_versions(client: ClickHouseClient) -> set[int]:
    exists = client.command("EXISTS TABLE schema_migrations")
    if not int(exists):
        return set()
    return {int(r[0]) for r in client.query("SELECT version FROM schema_migrations FINAL").result_rows}


def apply_migrations(client: ClickHouseClient, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Applies every migration not yet recorded, in order; returns the versions applied."""
    done = applied_versions(client)
    applied: list[int] = []
    for mig in load_migrations(directory):
        if mig.version in done:
            continue
        for stmt in mig.statements:
            client.command(stmt, settings=DDL_SETTINGS)
        client.insert("schema_migrations", [[mig.version, mig.name]], column_names=["version", "name"])
        log.info("applied migration %04d_%s", mig.version, mig.name)
        applied.append(mig.version)
    return applied
