"""The verdict of ``agentstream compare``: is a candidate version of an agent worse than its
baseline? Pure: the API's ``/v1/compare`` answer and the limits in, checks and an outcome out.

A metric regresses only when both hold:

- the change is larger than the limit the team set (failure rate in percentage points; latency
  and cost per run in percent), so a tiny shift that a large sample makes significant does not
  fail a release;
- the API's test for it is significant at its alpha (``SIGNIFICANCE_ALPHA``), so noise in a small
  sample does not either.

Latency is judged twice: the median by the Mann-Whitney U test (the whole distribution moved)
and the p95 by the Kolmogorov-Smirnov test (the tail grew while the median held). Cost per run
by its Mann-Whitney U test. A changed tool mix (chi-square) is reported, and fails only when
asked to: a new release often calls tools differently on purpose.

Too little data is its own outcome, never a pass: a cohort with fewer finished runs than
``min_runs``, or a test the API could not run (``p_value`` null), makes the gate
``insufficient`` unless that is allowed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

PASS, REGRESSION, INSUFFICIENT = "pass", "regression", "insufficient"
# Exit codes for CI: 2 is taken by usage and API errors.
EXIT_CODES = {PASS: 0, REGRESSION: 1, INSUFFICIENT: 3}

REGRESSED, IMPROVED, UNCHANGED, CHANGED, NO_DATA = "regressed", "improved", "unchanged", "changed", "no data"


@dataclass(frozen=True)
class GateLimits:
    max_failure_rate_increase_pts: float = 2.0
    max_latency_increase_pct: float = 10.0
    max_cost_increase_pct: float = 10.0
    min_runs: int = 30
    fail_on_tool_mix: bool = False
    allow_insufficient: bool = False


@dataclass
class Check:
    metric: str
    status: str
    baseline: float | None
    candidate: float | None
    change: float | None  # percentage points for the failure rate, percent otherwise
    unit: str
    limit: float | None
    test: str
    p_value: float | None
    note: str = ""


@dataclass
class Verdict:
    outcome: str
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "exit_code": self.exit_code, "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks]}


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pct_change(base: float | None, cand: float | None) -> float | None:
    if base is None or cand is None:
        return None
    if base == 0:
        return 0.0 if cand == 0 else math.inf
    return (cand / base - 1.0) * 100.0


def _judge(metric: str, base: float | None, cand: float | None, change: float | None, unit: str,
           limit: float, test_name: str, test: Mapping[str, Any] | None) -> Check:
    p = _num((test or {}).get("p_value"))
    significant = bool((test or {}).get("significant")) and p is not None
    check = Check(metric, UNCHANGED, base, cand, None if change is None or math.isinf(change) else round(change, 2),
                  unit, limit, test_name, p)
    if change is None or p is None:
        check.status, check.note = NO_DATA, "too little data for the test"
        return check
    if significant and change > limit:
        check.status = REGRESSED
    elif significant and change < -limit:
        check.status = IMPROVED
    elif significant:
        check.note = "significant, within the limit"
    else:
        check.note = "not significant"
    if math.isinf(change):
        check.note = (check.note + "; " if check.note else "") + "from zero"
    return check


def judge(comparison: Mapping[str, Any], limits: GateLimits = GateLimits()) -> Verdict:
    """The gate's verdict on a ``/v1/compare`` answer (``a`` the baseline, ``b`` the candidate)."""
    a, b = comparison.get("a") or {}, comparison.get("b") or {}
    tests = comparison.get("tests") or {}
    checks = []

    fr_a, fr_b = _num(a.get("failure_rate")), _num(b.get("failure_rate"))
    fr_change = None if fr_a is None or fr_b is None else (fr_b - fr_a) * 100.0
    checks.append(_judge("failure rate", fr_a, fr_b, fr_change, "pts", limits.max_failure_rate_increase_pts,
                         "two-proportion z", tests.get("failure_rate")))
    for metric, key, test_key, test_name, limit in (
            ("latency p50", "latency_p50_ms", "latency_mann_whitney", "Mann-Whitney U",
             limits.max_latency_increase_pct),
            ("latency p95", "latency_p95_ms", "latency_ks", "Kolmogorov-Smirnov", limits.max_latency_increase_pct),
            ("cost per run", "cost_per_run_usd", "cost_mann_whitney", "Mann-Whitney U", limits.max_cost_increase_pct)):
        base, cand = _num(a.get(key)), _num(b.get(key))
        checks.append(_judge(metric, base, cand, _pct_change(base, cand), "%", limit, test_name, tests.get(test_key)))
    mix = tests.get("tool_mix_chi_square") or {}
    mix_p = _num(mix.get("p_value"))
    mix_status = NO_DATA if mix_p is None else CHANGED if mix.get("significant") else UNCHANGED
    shift = _tool_shift(comparison.get("tool_mix") or [])
    checks.append(Check("tool mix", mix_status, None, None, None, "", None, "chi-square", mix_p,
                        "too few tools or calls for the test" if mix_p is None else shift))

    reasons = []
    for c in checks:
        if c.status == REGRESSED:
            reasons.append(f"{c.metric}: {format_value(c.baseline, c.metric)} -> "
                           f"{format_value(c.candidate, c.metric)} ({format_change(c)}, limit "
                           f"{c.limit:g}{' pts' if c.unit == 'pts' else '%'}, p={c.p_value:.3g})")
        elif c.metric == "tool mix" and c.status == CHANGED and limits.fail_on_tool_mix:
            reasons.append(f"tool mix changed (p={c.p_value:.3g}): {c.note}")
    short = [f"{name} has {int(_num(s.get('finished_runs')) or 0)} finished runs (at least {limits.min_runs} needed)"
             for name, s in (("baseline", a), ("candidate", b))
             if (_num(s.get("finished_runs")) or 0) < limits.min_runs]
    untested = [c.metric for c in checks[:4] if c.status == NO_DATA]
    if reasons:
        return Verdict(REGRESSION, checks, reasons)
    if (short or untested) and not limits.allow_insufficient:
        return Verdict(INSUFFICIENT, checks, short + ([f"not tested: {', '.join(untested)}"] if untested else []))
    return Verdict(PASS, checks, short)


def _tool_shift(mix: list[Mapping[str, Any]], top: int = 3) -> str:
    """The tools whose share of calls moved most, largest first ("search 80% -> 50%")."""
    moved = []
    for m in mix:
        sa, sb = _num(m.get("a_share")) or 0.0, _num(m.get("b_share")) or 0.0
        moved.append((abs(sb - sa), str(m.get("tool")), sa, sb))
    moved.sort(key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{tool} {sa * 100:.0f}% -> {sb * 100:.0f}%" for d, tool, sa, sb in moved[:top] if d > 0)


def format_value(v: float | None, metric: str) -> str:
    """A figure as the terminal shows it: a rate in percent, a cost in dollars, a latency in ms."""
    if v is None:
        return "-"
    if metric == "failure rate":
        return f"{v * 100:.1f}%"
    if metric == "cost per run":
        return f"${v:.4f}"
    return f"{v:.0f} ms"


def format_change(c: Check) -> str:
    if c.change is None:
        return "from zero" if c.status != NO_DATA else ""
    change = 0.0 if abs(c.change) < 0.05 else c.change  # no "-0.0%"
    return f"{change:+.1f}{' pts' if c.unit == 'pts' else '%'}"
