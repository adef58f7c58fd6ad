"""Claude Code hook payloads → agentstream events (pure logic plus a small per-session state).

Claude Code runs a hook command per event with the event's JSON on stdin (``session_id``,
``hook_event_name``, ``tool_name``, ``tool_input``, ``tool_use_id``, ``tool_response``...).
A session is a run (its id derived from the session id, so every hook process agrees). A
PreToolUse only notes when the tool started (or, past ``max_tool_calls``, denies the call); its PostToolUse (or PostToolUseFailure) becomes
one TOOL step: tool name, the keyed HMAC digest of ``tool_input``, latency, status. SessionStart
and SessionEnd open and close the run. Never content: inputs and responses are digested or
reduced to a status, and nothing else of the payload is copied (paths, prompts, transcripts).

Hooks of one session run as separate, sometimes concurrent, processes: the state (next seq,
open tool calls, step count) is one small JSON file per session under an exclusive lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from agentstream.producer.capture import canonical_json

NAMESPACE = uuid.UUID("6c1b3f0e-6a52-4f0e-9d3c-2f6f3e1c9a77")
SOURCE = "claude-code-hooks"
MAX_OPEN = 1000
_SAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def run_id_for(session_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "claude-code:" + session_id))


def _short(value: Any, limit: int = 128) -> str:
    """Identifier-like fields only: anything outside [A-Za-z0-9_.:-] becomes '_'."""
    return _SAFE.sub("_", str(value))[:limit]


def digest(key: bytes, value: Any) -> str:
    return hmac.new(key, canonical_json(value), hashlib.sha256).hexdigest()


@contextmanager
def session_state(state_dir: Path, session_id: str) -> Iterator[dict]:
    """The session's state, read and written back under an exclusive lock."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / f"{hashlib.sha256(session_id.encode()).hexdigest()[:32]}.json"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            state = {}
        state.setdefault("seq", 0)
        state.setdefault("open", {})
        state.setdefault("steps", 0)
        state.setdefault("started", False)
        yield state
        if state.get("ended"):
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, path)


