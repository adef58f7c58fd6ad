"""Per-run detection: loops and run budgets. Event in, findings out.

Interface (stable; the hot path feeds it): ``observe(state, event, loops, budgets)`` where
``event`` is a decoded Event dict (only ``kind``, ``ts_us``, ``seq``, ``attributes`` and the
payload fields named below are read), ``loops``/``budgets`` are the tenant policy mappings and
``state`` is the JSON-able dict from ``new_state()`` that the worker persists per run (a state
written by an older version is upgraded in place). It returns the findings to emit now.

Every threshold is the amount allowed; a finding is going over it (the SDK's rule, see
``exceeds``):

- a step's *signature* is (kind, name, digest) where the digest is the tool's ``args_digest``,
  the LLM call's ``request_digest`` (model, messages, tools; never content) or an
  ``agentstream.args_digest`` attribute. A step without one has unknown arguments and never
  counts as a repeat of anything, nor as half of a ping-pong.
- a retry (``attempt`` > 1 or ``retry_of`` set) is another attempt of the same logical call: it
  lengthens that call's chain and is judged by the chain's length; it is not a new repeat.
- reasons: ``repeat`` (a signature seen more than ``max_repeats`` times within the last
  ``repeat_window`` logical steps that have a signature; 0 = the whole run, counted per
  signature), ``ping_pong`` (two signatures strictly alternating for more than
  ``2 * max_ping_pong`` steps), ``retry_chain`` (a chain of more than ``max_retries`` retries),
  ``no_progress`` (a progress fingerprint seen more than ``max_no_progress`` times), ``cycle``
  (a block of 2-12 steps going round more than ``max_repeats`` laps: ``cycles.py``; named only
  at a step the repeat rule and ping-pong do not already fire on).
- a ``loop`` alert at the first step where any reason fires, naming every reason firing at
  that step; ``stop_on_loop`` attaches a STOP, and that is the run's one loop alert. Without
  ``stop_on_loop`` the run goes on: a later loop sharing no subject (signature, fingerprint)
  with an alerted one alerts again, up to ``MAX_LOOP_ALERTS`` per run (``_loop_alert``).
- budgets (steps, tokens, cost, wall time): ``budget_breach`` once ``used > limit``;
  ``budget_warning`` once ``used >= warn_fraction * limit`` (``warn_fraction`` 0 turns warnings
  off). Cost is compared with ``exceeds_usd``: a run that spends exactly its limit in decimal
  prices (3 x $0.10 of $0.30) has not breached it, though the float sum reads 0.30000000000000004. Each level is raised once per run and metric; a step that jumps past both raises both.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, cast

from agentstream.schemas.loop_repeats import REPEAT_WINDOW as DEFAULT_WINDOW, count_in_window, step_signature
from agentstream.schemas.usage_numbers import counted_cost, exceeds_usd, reaches_usd

from . import cycles

PROGRESS_ATTR = "agentstream.progress_fingerprint"
DEFAULT_WARN_FRACTION = 0.8
MAX_CHAINS = 64         # retry chains remembered (a retry links to a recent attempt)
MAX_FINGERPRINTS = 256
MAX_LOOP_ALERTS = 8     # loop alerts one run may raise with stop_on_loop off
MAX_LOOP_SUBJECTS = 32  # signatures/fingerprints of loops already alerted, kept per run


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


def new_state() -> dict[str, Any]:
    return {"v": 2, "win": [], "cnt": {}, "alt": [None, None, 0], "chains": {}, "fp": {},
            "steps": 0, "tokens": 0, "cost": 0.0, "first_us": None, "raised": [], "cyc": ""}


def _upgrade(state: dict[str, Any]) -> None:
    if state.get("v") != 2:
        keep: dict[str, Any] = {k: state[k] for k in ("steps", "tokens", "cost", "first_us", "raised", "fp", "_o", "dd", "lsub")
                                if k in state}
        state.clear()
        state.update(new_state())
        state.update(keep)


def signature(p: Mapping[str, Any], attributes: Mapping[str, str] | None) -> str | None:
    """(kind, name, digest) of a step, or None when its arguments are unknown: the SDK's rule too
    (schemas/loop_repeats.py)."""
    return step_signature(p.get("step_kind"), p.get("name"), p.get("tool"), p.get("llm"), attributes)


def _chain_length(state: dict[str, Any], p: Mapping[str, Any]) -> int:
    """Attempts so far of this step's logical call (1 for a first attempt). A retry may link to
    the previous attempt or to the first one: both find the chain's root."""
    a = p.get("attempt")
    n = int(a) if a else 1  # max(1, int(a or 1)) without the builtins' calls: this runs per step
    if n < 1:
        n = 1
    parent = p.get("retry_of")
    sid = p.get("step_id")
    chains = state["chains"]  # step_id -> [root step_id, attempts of that root's chain so far]
    if parent:
        root, seen = chains.get(parent, [parent, 1])
        n = max(n, seen + 1)
        for k in (parent, root):
            if k in chains:
                chains[k][1] = n
        if sid:
            chains[sid] = [root, n]
    elif sid:
        chains[sid] = [sid, n]
    while len(chains) > MAX_CHAINS:  # oldest first, as inserted
        del chains[next(iter(chains))]
    return n


