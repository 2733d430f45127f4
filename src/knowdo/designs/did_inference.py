"""Inference from influence functions: analytic (clustered) SEs and the multiplier bootstrap.

Every staggered-DiD parameter here is asymptotically linear, ``theta_hat -
theta = (1/n) sum_i psi_i``, so

* the analytic standard error is ``sqrt(sum_c S_c^2) / n`` with ``S_c`` the
  sum of ``psi`` over the units of cluster ``c`` (each unit its own cluster by
  default), which is R ``did``'s ``sqrt(mean(psi^2) / n)`` without clustering;
* the multiplier bootstrap perturbs the cluster sums with i.i.d. Rademacher
  weights (+1 or -1 with probability 1/2; R ``did`` 2.x draws these through
  ``BMisc::multiplier_bootstrap``; ``did`` 1.x used Mammen's two-point
  weights), takes the bootstrap standard error from the interquartile range
  (``IQR / (z_0.75 - z_0.25)``) and the critical value of the simultaneous
  (uniform) band from the ``level`` quantile of ``max_k |draw_k / se_k|``,
  as in Callaway & Sant'Anna (2021, Algorithm 1) and R ``did``'s ``mboot``.

The draws are made once, as ``U @ S`` for the cell influence functions and the
cohort indicators, in chunks so memory stays bounded; every aggregate's draws
follow by small matrix products (see :mod:`knowdo.designs.did_aggregate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

# Draws per chunk: 64 x n weights at a time keeps the chunk at 8 bytes * 64 * n.
CHUNK = 64


def cluster_sums(rows: np.ndarray, cluster: np.ndarray | None) -> np.ndarray:
    """Sum the rows of ``rows`` within clusters (``cluster`` holds codes 0..C-1); unchanged without clusters."""
    if cluster is None:
        return rows
    order = np.argsort(cluster, kind="stable")
    sorted_codes = cluster[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return np.add.reduceat(rows[order], starts, axis=0)


def analytic_se(inf: np.ndarray, n: int, cluster: np.ndarray | None = None) -> np.ndarray:
    """Standard errors ``sqrt(sum_c S_c^2) / n`` of each column of the influence matrix."""
    sums = cluster_sums(inf, cluster)
    se = np.sqrt(np.sum(sums**2, axis=0)) / n
    # A column that is exactly zero (the reference cell of a universal base period) has no SE.
    return np.where(se > 0, se, np.nan)


def analytic_vcov(inf: np.ndarray, n: int, cluster: np.ndarray | None = None) -> np.ndarray:
    """Covariance matrix ``S'S / n^2`` of the columns of the influence matrix."""
    sums = cluster_sums(inf, cluster)
    return np.asarray(sums.T @ sums) / n**2


def rademacher_draws(rows: np.ndarray, n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot x p`` bootstrap draws ``U @ rows / n`` with Rademacher ``U``.

    ``U = 2B - 1`` with ``B`` uniform random bits, so ``U @ rows = 2 (B @ rows)
    - colsum(rows)``: the bits come packed from the generator and one matrix
    product per chunk does the work. Rows are grouped by which columns they
    touch (a cohort's units only enter its own ATT(g,t) and the comparison
    units' cells), and each group multiplies only those columns, which cuts
    the work about threefold with never-treated comparisons. The products run
    in single precision (half the memory traffic): their relative rounding,
    about 1e-7, is far below the bootstrap's Monte Carlo error (about ``1/sqrt(n_boot)``).
    """
    n_rows, p = rows.shape
    scale = float(np.max(np.abs(rows))) or 1.0
    rows32 = (rows / scale).astype(np.float32)
    colsum = rows32.sum(axis=0, dtype=np.float64)
    nonzero = rows32 != 0
    _, pattern_of = np.unique(np.packbits(nonzero, axis=1), axis=0, return_inverse=True)
    # Rows of one pattern are made contiguous; the weights are i.i.d., so drawing them in this order is the same.
    order = np.argsort(pattern_of.ravel(), kind="stable")
    bounds = np.flatnonzero(np.diff(pattern_of.ravel()[order])) + 1
    blocks = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n_rows], strict=True):
        first = order[lo]
        cols = np.flatnonzero(nonzero[first])
        if len(cols):
            blocks.append((lo, hi, cols, np.ascontiguousarray(rows32[np.ix_(order[lo:hi], cols)])))
    out = np.empty((n_boot, p))
    for start in range(0, n_boot, CHUNK):
        size = min(CHUNK, n_boot - start)
        raw = np.frombuffer(rng.bytes(size * ((n_rows + 7) // 8)), dtype=np.uint8).reshape(size, -1)
        bits = np.unpackbits(raw, axis=1, count=n_rows).astype(np.float32)
        acc = np.zeros((size, p))
        for lo, hi, cols, block in blocks:
            acc[:, cols] += bits[:, lo:hi] @ block
        out[start : start + size] = 2.0 * acc - colsum
    return out * (scale / n)


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap standard errors of every parameter and one uniform critical value per family."""

    se: np.ndarray
    crit: dict[str, float]
    n_boot: int


def _iqr_se(draws: np.ndarray) -> np.ndarray:
    q25 = np.quantile(draws, 0.25, axis=0, method="inverted_cdf")
    q75 = np.quantile(draws, 0.75, axis=0, method="inverted_cdf")
    return (q75 - q25) / (stats.norm.ppf(0.75) - stats.norm.ppf(0.25))


def summarise_draws(draws: np.ndarray, families: dict[str, np.ndarray], level: float) -> Bootstrap:
    """IQR standard errors and, per family of columns, the sup-t critical value for a uniform band."""
    live = np.isfinite(draws).all(axis=0) & (np.sum(draws**2, axis=0) > 0)
    se = np.full(draws.shape[1], np.nan)
    se[live] = _iqr_se(draws[:, live])
    se[~(se > 0)] = np.nan
    crit: dict[str, float] = {}
    for name, cols in families.items():
        cols = cols[np.isfinite(se[cols])]
        if len(cols) == 0:
            crit[name] = np.nan
            continue
        t_max = np.max(np.abs(draws[:, cols] / se[cols]), axis=1)
        crit[name] = float(np.quantile(t_max[np.isfinite(t_max)], level, method="inverted_cdf"))
    return Bootstrap(se=se, crit=crit, n_boot=draws.shape[0])
