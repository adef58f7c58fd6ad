"""Per-run detection: loops (repeats, ping-pong, no-progress fingerprints, retry storms) and run
budgets (steps, tokens, cost, wall time). Event in, findings out; the state is a plain dict that
the worker persists per run in a changelog-backed table, including which findings were already
raised, so a restarted worker never raises them again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

WINDOW = 24          # recent step signatures kept per run
RETRY_WINDOW_US = 60_000_000
PROGRESS_ATTR = "agentstream.progress_fingerprint"


@dataclass
class Finding:
    alert_type: str
    severity: str
    title: str
    evidence: dict[str, str]
    stop: bool = False
    key: str = ""  # dedup key within the run


def new_state() -> dict[str, Any]:
    return {"sigs": [], "fp": {}, "retries": [], "steps": 0, "tokens": 0, "cost": 0.0,
            "first_us": None, "raised": []}


def _signature(p: Mapping[str, Any]) -> str:
    tool = p.get("tool") or {}
    digest = tool.get("args_digest") or ""
    return f"{p.get('step_kind')}|{p.get('name')}|{digest}"


def _raise(state: dict[str, Any], out: list[Finding], f: Finding) -> None:
    key = f.key or f.alert_type
    if key in state["raised"]:
        return
    state["raised"].append(key)
    out.append(f)


def observe(state: dict[str, Any], event: Mapping[str, Any], loops: Mapping[str, Any],
            budgets: Mapping[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    kind = event["kind"]
    p = event.get("payload") or {}
    if state["first_us"] is None:
        state["first_us"] = event["ts_us"]
    stop_on_loop = bool(loops.get("stop_on_loop", True))
    if kind == "STEP" and p.get("step_kind") == "LLM":
        state["steps"] += 1  # model calls repeat by nature; loops are judged on actions, not on chat turns
    elif kind == "STEP":
        state["steps"] += 1
        sig = _signature(p)
        sigs = state["sigs"]
        sigs.append(sig)
        del sigs[:-WINDOW]
        repeats = sigs.count(sig)
        max_repeats = int(loops.get("max_repeats", 5))
        if repeats >= max_repeats:
            _raise(state, out, Finding("loop", "CRITICAL", f"step {p.get('name')!s} repeated {repeats} times",
                                       {"signature": sig, "repeats": str(repeats), "threshold": str(max_repeats)},
                                       stop=stop_on_loop))
        pp = int(loops.get("max_ping_pong", 4))
        tail = sigs[-2 * pp:]
        if len(tail) == 2 * pp and len(set(tail)) == 2 and all(tail[i] != tail[i + 1] for i in range(len(tail) - 1)):
            a, b = sorted(set(tail))
            _raise(state, out, Finding("ping_pong", "CRITICAL", "ping-pong between two steps",
                                       {"between": f"{a} <-> {b}", "alternations": str(len(tail))},
                                       stop=stop_on_loop))
    if kind == "STEP":
        if int(p.get("attempt") or 1) > 1 or p.get("retry_of"):
            now = event["ts_us"]
            retries = [t for t in state["retries"] if now - t <= RETRY_WINDOW_US] + [now]
            state["retries"] = retries
            max_retries = int(loops.get("max_retries", 5))
            if len(retries) >= max_retries:
                _raise(state, out, Finding("retry_storm", "WARNING", f"{len(retries)} retries within 60 s",
                                           {"retries": str(len(retries)), "threshold": str(max_retries)},
                                           stop=stop_on_loop))
        llm = p.get("llm") or {}
        state["tokens"] += int(llm.get("input_tokens") or 0) + int(llm.get("output_tokens") or 0)
        state["cost"] += float(llm.get("cost_usd") or 0.0)
    fp = (event.get("attributes") or {}).get(PROGRESS_ATTR)
    if fp is None and kind == "DECISION":
        fp = f"{p.get('decision_type')}|{p.get('selected')}|{p.get('reason_code')}"
    if fp is not None:
        n = state["fp"].get(fp, 0) + 1
        state["fp"][fp] = n
        if len(state["fp"]) > 256:  # bounded: keep the hottest fingerprints
            state["fp"] = dict(sorted(state["fp"].items(), key=lambda kv: -kv[1])[:128])
        max_np = int(loops.get("max_no_progress", 3))
        if n > max_np:
            _raise(state, out, Finding("no_progress", "CRITICAL", f"no progress: fingerprint seen {n} times",
                                       {"fingerprint": fp[:64], "seen": str(n), "threshold": str(max_np)},
                                       stop=stop_on_loop))
    _check_budgets(state, event, budgets, out)
    return out


def _check_budgets(state: dict[str, Any], event: Mapping[str, Any], budgets: Mapping[str, Any],
                   out: list[Finding]) -> None:
    wall_s = (event["ts_us"] - (state["first_us"] or event["ts_us"])) / 1e6
    hard = bool(budgets.get("hard_limit"))
    for metric, used, limit_key in (("steps", state["steps"], "run_max_steps"),
                                    ("tokens", state["tokens"], "run_max_tokens"),
                                    ("cost_usd", state["cost"], "run_max_cost_usd"),
                                    ("wall_s", wall_s, "run_max_wall_s")):
        limit = budgets.get(limit_key)
        if not limit:
            continue
        ratio = used / float(limit)
        ev = {"metric": metric, "used": f"{used:.6g}", "limit": f"{float(limit):.6g}", "scope": "run"}
        if ratio >= 1.0:
            _raise(state, out, Finding("budget_breach", "CRITICAL", f"run {metric} budget exceeded", ev,
                                       stop=hard, key=f"budget_breach:{metric}"))
        elif ratio >= 0.8:
            _raise(state, out, Finding("budget_warning", "WARNING", f"run {metric} at {ratio:.0%} of budget", ev,
                                       key=f"budget_warning:{metric}"))