def _alternation(state: dict[str, Any], sig: str) -> int:
    """Length of the strictly alternating A/B tail ending with ``sig``."""
    a, b, n = state["alt"]  # a = second-last signature, b = last
    if sig == b:
        n = 1
    elif a is not None and sig == a and n >= 2:
        n += 1
    else:
        n = 2 if b is not None else 1
    alt = state["alt"]
    alt[0], alt[1], alt[2] = b, sig, n  # in place: one list per run, not one per step
    return cast(int, n)


def _raise(state: dict[str, Any], out: list[Finding], f: Finding) -> None:
    key = f.key or f.alert_type
    if key in state["raised"]:
        return
    state["raised"].append(key)
    out.append(f)


EMPTY: Mapping[str, Any] = MappingProxyType({})  # an absent payload or attribute map, read only
# (metric, the budget key that limits it), in the order findings are raised.
RUN_BUDGETS = (("steps", "run_max_steps"), ("tokens", "run_max_tokens"), ("cost_usd", "run_max_cost_usd"),
               ("wall_s", "run_max_wall_s"))


class Limits:
    """A tenant's loop thresholds and run budgets, read out of its policy mappings once.

    Why: ``Chain.detect`` builds one per tenant per batch, so the ~10 lookups and conversions a
    step used to cost are paid per batch; budgets that are not set cost nothing per event."""

    __slots__ = ("max_retries", "window", "max_repeats", "max_ping_pong", "max_no_progress", "stop_on_loop",
                 "hard", "warn_at", "run_limits", "cycle_keep")

    def __init__(self, loops: Mapping[str, Any], budgets: Mapping[str, Any]) -> None:
        self.max_retries = int(loops.get("max_retries", 5))
        self.window = int(loops.get("repeat_window", DEFAULT_WINDOW) or 0)
        self.max_repeats = int(loops.get("max_repeats", 5))
        self.max_ping_pong = int(loops.get("max_ping_pong", 4))
        self.max_no_progress = int(loops.get("max_no_progress", 3))
        self.stop_on_loop = bool(loops.get("stop_on_loop", True))
        # Cycles need the window (cycles.py) and add nothing to one that holds their laps.
        keep = cycles.history(self.max_repeats)
        self.cycle_keep = keep if 0 < self.window < keep else 0
        self.hard = bool(budgets.get("hard_limit"))
        self.warn_at = warn_fraction(budgets)
        # A limit of 0 or None is no limit.
        self.run_limits = tuple((metric, float(budgets[key])) for metric, key in RUN_BUDGETS if budgets.get(key))


def observe(state: dict[str, Any], event: Mapping[str, Any], loops: Mapping[str, Any],
            budgets: Mapping[str, Any]) -> list[Finding]:
    return observe_with(state, event, Limits(loops, budgets))


