"""Parallel cluster randomised trials: design effects, power, clusters, cluster size and MDE.

* Equal sizes: DE = 1 + (m−1)ρ (Donner & Klar; Kerry & Bland 1998).
* Unequal sizes: Eldridge, Ashby & Kerry (IJE 2006;35:1292)
  DE = 1 + [(CV²+1)m̄ − 1]ρ, or van Breukelen, Candel & Berger (Stat Med
  2007;26:2589) DE = [1+(m̄−1)ρ]/[1 − CV²λ(1−λ)], λ = m̄ρ/[1+(m̄−1)ρ]
  (clusterPower's default); for a known list of sizes the exact GLS
  relative efficiency is used.
* Tests: z, or noncentral t with 2(k−1) degrees of freedom (clusterPower
  ``cpa.normal``).
* With a baseline period: Teerenstra et al. (Stat Med 2012) and Rutterford
  et al. (IJE 2015) VIFs, DiD DE_c·2(1−r) and ANCOVA DE_c(1−r²), with
  r = (mρ/DE_c)ρ_c + ((1−ρ)/DE_c)ρ_s (clusterPower ``cpa.did.normal``).
* Stata ``sampclus``: inflate an individually randomised size by the DE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from knowdo.designs._options import check_option
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import (
    check_positive,
    check_probability,
    one_missing,
    solve_increasing,
    t_power,
    z_power,
)
from knowdo.errors import ParameterError

Unequal = Literal["van-breukelen", "eldridge"]
UNEQUAL: tuple[str, ...] = ("van-breukelen", "eldridge")
Test = Literal["z", "t"]
TESTS: tuple[str, ...] = ("z", "t")
Baseline = Literal["none", "did", "ancova"]
BASELINES: tuple[str, ...] = ("none", "did", "ancova")
DEFAULT_ALPHA = 0.05  # two-sided 5% (designs-and-power.md conventions)
SOURCES = {
    "equal": "Donner A, Klar N. Design and Analysis of Cluster Randomization Trials, 2000",
    "eldridge": "Eldridge SM, Ashby D, Kerry S. Int J Epidemiol 2006;35:1292-1300",
    "van-breukelen": "van Breukelen GJP, Candel MJJM, Berger MPF. Stat Med 2007;26:2589-2603",
    "t": "clusterPower cpa.normal (Kleinman et al.)",
    "baseline": "Teerenstra S, et al. Stat Med 2012;31:2169-2178; Rutterford C, et al. Int J Epidemiol 2015;44:1051",
}


def design_effect(cluster_size: float, icc: float, cv: float = 0.0, method: Unequal = "van-breukelen") -> float:
    """Design effect of a parallel CRT with mean cluster size m̄ and size coefficient of variation CV.

    Examples
    --------
    >>> round(design_effect(100, 0.1, cv=0.5), 4), round(design_effect(100, 0.1, cv=0.5, method="eldridge"), 4)
    (11.1104, 13.4)
    """
    check_positive("cluster_size", cluster_size)
    check_probability("icc", icc, open_low=False)
    check_positive("cv", cv, allow_zero=True)
    check_option("method", method, UNEQUAL)
    de = 1 + (cluster_size - 1) * icc
    if cv == 0:
        return de
    if method == "eldridge":
        return 1 + ((cv**2 + 1) * cluster_size - 1) * icc
    lam = cluster_size * icc / de
    shrink = 1 - cv**2 * lam * (1 - lam)
    if shrink <= 0:
        raise ParameterError(f"cv={cv!r} is too large for the van Breukelen approximation; use method='eldridge'.")
    return de / shrink


def design_effect_sizes(sizes: Sequence[float], icc: float) -> float:
    """Exact design effect for a known list of cluster sizes (one arm): k·m̄ / Σ n_j/[1+(n_j−1)ρ].

    This is the GLS information of a cluster-level analysis weighted by
    inverse variance (van Breukelen et al. 2007, relative efficiency).
    """
    n = np.asarray(sizes, dtype=float)
    if n.ndim != 1 or len(n) < 1 or (n <= 0).any():
        raise ParameterError("cluster_sizes must be a list of positive sizes, one per cluster of an arm.")
    check_probability("icc", icc, open_low=False)
    return float(n.sum() / np.sum(n / (1 + (n - 1) * icc)))


def baseline_vif(cluster_size: float, icc: float, cac: float, iac: float = 0.0, analysis: Baseline = "ancova") -> float:
    """VIF of a CRT with one baseline and one follow-up period (Teerenstra et al. 2012).

    ``cac`` is the cluster autocorrelation ρ_c, ``iac`` the individual
    autocorrelation ρ_s (0 for repeated cross-sections).
    """
    check_option("analysis", analysis, BASELINES)
    de_c = 1 + (cluster_size - 1) * icc
    r = (cluster_size * icc / de_c) * cac + ((1 - icc) / de_c) * iac
    if analysis == "did":
        return de_c * 2 * (1 - r)
    if analysis == "ancova":
        return de_c * (1 - r**2)
    return de_c


def inflate_for_clustering(n_per_arm: float, cluster_size: float, icc: float) -> tuple[int, int]:
    """Stata ``sampclus``: (individuals per arm, clusters in total) after inflating by 1+(m−1)ρ.

    Examples
    --------
    >>> inflate_for_clustering(25, 10, 0.3)
    (93, 19)
    """
    de = 1 + (cluster_size - 1) * icc
    per_arm = n_per_arm * de
    return math.ceil(per_arm - 1e-9), math.ceil(2 * per_arm / cluster_size - 1e-9)


def plan_crt(
    *,
    icc: float,
    clusters_per_arm: float | None = None,
    cluster_size: float | None = None,
    cluster_sizes: Sequence[float] | None = None,
    delta: float | None = None,
    sd: float | None = None,
    p0: float | None = None,
    p1: float | None = None,
    cv: float = 0.0,
    unequal: Unequal = "van-breukelen",
    test: Test = "t",
    baseline: Baseline = "none",
    cac: float = 1.0,
    iac: float = 0.0,
    power: float | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> PowerResult:
    """Power, clusters per arm, cluster size or MDE of a two-arm parallel cluster trial.

    Leave exactly one of ``clusters_per_arm``, ``cluster_size``, ``power`` and
    the effect (``delta`` or ``p1``) empty. ``cluster_sizes`` (one arm's list)
    replaces ``clusters_per_arm``/``cluster_size``/``cv`` with the exact design
    effect. For a binary outcome σ² = [p0(1−p0)+p1(1−p1)]/2.

    Examples
    --------
    >>> round(plan_crt(icc=0.1, clusters_per_arm=16, cluster_size=10, delta=1, sd=5 ** 0.5).power, 6)
    0.801766
    """
    check_probability("icc", icc, open_low=False)
    check_option("unequal", unequal, UNEQUAL)
    check_option("test", test, TESTS)
    check_option("baseline", baseline, BASELINES)
    check_probability("alpha", alpha)
    binary = p0 is not None
    if binary:
        check_probability("p0", p0)  # type: ignore[arg-type]
        effect = None if p1 is None else check_probability("p1", p1) - p0  # type: ignore[operator]
    else:
        if sd is None:
            raise ParameterError("a continuous outcome needs sd (total outcome SD); or give p0/p1 (binary outcome).")
        check_positive("sd", sd)
        effect = delta
    exact_sizes: list[float] | None = None
    if cluster_sizes is not None:
        exact_sizes = [float(v) for v in cluster_sizes]
        clusters_per_arm = float(len(exact_sizes))
        cluster_size = float(np.mean(exact_sizes))
        if baseline != "none":
            raise ParameterError("cluster_sizes with a baseline period is not supported; give cluster_size and cv.")
    if baseline != "none" and cv > 0:
        raise ParameterError("the baseline VIFs assume equal cluster sizes; set cv=0 or baseline='none'.")
    missing = one_missing(clusters_per_arm=clusters_per_arm, cluster_size=cluster_size, power=power, effect=effect)

    def vif(m: float) -> float:
        if exact_sizes is not None:
            return design_effect_sizes(exact_sizes, icc)
        if baseline != "none":
            return baseline_vif(m, icc, cac, iac, baseline)
        return design_effect(m, icc, cv, unequal)

    def variance_unit(e: float) -> float:
        if not binary:
            return float(sd) ** 2  # type: ignore[arg-type]
        q = min(max(p0 + e, 1e-9), 1 - 1e-9)  # type: ignore[operator]
        return (p0 * (1 - p0) + q * (1 - q)) / 2  # type: ignore[operator]

    def se_at(e: float, k: float, m: float) -> float:
        return math.sqrt(2 * variance_unit(e) * vif(m) / (k * m))

    def power_at(e: float, k: float, m: float) -> float:
        se = se_at(e, k, m)
        return t_power(e, se, 2 * (k - 1), alpha) if test == "t" else z_power(e, se, alpha)

    exact: float | None = None
    if missing in ("clusters_per_arm", "cluster_size"):
        assert power is not None and effect is not None
        check_probability("power", power)
        if effect == 0:
            raise ParameterError("the effect is zero; no number of clusters detects it.")
        target: float = effect
        if missing == "clusters_per_arm":
            m0 = check_positive("cluster_size", cluster_size)  # type: ignore[arg-type]
            exact = solve_increasing(lambda k: power_at(target, k, m0), power, 2.0 + 1e-9, 20.0,
                                     name="clusters_per_arm")
            clusters_per_arm = solve_increasing(lambda k: power_at(target, k, m0), power, 2.0, 20.0,
                                                name="clusters_per_arm", integer=True)
        else:
            k0 = check_positive("clusters_per_arm", clusters_per_arm)  # type: ignore[arg-type]
            exact = solve_increasing(lambda m: power_at(target, k0, m), power, 1.0, 50.0, name="cluster_size")
            cluster_size = solve_increasing(lambda m: power_at(target, k0, m), power, 1.0, 50.0,
                                            name="cluster_size", integer=True)
    assert clusters_per_arm is not None and cluster_size is not None
    k, m = float(clusters_per_arm), float(cluster_size)
    if test == "t" and k < 2:
        raise ParameterError(f"clusters_per_arm={k:g}: the t-test needs at least 2 clusters per arm.")
    if missing == "effect":
        assert power is not None
        check_probability("power", power)
        upper = (1 - p0) if binary else 20 * se_at(0.0, k, m)  # type: ignore[operator]
        effect = solve_increasing(lambda e: power_at(e, k, m), power, 0.0, upper * 0.5, name="effect",
                                  limit=upper if binary else 1e7)
    assert effect is not None
    se = se_at(effect, k, m)
    sources = [SOURCES["equal"]]
    if cv > 0 or exact_sizes is not None:
        sources.append(SOURCES[unequal if exact_sizes is None else "van-breukelen"])
    if test == "t":
        sources.append(SOURCES["t"])
    if baseline != "none":
        sources.append(SOURCES["baseline"])
    details: dict[str, float] = {"design_effect": vif(m), "variance": se**2}
    if exact is not None:
        details[f"{missing}_exact"] = exact
    return PowerResult(
        design="parallel-crt" if baseline == "none" else f"parallel-crt-baseline-{baseline}",
        method=(f"{'noncentral t, 2(k-1) df' if test == 't' else 'z'} test on the arm difference; design effect "
                + ("exact for the given sizes" if exact_sizes is not None else
                   f"{baseline} VIF" if baseline != "none" else (unequal if cv > 0 else "1+(m-1)icc"))),
        power=power_at(effect, k, m),
        alpha=alpha,
        effect=effect,
        std_error=se,
        parameters={"clusters_per_arm": int(k) if k.is_integer() else k, "cluster_size": m, "icc": icc, "cv": cv,
                    "delta": None if binary else effect, "sd": sd, "p0": p0,
                    "p1": (p0 + effect) if binary else None,  # type: ignore[operator]
                    "unequal": unequal, "test": test, "baseline": baseline, "cac": cac, "iac": iac, "alpha": alpha},
        solved_for={"clusters_per_arm": "clusters", "cluster_size": "sample_size", "power": "power",
                    "effect": "mde"}[missing],
        n=2 * k * m,
        clusters=math.ceil(2 * k),
        mde=effect if missing == "effect" else None,
        target_power=power,
        details=details,
        assumptions=(
            "clusters independent; individuals exchangeable within a cluster (one ICC)",
            "ICC known in advance (use the upper end of published ranges)",
            "analysis accounts for clustering (mixed model or cluster-level) with the stated test",
        ) + (("cluster sizes vary with the stated coefficient of variation",) if cv > 0 else ()),
        sources=tuple(sources),
    )
