"""deploy/grafana: the datasource and dashboard parse, every panel targets the provisioned
datasource, filters on the tenant variable, and its SQL runs against the real tables (the
session chDB with the sink's migrations), with the ClickHouse plugin's macros expanded."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agentstream.sink.storage import apply_migrations

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def expand(sql: str, tenant: str) -> str:
    """The macros the plugin expands (grafana-clickhouse-datasource), for a 7-day range."""
    sql = sql.replace("${tenant}", tenant)
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 r"\1 >= now() - INTERVAL 7 DAY AND \1 <= now()", sql)
    sql = sql.replace("$__fromTime", "toDateTime(now() - INTERVAL 7 DAY)").replace("$__toTime", "toDateTime(now())")
    assert "$" not in sql, f"unexpanded macro in {sql}"
    return sql


def test_datasource_is_the_one_the_dashboards_use():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["uid"] == "agentstream-clickhouse"
    assert "password" not in json.dumps(ds["jsonData"])  # secrets only in secureJsonData, from env
    assert ds["secureJsonData"]["password"].startswith("${")
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "agentstream.yaml").read_text())
    assert prov["providers"][0]["options"]["path"]
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_query_runs_on_the_real_tables(path, chdb_client):
    apply_migrations(chdb_client)
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["templating"]["list"][0]["name"] == "tenant"
    chdb_client.query(dash["templating"]["list"][0]["query"])
    assert len(dash["panels"]) >= 5
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dash["panels"]:
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "agentstream-clickhouse"
            assert "'${tenant}'" in t["rawSql"], f"{panel['title']}: no tenant filter"
            chdb_client.query(expand(t["rawSql"], "grafana-test"))  # raises on any SQL error
