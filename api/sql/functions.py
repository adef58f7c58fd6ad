"""Functions /v1/sql refuses: the second wall, behind the structural tenant rewrite.

None of these can read another tenant's rows once every table is the tenant subquery; they are
refused because they read outside the query's tables (files, dictionaries, other tables by
name, settings, server files, outbound calls) or disclose the host and its other sessions (its
name, version, uptime, ports, paths, users, query and connection ids, time zone), or write to its
log. ``currentDatabase()`` is refused too: tenants never need the deployment's database name.
Reviewed against ``system.functions`` of ClickHouse 26.9 (chDB).

The IN family in call form (``globalIn(x, t)``) is refused as the caller spells it: ClickHouse
reads its second argument as a table and builds that set while analysing the query, before any
check of ours, and sqlglot reads it as a column, so the rewrite never scoped it. ``x IN (SELECT
…)``, which the rewrite scopes, stays; in ClickHouse's own query tree it is the function ``in``,
so these names are not refused there.
Names are matched case-insensitively against ClickHouse's canonical names and the aliases a
query may spell (the query-tree check sees the canonical one after alias resolution).
"""
from __future__ import annotations

import re

from .rejections import SqlRejected

DENIED_FUNCTIONS = frozenset(n.lower() for n in (
    # read outside the query's tables
    "file", "hasColumnInTable", "joinGet", "joinGetOrNull", "getSubcolumn", "catboostEvaluate",
    "modelEvaluate", "naiveBayesClassifier", "evalMLMethod", "input", "filesystemAvailable",
    "filesystemCapacity", "filesystemUnreserved", "globalVariable", "generateSerialID",
    "mergeTreeIndex", "mergeTreeAnalyzeIndexes", "transactionID", "transactionLatestSnapshot",
    "transactionOldestSnapshot", "getMaxTableNameLengthForDatabase", "pg_table_is_visible",
    "pgTableIsVisible",
    # server files: embedded dictionaries, TLD lists and models named in its configuration
    "regionHierarchy", "regionIn", "naiveBayesNgrams",
    # outbound calls to the model providers of the server's configuration
    "aiClassify", "aiEmbed", "aiExtract", "aiFilter", "aiGenerate", "aiRedact", "aiSimilarity",
    "aiTranslate",
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
    "hasThreadFuzzer", "getTypeSerializationStreams", "SCHEMA", "session_user", "authUser",
    "pg_get_userbyid", "pgGetUserById", "initial_query_start_time",
    # this query, its connection and its handler: ids of the server's sessions
    "currentQueryID", "current_query_id", "queryID", "query_id", "connectionId", "connection_id",
    "currentHandler", "currentRequestURL",
    # the server's time zone (a DateTime column's own zone is in DESCRIBE)
    "timezone", "timeZone",
    # writes the caller's text to the server log
    "logTrace",
    # introspection of the server's binary, and crashing it
    "addressToLine", "addressToLineWithInlines", "addressToSymbol", "demangle", "trap",
    "__getScalar", "__scalarSubqueryResult",
))
# regionTo*: embedded dictionaries; naiveBayesClassifier*: models; *SubdomainCustom*: TLD lists.
DENIED_PREFIXES = ("dict", "joinget", "regionto", "naivebayesclassifier")
DENIED_INFIXES = ("significantsubdomaincustom",)
# Every spelling of in, notIn, globalIn, nullIn, globalNotNullInIgnoreSet ... (16 in ClickHouse 26).
IN_FUNCTION = re.compile(r"(?:global)?(?:not)?(?:null)?in(?:ignoreset)?", re.IGNORECASE)
# Internal helpers (``__getScalar`` ...) are refused as the caller spells them; in ClickHouse's own
# query tree the analyzer may add such helpers itself, so there only the names above count.
_CALLER_PREFIXES = DENIED_PREFIXES + ("__",)


def is_denied(name: str, spelled_by_caller: bool = True) -> bool:
    low = name.lower()
    if spelled_by_caller and IN_FUNCTION.fullmatch(low):
        return True
    return low in DENIED_FUNCTIONS or any(i in low for i in DENIED_INFIXES) or low.startswith(
        _CALLER_PREFIXES if spelled_by_caller else DENIED_PREFIXES)


def check_function_name(name: str, spelled_by_caller: bool = True) -> None:
    if spelled_by_caller and IN_FUNCTION.fullmatch(name):
        raise SqlRejected("sql_function_forbidden",
                          f"function {name}() is not allowed: write x IN (SELECT ... FROM t), or "
                          "x IN (1, 2) for a list", {"function": name})
    if is_denied(name, spelled_by_caller):
        raise SqlRejected("sql_function_forbidden", f"function {name}() is not allowed",
                          {"function": name})
