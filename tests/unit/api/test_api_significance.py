"""The pure statistics behind /v1/compare and /v1/drift, against textbook values."""
from __future__ import annotations

import random

import pytest

from agentstream.api.significance import (
    chi2_sf, chi_square_homogeneity, kolmogorov_sf, ks_2samp, mann_whitney_u, normal_sf,
    two_proportion_z,
)


def test_normal_and_chi2_tails():
    assert normal_sf(1.959964) == pytest.approx(0.025, abs=1e-6)
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(5.991465, 2) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(18.307038, 10) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(0.0, 3) == 1.0


def test_kolmogorov_distribution():
    # Critical values of the Kolmogorov distribution: P(K > 1.3581) = 0.05, P(K > 1.6276) = 0.01
    assert kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-4)
    assert kolmogorov_sf(1.6276) == pytest.approx(0.01, abs=1e-4)
    assert kolmogorov_sf(0.5) == pytest.approx(0.9639, abs=1e-4)
    # both branches agree where they meet
    assert kolmogorov_sf(1.18 - 1e-12) == pytest.approx(kolmogorov_sf(1.18), abs=1e-9)


def test_two_proportion_z():
    r = two_proportion_z(10, 100, 25, 100)
    # pooled p = 0.175, se = sqrt(.175*.825*.02) = 0.053735; z = 0.15 / se = 2.7914
    assert r["statistic"] == pytest.approx(2.7914, abs=1e-3)
    assert r["p_value"] == pytest.approx(0.00525, abs=2e-4)
    assert r["significant"] is True
    assert two_proportion_z(5, 100, 6, 100)["significant"] is False
    assert two_proportion_z(0, 0, 1, 2)["p_value"] is None


def test_mann_whitney_known_example():
    a = [1.1, 2.2, 3.3, 4.4]
    b = [5.5, 6.6, 7.7, 8.8, 9.9]
    r = mann_whitney_u(a, b)
    assert r["statistic"] == 0.0  # every a below every b
    assert r["p_value"] == pytest.approx(0.0200, abs=2e-3)  # normal approx with continuity
    same = mann_whitney_u([1, 2, 3, 4, 5] * 4, [1, 2, 3, 4, 5] * 4)
    assert same["p_value"] == pytest.approx(1.0) and not same["significant"]


def test_ks_detects_shift_not_noise():
    rng = random.Random(7)
    a = [rng.gauss(0, 1) for _ in range(400)]
    b = [rng.gauss(0, 1) for _ in range(400)]
    c = [rng.gauss(0.5, 1) for _ in range(400)]
    assert not ks_2samp(a, b)["significant"]
    assert ks_2samp(a, c)["significant"] and ks_2samp(a, c)["p_value"] < 1e-6
    assert mann_whitney_u(a, c)["significant"]


def test_chi_square_tool_mix():
    r = chi_square_homogeneity({"search": 50, "calc": 50}, {"search": 30, "calc": 70})
    # 2x2 table [[50,50],[30,70]]: chi2 = 8.3333, dof 1, p = 0.00389
    assert r["statistic"] == pytest.approx(8.3333, abs=1e-3)
    assert r["p_value"] == pytest.approx(0.00389, abs=1e-4)
    assert r["dof"] == 1
    assert chi_square_homogeneity({"a": 3}, {"a": 5})["p_value"] is None
