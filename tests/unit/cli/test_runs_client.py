"""`agentstream runs` without a server: settings precedence, the config file, replay's pure parts."""
from __future__ import annotations

import io
import os

import pytest

from agentstream.cli.runs_client import ApiClient, CliError, config_path, resolve, run_path
from agentstream.cli.runs_replay import frames, log_line, parse_speed, play_log, render, split_keys


def _config(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return {"AGENTSTREAM_CONFIG": str(path)}


def test_option_beats_environment_beats_config_file(tmp_path):
    env = _config(tmp_path, 'api_url = "http://conf:1"\napi_key = "ask_conf"\npseudonym_key = "p"\n')
    s = resolve(None, None, env)
    assert (s.api_url, s.api_key, s.pseudonym_key) == ("http://conf:1", "ask_conf", "p")
    env.update(AGENTSTREAM_API_URL="http://env:2/", AGENTSTREAM_API_KEY="ask_env")
    s = resolve(None, None, env)
    assert (s.api_url, s.api_key) == ("http://env:2", "ask_env")
    s = resolve("http://flag:3", "ask_flag", env)
    assert (s.api_url, s.api_key) == ("http://flag:3", "ask_flag")


def test_default_config_location_follows_xdg(tmp_path):
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "agentstream" / "config.toml"
    assert str(config_path({})).endswith(".config/agentstream/config.toml")
    assert resolve(None, None, {"XDG_CONFIG_HOME": str(tmp_path)}).api_url == "http://127.0.0.1:8000"


def test_a_key_in_a_world_readable_config_file_is_refused(tmp_path):
    with pytest.raises(CliError, match="chmod 600"):
        resolve(None, None, _config(tmp_path, 'api_key = "ask_x"\n', mode=0o644))


def test_a_broken_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(CliError, match="cannot read config file"):
        resolve(None, None, _config(tmp_path, "api_key = \n"))


def test_no_key_is_a_clear_error(tmp_path):
    with pytest.raises(CliError, match="no API key"):
        ApiClient(resolve(None, None, {"XDG_CONFIG_HOME": str(tmp_path)}))


def test_run_ids_are_path_escaped():
    assert run_path("a/../b?c", "diff", "x y") == "/v1/runs/a%2F..%2Fb%3Fc/diff/x%20y"


@pytest.mark.parametrize("text,want", [("10x", 10.0), ("0.5x", 0.5), ("3", 3.0), ("max", float("inf"))])
def test_speed(text, want):
    assert parse_speed(text) == want


@pytest.mark.parametrize("text", ["fast", "0x", "-2x", ""])
def test_bad_speed(text):
    with pytest.raises(ValueError):
        parse_speed(text)


TIMELINE = {
    "run_id": "r1", "status": "FAILURE", "started_us": 0, "duration_ms": 1000.0, "wait_ms": 300.0,
    "spans": [
        {"span_id": "a", "parent_span_id": "", "seq": 1, "kind": "LLM", "name": "plan", "status": "OK",
         "start_ms": 0.0, "duration_ms": 200.0, "end_ms": 200.0, "depth": 0, "attempt": 1, "retry_of": "",
         "retry_root": "", "retried": False, "is_wait": False, "wait_ms": None},
        {"span_id": "b", "parent_span_id": "", "seq": 2, "kind": "APPROVAL", "name": "ok?", "status": "OK",
         "start_ms": 200.0, "duration_ms": 300.0, "end_ms": 500.0, "depth": 0, "attempt": 1, "retry_of": "",
         "retry_root": "", "retried": False, "is_wait": True, "wait_ms": 300.0},
        {"span_id": "c", "parent_span_id": "", "seq": 3, "kind": "TOOL", "name": "call", "status": "ERROR",
         "start_ms": 500.0, "duration_ms": 400.0, "end_ms": 900.0, "depth": 0, "attempt": 2, "retry_of": "x",
         "retry_root": "x", "retried": False, "is_wait": False, "wait_ms": None},
    ],
    "markers": [{"kind": "FAILURE", "at_ms": 900.0, "label": "TOOL:timeout", "span_id": "c"}],
    "child_runs": [],
}


def test_replay_moments_are_in_time_order_ends_before_starts():
    ms = frames(TIMELINE)
    assert [(m.at_ms, m.what) for m in ms] == [
        (0.0, "start"), (200.0, "end"), (200.0, "start"), (500.0, "end"), (500.0, "start"),
        (900.0, "end"), (900.0, "marker")]
    assert "waited 300 ms for a human" in log_line(ms[3])
    assert "(attempt 2)" in log_line(ms[4])


def test_replay_log_waits_scaled_time_and_prints_every_moment():
    slept, out = [], io.StringIO()
    n = play_log(TIMELINE, 10.0, out, sleep=slept.append)
    assert n == 7 and sum(slept) == pytest.approx(0.09)  # 900 ms at 10x
    lines = out.getvalue().splitlines()
    assert lines[-2].endswith("◆ failure TOOL:timeout") and lines[-1].startswith("replayed 7 moments")


def test_replay_render_shows_only_what_has_happened():
    from rich.console import Console

    con = Console(width=120, record=True, file=io.StringIO())
    con.print(render(TIMELINE, 350.0, "paused"))
    text = con.export_text()
    assert "plan" in text and "ok?" in text and "call" not in text
    assert "running" in text and "paused" in text


def test_keys_read_together_each_count():
    # a fast typist or a script sends several keys in one read: none may be lost (q among them)
    assert split_keys("nnnnq") == ["n", "n", "n", "n", "q"]
    assert split_keys("\x1b[Cn\x1b[A ") == ["n", "n", " "]  # right arrow steps; up arrow is ignored
    assert split_keys("\x1b") == [] and split_keys("") == []
