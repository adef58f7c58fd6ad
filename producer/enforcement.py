"""Local enforcement: run budgets and no-progress fingerprints, checked before the operation.

Pure logic, no I/O: ``RunLimits`` says what is allowed, ``RunBudget`` counts and raises.
Limits resolve explicit argument > environment variable (``AGENTSTREAM_PRODUCER_MAX_*``) > unset.

One rule, the processors' too (``stream_processors.detectors.runs.exceeds``, held to this one by
a test): a limit is the amount allowed and a breach is going over it. So an operation is
refused only when it would take the run over a limit: ``max_steps=40`` runs 40 steps and
refuses the 41st; a run at exactly its token or cost limit has breached nothing, but admits no
further model call (any call uses tokens; a paid call costs more than nothing). Cost compares in
decimal (``exceeds_usd``): three $0.10 calls fit a $0.30 budget.

Repeated calls follow the processors' repeat rule too (``schemas/loop_repeats.py``): a call's
signature counts within the last ``REPEAT_WINDOW`` logical steps that have one, a retry of a
call is not a repeat of it, and a call whose result changed (``Step.record_result``) is
progress: the calls after it count afresh, and so is new work between two calls of one signature
(``count_repeat``). Progress fingerprints (``record_fingerprint``) count
over the whole run, as the processors count theirs.

Wall time is the run's own time: the time since it started less its approval waits (``pause``;
the processors' rule too, docs/processors.md, Run budgets). A human deciding for 20 minutes does
not use a 10-minute budget. A wait the SDK timed (``run.approval_request``, ``wait_opened`` /
``wait_closed``) is taken off while it lasts and whole; a wait the caller reports
(``run.approval(..., approval_latency_ms=...)``) only back to when the run went quiet: the end
of the last step the gate admitted, or the start of one still open, or the last record or wait.
"""
from __future__ import annotations

import operator
import time
from dataclasses import dataclass, fields
from typing import Any, Callable

from agentstream.schemas.loop_repeats import REPEAT_WINDOW, call_key, count_repeat, note_result
from agentstream.schemas.usage_numbers import exceeds_usd, reaches_usd

from .errors import BudgetExceeded, LackOfProgress


@dataclass(frozen=True)
class Budget:
    """Per-run limits; a field left None falls back to the settings (environment)."""

    max_steps: int | None = None
    max_model_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wall_time_s: float | None = None
    max_repeated_fingerprints: int | None = None

    def resolve(self, fallback: object) -> "Budget":
        return Budget(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                         else getattr(fallback, f.name, None) for f in fields(self)})

    def any(self) -> bool:
        """Any limit set? (asked once per run: one C call, not a generator over ``fields``)"""
        return _limit_values(self).count(None) != _N_LIMITS


_N_LIMITS = len(fields(Budget))
MAX_PENDING = 128  # steps of one run waiting to close, judged then (``RunBudget.pending``)
_limit_values = operator.attrgetter(*(f.name for f in fields(Budget)))


def exceeds(used: float, limit: float) -> bool:
    """A limit is the amount allowed; only going over it is a breach."""
    return used > limit


