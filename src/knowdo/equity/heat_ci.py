"""Confidence intervals for the HEAT measures: normal (analytic) and truncated-normal simulation.

HEAT uses two interval methods (frameworks.md section 4.1 and fact 7 of section 8):

* **analytic**: estimate +/- z * SE, on the log scale for ratios (R, RII);
* **simulation** (Ahn et al., PLoS One 2019) for BGSD, COV, IDIS and the
  mean-difference measures: each subgroup estimate is redrawn from a normal
  distribution with its standard error, truncated to the indicator's range
  (0..100 for a percentage, >= 0 otherwise), the measure is recomputed on each
  draw, and the 2.5th and 97.5th percentiles of the draws give the interval.

The reference code draws one number at a time by rejection sampling. Here the
truncated normal is drawn by inverting its distribution function, which gives
the same distribution for every draw of every subgroup of every indicator in
one vectorised call (no loop per draw). Draws are seeded through
:func:`numpy.random.default_rng`, so the same seed gives the same intervals.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special, stats

FloatArray = npt.NDArray[np.float64]

DEFAULT_DRAWS = 100  # healthequal's default number of simulations (frameworks.md section 4.1)
DEFAULT_SEED = 123456  # healthequal's default seed (frameworks.md section 4.1)


def z_value(level: float) -> float:
    """Two-sided standard normal quantile for a confidence ``level``."""
    return float(stats.norm.ppf(0.5 + level / 2.0))


def normal_interval(estimate: FloatArray, std_error: FloatArray, level: float) -> tuple[FloatArray, FloatArray]:
    """Wald interval ``estimate +/- z * std_error`` (NaN where either is missing)."""
    z = z_value(level)
    return estimate - z * std_error, estimate + z * std_error


def log_interval(ratio: FloatArray, log_se: FloatArray, level: float) -> tuple[FloatArray, FloatArray]:
    """Interval for a ratio from the standard error of its logarithm: ``exp(ln R +/- z * SE)``."""
    z = z_value(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log(ratio)
    return np.exp(log_r - z * log_se), np.exp(log_r + z * log_se)


def truncation_bounds(scale: FloatArray) -> tuple[FloatArray, FloatArray]:
    """HEAT's truncation: [0, 100] for percentages (scale 100), [0, inf) for any other scale."""
    scale = np.asarray(scale, dtype=float)
    upper = np.where(scale == 100.0, 100.0, np.inf)
    return np.zeros_like(scale), upper


def truncated_normal_draws(
    mean: FloatArray,
    sd: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    draws: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Draw ``draws`` values from Normal(mean, sd) truncated to [lower, upper], for every cell at once.

    ``mean`` and ``sd`` have shape ``(G, J)`` (sets x subgroups); ``lower`` and
    ``upper`` broadcast to it. The result has shape ``(G, draws, J)``. A zero
    standard error returns the estimate clipped into the range.

    Inversion is done on the side of the distribution where the normal CDF is
    accurate: when the window lies above the mean, the mirror image is drawn
    and reflected back.
    """
    mean = np.asarray(mean, dtype=float)
    sd = np.asarray(sd, dtype=float)
    lower = np.broadcast_to(np.asarray(lower, dtype=float), mean.shape)
    upper = np.broadcast_to(np.asarray(upper, dtype=float), mean.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (lower - mean) / sd
        b = (upper - mean) / sd
    # Mirror windows that sit above the mean so the CDF is evaluated in the lower tail.
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    cdf_lo = special.ndtr(lo)[:, None, :]
    cdf_hi = special.ndtr(hi)[:, None, :]
    u = rng.random((mean.shape[0], draws, mean.shape[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = special.ndtri(cdf_lo + u * (cdf_hi - cdf_lo))
    z = np.where(flip[:, None, :], -z, z)
    out = mean[:, None, :] + sd[:, None, :] * z
    # Degenerate cells (zero SE, or a window so far in the tail that the CDF underflows).
    fallback = np.clip(mean, lower, upper)[:, None, :]
    bad = ~np.isfinite(out)
    out = np.where(bad, np.broadcast_to(fallback, out.shape), out)
    return np.clip(out, lower[:, None, :], upper[:, None, :])


def percentile_interval(values: FloatArray, level: float) -> tuple[FloatArray, FloatArray]:
    """Percentile interval over the draws axis (axis 1) of a ``(G, draws)`` array (2.5th/97.5th at 95%).

    Linear interpolation between order statistics (numpy's default, R's type 7),
    ignoring non-finite draws; written with one sort instead of ``nanquantile``,
    which loops over rows.
    """
    alpha = (1.0 - level) / 2.0
    values = np.where(np.isfinite(values), values, np.nan)
    ordered = np.sort(values, axis=1)  # NaN sort last
    n = np.isfinite(ordered).sum(axis=1)

    def at(q: float) -> FloatArray:
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = pos - lo
        a = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
        b = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
        return np.where(n > 0, a + frac * (b - a), np.nan)

    if values.shape[0] == 0:
        return np.empty(0), np.empty(0)
    return at(alpha), at(1.0 - alpha)
