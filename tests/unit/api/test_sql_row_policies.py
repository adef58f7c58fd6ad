"""Row policies, the server-side second wall: the DDL parses with ClickHouse's own parser."""
from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from agentstream.api.cli import api_app
from agentstream.api.settings import ApiSettings
from agentstream.api.sql.row_policies import TENANT_SETTING, row_policy_ddl
from agentstream.api.store.sql import SqlRunner


def test_ddl_parses_with_clickhouse_and_covers_every_table(ch):
    ddl = row_policy_ddl("default", ["events", "runs", "alerts"], password="s3cret")
    kinds = [ch.query("EXPLAIN AST " + stmt).result_rows[0][0] for stmt in ddl]
    assert kinds[0].startswith("CreateSettingsProfileQuery")
    assert kinds[1].startswith("CreateUserQuery")
    assert kinds.count("GrantQuery") == 3
    policies = [s for s in ddl if s.startswith("CREATE ROW POLICY")]
    assert len(policies) == 3 and all(
        f"USING tenant_id = getSetting('{TENANT_SETTING}') TO `agentstream_sql`" in p for p in policies)
    assert hashlib.sha256(b"s3cret").hexdigest() in ddl[1] and "s3cret'" not in ddl[1]
    assert "readonly = 1" in ddl[0]


@pytest.mark.parametrize("bad", ["ev`ents", "events; DROP TABLE x", "1abc", ""])
def test_names_are_identifiers_only(bad):
    with pytest.raises(ValueError):
        row_policy_ddl("default", [bad])
    with pytest.raises(ValueError):
        row_policy_ddl("default", ["events"], setting="tenant")


def test_runner_sends_the_tenant_setting_when_policies_are_on():
    on = SqlRunner(None, ApiSettings(sql_tenant_setting=TENANT_SETTING)).query_settings("acme")
    assert list(on)[0] == TENANT_SETTING and on[TENANT_SETTING] == "acme"
    assert "readonly" not in on  # the policy user's profile holds readonly = 1
    off = SqlRunner(None, ApiSettings()).query_settings("acme")
    assert TENANT_SETTING not in off and list(off)[-1] == "readonly"


def test_cli_prints_the_ddl():
    r = CliRunner().invoke(api_app, ["row-policies", "--table", "events", "--database", "default"])
    assert r.exit_code == 0, r.output
    assert r.output.count(";\n") == 4 and "CREATE ROW POLICY IF NOT EXISTS `agentstream_tenant_events`" in r.output


def test_cluster_ddl_parses_and_walls_the_shard_tables_too(ch):
    ddl = row_policy_ddl("default", ["events", "runs"], password="s3cret", cluster="agentstream")
    for stmt in ddl:
        ch.query("EXPLAIN AST " + stmt)  # ClickHouse's own parser takes every statement
        formatted = ch.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": stmt}).result_rows[0][0]
        assert "ON CLUSTER agentstream" in formatted, formatted
    policies = [s for s in ddl if s.startswith("CREATE ROW POLICY")]
    on = {p.split(" ON `default`.")[1].split(" ")[0] for p in policies}
    # the shards read *_local as the initial user: the policy must be there, not only on Distributed
    assert on == {"`events`", "`events_local`", "`runs`", "`runs_local`"}
    with pytest.raises(ValueError):
        row_policy_ddl("default", ["events"], cluster="a; DROP")