class RunBudget:
    """Counters of one run against its limits. Methods named ``before_*`` raise when the next
    operation would exceed a limit; ``add_*`` only count."""

    # Wall time (kept only under a wall-time limit; defaults on the class, set per run when they
    # change): approval waits taken off, the open ones (``wait_opened``) and since when, and the
    # last operation the gate admitted: when (``last_at``) and, for a step, the step (its
    # duration says when it ended).
    paused = 0.0
    waits = 0
    wait_from = 0.0
    last_step: object | None = None

    def __init__(self, limits: Budget, run_id: str | None = None) -> None:
        self.limits = limits
        self.run_id = run_id
        self.started = time.monotonic()
        self.steps_started = 0
        self.model_calls = 0
        self.tokens = 0
        self.cost_usd = 0.0
        self.fingerprints: dict[str, int] = {}
        self.last_at = self.started
        # The repeat window (schemas/loop_repeats.py), kept only when repeats are limited.
        self.repeats = limits.max_repeated_fingerprints
        if self.repeats is not None:
            self._win: list[str] = []
            self._cnt: dict[str, int] = {}
            self._res: dict[str, list] = {}  # signature -> [result changes, result digest]
            self._nov: dict[str, Any] = {}  # the novelty balance (loop_repeats.count_repeat)
            # Steps admitted and not yet closed, with their signature (gate.py says what else):
            # one whose signature was still unknown (an LLM step's request digest, a tool's
            # arguments recorded inside the step) takes its place in the window once closed,
            # and each one's result is noted then (``Step``s; typed loosely, this module knows
            # no steps).
            self.pending: list[tuple[Any, str]] = []

    def before_step(self, step: object | None = None) -> None:
        """Raises when starting one more step goes over a limit. ``step``: the step about to
        start (a recorded one, which already ran, is None: an instant at now)."""
        self.check_now(starting=1)
        if self.limits.max_wall_time_s is not None:
            self.last_at = time.monotonic()
            self.last_step = step

    def check_now(self, starting: int = 0) -> None:
        """Raises when the run is over a step or wall-time limit once ``starting`` more steps
        start (``run.check()`` starts none: nothing is counted, and a run at exactly
        ``max_steps`` is not over)."""
        lim = self.limits
        if lim.max_steps is not None and exceeds(self.steps_started + starting, lim.max_steps):
            raise BudgetExceeded("steps", lim.max_steps, self.steps_started, self.run_id)
        if lim.max_wall_time_s is not None:
            elapsed = self.wall_time()
            if exceeds(elapsed, lim.max_wall_time_s):
                raise BudgetExceeded("wall_time_s", lim.max_wall_time_s, round(elapsed, 3),
                                     self.run_id)

    def wall_time(self) -> float:
        """Seconds since the run started, less its approval waits (an open one too)."""
        now = time.monotonic()
        used = now - self.started - self.paused
        if self.waits:
            used -= now - self.wait_from
        return used

    def wait_opened(self) -> None:
        """An approval request starts waiting for its decision (``run.approval_request``)."""
        if self.limits.max_wall_time_s is None:
            return
        if not self.waits:
            self.wait_from = time.monotonic()
        self.waits += 1

    def wait_closed(self) -> None:
        """The decision came: the wait is taken off whole (when the last of several open ones
        ends: overlapping waits are one pause). The approval it records adds nothing more."""
        if not self.waits:
            return
        self.waits -= 1
        if not self.waits:
            now = time.monotonic()
            self.paused += now - self.wait_from
            self.last_at, self.last_step = now, None

    def pause(self, seconds: float) -> None:
        """An approval the caller recorded waited ``seconds``: taken off back to when the run
        went quiet, no further (a claimed wait cannot hide work the gate admitted)."""
        if self.limits.max_wall_time_s is None or not seconds > 0:  # (NaN is not > 0)
            return
        now = time.monotonic()
        quiet_from = self.last_at
        lat = getattr(self.last_step, "_lat", None)  # ns; None while the step is open
        if lat is not None:
            quiet_from += lat / 1e9
        if now > quiet_from:
            self.paused += min(seconds, now - quiet_from)
        self.last_at, self.last_step = now, None

    def before_model_call(self, estimated_tokens: int = 0, estimated_cost_usd: float = 0.0) -> None:
        lim = self.limits
        if lim.max_model_calls is not None and exceeds(self.model_calls + 1, lim.max_model_calls):
            raise BudgetExceeded("model_calls", lim.max_model_calls, self.model_calls, self.run_id)
        # A model call uses at least one token, so a run at its token limit admits none.
        if lim.max_tokens is not None and \
                exceeds(self.tokens + max(estimated_tokens, 1), lim.max_tokens):
            raise BudgetExceeded("tokens", lim.max_tokens, self.tokens, self.run_id)
        if lim.max_cost_usd is not None and (
                exceeds_usd(self.cost_usd + estimated_cost_usd, lim.max_cost_usd)
                or (estimated_cost_usd <= 0 and 0 < lim.max_cost_usd
                    and reaches_usd(self.cost_usd, lim.max_cost_usd))):
            raise BudgetExceeded("cost_usd", lim.max_cost_usd, round(self.cost_usd, 6), self.run_id)

    def add_step(self) -> None:
        self.steps_started += 1

    def add_model_call(self) -> None:
        self.model_calls += 1

    def add_usage(self, tokens: int, cost_usd: float) -> None:
        self.tokens += tokens
        self.cost_usd += cost_usd

    def record_call(self, signature: str,
                    fingerprint: Callable[[str], str] | None = None) -> None:
        """Counts a logical call (not a retry) by its signature in the repeat window. With
        ``fingerprint`` (the call is one the rule applies to: a tool call) raises
        ``LackOfProgress`` when the signature is in the window more often than allowed, naming
        ``fingerprint(signature)``, an opaque digest (made only then)."""
        res = self._res
        _, count = count_repeat(self._win, self._cnt, self._nov, call_key(signature, res), REPEAT_WINDOW,
                                signature.startswith("LLM|"), signature in res)
        limit = self.repeats
        if fingerprint is not None and limit is not None and exceeds(count, limit):
            raise LackOfProgress(fingerprint(signature), count, self.run_id)

    def wait_result(self, step: Any, signature: str) -> None:
        """``step`` (admitted) is judged further once it has closed (``pending``); more than
        ``MAX_PENDING`` open at once in one run (leaked, or a very wide fan-out) and the oldest
        go unjudged."""
        pending = self.pending
        pending.append((step, signature))
        if len(pending) > MAX_PENDING:
            del pending[0]

    def note_result(self, signature: str, digest: Any) -> None:
        """A closed call's result digest (``schemas/loop_repeats.note_result``): a changed one
        is progress, so the signature's next calls count afresh."""
        note_result(self._res, signature, digest, self._win, self._cnt, self._nov)

    def record_fingerprint(self, fingerprint: str) -> None:
        """Counts a fingerprint; raises when it repeats more often than allowed."""
        count = self.fingerprints.get(fingerprint, 0) + 1
        self.fingerprints[fingerprint] = count
        limit = self.limits.max_repeated_fingerprints
        if limit is not None and exceeds(count, limit):
            raise LackOfProgress(fingerprint, count, self.run_id)
