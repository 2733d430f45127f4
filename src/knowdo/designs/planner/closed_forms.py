"""Published closed forms for stepped-wedge variance; each is a special case of the GLS engine.

* Hussey & Hughes (Contemp Clin Trials 2007;28:182): random intercept,
  period fixed effects, any 0/1 design.
* Woertman et al. (J Clin Epidemiol 2013;66:752) design effect.
* Hooper, Teerenstra, de Hoop & Eldridge (Stat Med 2016;35:4718):
  block-exchangeable correlation with cluster (CAC) and individual (IAC)
  autocorrelation; also clusterPower ``cpa.sw.normal``.
* Kasza et al. (SMMR 2019;28:703) form for any common within-cluster
  covariance (e.g. discrete-time decay).

They are kept because users meet them in papers and protocols; the tests
check each against :func:`knowdo.designs.planner.engine.treatment_variance`
to 1e-10.
"""

from __future__ import annotations

import numpy as np

from knowdo.errors import ParameterError


def hussey_hughes_variance(treatment: np.ndarray, sigma2: float, tau2: float) -> float:
    """Var(θ̂) = Iσ²(σ²+Tτ²) / [(IU−W)σ² + (U²+ITU−TW−IV)τ²], σ² the variance of a cluster-period mean.

    U = Σ X_ij, W = Σ_j (Σ_i X_ij)², V = Σ_i (Σ_j X_ij)² (designs-and-power.md §2.1).
    """
    x = np.asarray(treatment, dtype=float)
    if x.ndim != 2:
        raise ParameterError(f"treatment must be a clusters x periods matrix; got shape {x.shape}.")
    n_clusters, n_periods = x.shape
    u = x.sum()
    w = (x.sum(axis=0) ** 2).sum()
    v = (x.sum(axis=1) ** 2).sum()
    between = u**2 + n_clusters * n_periods * u - n_periods * w - n_clusters * v
    denominator = (n_clusters * u - w) * sigma2 + between * tau2
    if denominator <= 0:
        raise ParameterError("the Hussey & Hughes denominator is not positive: the design does not identify θ.")
    return float(n_clusters * sigma2 * (sigma2 + n_periods * tau2) / denominator)


def hussey_hughes_uwv(treatment: np.ndarray) -> tuple[float, float, float]:
    """The design constants U, W, V of Hussey & Hughes (swCRTdesign prints them)."""
    x = np.asarray(treatment, dtype=float)
    return float(x.sum()), float((x.sum(axis=0) ** 2).sum()), float((x.sum(axis=1) ** 2).sum())


def woertman_design_effect(steps: int, baseline: int, periods_per_step: int, cluster_size: float, icc: float) -> float:
    """DE_W = [1+ρ(K·T·m+B·m−1)] / [1+ρ(K·T·m/2+B·m−1)] · 3(1−ρ) / [2T(K−1/K)] (Woertman et al. 2013).

    ``N_individual × DE_W`` is the number of participants per measurement
    round (clusters × m), so ``Var(θ̂) = 4σ²·DE_W / (clusters·m)``.
    """
    k, b, t, m, rho = steps, baseline, periods_per_step, cluster_size, icc
    if k < 2:
        raise ParameterError(f"steps={k!r}: the Woertman design effect needs at least 2 steps.")
    first = (1 + rho * (k * t * m + b * m - 1)) / (1 + rho * (0.5 * k * t * m + b * m - 1))
    return float(first * 3 * (1 - rho) / (2 * t * (k - 1 / k)))


def hooper_design_effect(
    sequences: int, cluster_size: float, icc: float, cac: float = 1.0, iac: float = 0.0
) -> tuple[float, float]:
    """(DE_c, DE_r) of Hooper et al. (2016) for a standard stepped wedge with K sequences and K+1 periods.

    DE_c = 1+(m−1)ρ; r = (mρ·CAC + (1−ρ)IAC)/DE_c;
    DE_r = 3K(1−r)(1+Kr) / [(K²−1)(2+Kr)]; Var(θ̂) = 4σ²/(I·m) · DE_c · DE_r.
    """
    k, m, rho = sequences, cluster_size, icc
    if k < 2:
        raise ParameterError(f"sequences={k!r}: the Hooper design effect needs at least 2 sequences.")
    de_c = 1 + (m - 1) * rho
    r = (m * rho * cac + (1 - rho) * iac) / de_c
    de_r = 3 * k * (1 - r) * (1 + k * r) / ((k**2 - 1) * (2 + k * r))
    return float(de_c), float(de_r)


def hooper_variance(
    clusters: int, sequences: int, cluster_size: float, icc: float, cac: float = 1.0, iac: float = 0.0,
    sigma2: float = 1.0,
) -> float:
    """Var(θ̂) = 4σ²/(I·m) · DE_c · DE_r (Hooper et al. 2016; clusterPower ``cpa.sw.normal``)."""
    de_c, de_r = hooper_design_effect(sequences, cluster_size, icc, cac, iac)
    return float(4 * sigma2 / (clusters * cluster_size) * de_c * de_r)


def kasza_variance(treatment: np.ndarray, covariance: np.ndarray) -> float:
    """Var(θ̂) = I / [I Σ x_i'V⁻¹x_i − (Σ x_i)'V⁻¹(Σ x_i)] for a common V and complete design (Kasza et al. 2019)."""
    x = np.asarray(treatment, dtype=float)
    v = np.asarray(covariance, dtype=float)
    if v.shape != (x.shape[1], x.shape[1]):
        raise ParameterError(f"covariance must be periods x periods ({x.shape[1]}); got {v.shape}.")
    v_inv_x = np.linalg.solve(v, x.T)  # periods x clusters
    total = x.sum(axis=0)
    denominator = x.shape[0] * np.einsum("ij,ji->", x, v_inv_x) - total @ np.linalg.solve(v, total)
    if denominator <= 0:
        raise ParameterError("the design does not identify θ (Kasza denominator is not positive).")
    return float(x.shape[0] / denominator)
