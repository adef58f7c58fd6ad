"""Claude Code hook mapping and settings merging without a network (issue #22)."""
from __future__ import annotations

import json
import random
import string

import pytest

from agentstream.cli.hooks_claude_code import HookMapper, run_id_for, session_state
from agentstream.cli.hooks_commands import MARK, merge_hooks
from agentstream.schemas import EVENT, Codec


def _valid(ev):
    """What the gateway checks first: the event encodes against the newest Event schema."""
    full = {"tenant_id": "t", "emitted_us": ev["ts_us"], "parent_run_id": None,
            "parent_step_id": None, "capture_mode": "METADATA_ONLY", "policy_version": "v",
            "attributes": {}, "redaction": None, "end_user_id": None, **ev}
    Codec().encode(EVENT, full)


def _session(mapper, state, payloads, t0=1_700_000_000_000_000):
    out = []
    for i, p in enumerate(payloads):
        out += mapper.map(p, state, now_us=t0 + i * 1000)
    return out


def test_pre_post_pairs_by_tool_use_id_even_interleaved():
    m, state, sid = HookMapper(b"k"), {"seq": 0, "open": {}, "steps": 0, "started": False}, "s"
    pre = lambda i: {"session_id": sid, "hook_event_name": "PreToolUse", "tool_name": "Read",  # noqa: E731
                     "tool_input": {"file_path": f"/f{i}"}, "tool_use_id": f"t{i}"}
    post = lambda i: {**pre(i), "hook_event_name": "PostToolUse", "tool_response": {}}  # noqa: E731
    evs = _session(m, state, [pre(1), pre(2), post(2), post(1)])
    steps = [e["payload"] for e in evs if e["kind"] == "STEP"]
    assert [(s["tool"]["call_id"], s["latency_ms"]) for s in steps] == [("t2", 1.0), ("t1", 3.0)]
    assert [e["seq"] for e in evs] == [0, 1, 2]
    assert len({e["event_id"] for e in evs}) == 3
    assert all(e["run_id"] == run_id_for(sid) for e in evs)
    for e in evs:
        _valid(e)


def test_a_post_without_its_pre_and_a_session_end_with_open_calls():
    m, state = HookMapper(b"k"), {"seq": 0, "open": {}, "steps": 0, "started": False}
    evs = _session(m, state, [
        {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash",
         "tool_input": {"command": "ls"}, "tool_response": {"interrupted": True}},
        {"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash",
         "tool_input": {"command": "sleep 999"}},
        {"session_id": "s", "hook_event_name": "SessionEnd", "reason": "clear; rm -rf /"}])
    kinds = [e["kind"] for e in evs]
    assert kinds == ["RUN_START", "STEP", "STEP", "RUN_END"]
    assert evs[1]["payload"]["status"] == "CANCELLED"
    assert evs[1]["attributes"]["agentstream.latency.unknown"] == "true"
    assert evs[2]["payload"]["status"] == "CANCELLED"  # never finished
    assert evs[-1]["payload"]["outcome"] == "clear__rm_-rf__"
    assert m.map({"session_id": "s", "hook_event_name": "PreToolUse"}, state) == []  # ended
    for e in evs:
        _valid(e)


@pytest.mark.parametrize("bad", [{}, {"session_id": ""}, {"session_id": 3,
                                  "hook_event_name": "PreToolUse"}, {"hook_event_name": "X"}])
def test_not_a_hook_payload_is_refused(bad):
    with pytest.raises(ValueError):
        HookMapper(b"k").map(bad, {"seq": 0, "open": {}, "steps": 0, "started": False})


def test_generated_payloads_never_carry_their_content():
    rng = random.Random(22)
    m = HookMapper(b"k")
    for n in range(200):
        secret = "".join(rng.choices(string.ascii_letters + string.digits, k=24))
        tool_input = {rng.choice(["command", "file_path", "url", "query", "content"]):
                      f"{secret} {rng.random()}", "n": rng.randint(0, 9)}
        base = {"session_id": f"sess-{n}", "cwd": f"/home/{secret}", "transcript_path": secret,
                "tool_name": rng.choice(["Bash", "Write", "WebFetch", "mcp__x__y"]),
                "tool_input": tool_input, "tool_use_id": f"toolu_{n}"}
        state = {"seq": 0, "open": {}, "steps": 0, "started": False}
        evs = _session(m, state, [
            {**base, "hook_event_name": "SessionStart", "source": "resume"},
            {**base, "hook_event_name": "PreToolUse"},
            {**base, "hook_event_name": rng.choice(["PostToolUse", "PostToolUseFailure"]),
             "tool_response": {"stdout": secret}, "error": secret},
            {**base, "hook_event_name": "SessionEnd", "reason": "other"}])
        assert secret not in json.dumps(evs)
        for e in evs:
            _valid(e)


def test_state_survives_between_processes(tmp_path):
    with session_state(tmp_path, "abc") as s:
        s["seq"] = 5
        s["open"]["t"] = 1
    with session_state(tmp_path, "abc") as s:
        assert s["seq"] == 5 and s["open"] == {"t": 1}
        s["ended"] = True
    with session_state(tmp_path, "abc") as s:
        assert s["seq"] == 0  # an ended session's state is removed


def test_merge_keeps_other_hooks_replaces_ours_and_uninstalls():
    cfg = {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [
        {"type": "command", "command": "./lint.sh"}]}], "Stop": [{"hooks": []}]}}
    once = merge_hooks(json.loads(json.dumps(cfg)), f"py -m x {MARK} --gateway a")
    twice = merge_hooks(json.loads(json.dumps(once)), f"py -m x {MARK} --gateway b")
    assert len(twice["hooks"]["PreToolUse"]) == 2
    assert twice["hooks"]["PreToolUse"][1]["hooks"][0]["command"].endswith("--gateway b")
    assert twice["hooks"]["Stop"] == cfg["hooks"]["Stop"]
    assert "matcher" not in twice["hooks"]["SessionEnd"][0]
    removed = merge_hooks(twice, None)
    assert removed == cfg
    with pytest.raises(ValueError):
        merge_hooks({"hooks": []}, "x")
    assert merge_hooks(merge_hooks({"model": "x"}, f"{MARK}"), None) == {"model": "x"}


def test_past_the_tool_call_budget_pre_tool_use_is_denied(tmp_path, capsys):
    from agentstream.api.gateway.server import free_port
    from agentstream.cli.hooks_commands import send_hook_event

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: events wait in the outbox
    base = {"session_id": "budget", "tool_name": "Bash", "tool_input": {"command": "ls"}}
    decisions = []
    for i, event in enumerate(["PreToolUse", "PostToolUse", "PreToolUse", "PreToolUse"]):
        send_hook_event(dead, "claude-code", "test", "NO_SUCH_KEY_VAR", tmp_path,
              json.dumps({**base, "hook_event_name": event, "tool_use_id": f"t{i // 2}"}), 1)
        out = capsys.readouterr().out
        decisions.append(json.loads(out)["hookSpecificOutput"]["permissionDecision"]
                         if out else None)
    assert decisions == [None, None, "deny", "deny"]
    kept = [json.loads(ln) for ln in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in kept] == ["RUN_START", "STEP", "FAILURE"]  # one FAILURE
    assert kept[-1]["payload"]["failure_code"] == "steps_budget_exceeded"
    for e in kept:
        _valid(e)
