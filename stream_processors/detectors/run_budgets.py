"""Run budgets: steps, tokens, cost and wall time against a tenant's limits (``runs.py`` counts,
this judges), and what every per-run finding is. Pure; shared with the fleet stage's spend
windows (``fleet.py``: ``apart``, ``levels``, ``warn_fraction``).

Every limit is the amount allowed; a finding is going over it (``exceeds``, the SDK's rule).
Wall time is the run's own time: event time since its first event less its approval waits
(``approval_wait``: an APPROVAL step's ``approval_latency_ms``, taken off only back to the run's
previous event, so a wait overlapping the run's own events, or claimed longer than the run was
quiet, hides none of its work; the SDK's rule too, ``producer/enforcement.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from agentstream.schemas.usage_numbers import exceeds_usd, reaches_usd

if TYPE_CHECKING:
    from .runs import Limits

DEFAULT_WARN_FRACTION = 0.8


def exceeds(used: float, limit: float) -> bool:
    """The one budget rule, shared with the SDK (``producer.enforcement.exceeds``): a limit is
    the amount allowed; only going over it is a breach."""
    return used > limit


def apart(used: float, limit: float, decimals: bool = False, digits: int = 6) -> tuple[str, str]:
    """``used`` and ``limit`` formatted with ``digits`` digits (decimal places when ``decimals``,
    else significant), more when ``used`` is over ``limit`` and they would read alike, so a breach
    never reads "0.3 > 0.3" (a breach is over by a billionth of the limit at least: 12 digits
    tell it)."""
    spec = "f" if decimals else "g"
    u, lim = f"{used:.{digits}{spec}}", f"{limit:.{digits}{spec}}"
    d = digits
    while u == lim and used > limit and d < 15:
        d += 1
        u, lim = f"{used:.{d}{spec}}", f"{limit:.{d}{spec}}"
    return u, lim


@dataclass
class Finding:
    alert_type: str
    severity: str
    title: str
    evidence: dict[str, str]
    stop: bool = False
    key: str = ""  # dedup key within the run


def raise_once(state: dict[str, Any], out: list[Finding], f: Finding) -> None:
    key = f.key or f.alert_type
    if key in state["raised"]:
        return
    state["raised"].append(key)
    out.append(f)


# (metric, the budget key that limits it), in the order findings are raised.
RUN_BUDGETS = (("steps", "run_max_steps"), ("tokens", "run_max_tokens"), ("cost_usd", "run_max_cost_usd"),
               ("wall_s", "run_max_wall_s"))


def warn_fraction(budgets: Mapping[str, Any]) -> float:
    v = budgets.get("warn_fraction", DEFAULT_WARN_FRACTION)
    return DEFAULT_WARN_FRACTION if v is None else float(v)


def levels(used: float, limit: float, warn_at: float, usd: bool = False) -> list[str]:
    """The alert levels ``used`` has reached against ``limit``, lowest first (``usd``: amounts
    of money, compared with ``exceeds_usd``'s tolerance)."""
    out = []
    if warn_at > 0 and (reaches_usd(used, warn_at * limit) if usd else used >= warn_at * limit):
        out.append("budget_warning")
    if exceeds_usd(used, limit) if usd else exceeds(used, limit):
        if not out and warn_at > 0:
            out.append("budget_warning")
        out.append("budget_breach")
    return out


def check(state: dict[str, Any], event: Mapping[str, Any], lim: "Limits", out: list[Finding]) -> None:
    """The run budgets ``lim`` sets, after ``event`` was counted: each level once per metric."""
    hard, warn_at, raised = lim.hard, lim.warn_at, state["raised"]
    for metric, limit in lim.run_limits:
        if metric == "steps":
            used = state["steps"]
        elif metric == "tokens":
            used = state["tokens"]
        elif metric == "cost_usd":
            used = state["cost"]
        else:
            used = (event["ts_us"] - (state["first_us"] or event["ts_us"]) - state.get("wait_us", 0)) / 1e6
        for level in levels(used, limit, warn_at, metric == "cost_usd"):
            if f"{level}:{metric}" in raised:
                continue
            u, lim_s = apart(used, limit)
            ev = {"metric": metric, "used": u, "limit": lim_s, "scope": "run",
                  "step_seq": str(event.get("seq", "")), "event_us": str(event["ts_us"])}
            if level == "budget_breach":
                f = Finding(level, "CRITICAL", f"run {metric} budget exceeded ({u} > {lim_s})", ev,
                            stop=hard, key=f"{level}:{metric}")
            else:
                f = Finding(level, "WARNING", f"run {metric} at {used / limit:.0%} of budget", ev,
                            key=f"{level}:{metric}")
            raise_once(state, out, f)


def approval_wait(state: dict[str, Any], approval: Mapping[str, Any], quiet_us: int) -> None:
    """A human's wait for a decision is not the run's time: ``approval_latency_ms`` is taken off
    its wall time, back to its previous event at most (``quiet_us``)."""
    ms = approval.get("approval_latency_ms")
    if ms and ms > 0 and quiet_us > 0:  # (NaN is not > 0)
        # min before int: an infinite wait (written around the gateway) is capped, not an OverflowError
        state["wait_us"] = state.get("wait_us", 0) + int(min(ms * 1000, quiet_us))
