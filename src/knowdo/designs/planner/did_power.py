"""Multi-round difference-in-differences and ANCOVA power with serial correlation.

McKenzie (J Dev Econ 2012;99:210, after Frison & Pocock 1992): with m
pre-rounds, r post-rounds, constant autocorrelation ρ and share treated P,
N = (z_{1−α/2}+z_{1−β})²σ²/[P(1−P)δ²] × factor, the factor being
[1+(r−1)ρ]/r (POST), (1/m+1/r)(1−ρ) (DiD) or [1+(r−1)ρ]/r − mρ²/[1+(m−1)ρ]
(ANCOVA). Burlig, Preonas & Woerman (J Dev Econ 2020;144:102458) replace the
constant ρ by the average within-pre, within-post and cross covariances
(ψ^B, ψ^A, ψ^X), which any T×T covariance matrix of a unit's outcomes gives;
under equicorrelation it reduces exactly to McKenzie's DiD factor.
For clustered DiD/CRT with baseline see :mod:`knowdo.designs.planner.cluster`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from knowdo.designs._options import check_option
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import check_positive, check_probability, one_missing, solve_increasing, z_power
from knowdo.errors import ParameterError

Estimator = Literal["post", "did", "ancova"]
ESTIMATORS: tuple[str, ...] = ("post", "did", "ancova")
DEFAULT_ALPHA = 0.05  # two-sided 5%
SOURCES = {
    "mckenzie": "McKenzie D. J Dev Econ 2012;99:210-221",
    "bpw": "Burlig F, Preonas L, Woerman M. J Dev Econ 2020;144:102458",
    "bdm": "Bertrand M, Duflo E, Mullainathan S. Q J Econ 2004;119:249-275",
}


def mckenzie_factor(pre_rounds: int, post_rounds: int, rho: float, estimator: Estimator = "did") -> float:
    """Variance factor of McKenzie (2012) relative to a single post-only comparison.

    Examples
    --------
    >>> round(mckenzie_factor(3, 3, 0.5, "did"), 4), round(mckenzie_factor(3, 3, 0.5, "ancova"), 4)
    (0.3333, 0.2917)
    """
    check_option("estimator", estimator, ESTIMATORS)
    m, r = pre_rounds, post_rounds
    if m < 1 or r < 1:
        raise ParameterError(f"pre_rounds={m!r} and post_rounds={r!r} must both be at least 1.")
    check_probability("rho", rho, open_low=False, open_high=False)
    post = (1 + (r - 1) * rho) / r
    if estimator == "post":
        return post
    if estimator == "did":
        return (1 / m + 1 / r) * (1 - rho)
    return post - m * rho**2 / (1 + (m - 1) * rho)


def bpw_variance(covariance: np.ndarray, pre_rounds: int, units: float, share_treated: float = 0.5) -> float:
    """Var(DiD) = [P(1−P)J]⁻¹[(1/m+1/r)σ² + ((m−1)/m)ψ^B + ((r−1)/r)ψ^A − 2ψ^X] (Burlig et al. 2020).

    ``covariance`` is the T×T covariance of one unit's outcomes over the
    m = ``pre_rounds`` pre-periods followed by the post-periods; σ² is the
    mean of its diagonal and the ψ are the mean off-diagonal covariances
    within the pre-period, within the post-period and across.
    """
    cov = np.asarray(covariance, dtype=float)
    t = cov.shape[0]
    if cov.ndim != 2 or cov.shape != (t, t) or not 1 <= pre_rounds < t:
        raise ParameterError("covariance must be a square T x T matrix with 1 <= pre_rounds < T.")
    check_probability("share_treated", share_treated)
    m, r = pre_rounds, t - pre_rounds
    sigma2 = float(np.mean(np.diag(cov)))
    pre, post = cov[:m, :m], cov[m:, m:]
    psi_b = float((pre.sum() - np.trace(pre)) / (m * (m - 1))) if m > 1 else 0.0
    psi_a = float((post.sum() - np.trace(post)) / (r * (r - 1))) if r > 1 else 0.0
    psi_x = float(cov[:m, m:].mean())
    bracket = (1 / m + 1 / r) * sigma2 + (m - 1) / m * psi_b + (r - 1) / r * psi_a - 2 * psi_x
    return bracket / (share_treated * (1 - share_treated) * units)


def ar1_covariance(periods: int, sigma: float, phi: float) -> np.ndarray:
    """σ²φ^|t−s|: AR(1) serial correlation, the usual alternative to equicorrelation."""
    lag = np.abs(np.subtract.outer(np.arange(periods), np.arange(periods)))
    return sigma**2 * phi**lag


def plan_did(
    *,
    sd: float,
    pre_rounds: int,
    post_rounds: int,
    rho: float | None = None,
    covariance: np.ndarray | None = None,
    units: float | None = None,
    delta: float | None = None,
    power: float | None = None,
    share_treated: float = 0.5,
    estimator: Estimator = "did",
    alpha: float = DEFAULT_ALPHA,
) -> PowerResult:
    """Units (total), power or MDE of a multi-round DiD/ANCOVA/POST comparison of unit means.

    Give ``rho`` for McKenzie's equicorrelated form, or ``covariance``
    (T×T, e.g. :func:`ar1_covariance`) for the Burlig–Preonas–Woerman form
    (DiD only). Leave one of ``units``, ``power``, ``delta`` empty.

    Examples
    --------
    >>> round(plan_did(sd=1, pre_rounds=1, post_rounds=1, rho=0.5, delta=0.25, power=0.8).n)
    503
    """
    check_option("estimator", estimator, ESTIMATORS)
    check_positive("sd", sd)
    check_probability("share_treated", share_treated)
    check_probability("alpha", alpha)
    if (rho is None) == (covariance is None):
        raise ParameterError("give exactly one of rho (equicorrelated, McKenzie) or covariance (Burlig et al.).")
    if covariance is not None and estimator != "did":
        raise ParameterError("the Burlig-Preonas-Woerman form covers the DiD estimator; use rho for POST/ANCOVA.")
    missing = one_missing(units=units, power=power, delta=delta)

    def variance(j: float) -> float:
        if covariance is not None:
            cov = np.asarray(covariance, dtype=float)
            if cov.shape != (pre_rounds + post_rounds, pre_rounds + post_rounds):
                raise ParameterError(f"covariance must be {pre_rounds + post_rounds} x {pre_rounds + post_rounds}.")
            return bpw_variance(cov, pre_rounds, j, share_treated)
        assert rho is not None
        factor = mckenzie_factor(pre_rounds, post_rounds, rho, estimator)
        return sd**2 * factor / (share_treated * (1 - share_treated) * j)

    if missing == "units":
        assert power is not None and delta is not None
        check_probability("power", power)
        target: float = delta
        units = float(solve_increasing(lambda j: z_power(target, math.sqrt(variance(j)), alpha), power, 2.0, 100.0,
                                       name="units", integer=True))
    assert units is not None
    check_positive("units", units)
    if missing == "delta":
        assert power is not None
        check_probability("power", power)
        delta = solve_increasing(lambda d: z_power(d, math.sqrt(variance(units)), alpha), power, 0.0, sd,
                                 name="delta")
    assert delta is not None
    se = math.sqrt(variance(units))
    sources = (SOURCES["bpw"] if covariance is not None else SOURCES["mckenzie"], SOURCES["bdm"])
    return PowerResult(
        design=f"did-{estimator}",
        method=("serial-correlation-robust DiD variance (Burlig et al.)" if covariance is not None
                else f"McKenzie {estimator.upper()} factor, constant autocorrelation {rho}"),
        power=z_power(delta, se, alpha),
        alpha=alpha,
        effect=delta,
        std_error=se,
        parameters={"sd": sd, "pre_rounds": pre_rounds, "post_rounds": post_rounds, "rho": rho,
                    "units": units, "share_treated": share_treated, "estimator": estimator, "alpha": alpha,
                    "covariance": None if covariance is None else np.asarray(covariance).tolist()},
        solved_for={"units": "sample_size", "power": "power", "delta": "mde"}[missing],
        n=units,
        clusters=int(units),
        mde=delta if missing == "delta" else None,
        target_power=power,
        details={"variance": se**2},
        assumptions=(
            "parallel trends between treated and comparison units",
            "standard errors clustered by unit (iid errors over-reject: up to 45% in Bertrand et al.)",
            "serial correlation as stated; constant-rho formulas mis-state power in real panels (Burlig et al.)",
        ),
        sources=sources,
    )
