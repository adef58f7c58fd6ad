"""`agentstream runs` against a real query API over HTTP (uvicorn on loopback, chDB, the broker).

The commands only know a URL and a key, as on an operator's laptop. The interactive replay is
driven through tmux when it is installed: a real terminal, real keys.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "api"))
from api_fleet import RunBuilder, apply_migrations, insert_runs
from run_pair import RUN_A, RUN_B, build_pair, pair_alerts
from api_fleet import insert_alerts

from agentstream.cli.runs import runs_app
from agentstream.schemas.codec import DecodeError
from agentstream.schemas import COMMAND, Codec, topic_name

pytestmark = pytest.mark.integration
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, chdb_client, bootstrap, topic_prefix):
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.settings import ApiSettings

    apply_migrations(chdb_client)
    tmp = tmp_path_factory.mktemp("runs-cli")
    tenant = "cli-" + uuid.uuid4().hex[:8]
    keys = tmp / "keys.json"
    key = add_key(keys, tenant, scopes=["read", "write"], name="laptop")
    a, b = build_pair(tenant)
    live = RunBuilder(tenant, agent="support-bot", version="v2")
    live.step("PLAN", "plan", 5)
    insert_runs(chdb_client, [a, b, live] + gate_cohorts(tenant) + digest_runs(tenant))
    insert_alerts(chdb_client, tenant, pair_alerts(b))
    settings = ApiSettings(api_keys_file=keys, bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                           kafka_client_conf={"session.timeout.ms": "6000"})
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(settings, client=chdb_client), host="127.0.0.1",
                                        port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    env = {"AGENTSTREAM_API_URL": f"http://127.0.0.1:{port}", "AGENTSTREAM_API_KEY": key,
           "COLUMNS": "200",  # rich tables at a wide terminal's width
           "AGENTSTREAM_PSEUDONYM_KEY": "a-long-pseudonym-secret-0123456789",
           "XDG_CONFIG_HOME": str(tmp / "xdg")}
    yield env, live.run_id, tmp
    srv.should_exit = True
    thread.join(10)


def gate_cohorts(tenant: str) -> list[RunBuilder]:
    """Three versions of one agent for `agentstream compare`: v2 as v1 (another draw of the same
    behaviour), v3 failing a third of its runs and three times slower, v4 with five runs."""
    rng = random.Random(11)
    t0 = int(time.time() * 1e6) - 5 * 3_600_000_000
    out = []
    for version, n, fail_every, latency in (("v1", 60, 20, 100), ("v2", 60, 20, 100), ("v3", 60, 3, 300),
                                            ("v4", 5, 0, 100)):
        for i in range(n):
            r = RunBuilder(tenant, "gate-bot", version, start_us=t0 + i * 1_000_000)
            r.llm("think", latency * rng.uniform(0.8, 1.2), 100, 10, 0.01)
            r.tool("search", 5)
            out.append(r.end("FAILURE" if fail_every and i % fail_every == 0 else "SUCCESS"))
    return out


def digest_runs(tenant: str) -> list[RunBuilder]:
    """digest-bot v1: 30 clean runs at $0.01 a day and a half ago, 30 runs now failing half the
    time at $0.05 (the digest's period before, and its period)."""
    now = int(time.time() * 1e6)
    out = []
    for start, fail_every, cost in ((now - 36 * 3_600_000_000, 0, 0.01), (now - 2 * 3_600_000_000, 2, 0.05)):
        for i in range(30):
            r = RunBuilder(tenant, "digest-bot", "v1", start_us=start + i * 1_000_000)
            r.llm("think", 50, 100, 10, cost, model="gpt-digest")
            out.append(r.end("FAILURE" if fail_every and i % fail_every == 0 else "SUCCESS"))
    return out


def test_digest_of_the_last_day_beside_the_day_before(server):
    from agentstream.cli.digest_commands import digest_command

    env, _, _ = server
    app = typer.Typer()
    app.command()(digest_command)
    r = CliRunner().invoke(app, ["--json"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["tenant"].startswith("cli-")
    # every run started in the day: the pair, the live run, four gate versions, digest-bot's 30
    assert d["totals"]["runs"] == 2 + 1 + 185 + 30 and d["totals_before"]["runs"] == 30
    attention = {(a["kind"], a["agent_id"], a["agent_version"]) for a in d["attention"]}
    assert ("failures", "digest-bot", "v1") in attention  # 50% now, 0% the day before
    assert ("cost", "digest-bot", "v1") in attention  # $1.50 against $0.30: +400 %, $1.20 more
    assert ("drift", "digest-bot", "v1") in attention  # /v1/drift: its day against its week
    assert ("failures", "gate-bot", "v3") in attention  # new, a third of its runs failing
    assert {m["model"] for m in d["models"]} >= {"gpt-digest"}
    text = CliRunner().invoke(app, ["--top", "3"], env=env, catch_exceptions=False).stdout
    assert text.startswith(f"## agentstream digest: {d['tenant']}")
    assert "digest-bot v1: failure rate 50.0% (0.0% the period before)" in text
    assert f"(top 3 of {d['versions_total']})" in text and d["versions_total"] >= 6
    bad = CliRunner().invoke(app, ["--until", "yesterday"], env=env)
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output
    denied = CliRunner().invoke(app, [], env={**env, "AGENTSTREAM_API_KEY": "ask_wrong_wrong_wrong_wrong"})
    assert denied.exit_code == 1 and "401" in denied.stderr


def _compare(env, *args):
    from agentstream.cli.compare_commands import compare_command

    app = typer.Typer()
    app.command()(compare_command)
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_compare_gates_a_release_on_real_cohorts(server):
    env, _, _ = server
    same = _compare(env, "gate-bot", "v1", "v2")
    assert same.exit_code == 0, same.output
    assert "PASS" in same.stdout and "failure rate" in same.stdout and "latency p95" in same.stdout
    worse = _compare(env, "gate-bot", "v1", "v3", "--json")
    assert worse.exit_code == 1, worse.output
    doc = json.loads(worse.stdout)
    regressed = {c["metric"] for c in doc["checks"] if c["status"] == "regressed"}
    assert {"failure rate", "latency p50"} <= regressed
    assert doc["comparison"]["b"]["runs"] == 60 and doc["outcome"] == "regression"
    # the same figures pass a team that allows that much
    loose = _compare(env, "gate-bot", "v1", "v3", "--max-failure-rate-increase", "50",
                     "--max-latency-increase", "500", "--max-cost-increase", "500")
    assert loose.exit_code == 0, loose.output
    # the other way round, v3 -> v1 is an improvement
    better = _compare(env, "gate-bot", "v3", "v1", "--json")
    assert better.exit_code == 0 and {c["metric"]: c["status"] for c in json.loads(better.stdout)["checks"]}[
        "failure rate"] == "improved"
    thin = _compare(env, "gate-bot", "v1", "v4")
    assert thin.exit_code == 3 and "INSUFFICIENT" in thin.stdout and "candidate has 5 finished runs" in thin.stdout
    assert _compare(env, "gate-bot", "v1", "v4", "--allow-insufficient").exit_code == 0
    # a window with none of the runs in it is too little data, not a pass
    assert _compare(env, "gate-bot", "v1", "v3", "--hours", "1").exit_code == 3


def test_compare_errors_exit_2_not_as_a_regression(server):
    env, _, _ = server
    r = _compare({**env, "AGENTSTREAM_API_KEY": "ask_wrong_wrong_wrong_wrong"}, "gate-bot", "v1", "v3")
    assert r.exit_code == 2 and "401" in r.stderr
    r = _compare({**env, "AGENTSTREAM_API_URL": f"http://127.0.0.1:{_free_port()}"}, "gate-bot", "v1", "v3")
    assert r.exit_code == 2 and "cannot reach" in r.stderr
    r = _compare(env, "gate-bot", "v1", "v3", "--since", "not-a-time")
    assert r.exit_code == 2 and "422" in r.stderr
    r = _compare(env, "gate-bot", "v1", "v3", "--since", "2026-01-01", "--hours", "2")
    assert r.exit_code == 2 and "--since or --hours" in r.output


def _run(env, *args):
    result = CliRunner().invoke(runs_app, list(args), env=env, catch_exceptions=False)
    return result


def test_explain_json_and_terminal(server):
    env, _, _ = server
    r = _run(env, "explain", RUN_B, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["failure"]["root"]["step_id"] == "b-lookup-1"
    r = _run(env, "explain", RUN_B)
    assert r.exit_code == 0 and "The failure started at tool 'lookup_order'" in r.stdout
    assert "failure chain" in r.stdout and "retries" in r.stdout


def test_diff_terminal_and_json(server):
    env, _, _ = server
    r = _run(env, "diff", RUN_A, RUN_B)
    assert r.exit_code == 0, r.output
    assert "first divergence at position 1" in r.stdout and "search_docs" in r.stdout
    doc = json.loads(_run(env, "diff", RUN_A, RUN_B, "--json").stdout)
    assert doc["counts"] == {"changed": 2, "inserted": 3, "removed": 3, "same": 2}


def test_why_a_step_failed_and_what_it_caused(server):
    env, _, _ = server
    r = _run(env, "why", RUN_B, "b-lookup-2")
    assert r.exit_code == 0, r.output
    text = r.stdout
    assert "Step tool 'lookup_order'" in text and "attempt 2" in text and "TIMEOUT" in text
    assert "It ran inside custom 'handle_order'" in text
    assert "tool_selection chose lookup_order over search_docs (needs_order_data, confidence 0.82)" in text
    assert "Its call was attempted 2 times" in text
    assert "Its failure carried up to custom 'handle_order'" in text and "(ERROR)" in text
    doc = json.loads(_run(env, "why", RUN_B, "handle_order", "--json").stdout)
    assert doc["root_cause_inside"]["span_id"] == "b-lookup-1"
    assert doc["root_cause_inside"]["failures"] == ["TOOL:timeout"]
    by_name = json.loads(_run(env, "why", RUN_B, "lookup_order", "--json").stdout)
    assert by_name["step"]["span_id"] == "b-lookup-2"  # a name means its last attempt
    missing = _run(env, "why", RUN_B, "no-such-step")
    assert missing.exit_code == 1 and "no step 'no-such-step' in this run" in missing.stderr


def test_replay_non_interactive(server):
    env, _, _ = server
    r = _run(env, "replay", RUN_B, "--speed", "max", "--no-interactive")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].endswith("▶ plan plan") and lines[-1].startswith("replayed ")
    assert any("■ tool lookup_order TIMEOUT" in ln for ln in lines)
    assert _run(env, "replay", RUN_B, "--speed", "fast").exit_code == 2
    r = _run(env, "replay", RUN_B, "--interactive")  # no terminal here: a clear refusal
    assert r.exit_code == 2 and "needs a terminal" in r.output


def test_export_sample_and_anonymize_to_files(server):
    env, _, tmp = server
    out = tmp / "all.jsonl"
    r = _run(env, "export", "-o", str(out), "--agent", "support-bot")
    assert r.exit_code == 0, r.output
    ids = [json.loads(x)["run"]["run_id"] for x in out.read_text().splitlines()]
    assert set(ids) >= {RUN_A, RUN_B} and len(ids) == 3
    r = _run(env, "export", "--tool", "refund")  # the search filters of /v1/runs reach the export
    assert [json.loads(x)["run"]["run_id"] for x in r.stdout.splitlines()] == [RUN_B]
    r = _run(env, "export", "--format", "otlp", "--limit", "1")
    assert r.exit_code == 0 and "resourceSpans" in r.stdout and len(r.stdout.splitlines()) == 1
    r = _run(env, "sample", "--worst", "1", "--by", "failures")
    assert json.loads(r.stdout)["run"]["run_id"] == RUN_B
    anon = _run(env, "export", "--anonymize", "--agent", "support-bot").stdout
    assert RUN_A not in anon and "support-bot" not in anon and len(anon.splitlines()) == 3
    assert anon == _run(env, "export", "--anonymize", "--agent", "support-bot").stdout  # stable
    no_key = {k: v for k, v in env.items() if k != "AGENTSTREAM_PSEUDONYM_KEY"}
    r = _run(no_key, "export", "--anonymize")
    assert r.exit_code == 1 and "pseudonym key" in r.stderr


def test_stop_from_the_cli_sends_the_command(server, bootstrap, topic_prefix):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    env, live_run, _ = server
    r = _run(env, "stop", live_run, "--reason", "runaway spend", "--actor", "bob", "--json")
    assert r.exit_code == 0, r.output
    issued = json.loads(r.stdout)
    assert issued["issued_by"] == "bob (key laptop)"
    topic = topic_name("commands", topic_prefix)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cli-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
              for p in c.list_topics(topic, timeout=10).topics[topic].partitions])
    found, deadline = None, time.monotonic() + 30
    while found is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            try:
                rec = Codec().decode_as(COMMAND, m.value())
            except DecodeError:
                continue  # the session's shared topics carry other tests' deliberately bad records
            if rec["command_id"] == issued["command_id"]:
                found = rec
    c.close()
    assert found is not None and found["command_type"] == "STOP" and found["reason"] == "runaway spend"


def test_errors_are_one_line_and_non_zero(server):
    env, _, _ = server
    r = _run(env, "stop", RUN_A, "--reason", "late")
    assert r.exit_code == 1 and "409 run_finished" in r.stderr
    r = _run(env, "explain", "no-such-run")
    assert r.exit_code == 1 and "404" in r.stderr
    r = _run({**env, "AGENTSTREAM_API_KEY": "ask_wrong_wrong_wrong_wrong"}, "explain", RUN_A)
    assert r.exit_code == 1 and "401" in r.stderr
    r = _run({**env, "AGENTSTREAM_API_URL": f"http://127.0.0.1:{_free_port()}"}, "explain", RUN_A)
    assert r.exit_code == 1 and "cannot reach" in r.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_interactive_replay_in_a_real_terminal(server):
    env, _, tmp = server
    session = "h19-" + uuid.uuid4().hex[:6]
    sock = str(tmp / "tmux.sock")
    tmux = ["tmux", "-S", sock]
    cmd = f"{VENV_BIN / 'agentstream'} runs replay {RUN_B} --speed 0.001x; echo EXITED-$?; sleep 30"
    full_env = {**os.environ, **env, "TERM": "xterm-256color"}
    subprocess.run(tmux + ["new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd],
                   env=full_env, check=True)

    def screen() -> str:
        return subprocess.run(tmux + ["capture-pane", "-p", "-t", session], capture_output=True,
                              text=True).stdout

    def wait_for(text: str) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            s = screen()
            if text in s:
                return s
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; screen:\n{screen()}")

    try:
        wait_for("space pause")
        # at 0.001x nothing moves on its own: each 'n' steps to the next moment
        subprocess.run(tmux + ["send-keys", "-t", session, "n"], check=True)
        first = wait_for("paused")
        assert "plan" in first and "lookup_order" not in first
        for _ in range(4):
            subprocess.run(tmux + ["send-keys", "-t", session, "n"], check=True)
        wait_for("lookup_order")
        subprocess.run(tmux + ["send-keys", "-t", session, "q"], check=True)
        wait_for("EXITED-0")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)