def observe_with(state: dict[str, Any], event: Mapping[str, Any], lim: Limits) -> list[Finding]:
    """``observe`` with the tenant's thresholds already read (the hot path's form)."""
    if state.get("v") != 2:
        _upgrade(state)
    out: list[Finding] = []
    kind = event["kind"]
    p = event.get("payload") or EMPTY
    attrs = event.get("attributes") or EMPTY
    if state["first_us"] is None:
        state["first_us"] = event["ts_us"]
    reasons: dict[str, Any] = {}  # text, but a cycles.Cycle until formatted below
    if kind == "STEP":
        state["steps"] += 1
        llm = p.get("llm")
        if llm:
            # what is not a usage figure counts as nothing (schemas/usage_numbers.py): a NaN cost
            # would make the total NaN, and no budget is ever breached by NaN
            tin, tout = llm.get("input_tokens") or 0, llm.get("output_tokens") or 0
            state["tokens"] += (tin if tin > 0 else 0) + (tout if tout > 0 else 0)
            state["cost"] += counted_cost(llm.get("cost_usd"))
        sig = _loop_reasons(state, p, attrs, lim, reasons)
    else:
        sig = None
    fp = attrs.get(PROGRESS_ATTR)
    if fp is None and kind == "DECISION":
        fp = f"{p.get('decision_type')}|{p.get('selected')}|{p.get('reason_code')}"
    if fp is not None:
        seen = state["fp"].get(fp, 0) + 1
        state["fp"][fp] = seen
        if len(state["fp"]) > MAX_FINGERPRINTS:  # bounded: keep the hottest fingerprints
            state["fp"] = dict(sorted(state["fp"].items(), key=lambda kv: -kv[1])[:MAX_FINGERPRINTS // 2])
        limit = lim.max_no_progress
        if exceeds(seen, limit):
            reasons["no_progress"] = f"fingerprint {fp[:64]} seen {seen} times (allowed {limit})"
    if reasons:
        subjects = [sig] if sig is not None else []
        cyc = reasons.get("cycle")
        extra = None
        if isinstance(cyc, cycles.Cycle):  # its identical calls are the loop's subjects too
            subjects += cyc.subjects(state["win"])
            steps = cyc.steps(state["win"])
            extra = {"cycle_period": str(cyc.period), "cycle_laps": str(cyc.laps), "cycle_steps": steps}
            reasons["cycle"] = cyc.reason(steps, lim.max_repeats)
        if "no_progress" in reasons:
            subjects.append(f"fp|{fp}")
        if "ping_pong" in reasons and state["alt"][0] is not None:
            subjects.append(state["alt"][0])  # the other side
        _loop_alert(state, out, reasons, subjects, event, lim, extra)
    if lim.run_limits:
        _check_budgets(state, event, lim, out)
    return out


def _loop_alert(state: dict[str, Any], out: list[Finding], reasons: dict[str, str], subjects: list[str],
                event: Mapping[str, Any], lim: Limits, extra: dict[str, str] | None = None) -> None:
    """The run's first loop raises an alert. With ``stop_on_loop`` that is all (the run is being
    stopped). Without, the run goes on, so a later loop must not go unseen behind the first:
    a loop that shares no subject (step signature, fingerprint) with one already alerted is a
    new loop and alerts again, at most ``MAX_LOOP_ALERTS`` times a run; the same loop going on,
    or firing another reason later, does not."""
    raised = state["raised"]
    lsub = state.get("lsub")
    if lsub is None:
        lsub = state["lsub"] = []
    if "loop" not in raised:
        key = "loop"  # the first one keeps the key (and so the alert id) it always had
    elif lim.stop_on_loop:
        return
    else:
        if any(s in lsub for s in subjects):  # the loop already alerted: learn its other subjects
            lsub.extend(s for s in subjects if s not in lsub)
            del lsub[:-MAX_LOOP_SUBJECTS]
            return
        n = sum(1 for k in raised if k == "loop" or k.startswith("loop#"))
        if n >= MAX_LOOP_ALERTS or not subjects:
            return
        key = f"loop#{n + 1}"
    lsub.extend(s for s in subjects if s not in lsub)
    del lsub[:-MAX_LOOP_SUBJECTS]
    ev = {"reasons": ",".join(sorted(reasons)), "step_seq": str(event.get("seq", "")),
          "event_us": str(event["ts_us"])}
    ev.update({f"reason.{k}": v for k, v in reasons.items()})
    if extra:
        ev.update(extra)
    _raise(state, out, Finding("loop", "CRITICAL", f"loop: {', '.join(sorted(reasons))}", ev,
                               stop=lim.stop_on_loop, key=key))


def _loop_reasons(state: dict[str, Any], p: Mapping[str, Any], attrs: Mapping[str, str],
                  lim: Limits, reasons: dict[str, Any]) -> str | None:
    """Adds the loop reasons this step fires; returns the step's subject (its signature, or for
    a retry chain over its limit its call's kind and name) or None."""
    attempts = _chain_length(state, p)
    max_retries = lim.max_retries
    if exceeds(attempts - 1, max_retries):
        reasons["retry_chain"] = f"{p.get('name')}: {attempts - 1} retries in one chain (allowed {max_retries})"
    if attempts > 1:
        # another attempt of the same logical call, judged above by its chain's length
        return (signature(p, attrs) or f"{p.get('step_kind')}|{p.get('name')}") if reasons else None
    sig = signature(p, attrs)
    if sig is None:
        return None  # unknown arguments: never a repeat of anything
    window = lim.window
    seen = count_in_window(state["win"], state["cnt"], sig, window)
    max_repeats = lim.max_repeats
    if exceeds(seen, max_repeats):
        where = f"the last {window} steps" if window > 0 else "the run"
        reasons["repeat"] = f"{sig} seen {seen} times in {where} (allowed {max_repeats})"
    alt = _alternation(state, sig)
    pp = lim.max_ping_pong
    if exceeds(alt, 2 * pp):
        a, b = sorted(state["alt"][:2])
        reasons["ping_pong"] = f"{a} <-> {b} alternated for {alt} steps (allowed {2 * pp})"
    keep = lim.cycle_keep
    if keep:
        # Judged only at a step the window has seen before, where neither the repeat rule nor
        # ping-pong already fires, and not once the run is being stopped (still remembered).
        judge = seen > 1 and not reasons and not (lim.stop_on_loop and "loop" in state["raised"])
        state["cyc"], hit = cycles.observe(state.get("cyc", ""), sig, state["win"], seen, keep, max_repeats, judge)
        if hit is not None:
            reasons["cycle"] = hit  # formatted by observe_with, which takes its subjects
    return sig


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


def _check_budgets(state: dict[str, Any], event: Mapping[str, Any], lim: Limits, out: list[Finding]) -> None:
    hard, warn_at, raised = lim.hard, lim.warn_at, state["raised"]
    for metric, limit in lim.run_limits:
        if metric == "steps":
            used = state["steps"]
        elif metric == "tokens":
            used = state["tokens"]
        elif metric == "cost_usd":
            used = state["cost"]
        else:
            used = (event["ts_us"] - (state["first_us"] or event["ts_us"])) / 1e6
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
            _raise(state, out, f)
