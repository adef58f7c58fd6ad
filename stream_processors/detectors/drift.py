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
comparison. An alert also needs a material effect, so a tiny real change at large n stays quiet.

Metrics: failure rate (two proportions), cost and steps per run (difference of means), run
latency p95 and each step name's latency p95. A p95 is tested as the share of observations
slower than the old version's p95 (a proportion that is ~5 % when nothing changed); it is
material when that share at least doubles or halves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

LAT_BASE = 1.25  # log-scale histogram: bucket i covers [1.25^i, 1.25^(i+1)) ms
MAX_STEP_NAMES = 20


def new_sample() -> dict[str, Any]:
    return {"n": 0, "fail": 0, "lat": {}, "cost": [0.0, 0.0], "steps": [0.0, 0.0], "step_lat": {}}


def lat_bucket(ms: float) -> str:
    return str(0 if ms <= 1 else int(math.log(ms, LAT_BASE)))


def add_run(s: dict[str, Any], failed: bool, duration_ms: float, cost: float, steps: int) -> None:
    s["n"] += 1
    s["fail"] += int(failed)
    b = lat_bucket(duration_ms)
    s["lat"][b] = s["lat"].get(b, 0) + 1
    s["cost"][0] += cost
    s["cost"][1] += cost * cost
    s["steps"][0] += steps
    s["steps"][1] += steps * steps


def add_step(s: dict[str, Any], name: str, latency_ms: float) -> None:
    h = s.setdefault("step_lat", {}).get(name)
    if h is None:
        if len(s["step_lat"]) >= MAX_STEP_NAMES:
            return  # bounded: the first step names seen are the ones judged
        h = s["step_lat"][name] = {}
    b = lat_bucket(latency_ms)
    h[b] = h.get(b, 0) + 1


def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    a["n"] += b["n"]
    a["fail"] += b["fail"]
    for kk, v in b["lat"].items():
        a["lat"][kk] = a["lat"].get(kk, 0) + v
    for k in ("cost", "steps"):
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

def msprt_p(d: float, v: float, tau: float) -> float:
    """1/Lambda of the normal mSPRT for a difference estimate ``d`` with variance ``v``."""
    if v <= 0:
        return 1.0
    t2 = tau * tau
    log_lam = 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    return 1.0 if log_lam <= 0 else math.exp(-min(log_lam, 700.0))


def proportions(x1: int, n1: int, x2: int, n2: int, tau: float) -> tuple[float, float]:
    """(p2 - p1, 1/Lambda) with the pooled variance (the null's)."""
    pool = (x1 + x2) / (n1 + n2)
    # A pooled rate of 0 (nothing failed yet) has no variance; half an event keeps it positive.
    pool = min(max(pool, 0.5 / (n1 + n2)), 1 - 0.5 / (n1 + n2))
    v = pool * (1 - pool) * (1 / n1 + 1 / n2)
    d = x2 / n2 - x1 / n1
    return d, msprt_p(d, v, tau)


def means(s1: list[float], n1: int, s2: list[float], n2: int, tau_rel: float) -> tuple[float, float]:
    """(relative change of the mean, 1/Lambda); ``tau`` scales with the old mean."""
    m1, m2 = s1[0] / n1, s2[0] / n2
    v1 = max(s1[1] / n1 - m1 * m1, 0.0) * n1 / max(n1 - 1, 1)
    v2 = max(s2[1] / n2 - m2 * m2, 0.0) * n2 / max(n2 - 1, 1)
    v = v1 / n1 + v2 / n2
    tau = tau_rel * abs(m1) if m1 else tau_rel
    rel = (m2 - m1) / m1 if m1 else 0.0
    return rel, msprt_p(m2 - m1, v, tau)


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
    alpha: float = 0.02          # per comparison (one rollout): half to the 4 run metrics, half to step names
    min_n: int = 30              # per side, for the variance estimates (not a power gate)
    tau_failure: float = 0.05    # mixing scale: the failure-rate change worth finding
    tau_rel: float = 0.3         # ... relative change of a mean
    tau_tail: float = 0.05       # ... change of the share above the old p95
    min_failure_diff: float = 0.02
    min_rel_change: float = 0.2
    min_tail_ratio: float = 2.0  # p95 material: share above the old p95 x2 (or /2)


def compare(base: Mapping[str, Any], cur: Mapping[str, Any], cfg: DriftConfig = DriftConfig()
            ) -> dict[str, dict[str, float]]:
    """Per metric: effect, 1/Lambda of this look, and whether the effect is material."""
    out: dict[str, dict[str, float]] = {}
    n1, n2 = base["n"], cur["n"]
    if n1 >= cfg.min_n and n2 >= cfg.min_n:
        d, p = proportions(base["fail"], n1, cur["fail"], n2, cfg.tau_failure)
        out["failure_rate"] = {"effect": d, "p_value": p, "material": float(abs(d) >= cfg.min_failure_diff),
                               "old_value": base["fail"] / n1, "new_value": cur["fail"] / n2}
        for k in ("cost", "steps"):
            rel, p = means(base[k], n1, cur[k], n2, cfg.tau_rel)
            out[f"{k}_per_run"] = {"effect": rel, "p_value": p, "material": float(abs(rel) >= cfg.min_rel_change),
                                   "old_value": base[k][0] / n1, "new_value": cur[k][0] / n2}
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
    d, p = proportions(x1, n1, x2, n2, cfg.tau_tail)
    s1, s2 = max(x1 / n1, 0.5 / n1), max(x2 / n2, 0.5 / n2)
    ratio = s2 / s1
    material = ratio >= cfg.min_tail_ratio or ratio <= 1 / cfg.min_tail_ratio
    return {"effect": d, "p_value": p, "material": float(material and abs(d) >= 0.02),
            "baseline_p95_ms": LAT_BASE ** (edge + 1), "current_p95_ms": LAT_BASE ** (quantile_edge(h2, 0.95) + 1),
            "share_above_baseline_p95": x2 / n2}


def metric_alpha(metric: str, step_names: int, cfg: DriftConfig) -> float:
    """Bonferroni share of one metric: half of alpha to the 4 run metrics, half to the step
    names the baseline has (so many step names do not dilute the run metrics)."""
    if metric.startswith("step_latency_p95:"):
        return cfg.alpha / 2 / max(1, step_names)
    return cfg.alpha / 8
