"""`agentstream hooks install claude-code`, then recorded Claude Code hook payloads (shaped as
Claude Code's hook docs describe them) replayed through the installed command into the real
ingest gateway and broker, then through the real processors and sink into chDB: one run per
session, TOOL steps with keyed digests and latency, failures, and none of the payloads' content
on the wire or in any stored table."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import subprocess
import sys
import uuid

import pytest

from agentstream.api.auth import add_key
from agentstream.api.gateway import GatewaySettings
from agentstream.api.gateway.server import ThreadedGateway, free_port
from agentstream.cli.hooks_claude_code import run_id_for
from agentstream.cli.hooks_commands import send_hook_event
from agentstream.producer.capture import canonical_json
from agentstream.schemas import topic_name

from integrations_fake_server import failures, steps, tenant_runs
from pipeline_stack import stack_fixtures

pytestmark = pytest.mark.integration
KEY = "hook-digest-key"
SECRETS = ["AKIAIOSFODNN7EXAMPLE", "/home/dana/payroll", "wJalrXUtnFEMI-secret",
           "def rotate_keys", "transcripts/abc.jsonl", "octo-org/private-repo"]
topic_prefix, stack = stack_fixtures()


def recorded_session(session_id):
    """A session as Claude Code sends it: start, Bash, Edit, a failing MCP tool, end."""
    base = {"session_id": session_id, "cwd": "/home/dana/payroll",
            "transcript_path": "/home/dana/.claude/projects/transcripts/abc.jsonl",
            "permission_mode": "default"}
    bash_in = {"command": "grep -r AKIAIOSFODNN7EXAMPLE /home/dana/payroll",
               "description": "Find the leaked key"}
    edit_in = {"file_path": "/home/dana/payroll/keys.py", "old_string": "def rotate_keys():",
               "new_string": "def rotate_keys(force=False):"}
    mcp_in = {"repo": "octo-org/private-repo", "title": "Rotate wJalrXUtnFEMI-secret"}
    return [
        {**base, "hook_event_name": "SessionStart", "source": "startup"},
        {**base, "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": bash_in,
         "tool_use_id": "toolu_01A"},
        {**base, "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": bash_in,
         "tool_use_id": "toolu_01A", "tool_response": {
             "stdout": "keys.py: AKIAIOSFODNN7EXAMPLE", "stderr": "", "interrupted": False,
             "isImage": False}},
        {**base, "hook_event_name": "PreToolUse", "tool_name": "Edit", "tool_input": edit_in,
         "tool_use_id": "toolu_01B"},
        {**base, "hook_event_name": "PostToolUse", "tool_name": "Edit", "tool_input": edit_in,
         "tool_use_id": "toolu_01B", "tool_response": {
             "filePath": "/home/dana/payroll/keys.py", "success": True}},
        {**base, "hook_event_name": "PreToolUse", "tool_name": "mcp__github__create_issue",
         "tool_input": mcp_in, "tool_use_id": "toolu_01C"},
        {**base, "hook_event_name": "PostToolUseFailure", "tool_name": "mcp__github__create_issue",
         "tool_input": mcp_in, "tool_use_id": "toolu_01C",
         "error": "403 for octo-org/private-repo", "is_interrupt": False},
        {**base, "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"},
    ]


@pytest.fixture(scope="module")
def gateway(bootstrap, topic_prefix, tmp_path_factory):
    keys = str(tmp_path_factory.mktemp("hook-keys") / "keys.json")
    tenant = "cc-" + uuid.uuid4().hex[:8]
    key = add_key(keys, tenant, scopes=["write"], name="hooks")
    gw = ThreadedGateway(GatewaySettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                                         api_keys_file=keys, port=free_port())).start()
    gw.wait_ready()
    yield gw, tenant, key
    gw.stop()


def _digest(value):
    return hmac.new(KEY.encode(), canonical_json(value), hashlib.sha256).hexdigest()


def test_installed_hooks_replay_a_session_into_one_run(gateway, bootstrap, topic_prefix,
                                                       tmp_path, stack):
    gw, tenant, key = gateway
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"model": "opus", "hooks": {"PreToolUse": [
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}]}}))
    env = {**os.environ, "AGENTSTREAM_HOOK_KEY": key, "AGENTSTREAM_PRODUCER_DIGEST_KEY": KEY}
    install = subprocess.run(
        [sys.executable, "-m", "agentstream.cli.main", "hooks", "install", "claude-code",
         "--gateway", gw.url, "--settings", str(settings), "--api-key-env",
         "AGENTSTREAM_HOOK_KEY", "--state-dir", str(tmp_path / "state")],
        env=env, capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    config = json.loads(settings.read_text())
    assert config["model"] == "opus"
    pre = config["hooks"]["PreToolUse"]
    assert pre[0]["hooks"][0]["command"] == "./lint.sh" and len(pre) == 2
    command = pre[1]["hooks"][0]["command"]
    assert all(config["hooks"][e][-1]["hooks"][0]["command"] == command for e in (
        "SessionStart", "PostToolUse", "PostToolUseFailure", "SessionEnd"))
    assert key not in settings.read_text()  # the key stays in the environment

    session = str(uuid.uuid4())
    for payload in recorded_session(session):  # as Claude Code runs it: the command, stdin
        done = subprocess.run(shlex.split(command), input=json.dumps(payload), env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stderr == "", done.stderr

    runs = tenant_runs(bootstrap, topic_name("raw", topic_prefix), tenant, 1,
                       forbidden=SECRETS[0].encode())
    events = runs[run_id_for(session)]
    assert [e["kind"] for e in events][0] == "RUN_START"
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(e["session_id"] == session for e in events)
    tools = steps(events, "TOOL")
    assert [(s["tool"]["tool_name"], s["status"]) for s in tools] == [
        ("Bash", "OK"), ("Edit", "OK"), ("mcp__github__create_issue", "ERROR")]
    recorded = recorded_session(session)
    assert [s["tool"]["args_digest"] for s in tools] == [
        _digest(recorded[i]["tool_input"]) for i in (1, 3, 5)]
    assert [s["tool"]["call_id"] for s in tools] == ["toolu_01A", "toolu_01B", "toolu_01C"]
    assert all(s["latency_ms"] > 0 for s in tools)
    assert failures(events) == [("TOOL", "tool_error")]
    end = events[-1]
    assert end["kind"] == "RUN_END" and end["payload"]["step_count"] == 3
    assert end["payload"]["outcome"] == "prompt_input_exit"
    blob = repr(events)
    assert not [s for s in SECRETS if s in blob]
    stored = stack.assert_stored_as_emitted(tenant, events, secrets=tuple(SECRETS))
    assert [(r["tool_name"], r["args_digest"], r["status"]) for r in stored if r["step_kind"] == "TOOL"] == [
        (s["tool"]["tool_name"], s["tool"]["args_digest"], s["status"]) for s in tools]
    assert {r["session_id"] for r in stored} == {session}
    assert stack.run(tenant, run_id_for(session))["outcome"] == "prompt_input_exit"


def test_events_wait_in_the_outbox_while_the_gateway_is_down(gateway, bootstrap, topic_prefix,
                                                             tmp_path, stack):
    gw, tenant, key = gateway
    session, state = str(uuid.uuid4()), tmp_path / "state"
    payloads = recorded_session(session)
    os.environ["AGENTSTREAM_TEST_HOOK_KEY"] = key
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        for p in payloads[:3]:
            send_hook_event(dead, "claude-code", "test", "AGENTSTREAM_TEST_HOOK_KEY", state, json.dumps(p))
        assert len((state / "outbox.jsonl").read_text().splitlines()) == 2  # start + Bash
        for p in payloads[3:]:
            send_hook_event(gw.url, "claude-code", "test", "AGENTSTREAM_TEST_HOOK_KEY", state,
                  json.dumps(p))
    finally:
        del os.environ["AGENTSTREAM_TEST_HOOK_KEY"]
    assert (state / "outbox.jsonl").read_text() == ""
    events = tenant_runs(bootstrap, topic_name("raw", topic_prefix), tenant, 2)[
        run_id_for(session)]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len(steps(events, "TOOL")) == 3 and events[-1]["kind"] == "RUN_END"
    stack.assert_stored_as_emitted(tenant, events, secrets=tuple(SECRETS))
