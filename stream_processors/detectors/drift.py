"""Drift statistics: compare two samples of runs (new version vs previous, or current window vs
trailing baseline) on failure rate, latency distribution, tool choice, cost and steps per run.

Samples are mergeable summaries (counts, log-scale latency histograms, sums), so per-batch deltas
can be added up in a table. Tests report effect size and p-value; an alert needs a minimum sample
size, a small p-value AND a material effect, and hysteresis (enter below ``alpha``, leave only
above ``exit_alpha``) keeps a lasting drift to one alert.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

LAT_BASE = 1.25  # log-scale histogram: bucket i covers [1.25^i, 1.25^(i+1)) ms


def new_sample() -> dict[str, Any]:
    return {"n": 0, "fail": 0, "lat": {}, "tools": {}, "cost": [0.0, 0.0], "steps": [0.0, 0.0]}


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


def add_tool(s: dict[str, Any], tool: str) -> None:
    s["tools"][tool] = s["tools"].get(tool, 0) + 1


def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    a["n"] += b["n"]
    a["fail"] += b["fail"]
    for k in ("lat", "tools"):
        for kk, v in b[k].items():
            a[k][kk] = a[k].get(kk, 0) + v
    for k in ("cost", "steps"):
        a[k][0] += b[k][0]
        a[k][1] += b[k][1]
    return a


# ---- tests --------------------------------------------------------------------------------

def two_proportion(f1: int, n1: int, f2: int, n2: int) -> tuple[float, float]:
    """(difference p2 - p1, two-sided p-value) of a pooled z-test."""
    p1, p2 = f1 / n1, f2 / n2
    pool = (f1 + f2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    if se == 0:
        return p2 - p1, 1.0
    z = (p2 - p1) / se
    return p2 - p1, math.erfc(abs(z) / math.sqrt(2))


def ks_hist(h1: Mapping[str, int], h2: Mapping[str, int]) -> tuple[float, float]:
    """(KS statistic D, asymptotic p-value) on two histograms over the same log buckets."""
    n1, n2 = sum(h1.values()), sum(h2.values())
    keys = sorted({int(k) for k in h1} | {int(k) for k in h2})
    c1 = c2 = 0.0
    d = 0.0
    for k in keys:
        c1 += h1.get(str(k), 0) / n1
        c2 += h2.get(str(k), 0) / n2
        d = max(d, abs(c1 - c2))
    en = math.sqrt(n1 * n2 / (n1 + n2))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.3:  # the alternating series does not converge there; Q_KS(0.3) is 1 to 1e-6
        return d, 1.0
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return d, min(1.0, max(0.0, p))


def psi(h1: Mapping[str, int], h2: Mapping[str, int]) -> float:
    n1, n2 = sum(h1.values()), sum(h2.values())
    total = 0.0
    for k in set(h1) | set(h2):
        a = max(h1.get(k, 0) / n1, 1e-4)
        b = max(h2.get(k, 0) / n2, 1e-4)
        total += (b - a) * math.log(b / a)
    return total


def _gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (Numerical Recipes series / continued fraction)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        ap, s, d = a, 1.0 / a, 1.0 / a
        for _ in range(500):
            ap += 1
            d *= x / ap
            s += d
            if abs(d) < abs(s) * 1e-12:
                break
        return max(0.0, 1.0 - s * math.exp(-x + a * math.log(x) - gln))
    b, c, d = x + 1 - a, 1e300, 1.0 / (x + 1 - a)
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        h *= d * c
        if abs(d * c - 1) < 1e-12:
            break
    return math.exp(-x + a * math.log(x) - gln) * h


def chi_square(c1: Mapping[str, int], c2: Mapping[str, int]) -> tuple[float, float, float]:
    """(chi2, p-value, Jensen-Shannon divergence) of two categorical count tables."""
    keys = sorted(set(c1) | set(c2))
    n1, n2 = sum(c1.values()), sum(c2.values())
    n = n1 + n2
    chi2 = 0.0
    js = 0.0
    for k in keys:
        a, b = c1.get(k, 0), c2.get(k, 0)
        col = a + b
        for obs, row in ((a, n1), (b, n2)):
            exp = row * col / n
            if exp > 0:
                chi2 += (obs - exp) ** 2 / exp
        pa, pb = a / n1, b / n2
        m = (pa + pb) / 2
        js += (pa * math.log2(pa / m) if pa else 0) / 2 + (pb * math.log2(pb / m) if pb else 0) / 2
    dof = max(1, len(keys) - 1)
    return chi2, _gammaincc(dof / 2, chi2 / 2), js


def welch(s1: list[float], n1: int, s2: list[float], n2: int) -> tuple[float, float]:
    """(relative change of the mean, two-sided p-value, normal approximation: n is large here)."""
    m1, m2 = s1[0] / n1, s2[0] / n2
    v1 = max(s1[1] / n1 - m1 * m1, 0.0) * n1 / max(n1 - 1, 1)
    v2 = max(s2[1] / n2 - m2 * m2, 0.0) * n2 / max(n2 - 1, 1)
    se = math.sqrt(v1 / n1 + v2 / n2)
    if se == 0:
        return 0.0, 1.0
    rel = (m2 - m1) / m1 if m1 else 0.0
    return rel, math.erfc(abs((m2 - m1) / se) / math.sqrt(2))


@dataclass(frozen=True)
class DriftConfig:
    min_runs: int = 300
    alpha: float = 1e-4          # enter the drifting state
    exit_alpha: float = 0.05     # leave it (hysteresis)
    min_failure_diff: float = 0.02
    min_ks: float = 0.1
    min_js: float = 0.05
    min_rel_change: float = 0.25


def compare(base: Mapping[str, Any], cur: Mapping[str, Any], cfg: DriftConfig = DriftConfig()
            ) -> dict[str, dict[str, float]]:
    """Per metric: effect, p-value and whether it is material. Empty below the minimum samples."""
    if base["n"] < cfg.min_runs or cur["n"] < cfg.min_runs:
        return {}
    out: dict[str, dict[str, float]] = {}
    diff, p = two_proportion(base["fail"], base["n"], cur["fail"], cur["n"])
    out["failure_rate"] = {"effect": diff, "p_value": p, "material": float(diff >= cfg.min_failure_diff),
                           "baseline": base["fail"] / base["n"], "current": cur["fail"] / cur["n"]}
    d, p = ks_hist(base["lat"], cur["lat"])
    out["latency"] = {"effect": d, "p_value": p, "material": float(d >= cfg.min_ks), "psi": psi(base["lat"], cur["lat"])}
    if sum(base["tools"].values()) >= cfg.min_runs and sum(cur["tools"].values()) >= cfg.min_runs:
        chi2, p, js = chi_square(base["tools"], cur["tools"])
        out["tool_choice"] = {"effect": js, "p_value": p, "material": float(js >= cfg.min_js), "chi2": chi2}
    for k in ("cost", "steps"):
        rel, p = welch(base[k], base["n"], cur[k], cur["n"])
        out[f"{k}_per_run"] = {"effect": rel, "p_value": p, "material": float(abs(rel) >= cfg.min_rel_change)}
    return out


def transitions(result: Mapping[str, Mapping[str, float]], drifting: dict[str, bool],
                cfg: DriftConfig = DriftConfig()) -> list[str]:
    """Updates the per-metric drifting flags; returns the metrics that just entered drift."""
    entered = []
    for metric, r in result.items():
        if not drifting.get(metric) and r["p_value"] < cfg.alpha and r["material"]:
            drifting[metric] = True
            entered.append(metric)
        elif drifting.get(metric) and (r["p_value"] > cfg.exit_alpha or not r["material"]):
            drifting[metric] = False
    return entered
