"""Inference from influence functions: analytic (clustered) SEs, a small-sample correction, the multiplier bootstrap.

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

Small-sample correction (``small_sample="satterthwaite"``)
---------------------------------------------------------
R ``did``'s interval is a normal (Wald) interval around the plug-in variance
``sum psi_i^2 / n^2``. With few units per cohort that variance is biased down
and noisy, and the interval under-covers (docs/studies/did-coverage.md). Without
covariates every ATT(g,t), and every aggregate given the cohort shares, is a
linear combination of cohort-by-period mean outcomes, so the plug-in variance
is the heteroskedasticity-robust HC0 variance of a regression on cohort x period
indicators. The correction is the standard one for that case:

* **variance**: HC2 (MacKinnon & White 1985), i.e. Bell & McCaffrey's (2002)
  bias-reduced linearisation. A unit's leverage in the saturated cohort model is
  ``1 / n_g``, so HC2 scales the within-cohort part of the influence function's
  sum of squares by ``n_g / (n_g - 1)``, which makes it unbiased for the
  variance under independence across units. The between-cohort part (the
  estimated cohort shares behind the aggregation weights) is kept as it is.
* **critical values**: Student t with Welch-Satterthwaite degrees of freedom
  (Satterthwaite 1946; Welch 1947), ``(sum_g V_g)^2 / sum_g V_g^2 / (n_g - 1)``
  over the cohorts' variance contributions ``V_g``, the approximation Bell &
  McCaffrey (2002) and Imbens & Kolesar (2016, Rev. Econ. Stat. 98(4)) use for
  robust variances of this kind (for two groups it is the Welch interval for a
  difference in means). A parameter resting on few units in its smallest
  relevant cohort gets few degrees of freedom.
* **clustered** (``cluster`` set): CR1 scaling ``G / (G - 1)`` and t critical
  values with ``G - 1`` degrees of freedom, the small-G practice Cameron &
  Miller (2015, J. Human Resources 50(2), section VI) recommend.

With covariates the leverage also has a covariate part (of order ``k / n_g``)
that the correction ignores; with large cohorts the correction vanishes and the
interval is R ``did``'s. The bootstrap applies the same rescaling to the
influence rows before drawing (a wild bootstrap on HC2-rescaled residuals, as
Davidson & Flachaire 2008 recommend) and uses the t critical values for the
pointwise interval.

Implementation
--------------
Rows (units, or cluster sums) of ``[psi | cohort indicators]`` are kept in
blocks of rows that touch the same columns: a cohort's units enter only its own
ATT(g,t), their comparison cells and its cohort indicator. Each block is stored
dense over its own columns, so the covariance, the small-sample pieces and the
bootstrap all skip the zeros (about a third of the work with never-treated
comparisons). Without clustering the estimator hands these rows over cohort by
cohort (:class:`CohortInfluence`), so the mostly-zero ``n x cells`` matrix is never
built. The bootstrap draws ``U @ rows`` chunk by chunk; bits come packed
from the generator and one single-precision matrix product per block and chunk
does the work (single-precision rounding, about 1e-7 relative, is far below the
bootstrap's Monte Carlo error of about ``1/sqrt(n_boot)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

SmallSample = Literal["none", "satterthwaite"]
SMALL_SAMPLE: tuple[SmallSample, ...] = ("none", "satterthwaite")

# Interquartile range of the standard normal: a normal draw's IQR / NORMAL_IQR estimates its SD (R did's mboot).
NORMAL_IQR = float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
# Draws per chunk: the weights of one chunk are 4 bytes * CHUNK * rows; 64 measured fastest at 50,000 units.
CHUNK = 64


def cluster_sums(rows: np.ndarray, cluster: np.ndarray | None) -> np.ndarray:
    """Sum the rows of ``rows`` within clusters (``cluster`` holds codes 0..C-1); unchanged without clusters."""
    if cluster is None:
        return rows
    order = np.argsort(cluster, kind="stable")
    sorted_codes = cluster[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return np.add.reduceat(rows[order], starts, axis=0)


@dataclass(frozen=True)
class CohortInfluence:
    """The influence rows of one cohort's units (ascending), dense over the cells they can enter.

    ``rows`` is units x (``cells`` + 1): the influence values, then the cohort indicator (all ones),
    laid out as :class:`InfluenceRows` keeps its blocks so that it can take them without a copy. A
    cohort's units enter only its own cells and those it is a comparison for, so these rows hold
    every non-zero of the ``n x cells`` matrix in a fraction of its size.
    """

    units: np.ndarray
    cells: np.ndarray
    rows: np.ndarray

    @property
    def values(self) -> np.ndarray:
        return self.rows[:, :-1]

    @classmethod
    def empty(cls, units: np.ndarray, cells: np.ndarray) -> CohortInfluence:
        """Zero influence values and the indicator column, to be filled in place."""
        rows = np.zeros((len(units), len(cells) + 1))
        rows[:, -1] = 1.0
        return cls(units=units, cells=cells, rows=rows)


def split_by_cohort(inf: np.ndarray, code: np.ndarray, n_cohorts: int) -> tuple[CohortInfluence, ...]:
    """The rows of a dense ``n x cells`` influence matrix, cohort by cohort (``code`` in 0..n_cohorts-1)."""
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(1, n_cohorts))
    cells = np.arange(inf.shape[1])
    out = []
    for idx in np.split(order, bounds):
        part = CohortInfluence.empty(idx, cells)
        part.values[:] = inf[idx]
        out.append(part)
    return tuple(out)


def dense_influence(cohorts: Sequence[CohortInfluence], n_units: int, m: int) -> np.ndarray:
    """The ``n x cells`` influence matrix with the rows of every cohort in place (zeros elsewhere)."""
    inf = np.zeros((n_units, m))
    for part in cohorts:
        inf[np.ix_(part.units, part.cells)] = part.values
    return inf


@dataclass(frozen=True)
class Block:
    """Rows of ``[psi | cohort indicators]`` that touch the same columns, dense over those columns.

    ``mean`` and ``centered`` (the within-block cross-product of deviations from
    ``mean``) feed the cohort-level small-sample correction.
    """

    cols: np.ndarray
    rows: np.ndarray
    mean: np.ndarray
    cross: np.ndarray  # rows' rows

    @classmethod
    def of(cls, cols: np.ndarray, rows: np.ndarray) -> Block:
        return cls(cols=cols, rows=rows, mean=rows.mean(axis=0), cross=rows.T @ rows)

    @property
    def centered(self) -> np.ndarray:
        return self.cross - self.size * np.outer(self.mean, self.mean)

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])


@dataclass(frozen=True)
class InfluenceRows:
    """The influence rows of every ATT(g,t) and cohort indicator, in column blocks.

    ``by_cohort`` is true when the rows are units and each block is one cohort
    (no clustering); otherwise the rows are cluster sums grouped by the columns they touch.
    """

    blocks: tuple[Block, ...]
    p: int
    n_units: int
    n_rows: int
    by_cohort: bool

    @classmethod
    def from_cohorts(cls, cohorts: Sequence[CohortInfluence], m: int, n_units: int) -> InfluenceRows:
        """Blocks of ``[inf | onehot(code)]`` from the influence rows of each cohort (no clustering).

        ``cohorts[c]`` holds the units of cohort code ``c``; cells whose rows are all zero are left out.
        """
        blocks = []
        for c, part in enumerate(cohorts):
            # Almost every column has a non-zero among its first rows; only the others need a full scan.
            used = (part.values[:64] != 0).any(axis=0)
            if not used.all():
                used = (part.values != 0).any(axis=0)
            cols = part.cells[used]
            rows = part.rows
            if not used.all():
                rows = np.empty((len(part.units), len(cols) + 1))
                rows[:, :-1] = part.values[:, used]
                rows[:, -1] = 1.0  # the unit's own cohort indicator
            blocks.append(Block.of(np.r_[cols, m + c], rows))
        return cls(blocks=tuple(blocks), p=m + len(cohorts), n_units=n_units, n_rows=n_units, by_cohort=True)

    @classmethod
    def build(cls, inf: np.ndarray, code: np.ndarray, n_cohorts: int, cluster: np.ndarray | None) -> InfluenceRows:
        """Blocks of ``[inf | onehot(code)]`` (units), or of its cluster sums when ``cluster`` is given."""
        n, m = inf.shape
        p = m + n_cohorts
        blocks = []
        if cluster is None:
            return cls.from_cohorts(split_by_cohort(inf, code, n_cohorts), m, n)
        onehot = np.zeros((n, n_cohorts))
        onehot[np.arange(n), code] = 1.0
        sums = cluster_sums(np.hstack([inf, onehot]), cluster)
        nonzero = sums != 0
        _, pattern = np.unique(np.packbits(nonzero, axis=1), axis=0, return_inverse=True)
        pattern = pattern.ravel()
        for k in np.unique(pattern):
            idx = np.flatnonzero(pattern == k)
            cols = np.flatnonzero(nonzero[idx[0]])
            blocks.append(Block.of(cols, sums[np.ix_(idx, cols)]))
        return cls(blocks=tuple(blocks), p=p, n_units=n, n_rows=len(sums), by_cohort=False)

    def gram(self) -> np.ndarray:
        """``S'S`` of the rows: ``gram / n^2`` is the analytic covariance (R ``did``)."""
        out = np.zeros((self.p, self.p))
        for b in self.blocks:
            out[np.ix_(b.cols, b.cols)] += b.cross
        return out

    def small_sample(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corrected variances and degrees of freedom of the parameters ``a' [psi | cohort]`` (``a`` is p x q)."""
        n2 = float(self.n_units) ** 2
        if not self.by_cohort:
            g = self.n_rows
            raw = np.zeros(a.shape[1])
            for b in self.blocks:
                raw += np.sum((b.rows @ a[b.cols]) ** 2, axis=0)
            df = np.full(a.shape[1], float(g - 1) if g > 1 else np.nan)
            return raw / n2 * (g / (g - 1) if g > 1 else np.nan), df
        total = np.zeros(a.shape[1])
        spread = np.zeros(a.shape[1])
        for b in self.blocks:
            ab = a[b.cols]
            between = b.size * (b.mean @ ab) ** 2 / n2
            within = np.sum((b.centered @ ab) * ab, axis=0) / n2
            if b.size > 1:
                # HC2: leverage 1/n_g in the saturated cohort model.
                within = within * b.size / (b.size - 1)
                spread += within**2 / (b.size - 1)
            total += within + between
        with np.errstate(invalid="ignore", divide="ignore"):
            df = np.where(spread > 0, total**2 / spread, np.inf)
        return total, df

    def rademacher(self, n_boot: int, rng: np.random.Generator, *, corrected: bool = False) -> np.ndarray:
        """``n_boot x p`` bootstrap draws ``U @ rows / n`` with Rademacher ``U``.

        ``U = 2B - 1`` with ``B`` uniform random bits, so ``U @ rows = 2 (B @
        rows) - colsum(rows)``. With ``corrected`` the rows are first rescaled as
        the small-sample variance is (HC2 within cohorts, or ``G / (G - 1)``).
        """
        work = []
        for b in self.blocks:
            rows = b.rows
            if corrected and self.by_cohort and b.size > 1:
                rows = b.mean + (rows - b.mean) * np.sqrt(b.size / (b.size - 1))
            elif corrected and not self.by_cohort and self.n_rows > 1:
                rows = rows * np.sqrt(self.n_rows / (self.n_rows - 1))
            block32 = np.ascontiguousarray(rows, dtype=np.float32)
            work.append((b.cols, block32, block32.sum(axis=0, dtype=np.float64)))
        out = np.zeros((n_boot, self.p))
        for start in range(0, n_boot, CHUNK):
            size = min(CHUNK, n_boot - start)
            acc = out[start : start + size]
            for cols, block32, colsum in work:
                n_b = block32.shape[0]
                raw = np.frombuffer(rng.bytes(size * ((n_b + 7) // 8)), dtype=np.uint8).reshape(size, -1)
                bits = np.unpackbits(raw, axis=1, count=n_b).astype(np.float32)
                acc[:, cols] += 2.0 * (bits @ block32) - colsum
        out /= self.n_units
        return out


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap standard errors of every parameter and one uniform critical value per family."""

    se: np.ndarray
    crit: dict[str, float]
    n_boot: int


def _iqr_se(draws: np.ndarray) -> np.ndarray:
    # The inverted-CDF quantile is an order statistic: numpy's own rule picks its rank (quantile of the
    # ranks 0..n-1), and one sort of the (finite) draws serves both quartiles, about 3x faster than
    # np.quantile(draws, [0.25, 0.75], axis=0, method="inverted_cdf"), with the same values.
    ranks = np.quantile(np.arange(draws.shape[0]), [0.25, 0.75], method="inverted_cdf").astype(np.intp)
    q25, q75 = np.sort(draws, axis=0)[ranks]
    return (q75 - q25) / NORMAL_IQR


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
