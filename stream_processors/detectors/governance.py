"""Per-run governance: what a run's tool calls may do, and approvals that bind. Event in,
findings out (pure; ``Chain.detect`` feeds it next to ``runs.observe``).

Interface: ``observe(state, event, gov)`` where ``gov`` is the tenant's governance mapping
(``policies.GOVERNANCE_DEFAULTS`` filled) and ``state`` the JSON-able dict from ``new_state()``
kept inside the run's detector state. Tool names in rules are fnmatch patterns.

Tool rules (one ``policy_violation`` alert per rule and tool per run; CRITICAL with a STOP when
the rule is in ``stop_on``, else WARNING):

- ``tool_denied``: the tool matches ``tool_deny`` (deny wins over allow);
- ``tool_not_allowed``: ``tool_allow`` is not empty and the tool matches none of it;
- ``max_tool_calls``: more calls of one tool in the run than the smallest limit of the
  ``max_calls_per_tool`` patterns it matches (every attempt is a call: a retry runs it again);
- ``forbidden_args``: the call's keyed args digest is in ``forbidden_arg_digests``.

Approvals (``approval_violation``, always CRITICAL and a STOP): an APPROVAL step binds the
*next* TOOL step of the run, which must carry the approved action digest (the SDK digests the
approved action and the tool's arguments with the same key, so approving the tool's arguments
gives equal digests):

- ``approval_mismatch``: an approved action is followed by a tool call with another digest or
  with none (a call whose arguments cannot be proven equal is not let through);
- ``approval_rejected_executed``: the action a rejected or expired approval was about runs anyway;
- ``approval_missing``: a tool in ``require_approval`` runs without an approval of its exact
  arguments right before it. A retry of an approved call (``retry_of``, same digest) is covered
  by that approval. In a state begun mid-run (``mid``: the run's earlier state was dropped,
  ``run_eviction.py``) an approval may have come before it: the first tool call, and a retry of
  a call this state has not seen, are not judged for it.
"""
from __future__ import annotations

import re
from fnmatch import fnmatchcase, translate
from typing import Any, Callable, Iterable, Mapping

from agentstream.schemas.loop_repeats import DIGEST_ATTR

from .run_budgets import Finding, exceeds
from .runs import EMPTY

APPROVED = "approved"
MAX_APPROVED_STEPS = 64  # approved step ids remembered for their retries
MAX_TOOLS = 1024  # distinct tool names counted per run (oldest forgotten past it)
MAX_MID_STEPS = 64  # tool step ids a state begun mid-run remembers (retries of older ones pass)


def new_state(mid: bool = False) -> dict[str, Any]:
    """``mid``: the run's earlier state was dropped (its tool step ids seen since are kept)."""
    st: dict[str, Any] = {"calls": {}, "pending": None, "ok_steps": {}, "raised": []}
    if mid:
        st["mid"] = []
    return st


def call_limit(name: str, limits: Mapping[str, int]) -> int | None:
    """The smallest limit among the patterns ``name`` matches (the strictest rule applies)."""
    hits = [int(v) for p, v in limits.items() if fnmatchcase(name, p)]
    return min(hits) if hits else None


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """All patterns as one compiled regex (fnmatch semantics): one match per call, not one per
    pattern."""
    pats = list(patterns)
    if not pats:
        return lambda _name: False
    rx = re.compile("|".join(f"(?:{translate(p)})" for p in pats))
    return lambda name: rx.match(name) is not None


class Compiled:
    """A governance mapping prepared for the hot path; per-tool answers are memoised (tool names
    are few: MAX_TOOLS bounds the memo)."""

    def __init__(self, gov: Mapping[str, Any]) -> None:
        self.gov = gov
        self.deny = _matcher(gov["tool_deny"])
        self.allow = _matcher(gov["tool_allow"]) if gov["tool_allow"] else None
        self.require = _matcher(gov["require_approval"])
        self.forbidden = frozenset(gov["forbidden_arg_digests"])
        self.stop_on = frozenset(gov["stop_on"])
        self._limits = dict(gov["max_calls_per_tool"])
        self._per_tool: dict[str, tuple[str | None, int | None, bool]] = {}

    def tool(self, name: str) -> tuple[str | None, int | None, bool]:
        """(tool rule broken by calling it at all, its call limit, whether it needs an approval)."""
        hit = self._per_tool.get(name)
        if hit is None:
            rule = "tool_denied" if self.deny(name) else (
                "tool_not_allowed" if self.allow is not None and not self.allow(name) else None)
            hit = (rule, call_limit(name, self._limits), self.require(name))
            if len(self._per_tool) >= MAX_TOOLS:
                self._per_tool.clear()
            self._per_tool[name] = hit
        return hit


_COMPILED: dict[int, Compiled] = {}


def compiled(gov: Mapping[str, Any]) -> Compiled:
    """The Compiled form of this very mapping (a policy's mapping lives as long as the policy is
    current in the PolicyBook, so identity is the cache key; checked, never trusted alone)."""
    c = _COMPILED.get(id(gov))
    if c is None or c.gov is not gov:
        if len(_COMPILED) >= 1024:
            _COMPILED.clear()
        c = _COMPILED[id(gov)] = Compiled(gov)
    return c


