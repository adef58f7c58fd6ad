"""Row policies for a ClickHouse server: a second wall under the /v1/sql rewrite.

The SQL pool connects as its own user (``AGENTSTREAM_API_SQL_CLICKHOUSE_DSN``). Every readable
table gets a row policy for that user, ``tenant_id = getSetting('SQL_agentstream_tenant')``, and
the API sends the caller's tenant in that custom setting with every analyst query. ClickHouse
applies a row policy as the first filter of the scan, below anything in the query, so even a
query that got past the rewrite reads one tenant's rows; without the setting it fails (fail
closed). The user may read the listed tables only, cannot write and cannot change settings
other than the tenant and the query limits the API sends.

This trusts the API to bind the tenant (it holds the SQL user's password); it is a wall against
query-level escapes, not against a compromised API.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable

TENANT_SETTING = "SQL_agentstream_tenant"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Settings the API sends with each analyst query; the profile lets them change under readonly.
_CHANGEABLE = ("max_execution_time", "max_memory_usage", "max_rows_to_read", "max_result_rows",
               "max_result_bytes", "result_overflow_mode")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f"`{name}`"


def row_policy_ddl(database: str, tables: Iterable[str], user: str = "agentstream_sql",
                   password: str | None = None, setting: str = TENANT_SETTING,
                   cluster: str | None = None) -> list[str]:
    """The statements, in order, that create the SQL user, its profile, grants and policies.

    ``cluster``: every statement ``ON CLUSTER``, and each readable (Distributed) table's shard
    table ``<table>_local`` gets the grant and the policy too: that is where the shards read the
    rows, as the initial user when the cluster's remote_servers has an inter-server ``secret``
    (docs/storage.md, "Cluster schema")."""
    db, u = _ident(database), _ident(user)
    profile = _ident(user + "_profile")
    on = f" ON CLUSTER {_ident(cluster)}" if cluster else ""
    if not setting.startswith("SQL_") or not _IDENT.match(setting):
        raise ValueError("the tenant setting must be a custom setting named SQL_<identifier>")
    auth = (f"IDENTIFIED WITH sha256_hash BY '{hashlib.sha256(password.encode()).hexdigest()}'"
            if password is not None else "IDENTIFIED WITH sha256_password BY '<choose a password>'")
    changeable = ", ".join(f"{s} CHANGEABLE_IN_READONLY" for s in _CHANGEABLE)
    out = [
        # OR REPLACE: re-running after an upgrade lets the limits a newer API sends change too
        # (readonly refuses any setting the profile does not list).
        f"CREATE SETTINGS PROFILE OR REPLACE {profile}{on} SETTINGS readonly = 1, "
        f"{setting} = '' CHANGEABLE_IN_READONLY, {changeable}",
        f"CREATE USER IF NOT EXISTS {u}{on} {auth} DEFAULT DATABASE {db} SETTINGS PROFILE {profile}",
    ]
    names = sorted(set(tables))
    if cluster:
        names = sorted({n for t in names for n in (t, t + "_local")})
    for t in names:
        table = f"{db}.{_ident(t)}"
        out.append(f"GRANT{on} SELECT ON {table} TO {u}")
        out.append(f"CREATE ROW POLICY IF NOT EXISTS {_ident('agentstream_tenant_' + t)}{on} ON {table} "
                   f"AS permissive FOR SELECT USING tenant_id = getSetting('{setting}') TO {u}")
    return out
