"""Power for an interrupted time series (segmented regression with AR(1) errors).

Model: Y_t = β₀ + β₁t + β₂D_t + β₃(t−T₀)D_t + ε_t, ε AR(1) with coefficient φ
and marginal SD σ (designs-and-power.md §5).

* Analytic: Var(β̂) = (X'Σ⁻¹X)⁻¹ with Σ_ts = σ²φ^|t−s| (GLS with known φ), or
  the OLS sandwich (X'X)⁻¹X'ΣX(X'X)⁻¹ with the true Σ; power = Φ(|β|/SE − z).
* Simulation (Zhang, Wagner & Ross-Degnan, J Clin Epidemiol 2011;64:1252;
  Hawley et al., Clin Epidemiol 2019;11:197): simulate AR(1) series, refit
  by OLS with Newey–West standard errors (as :class:`knowdo.designs.its.InterruptedTimeSeries`
  does, same lag rule) and by iterated Prais–Winsten, and report the
  rejection rate under the planned effect (power) and under no effect
  (type-I error) side by side: with few time points both can be far from
  nominal.

The simulation is vectorised over replicates (one design matrix, all series
at once); statsmodels would refit each series in a loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

from knowdo.designs._options import check_option
from knowdo.designs.its import newey_west_lags
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import check_positive, check_probability, one_missing, solve_increasing, z_power
from knowdo.errors import ParameterError

Estimand = Literal["level", "slope"]
ESTIMANDS: tuple[str, ...] = ("level", "slope")
Analysis = Literal["gls", "ols"]
ANALYSES: tuple[str, ...] = ("gls", "ols")
SimMethod = Literal["ols-newey-west", "prais-winsten", "ols"]
SIM_METHODS: tuple[str, ...] = ("ols-newey-west", "prais-winsten", "ols")
DEFAULT_ALPHA = 0.05  # two-sided 5%
DEFAULT_SIMULATIONS = 1000  # Hawley et al. (2019) use 1,000 simulated datasets per scenario
PRAIS_ITERATIONS = 20  # iterate Prais-Winsten until phi settles (Stata prais iterates to convergence)
SOURCES = (
    "Zhang F, Wagner AK, Ross-Degnan D. J Clin Epidemiol 2011;64:1252-1261",
    "Hawley S, Ali MS, Berencsi K, Judge A, Prieto-Alhambra D. Clin Epidemiol 2019;11:197-205",
    "McLeod AI, Vingilis ER. Technometrics 2005;47:173-181",
)


def segmented_design(pre: int, post: int) -> np.ndarray:
    """Columns intercept, time, level change D_t, slope change (t−T₀)D_t, t = 0..pre+post−1."""
    if pre < 2 or post < 2:
        raise ParameterError(f"pre={pre!r} and post={post!r}: a segmented ITS needs at least 2 time points on each "
                             "side (a level and a slope per segment).")
    t = np.arange(pre + post, dtype=float)
    d = (t >= pre).astype(float)
    return np.column_stack([np.ones_like(t), t, d, (t - pre) * d])


def ar1_matrix(n: int, phi: float, sigma: float) -> np.ndarray:
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return sigma**2 * phi**lag


def its_variance(pre: int, post: int, sigma: float, phi: float, estimand: Estimand = "level",
                 analysis: Analysis = "gls") -> float:
    """Variance of the level- or slope-change estimate at known φ (GLS) or for OLS with the true Σ."""
    check_option("estimand", estimand, ESTIMANDS)
    check_option("analysis", analysis, ANALYSES)
    if not -1 < phi < 1:
        raise ParameterError(f"phi={phi!r} must lie strictly between -1 and 1 (a stationary AR(1)).")
    x = segmented_design(pre, post)
    sigma_mat = ar1_matrix(len(x), phi, sigma)
    k = 2 if estimand == "level" else 3
    if analysis == "gls":
        return float(np.linalg.inv(x.T @ np.linalg.solve(sigma_mat, x))[k, k])
    bread = np.linalg.inv(x.T @ x)
    return float((bread @ x.T @ sigma_mat @ x @ bread)[k, k])


def plan_its(
    *,
    pre: int,
    post: int,
    sigma: float,
    phi: float = 0.0,
    effect: float | None = None,
    power: float | None = None,
    estimand: Estimand = "level",
    analysis: Analysis = "gls",
    alpha: float = DEFAULT_ALPHA,
) -> PowerResult:
    """Analytic ITS power, or the MDE (leave ``effect`` empty) or the post length (leave ``post`` as 0 with power).

    Examples
    --------
    >>> round(plan_its(pre=12, post=12, sigma=1.0, phi=0.0, effect=1.5).power, 4)
    0.4474
    """
    check_positive("sigma", sigma)
    check_probability("alpha", alpha)
    solve_post = post == 0 and power is not None and effect is not None
    missing = "post" if solve_post else one_missing(power=power, effect=effect)
    if missing == "post":
        assert power is not None and effect is not None
        check_probability("power", power)
        target: float = effect
        post = int(solve_increasing(
            lambda p: z_power(target, math.sqrt(its_variance(pre, max(2, int(p)), sigma, phi, estimand, analysis)),
                              alpha), power, 2.0, 12.0, name="post", integer=True, limit=600))
    se = math.sqrt(its_variance(pre, post, sigma, phi, estimand, analysis))
    if missing == "effect":
        assert power is not None
        check_probability("power", power)
        effect = solve_increasing(lambda e: z_power(e, se, alpha), power, 0.0, 4 * se, name="effect")
    assert effect is not None
    return PowerResult(
        design="its",
        method=f"segmented regression, AR(1) errors, {'GLS with known phi' if analysis == 'gls' else 'OLS'} "
               f"variance of the {estimand} change",
        power=z_power(effect, se, alpha),
        alpha=alpha,
        effect=effect,
        std_error=se,
        parameters={"pre": pre, "post": post, "sigma": sigma, "phi": phi, "estimand": estimand,
                    "analysis": analysis, "alpha": alpha},
        solved_for={"power": "power", "effect": "mde", "post": "sample_size"}[missing],
        n=float(pre + post),
        mde=effect if missing == "effect" else None,
        target_power=power,
        details={"variance": se**2},
        assumptions=(
            "the pre-intervention trend would have continued unchanged",
            "AR(1) autocorrelation known (analytic); estimating it costs power with short series "
            "(use simulate_its_power)",
            "no co-interventions or measurement changes at the interruption",
        ),
        sources=SOURCES,
    )


def _simulate_series(n: int, n_sims: int, sigma: float, phi: float, rng: np.random.Generator) -> np.ndarray:
    """n × n_sims stationary AR(1) series with marginal SD sigma."""
    shocks = rng.standard_normal((n, n_sims))
    out = np.empty((n, n_sims))
    out[0] = sigma * shocks[0]
    scale = sigma * math.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + scale * shocks[t]
    return out


def _ols_newey_west(x: np.ndarray, y: np.ndarray, k: int, lags: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, NW SE, iid SE) of coefficient k for every column of y.

    The HAC variance is statsmodels' ``cov_type='HAC'`` default (Bartlett
    weights, no small-sample factor), computed for one coefficient:
    h = X(X'X)⁻¹e_k, g_t = h_t u_t, Var = Σg² + 2Σ_l w_l Σ_t g_t g_{t−l}.
    """
    bread = np.linalg.inv(x.T @ x)
    beta = bread @ x.T @ y
    resid = y - x @ beta
    h = (x @ bread)[:, k]
    g = h[:, None] * resid
    var = (g * g).sum(axis=0)
    for lag in range(1, lags + 1):
        var += 2 * (1 - lag / (lags + 1)) * (g[lag:] * g[:-lag]).sum(axis=0)
    n, p = x.shape
    s2 = (resid * resid).sum(axis=0) / (n - p)
    return beta[k], np.sqrt(var), np.sqrt(s2 * bread[k, k])


