"""Functions /v1/sql refuses: the second wall, behind the structural tenant rewrite.

None of these can read another tenant's rows once every table is the tenant subquery; they are
refused because they read outside the query's tables (files, dictionaries, other tables by
name, settings) or disclose the host (its name, version, uptime, ports, paths, users).
``currentDatabase()`` is refused too: tenants never need the deployment's database name.
Names are matched case-insensitively against ClickHouse's canonical names and the aliases a
query may spell (the query-tree check sees the canonical one after alias resolution).
"""
from __future__ import annotations

from .rejections import SqlRejected

DENIED_FUNCTIONS = frozenset(n.lower() for n in (
    # read outside the query's tables
    "file", "hasColumnInTable", "joinGet", "joinGetOrNull", "getSubcolumn", "catboostEvaluate",
    "modelEvaluate", "naiveBayesClassifier", "evalMLMethod", "input", "filesystemAvailable",
    "filesystemCapacity", "filesystemUnreserved", "globalVariable", "generateSerialID",
    "mergeTreeIndex", "mergeTreeAnalyzeIndexes", "transactionID", "transactionLatestSnapshot",
    "transactionOldestSnapshot",
    # settings and server configuration
    "getSetting", "getSettingOrDefault", "getServerSetting", "getMergeTreeSetting", "getMacro",
    "getClientHTTPHeader", "showCertificate", "getConfig",
    # host and build disclosure
    "hostName", "hostname", "fqdn", "fullHostName", "fullhostname", "uptime", "version",
    "revision", "buildId", "serverUUID", "serverTimeZone", "serverTimezone", "tcpPort",
    "getServerPort", "displayName", "getOSKernelVersion", "zookeeperSessionUptime",
    "currentDatabase", "current_database", "DATABASE", "currentSchemas", "current_schemas",
    "currentUser", "current_user", "user", "authenticatedUser", "sessionUser", "currentProfiles",
    "currentRoles", "enabledRoles", "defaultRoles", "enabledProfiles", "defaultProfiles",
    "initialQueryID", "initial_query_id", "initialQueryStartTime", "shardNum", "shardCount",
    "hasThreadFuzzer", "getTypeSerializationStreams",
    # introspection of the server's binary, and crashing it
    "addressToLine", "addressToLineWithInlines", "addressToSymbol", "demangle", "trap",
    "__getScalar", "__scalarSubqueryResult",
))
DENIED_PREFIXES = ("dict", "joinget")
# Internal helpers (``__getScalar`` ...) are refused as the caller spells them; in ClickHouse's own
# query tree the analyzer may add such helpers itself, so there only the names above count.
_CALLER_PREFIXES = DENIED_PREFIXES + ("__",)


def is_denied(name: str, spelled_by_caller: bool = True) -> bool:
    low = name.lower()
    return low in DENIED_FUNCTIONS or low.startswith(
        _CALLER_PREFIXES if spelled_by_caller else DENIED_PREFIXES)


def check_function_name(name: str, spelled_by_caller: bool = True) -> None:
    if is_denied(name, spelled_by_caller):
        raise SqlRejected("sql_function_forbidden", f"function {name}() is not allowed",
                          {"function": name})
