"""Documented worked examples (designs-and-power.md §1-§2.3), reproduced to the precision printed.

Tolerance: half a unit in the last printed digit of each source's number.
Each number carries its source beside it.
"""

from __future__ import annotations

import pytest

from knowdo.designs.planner import (
    CovarianceModel,
    Design,
    binary_ml_power,
    hussey_hughes_uwv,
    inflate_for_clustering,
    plan_crt,
    plan_individual,
    plan_longitudinal,
    plan_stepped_wedge,
)


def printed(value: float, reference: str) -> bool:
    """True when ``value`` rounds to the printed ``reference`` (same number of decimals)."""
    decimals = len(reference.split(".")[1]) if "." in reference else 0
    return abs(value - float(reference)) <= 0.5 * 10**-decimals + 1e-12


# ---------------------------------------------------------------- §1 parallel CRT
def test_cluster_power_cpa_normal_clusters_and_power() -> None:
    # clusterPower cpa.normal documentation: m=10, d=1, ICC=0.1, vart=5 -> "nclusters > 15" (15.93; designs-and-power.md
    # §1 example 1), and with 16 clusters per arm power = 0.801766.
    solved = plan_crt(icc=0.1, cluster_size=10, delta=1, sd=5**0.5, power=0.8)
    assert printed(solved.details["clusters_per_arm_exact"], "15.93")
    assert solved.parameters["clusters_per_arm"] == 16
    assert printed(plan_crt(icc=0.1, clusters_per_arm=16, cluster_size=10, delta=1, sd=5**0.5).power, "0.801766")


def test_cluster_power_unequal_sizes_needs_van_breukelen() -> None:
    # clusterPower cpa.normal documentation: 20 clusters/arm, mean size 100, CV 0.5, d=0.2, ICC 0.1, sigma_b_sq 0.1
    # (so vart = 1) -> power 0.4559881, reproduced only with the van Breukelen DE (designs-and-power.md §1 example 2).
    args = {"icc": 0.1, "clusters_per_arm": 20, "cluster_size": 100, "cv": 0.5, "delta": 0.2, "sd": 1.0}
    assert printed(plan_crt(**args, unequal="van-breukelen").power, "0.4559881")
    assert not printed(plan_crt(**args, unequal="eldridge").power, "0.4559881")


def test_stata_sampclus() -> None:
    # Stata `sampsi 12 16, sd(5)` then `sampclus, obsclus(10) rho(0.3)` (vikjam/pwrcalc tests): 25/arm unadjusted,
    # 93/arm adjusted, 19 clusters (designs-and-power.md §1 example 3).
    individual = plan_individual(delta=4, sd=5, power=0.8)
    assert individual.parameters["n_per_arm"] == 25
    assert inflate_for_clustering(individual.parameters["n_per_arm"], 10, 0.3) == (93, 19)


# ---------------------------------------------------------- §2.3 stepped wedge
def test_swcrtdesign_readme() -> None:
    # swCRTdesign 4.0 README: 24 clusters (6 per sequence x 4), 5 periods, n=120, p 0.05 -> 0.035, tau 0.01:
    # power 0.7861896 with U=60, W=1080, V=180.
    result = plan_stepped_wedge(clusters=24, steps=4, cluster_period_size=120, p0=0.05, p1=0.035, tau=0.01)
    assert printed(result.power, "0.7861896")
    assert hussey_hughes_uwv(Design.stepped_wedge(6, 4).treatment) == (60.0, 1080.0, 180.0)


def test_steppedpower_sample_size() -> None:
    # SteppedPower 0.3.4 vignette: glsPower(Cl=c(3,3,3), mu0=0, mu1=0.2, sigma=1, tau=0, power=0.8) -> N = 50
    # per cluster-period (power 0.8074).
    result = plan_longitudinal(Design.stepped_wedge(3, 3), CovarianceModel.hussey_hughes(1.0, 0.0), effect=0.2,
                               power=0.8)
    assert result.parameters["cluster_period_size"] == 50
    assert printed(result.power, "0.8074")


def test_steppedpower_incomplete_design() -> None:
    # SteppedPower vignette: Cl=rep(2,4), sigma=2, tau=0.6, mu1-mu0=0.5, N=80, incomplete=2 -> power 0.8221.
    result = plan_stepped_wedge(clusters=8, steps=4, cluster_period_size=80, delta=0.5, sigma=2, tau=0.6,
                                window=(2, 2))
    assert printed(result.power, "0.8221")


@pytest.mark.parametrize(("retention", "reference"), [(1.0, "0.8524223"), (0.75, "0.8284796")])
def test_steppedpower_closed_and_open_cohort(retention: float, reference: str) -> None:
    # SteppedPower vignette: Cl=rep(3,3), mu1-mu0=5, sigma=5, tau=1, psi=3, N=3: closed cohort 0.8524223;
    # open cohort AR=c(1,1,.75): 0.8284796.
    cov = CovarianceModel.closed_cohort(sigma_e=5, tau=1, psi=3, retention=retention)
    result = plan_longitudinal(Design.stepped_wedge(3, 3), cov, effect=5, cluster_period_size=3)
    assert printed(result.power, reference)


def test_closed_cohort_is_hussey_hughes_with_inflated_tau() -> None:
    # designs-and-power.md §2.2: a closed cohort is HH with tau^2 -> tau^2 + psi^2/m.
    cohort = plan_longitudinal(Design.stepped_wedge(3, 3), CovarianceModel.closed_cohort(5, 1, 3), effect=5,
                               cluster_period_size=3)
    hh = plan_longitudinal(Design.stepped_wedge(3, 3), CovarianceModel.hussey_hughes(5, (1 + 9 / 3) ** 0.5), effect=5,
                           cluster_period_size=3)
    assert cohort.power == pytest.approx(hh.power, abs=1e-12)


def test_clusterpower_cpa_sw_binary_exact_ml() -> None:
    # clusterPower cpa.sw.binary documentation (Zhou et al. 2020 exact ML): 9 clusters, 3 steps, 14 per cell,
    # ICC 0.05, p0 0.20 -> p1 0.31, no time effect: power 0.7992842.
    result = binary_ml_power(Design.stepped_wedge(3, 3), 14, 0.20, 0.31, 0.05)
    assert printed(result.power, "0.7992842")