def _prais_winsten(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, SE) of coefficient k by iterated Prais–Winsten for every column of y."""
    n, p = x.shape
    n_sims = y.shape[1]
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    phi = np.zeros(n_sims)
    xs = np.broadcast_to(x, (n_sims, n, p))
    for _ in range(PRAIS_ITERATIONS):
        resid = y - x @ beta
        phi_new = (resid[1:] * resid[:-1]).sum(axis=0) / (resid[:-1] ** 2).sum(axis=0)
        phi_new = np.clip(phi_new, -0.99, 0.99)
        # Transformed data: first row scaled by sqrt(1 - phi^2), then quasi-differences.
        ys = np.empty_like(y)
        ys[0] = np.sqrt(1 - phi_new**2) * y[0]
        ys[1:] = y[1:] - phi_new * y[:-1]
        xt = np.empty((n_sims, n, p))
        xt[:, 0, :] = np.sqrt(1 - phi_new**2)[:, None] * x[0]
        xt[:, 1:, :] = xs[:, 1:, :] - phi_new[:, None, None] * xs[:, :-1, :]
        xtx = np.einsum("snp,snq->spq", xt, xt)
        xty = np.einsum("snp,ns->sp", xt, ys)
        beta = np.linalg.solve(xtx, xty[..., None])[..., 0].T
        converged = np.max(np.abs(phi_new - phi)) < 1e-8
        phi = phi_new
        if converged:
            break
    resid_t = ys - np.einsum("snp,ps->ns", xt, beta)
    s2 = (resid_t**2).sum(axis=0) / (n - p)
    inv = np.linalg.inv(xtx)
    return beta[k], np.sqrt(s2 * inv[:, k, k])


def simulate_its_power(
    *,
    pre: int,
    post: int,
    sigma: float,
    phi: float,
    effect: float,
    estimand: Estimand = "level",
    methods: Sequence[SimMethod] = ("ols-newey-west", "prais-winsten"),
    n_sims: int = DEFAULT_SIMULATIONS,
    maxlags: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, PowerResult]:
    """Simulated power and type-I error of each analysis method, one :class:`PowerResult` per method.

    The same simulated noise is used with and without the effect, so the two
    rates are directly comparable.
    """
    check_option("estimand", estimand, ESTIMANDS)
    for method in methods:
        check_option("method", method, SIM_METHODS)
    check_positive("sigma", sigma)
    if not -1 < phi < 1:
        raise ParameterError(f"phi={phi!r} must lie strictly between -1 and 1.")
    if n_sims < 10:
        raise ParameterError(f"n_sims={n_sims!r}: use at least 10 simulations (1,000 for a stable estimate).")
    x = segmented_design(pre, post)
    k = 2 if estimand == "level" else 3
    rng = np.random.default_rng(seed)
    noise = _simulate_series(len(x), n_sims, sigma, phi, rng)
    shift = effect * x[:, k][:, None]
    lags = maxlags if maxlags is not None else newey_west_lags(len(x))
    z_crit = stats.norm.isf(alpha / 2)
    t_crit = stats.t.isf(alpha / 2, len(x) - x.shape[1])
    results: dict[str, PowerResult] = {}
    analytic = math.sqrt(its_variance(pre, post, sigma, phi, estimand, "gls"))
    for method in methods:
        rates = []
        for y in (noise + shift, noise):
            if method == "prais-winsten":
                est, se = _prais_winsten(x, y, k)
                crit = t_crit
            else:
                est, nw, iid = _ols_newey_west(x, y, k, lags)
                se, crit = (nw, z_crit) if method == "ols-newey-west" else (iid, t_crit)
            rates.append(float(np.mean(np.abs(est / se) > crit)))
        power, size = rates
        results[method] = PowerResult(
            design="its",
            method=f"simulation, {method} ({n_sims} series)",
            power=power,
            alpha=alpha,
            effect=effect,
            parameters={"pre": pre, "post": post, "sigma": sigma, "phi": phi, "estimand": estimand,
                        "n_sims": n_sims, "maxlags": lags, "seed": seed, "method": method},
            std_error=None,
            n=float(pre + post),
            monte_carlo_se=math.sqrt(max(power * (1 - power), 1e-12) / n_sims),
            type1_error=size,
            details={"analytic_gls_power": z_power(effect, analytic, alpha), "type1_monte_carlo_se":
                     math.sqrt(max(size * (1 - size), 1e-12) / n_sims)},
            assumptions=(
                "AR(1) errors; the analysis estimates phi (Prais-Winsten) or corrects SEs (Newey-West)",
                "compare type-I error with alpha: short series over-reject with Newey-West",
            ),
            sources=SOURCES,
        )
    return results
