"""``agentstream plan`` (cli/plan.py): the sizing from bench/figures.json, and docs/deploy.md's
worked example regenerated from it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentstream.cli.plan import FIGURES_FILE, Figures, PlanError, PlanInput, make_plan, register

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "deploy.md"


def _run(*args: str):
    app = typer.Typer()
    register(app)

    @app.command("noop", hidden=True)
    def _noop() -> None:  # a second command keeps "plan" a subcommand
        pass

    return CliRunner().invoke(app, ["plan", *args])


def test_docs_sizing_table_is_the_commands_output():
    text = DOC.read_text()
    m = re.search(r"<!-- plan:begin -->\n(.*?)<!-- plan:end -->", text, re.S)
    assert m, "docs/deploy.md has no plan:begin/plan:end block"
    args = re.search(r"`agentstream plan (.*?)`", m.group(1)).group(1).split()
    out = _run(*args, "--format", "markdown")
    assert out.exit_code == 0, out.output
    assert m.group(1) == out.output, "docs/deploy.md's sizing differs from `agentstream plan`: regenerate it"


def test_the_figures_file_is_dated_and_says_how_each_figure_was_got():
    doc = json.loads(FIGURES_FILE.read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc["measured"])
    for key, fig in doc["figures"].items():
        assert fig["kind"] in {"measured", "assumption"}, key
        assert fig["source"] and float(fig["value"]) >= 0, key
        if fig["kind"] == "measured":
            assert "bench" in fig["source"], f"{key}: a measured figure names its benchmark"


def test_one_million_events_per_second():
    p = make_plan(PlanInput(1_000_000), Figures.load()).numbers
    assert p["processors"] == 84 and p["sink"] == 20  # 1M / 14.3k x 1.2; 1M / 60k x 1.2
    assert p["raw_partitions"] == 108 and p["events_partitions"] >= p["raw_partitions"]
    assert p["kafka_brokers"] == 6
    assert (p["clickhouse_shards"], p["clickhouse_replicas"]) == (4, 2)


def test_every_factor_comes_from_the_figures_file(tmp_path):
    """Doubling a per-core figure halves what depends on it: nothing is hard-coded."""
    base = Figures.load()
    doc = json.loads(FIGURES_FILE.read_text())
    doc["figures"]["processors_ev_s_per_core"]["value"] *= 2
    doc["figures"]["sink_avro_rows_s_per_pod"]["value"] *= 2
    doc["figures"]["clickhouse_node_disk_tb"]["value"] *= 4
    doc["figures"]["clickhouse_insert_rows_s_per_core"]["value"] *= 4
    f = tmp_path / "figures.json"
    f.write_text(json.dumps(doc))
    a = make_plan(PlanInput(1_000_000), base).numbers
    b = make_plan(PlanInput(1_000_000), Figures.load(f)).numbers
    assert b["processors"] == a["processors"] / 2 and b["sink"] == a["sink"] / 2
    assert b["clickhouse_shards"] < a["clickhouse_shards"]
    out = _run("--events-per-s", "1000000", "--figures", str(f), "--format", "json")
    assert json.loads(out.output)["plan"]["processors"] == b["processors"]


@pytest.mark.parametrize("rate", [1, 500, 30_000, 250_000, 1_300_000, 3_000_000, 7_000_000])
def test_plans_grow_with_the_rate_and_stay_whole(rate):
    figs = Figures.load()
    small = make_plan(PlanInput(rate), figs).numbers
    big = make_plan(PlanInput(rate * 2), figs).numbers
    for key in ("processors", "sink", "raw_partitions", "kafka_brokers", "clickhouse_shards", "gateway"):
        assert float(small[key]).is_integer() and small[key] >= 1, key
        assert big[key] >= small[key], key
    assert small["raw_partitions"] >= small["processors"] and small["events_partitions"] >= small["sink"]
    # the cluster's sharding key needs the shards to divide the events partitions
    assert small["events_partitions"] % small["clickhouse_shards"] == 0
    assert small["kafka_brokers"] >= 3 and small["gateway"] >= 3


@pytest.mark.parametrize("args,msg", [
    (["--events-per-s", "0"], "positive"),
    (["--events-per-s", "-5"], "positive"),
    (["--events-per-s", "1000", "--retention-days", "0"], "retention"),
    (["--events-per-s", "1000", "--http-share", "1.5"], "http-share"),
    (["--events-per-s", "1000", "--format", "yaml"], "json"),
    (["--events-per-s", "1000", "--figures", "/nonexistent/figures.json"], "not a figures file"),
])
def test_bad_input_is_refused_with_a_message(args, msg):
    out = _run(*args)
    assert out.exit_code == 2 and msg in out.output


def test_a_figures_file_missing_a_factor_is_named(tmp_path):
    doc = json.loads(FIGURES_FILE.read_text())
    del doc["figures"]["gateway_ev_s_per_pod"]
    f = tmp_path / "figures.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(PlanError, match="gateway_ev_s_per_pod"):
        make_plan(PlanInput(1000), Figures.load(f))
