"""Confidence intervals and standardised differences used by every outcome.

Three families:

* :func:`wilson`: the Wilson score interval for a binomial proportion,
  vectorised over arrays. Used wherever a person (or a site, or a provider)
  is the unit counted.
* :func:`cluster_ratio` / :func:`cluster_proportion`: the ratio estimator
  ``sum(y) / sum(x)`` over clusters (usually sites) with a linearisation
  (sandwich) standard error and a t interval on ``G - 1`` degrees of freedom.
  Used where counts pooled over sites would understate uncertainty, because
  people treated at the same site share its staff, supervision and catchment.
* :func:`mean_interval`: a t interval for a mean, optionally cluster-robust.

:func:`smd_proportions` and :func:`smd_means` give the standardised mean
differences RE-AIM uses for representativeness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from knowdo.errors import ParameterError

FloatArray = npt.NDArray[np.float64]

# 95%: the conventional reporting level, and the level of the published Wilson values the tests
# reproduce (Newcombe, Stat Med 1998;17:857, Table I).
DEFAULT_LEVEL = 0.95


def z_value(level: float) -> float:
    """Two-sided standard normal quantile for a confidence ``level`` in (0, 1)."""
    check_level(level)
    return float(stats.norm.ppf(0.5 + level / 2.0))


def check_level(level: float) -> None:
    """Raise :class:`ParameterError` unless ``0 < level < 1``."""
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0.0 < float(level) < 1.0:
        raise ParameterError(f"'level' must be a number between 0 and 1, such as 0.95 (got {level!r}).")


@overload
def wilson(k: float, n: float, level: float = DEFAULT_LEVEL) -> tuple[float, float]: ...


@overload
def wilson(k: npt.ArrayLike, n: npt.ArrayLike, level: float = DEFAULT_LEVEL) -> tuple[Any, Any]: ...


def wilson(k: npt.ArrayLike, n: npt.ArrayLike, level: float = DEFAULT_LEVEL) -> tuple[Any, Any]:
    """Wilson score interval for the proportion ``k / n``.

    Vectorised: ``k`` and ``n`` may be scalars or broadcastable arrays. The
    result is a pair of floats for scalar input and a pair of float arrays
    otherwise. Where ``n`` is 0 (or missing) both bounds are NaN. ``n`` need
    not be an integer, which lets the cascade use an estimated denominator.

    Parameters
    ----------
    k, n
        Successes and trials, with ``0 <= k <= n``.
    level
        Confidence level, default 0.95.

    Returns
    -------
    (low, high)

    Raises
    ------
    ParameterError
        If any ``k`` is negative or larger than its ``n``, or ``level`` is not in (0, 1).

    Examples
    --------
    >>> low, high = wilson(81, 263)
    >>> round(low, 4), round(high, 4)
    (0.2553, 0.3662)
    """
    z = z_value(level)
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        bad = (k_arr < 0) | (k_arr > n_arr) | (n_arr < 0)
    if np.any(bad):
        first = np.argwhere(np.broadcast_to(bad, np.broadcast(k_arr, n_arr).shape))[0]
        kb = np.broadcast_to(k_arr, bad.shape)[tuple(first)]
        nb = np.broadcast_to(n_arr, bad.shape)[tuple(first)]
        raise ParameterError(
            f"'k' must lie between 0 and 'n' (got k={kb:g}, n={nb:g}); a numerator cannot exceed its denominator."
        )
    low, high = wilson_unchecked(k_arr, n_arr, z)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def wilson_unchecked(k: npt.ArrayLike, n: npt.ArrayLike, z: float) -> tuple[FloatArray, FloatArray]:
    """Wilson bounds for arrays with quantile ``z``; NaN wherever ``n <= 0`` or ``k`` is outside ``[0, n]``."""
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k_arr / n_arr
        z2 = z * z
        denom = 1.0 + z2 / n_arr
        centre = (p + z2 / (2.0 * n_arr)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n_arr + z2 / (4.0 * n_arr * n_arr)) / denom
        low = np.clip(centre - half, 0.0, 1.0)
        high = np.clip(centre + half, 0.0, 1.0)
        valid = (n_arr > 0) & (k_arr >= 0) & (k_arr <= n_arr)
    low = np.where(valid & (k_arr == 0), 0.0, low)
    high = np.where(valid & (k_arr == n_arr), 1.0, high)
    low = np.where(valid, low, np.nan).astype(float)
    high = np.where(valid, high, np.nan).astype(float)
    return low, high


@dataclass(frozen=True)
class Interval:
    """A point estimate with its standard error and confidence interval.

    ``df`` is the degrees of freedom of the t quantile used (``inf`` for a
    normal quantile); ``n`` is the number of units behind the estimate
    (clusters for the cluster-robust functions, observations otherwise).
    """

    estimate: float
    std_error: float
    conf_low: float
    conf_high: float
    df: float
    n: int
    method: str


def cluster_ratio(y: npt.ArrayLike, x: npt.ArrayLike, level: float = DEFAULT_LEVEL) -> Interval:
    """Ratio estimator ``sum(y) / sum(x)`` with a cluster-robust t interval.

    Each element of ``y`` and ``x`` is one cluster's total (for example a
    site's sessions and participants). The variance is the linearisation
    (sandwich) estimator of a ratio, ``G / (G - 1) * sum((y_g - R x_g)^2) /
    (sum x)^2``, and the interval uses a t quantile on ``G - 1`` degrees of
    freedom. Sites, not people, are the unit: people treated at one site share
    its staff, supervision and catchment, so their outcomes are correlated,
    and with few sites the normal quantile would give intervals that are too
    narrow. With fewer than two clusters the standard error is undefined and
    the bounds are NaN.

    Examples
    --------
    >>> r = cluster_ratio([2, 3, 5], [10, 10, 20])
    >>> round(r.estimate, 3), round(r.conf_low, 4), round(r.conf_high, 4)
    (0.25, 0.1568, 0.3432)
    """
    check_level(level)
    y_arr = np.asarray(y, dtype=float).ravel()
    x_arr = np.asarray(x, dtype=float).ravel()
    if y_arr.shape != x_arr.shape:
        raise ParameterError(
            f"'y' and 'x' must hold one total per cluster each (got {y_arr.size} and {x_arr.size} values)."
        )
    if np.isnan(y_arr).any() or np.isnan(x_arr).any():
        raise ParameterError("'y' and 'x' must not contain missing values; drop or fill those clusters first.")
    estimate, se, low, high, df = _ratio_core(y_arr, x_arr, level)
    return Interval(estimate, se, low, high, df, int(y_arr.size), "cluster_ratio")


def cluster_proportion(
    k_by_cluster: npt.ArrayLike, n_by_cluster: npt.ArrayLike, level: float = DEFAULT_LEVEL
) -> Interval:
    """Pooled proportion ``sum(k) / sum(n)`` over clusters with a cluster-robust t interval.

    The same estimator as :func:`cluster_ratio` (linearisation variance, t
    quantile on ``G - 1`` degrees of freedom, because the sites are the
    independent units, not the people within them), with the bounds clipped
    to [0, 1].

    Raises
    ------
    ParameterError
        If any cluster has ``k`` outside ``[0, n]``.

    Examples
    --------
    >>> r = cluster_proportion([2, 3, 5], [10, 10, 20])
    >>> r.estimate
    0.25
    """
    k_arr = np.asarray(k_by_cluster, dtype=float).ravel()
    n_arr = np.asarray(n_by_cluster, dtype=float).ravel()
    if k_arr.shape == n_arr.shape and np.any((k_arr < 0) | (k_arr > n_arr)):
        raise ParameterError("'k_by_cluster' must lie between 0 and 'n_by_cluster' in every cluster.")
    r = cluster_ratio(k_arr, n_arr, level)
    low = float(np.clip(r.conf_low, 0.0, 1.0)) if np.isfinite(r.conf_low) else r.conf_low
    high = float(np.clip(r.conf_high, 0.0, 1.0)) if np.isfinite(r.conf_high) else r.conf_high
    return Interval(r.estimate, r.std_error, low, high, r.df, r.n, "cluster_proportion")


def _ratio_core(y: FloatArray, x: FloatArray, level: float) -> tuple[float, float, float, float, float]:
    g = y.size
    total_x = float(x.sum())
    if g == 0 or total_x == 0.0:
        return (np.nan, np.nan, np.nan, np.nan, float(max(g - 1, 0)))
    estimate = float(y.sum()) / total_x
    if g < 2:
        return (estimate, np.nan, np.nan, np.nan, 0.0)
    resid = y - estimate * x
    var = g / (g - 1) * float(np.sum(resid * resid)) / (total_x * total_x)
    se = float(np.sqrt(var))
    t = float(stats.t.ppf(0.5 + level / 2.0, g - 1))
    return (estimate, se, estimate - t * se, estimate + t * se, float(g - 1))


def mean_interval(
    values: npt.ArrayLike, level: float = DEFAULT_LEVEL, clusters: npt.ArrayLike | None = None
) -> Interval:
    """Mean of ``values`` (missing values dropped) with a t interval.

    Without ``clusters`` the standard error is ``sd / sqrt(n)`` on ``n - 1``
    degrees of freedom. With ``clusters`` (one label per value, e.g. site ids)
    the mean is the ratio of cluster sums to cluster counts and the interval
    is that of :func:`cluster_ratio`.

    Examples
    --------
    >>> r = mean_interval([1, 2, 3, 4])
    >>> round(r.conf_low, 4), round(r.conf_high, 4)
    (0.4457, 4.5543)
    """
    check_level(level)
    arr = np.asarray(values, dtype=float).ravel()
    keep = ~np.isnan(arr)
    if clusters is not None:
        labels = np.asarray(clusters, dtype=object).ravel()
        if labels.shape != arr.shape:
            raise ParameterError(
                f"'clusters' must hold one label per value (got {labels.size} labels for {arr.size} values)."
            )
        frame = pd.DataFrame({"c": labels[keep], "v": arr[keep]})
        sums = frame.groupby("c", sort=True)["v"].agg(["sum", "size"])
        r = cluster_ratio(sums["sum"].to_numpy(float), sums["size"].to_numpy(float), level)
        return Interval(r.estimate, r.std_error, r.conf_low, r.conf_high, r.df, r.n, "cluster_mean")
    arr = arr[keep]
    n = int(arr.size)
    if n == 0:
        return Interval(np.nan, np.nan, np.nan, np.nan, 0.0, 0, "t")
    mean = float(arr.mean())
    if n < 2:
        return Interval(mean, np.nan, np.nan, np.nan, 0.0, 1, "t")
    se = float(arr.std(ddof=1) / np.sqrt(n))
    t = float(stats.t.ppf(0.5 + level / 2.0, n - 1))
    return Interval(mean, se, mean - t * se, mean + t * se, float(n - 1), n, "t")


def smd_proportions(p1: npt.ArrayLike, p2: npt.ArrayLike) -> Any:
    """Standardised mean difference of two proportions.

    ``(p1 - p2) / sqrt((p1 (1 - p1) + p2 (1 - p2)) / 2)``, the form used to
    compare participants with the eligible population in RE-AIM Reach (Austin,
    *Stat Med* 2009;28:3083). 0 where both proportions are equal and the
    pooled variance is 0; NaN where only the variance is 0. Vectorised.

    Examples
    --------
    >>> round(smd_proportions(0.6, 0.5), 4)
    0.202
    """
    a = np.asarray(p1, dtype=float)
    b = np.asarray(p2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.sqrt((a * (1.0 - a) + b * (1.0 - b)) / 2.0)
        out = np.where(pooled > 0, (a - b) / pooled, np.where(a == b, 0.0, np.nan))
    return float(out) if out.ndim == 0 else out.astype(float)


def smd_means(mean1: float, sd1: float, mean2: float, sd2: float) -> float:
    """Standardised mean difference of two means, ``(m1 - m2) / sqrt((s1^2 + s2^2) / 2)`` (Austin 2009).

    Examples
    --------
    >>> smd_means(12.0, 2.0, 10.0, 2.0)
    1.0
    """
    pooled = float(np.sqrt((sd1 * sd1 + sd2 * sd2) / 2.0))
    if not np.isfinite(pooled) or pooled == 0.0:
        return 0.0 if mean1 == mean2 else float("nan")
    return (mean1 - mean2) / pooled


def grouped_cluster_ratio(
    frame: pd.DataFrame, keys: list[str], cluster: str, y: str, x: str, level: float = DEFAULT_LEVEL
) -> pd.DataFrame:
    """:func:`cluster_ratio` for every group of ``frame`` at once.

    ``frame`` holds one or more rows per (group, cluster); ``y`` and ``x`` are
    summed within each cluster first. Returns one row per group with
    ``numerator, denominator, estimate, std_error, conf_low, conf_high,
    n_clusters``.
    """
    check_level(level)
    per = frame.groupby([*keys, cluster], sort=False, dropna=False)[[y, x]].sum().reset_index()
    totals = per.groupby(keys, sort=False, dropna=False).agg(
        numerator=(y, "sum"), denominator=(x, "sum"), n_clusters=(cluster, "size")
    )
    per = per.join(totals, on=keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = per["numerator"] / per["denominator"]
        per["_sq"] = (per[y] - ratio * per[x]) ** 2
    totals["_ss"] = per.groupby(keys, sort=False, dropna=False)["_sq"].sum()
    g = totals["n_clusters"].to_numpy(float)
    num = totals["numerator"].to_numpy(float)
    den = totals["denominator"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(den != 0, num / den, np.nan)
        var = np.where((g >= 2) & (den != 0), g / (g - 1) * totals["_ss"].to_numpy(float) / (den * den), np.nan)
        se = np.sqrt(var)
        t = np.where(g >= 2, stats.t.ppf(0.5 + level / 2.0, np.maximum(g - 1, 1)), np.nan)
    out = totals.drop(columns="_ss").reset_index()
    out["estimate"] = est
    out["std_error"] = se
    out["conf_low"] = est - t * se
    out["conf_high"] = est + t * se
    return out


def grouped_mean(frame: pd.DataFrame, keys: list[str], value: str, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """:func:`mean_interval` (unclustered t interval) for every group of ``frame`` at once.

    Missing values are dropped. Returns one row per group with ``numerator``
    (the sum), ``denominator`` (the count), ``estimate``, ``sd``, ``std_error``,
    ``conf_low`` and ``conf_high``.
    """
    check_level(level)
    data = frame.loc[frame[value].notna(), [*keys, value]]
    out = data.groupby(keys, sort=False, dropna=False)[value].agg(["sum", "count", "mean", "std"]).reset_index()
    out = out.rename(columns={"sum": "numerator", "count": "denominator", "mean": "estimate", "std": "sd"})
    n = out["denominator"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = out["sd"].to_numpy(float) / np.sqrt(n)
        t = np.where(n >= 2, stats.t.ppf(0.5 + level / 2.0, np.maximum(n - 1, 1)), np.nan)
    out["std_error"] = np.where(n >= 2, se, np.nan)
    out["conf_low"] = out["estimate"] - t * out["std_error"]
    out["conf_high"] = out["estimate"] + t * out["std_error"]
    return out
