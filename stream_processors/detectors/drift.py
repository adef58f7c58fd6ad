"""Drift statistics: sequential two-sample tests (mSPRT, always-valid p-values) between a new
agent version and the old version's concurrent traffic.

Samples are mergeable summaries (counts, sums, log-scale latency histograms per run and per step
name), so per-batch deltas add up. Each metric is tested with the mixture sequential probability
ratio test of Johari et al. ("Always valid inference", 2017): for a difference estimate ``d``
with variance ``V`` and a normal mixing prior of scale ``tau`` on the true difference,

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

and the always-valid p-value is the running minimum of ``1/Lambda``. It may be looked at after
every batch, at any sample size, and its false-alarm rate stays below ``alpha`` (Ville's
inequality), so there is no fixed minimum sample: only ``min_n`` observations per side for the
variance estimate to mean something. ``alpha`` is split (Bonferroni) across the metrics of a
comparison (``ALPHA_SHARES``). An alert also needs a material effect, so a tiny real change at large n stays quiet.

Metrics: failure rate (two proportions), cost and steps per run (difference of mean logs), run
latency p95 and each step name's latency p95. A p95 is tested as the share of observations
slower than the old version's p95 (a proportion that is ~5 % when nothing changed); it is
material when that share at least doubles. Failure rate and latency are regressions only
(one-sided: a version that fails less or runs faster raises nothing); cost and steps per run
are two-sided (a version that suddenly does half the work is as suspect as one that costs more).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

LAT_BASE = 1.25  # log-scale histogram: bucket i covers [1.25^i, 1.25^(i+1)) ms
MAX_STEP_NAMES = 20


def new_sample() -> dict[str, Any]:
    return {"n": 0, "fail": 0, "lat": {}, "cost": [0.0, 0.0], "steps": [0.0, 0.0], "step_lat": {},
            "lcost": [0.0, 0.0], "lsteps": [0.0, 0.0], "paid": 0}


# math.log(x, base) is math.log(x) / math.log(base) in CPython (its loghelper divides the two), so
# the divisor taken once gives the same float, and the bucket names are made once: ~0.2 µs of the
# ~1 µs a step's drift sample cost on the hot path.
_LN_LAT_BASE = math.log(LAT_BASE)
_BUCKET_NAMES = tuple(str(i) for i in range(512))


def lat_bucket(ms: float) -> str | None:
    """The histogram bucket of a latency, or None for what is not one (NaN, infinity): written
    around the gateway, an infinite latency raised OverflowError here and failed the detectors
    for the whole batch. A huge finite one lands in a high bucket, as any slow run would."""
    if ms <= 1:
        return "0"
    if not ms < math.inf:  # NaN and +inf (NaN compares false with everything)
        return None
    i = int(math.log(ms) / _LN_LAT_BASE)
    return _BUCKET_NAMES[i] if i < 512 else str(i)


def add_run(s: dict[str, Any], failed: bool, duration_ms: float, cost: float, steps: int) -> None:
    s["n"] += 1
    s["fail"] += int(failed)
    b = lat_bucket(duration_ms)
    if b is not None:
        s["lat"][b] = s["lat"].get(b, 0) + 1
    s["cost"][0] += cost
    s["cost"][1] += cost * cost
    s["steps"][0] += steps
    s["steps"][1] += steps * steps
    # Cost and steps per run are compared as logs (ratios of geometric means): a handful of
    # runaway runs would otherwise own the variance and hide a fleet-wide 1.5x change. Cost is
    # over the runs that paid anything: free runs (no model call) would put a second mode far
    # below the rest and triple the variance.
    if cost > 0:
        lc = math.log(cost)
        s["lcost"][0] += lc
        s["lcost"][1] += lc * lc
        s["paid"] = s.get("paid", 0) + 1
    ls = math.log1p(max(steps, 0))
    s["lsteps"][0] += ls
    s["lsteps"][1] += ls * ls


def add_step(s: dict[str, Any], name: str, latency_ms: float) -> None:
    h = s.setdefault("step_lat", {}).get(name)
    if h is None:
        if len(s["step_lat"]) >= MAX_STEP_NAMES:
            return  # bounded: the first step names seen are the ones judged
        h = s["step_lat"][name] = {}
    b = lat_bucket(latency_ms)
    if b is not None:
        h[b] = h.get(b, 0) + 1


def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    a["n"] += b["n"]
    a["fail"] += b["fail"]
    for kk, v in b["lat"].items():
        a["lat"][kk] = a["lat"].get(kk, 0) + v
    a["paid"] = a.get("paid", 0) + b.get("paid", 0)
    for k in ("cost", "steps", "lcost", "lsteps"):
        if k in b:
            a.setdefault(k, [0.0, 0.0])
            a[k][0] += b[k][0]
            a[k][1] += b[k][1]
    sl = a.setdefault("step_lat", {})
    for name, h in (b.get("step_lat") or {}).items():
        mine = sl.get(name)
        if mine is None:
            if len(sl) >= MAX_STEP_NAMES:
                continue
            mine = sl[name] = {}
        for kk, v in h.items():
            mine[kk] = mine.get(kk, 0) + v
    return a


# ---- the sequential test -------------------------------------------------------------------

def msprt_p(d: float, v: float, tau: float, one_sided: bool = False) -> float:
    """1/Lambda of the normal mSPRT for a difference estimate ``d`` with variance ``v``.

    ``one_sided``: the mixing prior is the half-normal on increases, which gives
    ``Lambda+ = 2 * Lambda * Phi(d * tau / sqrt(v * (v + tau^2)))`` (the posterior mass above 0):
    about twice the evidence for an increase, none for a decrease."""
    if v <= 0:
        return 1.0
    t2 = tau * tau
    log_lam = 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    if one_sided:
        phi = 0.5 * math.erfc(-d * tau / math.sqrt(v * (v + t2)) / math.sqrt(2))
        log_lam += math.log(2 * phi) if phi > 0 else -700.0
    return 1.0 if log_lam <= 0 else math.exp(-min(log_lam, 700.0))


def proportions(x1: int, n1: int, x2: int, n2: int, tau: float, one_sided: bool = False) -> tuple[float, float]:
    """(p2 - p1, 1/Lambda), tested on the variance-stabilised scale 2*asin(sqrt(p)) where each
    side's variance is 1/n whatever the rate (no plug-in variance that is ~0 for rare failures,
    and more power than a pooled z at rates of a few per cent)."""
    # Half an event each side keeps 0 and 1 off the edges (Anscombe-like continuity).
    a1 = 2 * math.asin(math.sqrt((x1 + 0.375) / (n1 + 0.75)))
    a2 = 2 * math.asin(math.sqrt((x2 + 0.375) / (n2 + 0.75)))
    return x2 / n2 - x1 / n1, msprt_p(a2 - a1, 1 / n1 + 1 / n2, tau, one_sided)


def means(s1: list[float], n1: int, s2: list[float], n2: int, tau: float) -> tuple[float, float]:
    """(difference of means, 1/Lambda) from [sum, sum of squares] of each sample."""
    m1, m2 = s1[0] / n1, s2[0] / n2
    v1 = max(s1[1] / n1 - m1 * m1, 0.0) * n1 / max(n1 - 1, 1)
    v2 = max(s2[1] / n2 - m2 * m2, 0.0) * n2 / max(n2 - 1, 1)
    return m2 - m1, msprt_p(m2 - m1, v1 / n1 + v2 / n2, tau)


def quantile_edge(h: Mapping[str, int], q: float) -> int:
    """The bucket index holding the q-quantile of histogram ``h``."""
    n = sum(h.values())
    c = 0
    for k in sorted(h, key=int):
        c += h[k]
        if c >= q * n:
            return int(k)
    return 0


def above(h: Mapping[str, int], edge: int) -> int:
    return sum(v for k, v in h.items() if int(k) > edge)


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.05          # per comparison (one rollout), shared out by ALPHA_SHARES
    min_n: int = 30              # per side, for the variance estimates (not a power gate)
    tau_failure: float = 0.25    # mixing scale (arcsine units; 2 % -> 10 % is 0.36)
    tau_log: float = 0.3         # ... change of a mean log (0.3: about x1.35)
    tau_tail: float = 0.25       # ... share above the old p95 (arcsine units; 5 % -> 10 % is 0.19)
    min_failure_diff: float = 0.02
    min_rel_change: float = 0.2
    min_tail_ratio: float = 2.0  # p95 material: share above the old p95 at least x2


def compare(base: Mapping[str, Any], cur: Mapping[str, Any], cfg: DriftConfig = DriftConfig()
            ) -> dict[str, dict[str, float]]:
    """Per metric: effect, 1/Lambda of this look, and whether the effect is material."""
    out: dict[str, dict[str, float]] = {}
    n1, n2 = base["n"], cur["n"]
    if n1 >= cfg.min_n and n2 >= cfg.min_n:
        d, p = proportions(base["fail"], n1, cur["fail"], n2, cfg.tau_failure, one_sided=True)
        out["failure_rate"] = {"effect": d, "p_value": p, "material": float(d >= cfg.min_failure_diff),
                               "old_value": base["fail"] / n1, "new_value": cur["fail"] / n2}
        for k, m1, m2 in (("cost", base.get("paid", 0), cur.get("paid", 0)), ("steps", n1, n2)):
            if m1 < cfg.min_n or m2 < cfg.min_n:
                continue
            d, p = means(base["l" + k], m1, cur["l" + k], m2, cfg.tau_log)
            rel = math.exp(d) - 1  # change of the geometric mean
            out[f"{k}_per_run"] = {"effect": rel, "p_value": p,
                                   "material": float(abs(rel) >= cfg.min_rel_change),
                                   "old_mean": base[k][0] / n1, "new_mean": cur[k][0] / n2}
        out["run_latency_p95"] = _tail(base["lat"], cur["lat"], cfg)
    b_steps, c_steps = base.get("step_lat") or {}, cur.get("step_lat") or {}
    for name in sorted(set(b_steps) & set(c_steps)):
        if sum(b_steps[name].values()) >= cfg.min_n and sum(c_steps[name].values()) >= cfg.min_n:
            out[f"step_latency_p95:{name}"] = _tail(b_steps[name], c_steps[name], cfg)
    return out


def _tail(h1: Mapping[str, int], h2: Mapping[str, int], cfg: DriftConfig) -> dict[str, float]:
    n1, n2 = sum(h1.values()), sum(h2.values())
    edge = quantile_edge(h1, 0.95)
    x1, x2 = above(h1, edge), above(h2, edge)
    d, p = proportions(x1, n1, x2, n2, cfg.tau_tail, one_sided=True)
    s1, s2 = max(x1 / n1, 0.5 / n1), max(x2 / n2, 0.5 / n2)
    ratio = s2 / s1
    return {"effect": d, "p_value": p, "material": float(ratio >= cfg.min_tail_ratio and d >= 0.02),
            "baseline_p95_ms": LAT_BASE ** (edge + 1), "current_p95_ms": LAT_BASE ** (quantile_edge(h2, 0.95) + 1),
            "share_above_baseline_p95": x2 / n2}


# Shares of a comparison's alpha per metric (Bonferroni with unequal weights): the failure rate,
# what an operator acts on first, gets the most; step names split their share evenly.
ALPHA_SHARES = {"failure_rate": 0.4, "cost_per_run": 0.15, "steps_per_run": 0.1, "run_latency_p95": 0.15,
                "step_latency_p95": 0.2}


def metric_alpha(metric: str, step_names: int, cfg: DriftConfig) -> float:
    if metric.startswith("step_latency_p95:"):
        return cfg.alpha * ALPHA_SHARES["step_latency_p95"] / max(1, step_names)
    return cfg.alpha * ALPHA_SHARES[metric]
