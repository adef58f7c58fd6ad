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
- a changed result is progress: a call counts among its signature's calls since that
  signature's result (``agentstream.return_digest``) last changed, under its *call key*
  (schemas/loop_repeats.py; the key is the signature until a result changes); repeats,
  ping-pong and cycles are judged on call keys, the evidence names the signature.
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
- budgets (steps, tokens, cost, wall time; judged in ``run_budgets.py``, which says what wall
  time is: the run's own time, its approval waits not counted): ``budget_breach`` once
  ``used > limit``; ``budget_warning`` once ``used >= warn_fraction * limit`` (``warn_fraction`` 0 turns warnings
  off). Cost is compared with ``exceeds_usd``: a run that spends exactly its limit in decimal
  prices (3 x $0.10 of $0.30) has not breached it, though the float sum reads 0.30000000000000004. Each level is raised once per run and metric; a step that jumps past both raises both.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, cast

from agentstream.schemas.loop_repeats import (GEN_SEP, REPEAT_WINDOW as DEFAULT_WINDOW, RESULT_CHARS,
                                              RESULT_DIGEST_ATTR, call_key, count_repeat, note_result,
                                              step_signature)
from agentstream.schemas.usage_numbers import counted_cost

from . import cycles
from .run_budgets import RUN_BUDGETS, Finding, approval_wait, check, exceeds, raise_once, warn_fraction

PROGRESS_ATTR = "agentstream.progress_fingerprint"
MAX_CHAINS = 64         # retry chains remembered (a retry links to a recent attempt)
MAX_FINGERPRINTS = 256
MAX_LOOP_ALERTS = 8     # loop alerts one run may raise with stop_on_loop off
MAX_LOOP_SUBJECTS = 32  # signatures/fingerprints of loops already alerted, kept per run


def new_state() -> dict[str, Any]:
    return {"v": 2, "win": [], "cnt": {}, "nv": {}, "alt": [None, None, 0], "chains": {}, "fp": {},
            "steps": 0, "tokens": 0, "cost": 0.0, "first_us": None, "raised": [], "cyc": ""}


# What a run keeps when it goes idle (``run_eviction.py``): the totals its budgets and alerts
# need, its governance state, the last raw offset applied, its calls' last results (``res``,
# so its calls resume under the keys they had); not its loop windows. (``mid``: the state began
# after the run's earlier state was dropped.)
RESIDUE = ("steps", "tokens", "cost", "first_us", "last_us", "wait_us", "raised", "lsub", "_o", "gov", "mid", "res")


def _upgrade(state: dict[str, Any]) -> None:
    """A state written by an older version, or an idle run's residue (``v`` 0), made current."""
    if state.get("v") != 2:
        keep: dict[str, Any] = {k: state[k] for k in ("fp", "dd", "lsub") + RESIDUE if k in state}
        state.clear()
        state.update(new_state())
        state.update(keep)


def residue(state: dict[str, Any]) -> dict[str, Any] | None:
    """An idle run's state compacted to ``RESIDUE`` (``v`` 0: ``observe`` makes it whole again
    when the run resumes), or None when it is one already."""
    if state.get("v") == 0:
        return None
    out = {k: state[k] for k in RESIDUE if k in state}
    out["v"] = 0
    return out


def signature(p: Mapping[str, Any], attributes: Mapping[str, str] | None) -> str | None:
    """(kind, name, digest) of a step, or None when its arguments are unknown: the SDK's rule too
    (schemas/loop_repeats.py)."""
    return step_signature(p.get("step_kind"), p.get("name"), p.get("tool"), p.get("llm"), attributes)


def _chain_length(state: dict[str, Any], p: Mapping[str, Any]) -> int:
    """Attempts so far of this step's logical call (1 for a first attempt). A retry may link to
    the previous attempt or to the first one: both find the chain's root. A numbered attempt
    says how long its chain is: the chain is as long as its highest attempt, so retries
    reported out of order (hedged, or delivered late: 6, 5, 4, 3, 2) are not counted twice; only
    a retry without a number (``attempt`` absent or 1) adds one to what its chain has seen."""
    a = p.get("attempt")
    n = int(a) if a else 1  # max(1, int(a or 1)) without the builtins' calls: this runs per step
    if n < 1:
        n = 1
    parent = p.get("retry_of")
    sid = p.get("step_id")
    chains = state["chains"]  # step_id -> [root step_id, attempts of that root's chain so far]
    if parent:
        root, seen = chains.get(parent, [parent, 1])
        n = (n if n > seen else seen) if n > 1 else seen + 1
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


EMPTY: Mapping[str, Any] = MappingProxyType({})  # an absent payload or attribute map, read only
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
    ts = event["ts_us"]
    if state["first_us"] is None:
        state["first_us"] = ts
    last = state.get("last_us")  # the run's previous event (its latest time)
    state["last_us"] = ts if last is None or ts > last else last
    reasons: dict[str, Any] = {}  # text, but a cycles.Cycle until formatted below
    if kind == "STEP":
        state["steps"] += 1
        approval = p.get("approval")
        if approval and last is not None:
            approval_wait(state, approval, ts - last)
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
    # Only an explicit fingerprint: a DECISION's (type, selected, reason) is what was chosen and
    # why, not the run's state; a router choosing the api for 4 different questions is 4 good
    # decisions, not a run that stopped progressing (a probe: 181 of 200 such runs stopped).
    fp = attrs.get(PROGRESS_ATTR)
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
        check(state, event, lim, out)
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
    raise_once(state, out, Finding("loop", "CRITICAL", f"loop: {', '.join(sorted(reasons))}", ev,
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
        # another attempt of the same logical call, judged above by its chain's length; its
        # result is the call's
        sig = signature(p, attrs)
        if sig is not None:
            _note_result(state, sig, attrs)
        return (sig or f"{p.get('step_kind')}|{p.get('name')}") if reasons else None
    sig = signature(p, attrs)
    if sig is None:
        return None  # unknown arguments: never a repeat of anything
    res = state.get("res")
    key = sig if res is None else call_key(sig, res)
    window = lim.window
    nov = state.get("nv")
    if nov is None:  # a state from before the novelty test
        nov = state["nv"] = {}
    seen, repeats = count_repeat(state["win"], state["cnt"], nov, key, window, sig.startswith("LLM|"),
                                 res is not None and sig in res)
    max_repeats = lim.max_repeats
    if exceeds(repeats, max_repeats):
        where = f"the last {window} steps" if window > 0 else "the run"
        since = "" if key is sig else " since its result last changed"
        reasons["repeat"] = f"{sig} seen {repeats} times in {where}{since} (allowed {max_repeats})"
    alt = _alternation(state, key)
    pp = lim.max_ping_pong
    # A step whose own result is new is progress: it completes no alternation and no cycle
    # (counted before its result, as the SDK counts it, it is still its key's last call).
    fresh = res is not None and _result_is_new(res, sig, attrs)
    if exceeds(alt, 2 * pp) and not fresh and not _results_decide(state, key, seen, max_repeats):
        a, b = sorted(state["alt"][:2])
        reasons["ping_pong"] = f"{a} <-> {b} alternated for {alt} steps (allowed {2 * pp})"
    keep = lim.cycle_keep
    if keep:
        # Judged only at a step the window has seen before, where neither the repeat rule nor
        # ping-pong already fires, and not once the run is being stopped (still remembered).
        judge = seen > 1 and not reasons and not fresh and not (lim.stop_on_loop and "loop" in state["raised"])
        state["cyc"], hit = cycles.observe(state.get("cyc", ""), key, state["win"], seen, keep, max_repeats, judge)
        if hit is not None:
            reasons["cycle"] = hit  # formatted by observe_with, which takes its subjects
    if attrs and RESULT_DIGEST_ATTR in attrs and _note_result(state, sig, attrs) and alt > 1:
        # a new result: the alternation goes on with the call's new key, from this step
        state["alt"][1:] = [call_key(sig, state["res"]), 2]
    return key


def _result_is_new(res: Mapping[str, list[Any]], sig: str, attrs: Mapping[str, str]) -> bool:
    """Whether the step brings a result unlike its signature's last (``note_result``'s test)."""
    r = res.get(sig)
    digest = attrs.get(RESULT_DIGEST_ATTR) if r is not None and attrs else None
    return digest.__class__ is str and r[1] != digest[:RESULT_CHARS]  # type: ignore[index]


def _results_decide(state: dict[str, Any], key: str, seen: int, max_repeats: int) -> bool:
    """Whether an alternation is judged by its calls' results instead: both sides report results
    (``res``) and neither has gone more than ``max_repeats`` calls without a new one. Why: two
    jobs polled in turn alternate for as long as neither status moves, and each may legally stay
    ``max_repeats`` polls; ``2 * max_ping_pong`` alternating steps stopped 162 of 200 such runs.
    Calls whose results do not change go over ``max_repeats`` and fire (both reasons) then."""
    res = state.get("res")
    other = state["alt"][0]
    if not res or other is None:
        return False
    if key.split(GEN_SEP, 1)[0] not in res or other.split(GEN_SEP, 1)[0] not in res:
        return False
    return not exceeds(max(seen, state["cnt"].get(other, 0)), max_repeats)


def _note_result(state: dict[str, Any], sig: str, attrs: Mapping[str, str]) -> bool:
    """The step's result digest, if it has one (not an LLM call's): see ``note_result``. True
    when the result changed (the signature's next calls count under a new key)."""
    digest = attrs.get(RESULT_DIGEST_ATTR)
    if not digest or sig.startswith("LLM|"):
        return False
    res = state.get("res")
    if res is None:
        res = state["res"] = {}
    known = res.get(sig)
    if known is None and "mid" in state:
        # begun mid-run (its earlier state dropped): the result before is unknown, so this one
        # may be new; taken as a change, the state never counts calls the run's whole state
        # would have counted apart (run_eviction.py)
        res[sig] = [1, ""]
    before = res.get(sig, (0,))[0]
    note_result(res, sig, digest, state["win"], state["cnt"], state.get("nv"))
    return bool(res.get(sig, (before,))[0] != before)