def _raise(state: dict[str, Any], out: list[Finding], f: Finding) -> None:
    if f.key in state["raised"]:
        return
    state["raised"].append(f.key)
    out.append(f)


def _tool_rule(state: dict[str, Any], out: list[Finding], c: "Compiled", rule: str, tool: str,
               title: str, ev: dict[str, str], key: str | None = None) -> None:
    stop = rule in c.stop_on
    _raise(state, out, Finding("policy_violation", "CRITICAL" if stop else "WARNING", title,
                               {**ev, "rule": rule}, stop=stop, key=key or f"{rule}:{tool}"))


def _approval(state: dict[str, Any], out: list[Finding], rule: str, title: str, ev: dict[str, str],
              step_id: str) -> None:
    # One alert per offending step: every unapproved high-risk action is its own incident.
    _raise(state, out, Finding("approval_violation", "CRITICAL", title, {**ev, "rule": rule},
                               stop=True, key=f"{rule}:{step_id}"))


def observe(state: dict[str, Any], event: Mapping[str, Any], gov: Mapping[str, Any]) -> list[Finding]:
    return observe_compiled(state, event, compiled(gov))


def observe_compiled(state: dict[str, Any], event: Mapping[str, Any], c: Compiled) -> list[Finding]:
    """``observe`` with the tenant's mapping already compiled (the hot path's form)."""
    if event["kind"] != "STEP":
        return []
    p = event.get("payload") or EMPTY
    kind = p.get("step_kind")
    out: list[Finding] = []
    if kind == "APPROVAL" and p.get("approval"):
        a = p["approval"]
        state["pending"] = [a.get("action_digest"), a.get("decision"), p.get("step_id") or "",
                            str(event.get("seq", ""))]
        mid = state.get("mid")
        if mid is not None:  # an approval this state sees: the next call is judged by it
            mid.append("")
            del mid[:-MAX_MID_STEPS]
        return out
    if kind != "TOOL":
        return out
    tool = p.get("tool") or EMPTY
    name = tool.get("tool_name") or p.get("name") or "tool"
    digest = tool.get("args_digest") or (event.get("attributes") or EMPTY).get(DIGEST_ATTR)
    rule, limit, needs_approval = c.tool(name)
    calls = state["calls"]
    n = calls[name] = calls.get(name, 0) + 1
    if len(calls) > MAX_TOOLS:
        del calls[next(iter(calls))]
    over = limit is not None and exceeds(n, limit)
    forbidden = bool(digest) and digest in c.forbidden
    pending, state["pending"] = state["pending"], None
    mid = state.get("mid")
    unknown_past = mid is not None and _before_resumption(mid, p)
    if rule is None and not over and not forbidden and pending is None and not needs_approval:
        return out  # the common call: nothing to judge, so no evidence is built
    step_id = p.get("step_id") or str(event.get("seq", ""))
    ev = {"tool": name, "step_id": step_id, "step_seq": str(event.get("seq", "")),
          "event_us": str(event.get("ts_us", "")), "args_digest": digest or ""}

    if rule == "tool_denied":
        _tool_rule(state, out, c, rule, name, f"tool {name} is denied by the tenant policy", ev)
    elif rule == "tool_not_allowed":
        _tool_rule(state, out, c, rule, name, f"tool {name} is not on the tenant's allow list", ev)
    if over:
        _tool_rule(state, out, c, "max_tool_calls", name,
                   f"tool {name} called {n} times in one run (allowed {limit})",
                   {**ev, "calls": str(n), "limit": str(limit)})
    if forbidden:
        _tool_rule(state, out, c, "forbidden_args", name, f"tool {name} called with forbidden arguments",
                   ev, key=f"forbidden_args:{name}:{digest}")

    ok = state["ok_steps"]
    if pending is not None:
        want, decision, approval_step, approval_seq = pending
        ev = {**ev, "approved_digest": want or "", "decision": str(decision),
              "approval_step_id": approval_step, "approval_seq": approval_seq}
        if decision == APPROVED:
            if digest and digest == want:
                ok[step_id] = digest
                _trim(ok)
                return out
            _approval(state, out, "approval_mismatch",
                      f"tool {name} ran with arguments other than the ones approved", ev, step_id)
            return out
        if digest and digest == want:
            _approval(state, out, "approval_rejected_executed",
                      f"tool {name} ran the action whose approval was {decision}", ev, step_id)
            return out
    if needs_approval:
        retry_of = p.get("retry_of")
        if retry_of and digest and ok.get(retry_of) == digest or unknown_past:
            ok[step_id] = digest or ""  # a further attempt of an approved call (or not judged)
            _trim(ok)
            return out
        _approval(state, out, "approval_missing", f"tool {name} requires an approval and ran without one", ev,
                  step_id)
    return out


def _before_resumption(mid: list[str], p: Mapping[str, Any]) -> bool:
    """Whether an approval this state cannot see may bind this tool call: it is the first since
    the state began, or a retry of a call from before. Remembers the call."""
    first = not mid
    retry_of = p.get("retry_of")
    older = bool(retry_of) and retry_of not in mid
    mid.append(p.get("step_id") or "")
    del mid[:-MAX_MID_STEPS]
    return first or older


def _trim(ok: dict[str, str]) -> None:
    while len(ok) > MAX_APPROVED_STEPS:  # oldest first, as inserted
        del ok[next(iter(ok))]