class HookMapper:
    def __init__(self, key: bytes, agent_id: str = "claude-code", agent_version: str = "unknown",
                 environment: str = "development", max_tool_calls: int | None = None) -> None:
        self.key = key
        self.max_tool_calls = max_tool_calls
        self.denial: str | None = None  # set when map() refused a PreToolUse
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.environment = environment

    def _event(self, state: dict, session_id: str, kind: str, payload: dict, ts_us: int,
               attributes: dict | None = None) -> dict:
        seq = state["seq"]
        state["seq"] = seq + 1
        run_id = run_id_for(session_id)
        # (run, seq) is unique, and a resent batch keeps its ids, so the sink deduplicates it
        ev = {"event_id": str(uuid.uuid5(NAMESPACE, f"{run_id}:{seq}")),
              "agent_id": self.agent_id, "agent_version": self.agent_version,
              "environment": self.environment, "run_id": run_id,
              "session_id": _short(session_id), "seq": seq, "ts_us": ts_us,
              "sdk_version": SOURCE, "kind": kind, "payload": payload}
        if attributes:
            ev["attributes"] = attributes
        return ev

    def _start(self, state: dict, session_id: str, now_us: int, source: str | None) -> list[dict]:
        if state["started"]:
            return []
        state["started"] = True
        state["started_us"] = now_us
        attrs = {"agentstream.source": SOURCE}
        if source:
            attrs["claude_code.session.source"] = _short(source, 32)
        return [self._event(state, session_id, "RUN_START",
                            {"entrypoint": "claude-code", "role": None, "sampled": True},
                            now_us, attrs)]

    def map(self, payload: dict, state: dict, now_us: int | None = None) -> list[dict]:
        """The events one hook payload adds (possibly none), updating ``state``."""
        now_us = now_us or time.time_ns() // 1000
        session_id = payload.get("session_id")
        event = payload.get("hook_event_name")
        if not isinstance(session_id, str) or not session_id or not isinstance(event, str):
            raise ValueError("not a Claude Code hook payload (session_id and hook_event_name)")
        if state.get("ended"):
            return []
        if event == "SessionStart":
            return self._start(state, session_id, now_us, payload.get("source"))
        out = self._start(state, session_id, now_us, None)
        if event == "PreToolUse":
            if self.max_tool_calls is not None and \
                    state["steps"] + len(state["open"]) >= self.max_tool_calls:
                return out + self._deny(state, session_id, now_us)
            call = _call_key(payload)
            if len(state["open"]) >= MAX_OPEN:  # Pre without Post (a hook killed): bounded
                state["open"].pop(next(iter(state["open"])))
            state["open"][call] = now_us
            return out
        if event in ("PostToolUse", "PostToolUseFailure"):
            return out + self._tool_step(payload, state, session_id, now_us, event)
        if event == "SessionEnd":
            return out + self._end(payload, state, session_id, now_us)
        return out

    def _deny(self, state: dict, session_id: str, now_us: int) -> list[dict]:
        """The session's tool-call budget is spent: the hook denies the call (Claude Code then
        does not run the tool); the first denial records the budget FAILURE."""
        self.denial = (f"agentstream: this session's tool-call budget ({self.max_tool_calls}) "
                       "is exhausted")
        state["denied"] = state.get("denied", 0) + 1
        if state["denied"] > 1:
            return []
        return [self._event(state, session_id, "FAILURE", {
            "failure_type": "BUDGET", "failure_code": "steps_budget_exceeded", "step_id": None,
            "message": None, "retryable": False},
            now_us, {"agentstream.budget.type": "steps",
                     "agentstream.budget.limit": str(self.max_tool_calls),
                     "agentstream.budget.action": "deny"})]

    def _tool_step(self, payload: dict, state: dict, session_id: str, now_us: int,
                   event: str) -> list[dict]:
        call = _call_key(payload)
        started = state["open"].pop(call, None)
        tool = _short(payload.get("tool_name") or "unknown", 256)
        status = _status(payload, event)
        state["steps"] += 1
        step_id = f"cc.{state['steps']}"
        step = {"step_id": step_id, "step_kind": "TOOL", "name": tool, "status": status,
                "started_us": started or now_us,
                "latency_ms": max(0.0, (now_us - started) / 1000) if started else 0.0,
                "tool": {"tool_name": tool, "call_id": _short(payload["tool_use_id"])
                         if payload.get("tool_use_id") else None,
                         "args_digest": digest(self.key, payload.get("tool_input"))}}
        attrs = {"gen_ai.operation.name": "execute_tool"}
        if not started:
            attrs["agentstream.latency.unknown"] = "true"
        out = [self._event(state, session_id, "STEP", step, now_us, attrs)]
        if status == "ERROR":
            out.append(self._event(state, session_id, "FAILURE", {
                "failure_type": "TOOL", "failure_code": "tool_error", "step_id": step_id,
                "message": None, "retryable": False}, now_us))
        return out

    def _end(self, payload: dict, state: dict, session_id: str, now_us: int) -> list[dict]:
        out = []
        for started in list(state["open"].values()):  # tools the session never finished
            state["steps"] += 1
            out.append(self._event(state, session_id, "STEP", {
                "step_id": f"cc.{state['steps']}", "step_kind": "TOOL", "name": "unfinished",
                "status": "CANCELLED", "started_us": started,
                "latency_ms": max(0.0, (now_us - started) / 1000)}, now_us))
        state["open"].clear()
        state["ended"] = True
        started_us = state.get("started_us") or now_us
        out.append(self._event(state, session_id, "RUN_END", {
            # a session that ended normally succeeded; its failed tools are FAILURE events
            "status": "SUCCESS",
            "outcome": _short(payload.get("reason") or "session_end", 32),
            "started_us": started_us, "duration_ms": (now_us - started_us) / 1000,
            "step_count": state["steps"], "llm_calls": 0, "input_tokens": 0,
            "output_tokens": 0, "cost_usd": 0.0}, now_us))
        return out


def _call_key(payload: dict) -> str:
    """A tool call's identity across its Pre and Post hooks: Claude Code's tool_use_id, else
    the tool name with its input's digest (unkeyed: it never leaves this machine)."""
    if payload.get("tool_use_id"):
        return _short(payload["tool_use_id"])
    return hashlib.sha256(canonical_json([payload.get("tool_name"),
                                          payload.get("tool_input")])).hexdigest()[:32]


def _status(payload: dict, event: str) -> str:
    if event == "PostToolUseFailure":
        return "CANCELLED" if payload.get("is_interrupt") else "ERROR"
    resp = payload.get("tool_response")
    if isinstance(resp, dict):
        if resp.get("interrupted") is True:
            return "CANCELLED"
        if resp.get("is_error") is True or resp.get("isError") is True or \
                resp.get("success") is False:
            return "ERROR"
    return "OK"
