"""Where every command finds Kafka (stack.json, --bootstrap-servers), which ports the stack may
move, and when a drain counts as done: the pure logic behind `agentstream up` and the CLI."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from agentstream.cli import main as cli_main
from agentstream.cli.stack import PortInUse, claim_port
from agentstream.cli.stack_state import (PART_PREFIXES, drain, read_state, remove_state,
                                         write_state)


@pytest.fixture
def clean_env(monkeypatch):
    # resolve_kafka writes these into os.environ; monkeypatch restores only what it has touched,
    # and delenv of an absent name touches nothing, so set each first to have it removed again.
    for p in PART_PREFIXES:
        for name in ("BOOTSTRAP_SERVERS", "TOPIC_PREFIX"):
            monkeypatch.setenv(p + name, "")
            monkeypatch.delenv(p + name)
    monkeypatch.setenv("AGENTSTREAM_BOOTSTRAP_SERVERS", "")
    monkeypatch.delenv("AGENTSTREAM_BOOTSTRAP_SERVERS")
    return monkeypatch


@pytest.mark.parametrize("argv,rest,value", [
    (["alerts", "tail"], ["alerts", "tail"], None),
    (["--bootstrap-servers", "h:1", "alerts", "tail"], ["alerts", "tail"], "h:1"),
    (["alerts", "tail", "--bootstrap-servers", "h:2", "--json"], ["alerts", "tail", "--json"], "h:2"),
    (["policy", "set", "--bootstrap-servers=h:3"], ["policy", "set"], "h:3"),
])
def test_bootstrap_option_is_taken_from_anywhere(argv, rest, value):
    assert cli_main.take_bootstrap(argv) == (rest, value)


def test_a_running_stacks_addresses_become_every_parts_default(tmp_path, clean_env):
    write_state(tmp_path, {"pid": os.getpid(), "bootstrap_servers": "127.0.0.1:19999",
                           "topic_prefix": "x."})
    clean_env.setenv("AGENTSTREAM_DATA_DIR", str(tmp_path))
    clean_env.setenv("AGENTSTREAM_SINK_BOOTSTRAP_SERVERS", "mine:9")  # the user's setting wins
    argv, source = cli_main.resolve_kafka(["alerts", "tail"])
    assert argv == ["alerts", "tail"] and source.endswith("stack.json")
    assert os.environ["AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS"] == "127.0.0.1:19999"
    assert os.environ["AGENTSTREAM_PROCESSORS_TOPIC_PREFIX"] == "x."
    assert os.environ["AGENTSTREAM_BOOTSTRAP_SERVERS"] == "127.0.0.1:19999"
    assert os.environ["AGENTSTREAM_SINK_BOOTSTRAP_SERVERS"] == "mine:9"


def test_the_command_line_overrides_everything(tmp_path, clean_env):
    write_state(tmp_path, {"pid": os.getpid(), "bootstrap_servers": "127.0.0.1:19999"})
    clean_env.setenv("AGENTSTREAM_DATA_DIR", str(tmp_path))
    clean_env.setenv("AGENTSTREAM_SINK_BOOTSTRAP_SERVERS", "mine:9")
    argv, source = cli_main.resolve_kafka(["sink", "run", "--bootstrap-servers", "named:1"])
    assert argv == ["sink", "run"] and source == "--bootstrap-servers"
    assert all(os.environ[p + "BOOTSTRAP_SERVERS"] == "named:1" for p in PART_PREFIXES)


def test_a_stale_stack_file_and_the_stack_commands_are_left_alone(tmp_path, clean_env):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_state(tmp_path, {"pid": dead.pid, "bootstrap_servers": "127.0.0.1:19999"})
    clean_env.setenv("AGENTSTREAM_DATA_DIR", str(tmp_path))
    assert read_state(tmp_path) is None
    assert cli_main.resolve_kafka(["alerts", "tail"]) == (["alerts", "tail"], None)
    write_state(tmp_path, {"pid": os.getpid(), "bootstrap_servers": "127.0.0.1:19999"})
    for cmd in (["up"], ["demo", "--runs", "5"]):  # they start their own broker
        assert cli_main.resolve_kafka(cmd) == (cmd, None)
    assert "AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS" not in os.environ
    remove_state(tmp_path)
    assert not (tmp_path / "stack.json").exists()
    remove_state(tmp_path)  # twice is fine


def test_client_commands_without_a_broker_say_so_once(capsys, clean_env):
    cli_main.register_parts()  # the arguments are parsed before the broker is looked for
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nothing answers
        clean_env.setenv("AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
        with pytest.raises(SystemExit) as e:
            cli_main.check_broker(["alerts", "tail"], None)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"127.0.0.1:{port}" in err[0] and "--bootstrap-servers" in err[0]
    cli_main.check_broker(["alerts", "tail", "--help"], None)  # help needs no broker
    cli_main.check_broker(["topics", "list"], None)  # nor does an offline command


def test_named_ports_are_used_or_refused_and_defaults_move_visibly():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        moved: dict = {}
        with pytest.raises(PortInUse, match=f"api port {port} is in use.*--api-port"):
            claim_port("api", port, True, moved)
        got = claim_port("api", port, False, moved)
        assert got != port and moved == {"api": (port, got)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    moved = {}
    assert claim_port("gateway", free, True, moved) == free and moved == {}


def test_drain_waits_for_offsets_to_stand_still():
    seq = iter([{("g", "t", 0): 1}, {("g", "t", 0): 5}, {("g", "t", 0): 9}])
    last = {}

    def read(_):
        nonlocal last
        last = next(seq, last)
        return last
    assert drain("b", quiet_s=0.6, timeout_s=10, read=read) is True

    moving = iter(range(10**6))
    assert drain("b", quiet_s=5, timeout_s=1.2, read=lambda _: {("g", "t", 0): next(moving)}) is False

    said = []

    def down(_):
        raise RuntimeError("broker gone")
    assert drain("b", read=down, say=said.append) is False and "broker gone" in said[0]


def test_stack_state_is_written_whole(tmp_path):
    path = write_state(tmp_path, {"pid": os.getpid(), "children": {"broker": 1}})
    assert json.loads(path.read_text())["children"] == {"broker": 1}
    assert not list(tmp_path.glob("*.tmp"))


def test_data_dir_names_the_stack_for_client_commands_and_stays_the_stack_commands_own(tmp_path, clean_env):
    write_state(tmp_path, {"pid": os.getpid(), "bootstrap_servers": "127.0.0.1:19998", "topic_prefix": "y."})
    clean_env.delenv("AGENTSTREAM_DATA_DIR", raising=False)
    argv, source = cli_main.resolve_kafka(["policy", "show", "--tenant", "t", "--data-dir", str(tmp_path)])
    assert argv == ["policy", "show", "--tenant", "t"] and source == str(tmp_path / "stack.json")
    assert os.environ["AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS"] == "127.0.0.1:19998"
    # before the command name too; and up/demo keep it as their own option, wherever it was given
    assert cli_main.resolve_kafka(["--data-dir", str(tmp_path), "alerts", "tail"])[0] == ["alerts", "tail"]
    assert cli_main.resolve_kafka(["--data-dir=d", "up", "--api-port", "1"]) == (
        ["up", "--api-port", "1", "--data-dir", "d"], None)


def test_a_data_dir_without_a_stack_says_so(tmp_path, clean_env, capsys):
    argv, source = cli_main.resolve_kafka(["alerts", "tail", "--data-dir", str(tmp_path / "none")])
    assert argv == ["alerts", "tail"] and source is None
    assert "no running stack in" in capsys.readouterr().err


def test_a_usage_error_is_reported_as_one_not_as_a_missing_broker(clean_env, capsys):
    cli_main.register_parts()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        clean_env.setenv("AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS", f"127.0.0.1:{s.getsockname()[1]}")
        for bad in (["policy", "show", "--tenant", "x", "--bogus"], ["policy", "show"], ["alerts", "tail", "--nope"]):
            assert not cli_main.parses(bad)
            cli_main.check_broker(bad, None)  # no SystemExit: the command line reports the error
        assert cli_main.parses(["policy", "show", "--tenant", "x"])
        with pytest.raises(SystemExit):
            cli_main.check_broker(["policy", "show", "--tenant", "x"], None)
    assert "no Kafka broker" in capsys.readouterr().err
