"""Significance tests for version comparison and drift, in pure Python (no scipy).

- failure rates: two-proportion z-test (pooled), two-sided
- latency / cost distributions: Mann-Whitney U (normal approximation with tie correction) and
  the two-sample Kolmogorov-Smirnov test (asymptotic Kolmogorov distribution)
- tool mix: Pearson's chi-square test of homogeneity on a 2 x k table

Each returns a dict with the statistic, the p-value and ``significant`` at ``alpha``. With too
little data a test returns ``p_value: None`` and ``significant: False`` rather than guessing.
"""
from __future__ import annotations

import math
from typing import Sequence


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _result(test: str, statistic: float | None, p: float | None, alpha: float, **extra) -> dict:
    if p is not None:
        p = min(1.0, max(0.0, p))
    return {"test": test, "statistic": statistic, "p_value": p,
            "significant": p is not None and p < alpha, **extra}


def two_proportion_z(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> dict:
    """H0: p1 == p2, with x successes (here: failures) out of n."""
    if n1 == 0 or n2 == 0:
        return _result("two_proportion_z", None, None, alpha)
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return _result("two_proportion_z", 0.0, 1.0, alpha, difference=p2 - p1)
    z = (p2 - p1) / se
    return _result("two_proportion_z", z, 2 * normal_sf(abs(z)), alpha, difference=p2 - p1)


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of ``values`` and the sizes of tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def mann_whitney_u(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> dict:
    """Two-sided; U is for sample ``a``. Normal approximation with tie and continuity correction."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return _result("mann_whitney_u", None, None, alpha)
    ranks, ties = _ranks(list(a) + list(b))
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    n = n1 + n2
    tie_term = sum(t ** 3 - t for t in ties) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term))
    if sigma == 0:
        return _result("mann_whitney_u", u1, 1.0, alpha)
    z = (abs(u1 - mu) - 0.5) / sigma
    z = max(z, 0.0)
    # common-language effect size: P(a > b) + 0.5 P(a == b)
    return _result("mann_whitney_u", u1, 2 * normal_sf(z), alpha, effect=u1 / (n1 * n2))


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution."""
    if x <= 0:
        return 1.0
    if x < 1.18:
        # The alternating series converges slowly here; use the theta-function form.
        y = math.exp(-(math.pi ** 2) / (8 * x * x))
        s = sum(y ** ((2 * k - 1) ** 2) for k in range(1, 12))
        return 1.0 - math.sqrt(2 * math.pi) / x * s
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return total


def ks_2samp(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> dict:
    """Two-sided two-sample KS test, asymptotic p-value (Stephens' small-sample adjustment)."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return _result("ks_2samp", None, None, alpha)
    xa, xb = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < n1 and j < n2:
        v = min(xa[i], xb[j])
        while i < n1 and xa[i] == v:
            i += 1
        while j < n2 and xb[j] == v:
            j += 1
        d = max(d, abs(i / n1 - j / n2))
    en = math.sqrt(n1 * n2 / (n1 + n2))
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    return _result("ks_2samp", d, p, alpha)


def _gamma_q(s: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(s, x) (Numerical Recipes' series / continued fraction)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(s)
    if x < s + 1:
        term = total = 1.0 / s
        ap = s
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + s * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - s
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + s * math.log(x) - gln) * h


def chi2_sf(x: float, dof: int) -> float:
    return _gamma_q(dof / 2, x / 2)


def chi_square_homogeneity(a: dict[str, int], b: dict[str, int], alpha: float = 0.05) -> dict:
    """Do two count vectors (e.g. tool calls by tool) come from one distribution?"""
    cats = sorted(k for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0) > 0)
    na, nb = sum(a.get(k, 0) for k in cats), sum(b.get(k, 0) for k in cats)
    if len(cats) < 2 or na == 0 or nb == 0:
        return _result("chi_square", None, None, alpha, dof=max(len(cats) - 1, 0))
    n = na + nb
    stat = 0.0
    for k in cats:
        col = a.get(k, 0) + b.get(k, 0)
        for obs, row in ((a.get(k, 0), na), (b.get(k, 0), nb)):
            exp = row * col / n
            stat += (obs - exp) ** 2 / exp
    dof = len(cats) - 1
    return _result("chi_square", stat, chi2_sf(stat, dof), alpha, dof=dof)
