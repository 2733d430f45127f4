"""Exact maximum-likelihood power for binary outcomes in cluster designs (Zhou et al. 2020).

Zhou, Liao, Kunz, Normand, Wang & Spiegelman (Biostatistics 2020;21:102)
compute the expected Fisher information of the identity-link random-intercept
model P(y = 1 | α_i) = μ + β·x_ij + α_i, with α_i normal (variance τ²)
truncated so that every probability lies in [0, 1], by summing the score's
outer product over every possible outcome of a cluster. With no time effect
a cluster's sufficient statistic is its number of successes under control and
under treatment, so the sum is over (n0+1)(n1+1) outcomes, integrated over α
by Gauss–Legendre quadrature. This is clusterPower's ``cpa.sw.binary``
default (no time effect); with a time effect, use the GLS engine.

The ICC is τ²/[p0(1−p0)], the share of the baseline Bernoulli variance
between clusters. The variance components are treated as known (as in every
other planner calculation); ``estimate_tau2=True`` adds τ² to the information.

Why our own: no Python implementation exists; the method needs only numpy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from knowdo.designs.planner.engine import Design
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import check_positive, check_probability, z_power
from knowdo.errors import ParameterError

QUADRATURE_NODES = 100  # clusterPower cpa.sw.binary default GQ = 100
MAX_OUTCOMES = 5_000_000  # outcome x node evaluations per block, to bound memory
SOURCES = (
    "Zhou X, Liao X, Kunz LM, Normand ST, Wang M, Spiegelman D. Biostatistics 2020;21:102-121",
    "clusterPower cpa.sw.binary (Kleinman et al.)",
)


def _cluster_information(
    n0: int, n1: int, mu: float, beta: float, tau2: float, nodes: int, estimate_tau2: bool
) -> np.ndarray:
    """Expected information of one cluster with n0 control and n1 treated people."""
    low = -mu - min(0.0, beta)
    high = 1.0 - mu - max(0.0, beta)
    x, w = np.polynomial.legendre.leggauss(nodes)
    x = (high - low) / 2 * x + (high + low) / 2
    w = w * (high - low) / 2
    log_e = -0.5 * x * x / tau2
    denominator = np.sum(w * np.exp(log_e))
    mean_x2_prior = np.sum(w * x * x * np.exp(log_e)) / denominator
    # Boundary derivatives of the truncation limits (a = low, b = high) with respect to (μ, β).
    d_low = np.array([-1.0, -1.0 if beta < 0 else 0.0])
    d_high = np.array([-1.0, -1.0 if beta > 0 else 0.0])
    e_low, e_high = math.exp(-0.5 * low * low / tau2), math.exp(-0.5 * high * high / tau2)
    prior_term = (e_high * d_high - e_low * d_low) / denominator

    size = 3 if estimate_tau2 else 2
    info = np.zeros((size, size))
    z1_all = np.arange(n1 + 1, dtype=float)
    block = max(1, MAX_OUTCOMES // ((n1 + 1) * nodes))
    for start in range(0, n0 + 1, block):
        z0 = np.arange(start, min(n0 + 1, start + block), dtype=float)[:, None]  # successes under control
        z1 = z1_all[None, :]
        f0, f1 = n0 - z0, n1 - z1  # failures

        def log_f(alpha: np.ndarray | float, z0: np.ndarray = z0, z1: np.ndarray = z1,
                  f0: np.ndarray = f0, f1: np.ndarray = f1) -> np.ndarray:
            p_c = np.asarray(mu + alpha, dtype=float)
            p_t = np.asarray(mu + beta + alpha, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = (special.xlogy(z0[..., None], p_c) + special.xlogy(f0[..., None], 1 - p_c)
                       + special.xlogy(z1[..., None], p_t) + special.xlogy(f1[..., None], 1 - p_t))
            return np.asarray(out)

        lf = log_f(x)
        log_terms = lf + log_e + np.log(w)
        top = log_terms.max(axis=-1, keepdims=True)
        weights = np.exp(log_terms - top)
        total = weights.sum(axis=-1)
        p_c, p_t = mu + x, mu + beta + x
        g_mu = (z0[..., None] / p_c - f0[..., None] / (1 - p_c) + z1[..., None] / p_t - f1[..., None] / (1 - p_t))
        g_beta = z1[..., None] / p_t - f1[..., None] / (1 - p_t)
        score_mu = (weights * g_mu).sum(axis=-1) / total
        score_beta = (weights * g_beta).sum(axis=-1) / total
        boundary_high = np.exp(log_f(high)[..., 0] + (-0.5 * high * high / tau2) - top[..., 0]) / total
        boundary_low = np.exp(log_f(low)[..., 0] + (-0.5 * low * low / tau2) - top[..., 0]) / total
        score_mu = score_mu + boundary_high * d_high[0] - boundary_low * d_low[0] - prior_term[0]
        score_beta = score_beta + boundary_high * d_high[1] - boundary_low * d_low[1] - prior_term[1]
        scores = [score_mu, score_beta]
        if estimate_tau2:
            post_x2 = (weights * x * x).sum(axis=-1) / total
            scores.append(0.5 * (post_x2 - mean_x2_prior) / tau2**2)
        log_binom = (special.gammaln(n0 + 1) - special.gammaln(z0 + 1) - special.gammaln(f0 + 1)
                     + special.gammaln(n1 + 1) - special.gammaln(z1 + 1) - special.gammaln(f1 + 1))
        prob = np.exp(log_binom + top[..., 0] - math.log(denominator)) * total
        stacked = np.stack(scores)
        info += np.einsum("aij,bij,ij->ab", stacked, stacked, prob)
    return info


def binary_ml_variance(
    design: Design, cluster_period_size: int, p0: float, p1: float, icc: float, *,
    estimate_tau2: bool = False, nodes: int = QUADRATURE_NODES,
) -> float:
    """Var(β̂) from the exact expected information, no time effect (Zhou et al. 2020)."""
    check_probability("p0", p0)
    check_probability("p1", p1)
    check_probability("icc", icc)
    if p0 == p1:
        raise ParameterError("p0 and p1 are equal; the exact-ML method needs a non-zero effect (it is undefined at 0).")
    if not np.all(design.observed) or not np.isin(design.treatment, (0.0, 1.0)).all():
        raise ParameterError("the exact-ML binary method needs a complete design with 0/1 exposure.")
    m = int(check_positive("cluster_period_size", cluster_period_size))
    mu, beta = p0, p1 - p0
    tau2 = icc * p0 * (1 - p0)
    treated_cells = design.treatment.sum(axis=1).astype(int)
    groups: dict[int, int] = {}
    for t in treated_cells:
        groups[int(t)] = groups.get(int(t), 0) + 1
    size = 3 if estimate_tau2 else 2
    info = np.zeros((size, size))
    for treated, count in groups.items():
        n1 = treated * m
        n0 = (design.periods - treated) * m
        info += count * _cluster_information(n0, n1, mu, beta, tau2, nodes, estimate_tau2)
    return float(np.linalg.inv(info)[1, 1])


def binary_ml_power(
    design: Design, cluster_period_size: int, p0: float, p1: float, icc: float, *,
    alpha: float = 0.05, estimate_tau2: bool = False, nodes: int = QUADRATURE_NODES,
) -> PowerResult:
    """Two-sided power of the exact-ML test of p1 − p0 with no time effect.

    Examples
    --------
    >>> d = Design.stepped_wedge(3, 3)
    >>> round(binary_ml_power(d, 14, 0.2, 0.31, 0.05).power, 7)
    0.7992842
    """
    var = binary_ml_variance(design, cluster_period_size, p0, p1, icc, estimate_tau2=estimate_tau2, nodes=nodes)
    se = math.sqrt(var)
    return PowerResult(
        design=design.name,
        method="exact maximum-likelihood information, identity link, no time effect (Zhou et al. 2020)",
        power=z_power(p1 - p0, se, alpha),
        alpha=alpha,
        effect=p1 - p0,
        std_error=se,
        parameters={"clusters": design.clusters, "periods": design.periods,
                    "cluster_period_size": cluster_period_size, "p0": p0, "p1": p1, "icc": icc,
                    "estimate_tau2": estimate_tau2, "nodes": nodes},
        n=float(design.cells * cluster_period_size),
        clusters=design.clusters,
        details={"variance": var, "tau2": icc * p0 * (1 - p0)},
        assumptions=(
            "no secular trend (no period effects); with a trend use the GLS engine with period effects",
            "cluster effects normal, truncated so all probabilities lie in [0, 1]",
            "ICC is between-cluster variance over p0(1-p0), known in advance",
        ),
        sources=SOURCES,
    )
