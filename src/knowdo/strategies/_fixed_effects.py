"""Regressions with absorbed fixed effects and site-clustered errors, for the strategy associations.

Two fits are needed: weighted least squares (fidelity) and Poisson
pseudo-maximum likelihood (reach), both with site and time fixed effects.
The fixed effects are absorbed by weighted alternating projections (the
within transformation, iterated until it stops changing), so the linear
algebra only ever sees the handful of strategy columns; Poisson is fitted by
iteratively reweighted least squares on the absorbed problem, as fixest and
ppmlhdfe do (Correia, Guimarães & Zylkin, *Stata J* 2020;20(1):95-115).

Why not a library: pyfixest's ``fepois`` rejects negative outcomes, and the
reach outcome (screening above a site's own usual-care mean) is negative in
some early months although its mean is positive, which the Poisson
pseudo-likelihood allows; statsmodels' GLM accepts it but needs a dummy
column for every site and month, and its dense fits grow with the number of
sites. Coefficients and CR1 errors (``G/(G-1) * (N-1)/(N-K)``, K counting
the fixed effects) equal statsmodels' dummy-variable GLM and WLS, which the
tests check. The default errors are CR2 (Bell & McCaffrey 2002), because a
coverage study on the example programme found CR1 intervals too narrow for
fidelity (85-90% coverage at 95%; see ``docs/studies/strategy-evidence.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from knowdo.errors import KnowdoError

Family = Literal["gaussian", "poisson"]
Vcov = Literal["CR2", "CR1"]
VCOVS: tuple[Vcov, ...] = ("CR2", "CR1")
DEMEAN_TOL = 1e-11  # largest change in a demeaned value at which alternating projections stop
DEMEAN_MAX_ITER = 20_000
IRLS_TOL = 1e-10  # largest change in a coefficient at which the Poisson iterations stop
IRLS_MAX_ITER = 200
BM_MAX_CELLS = 20_000_000  # n x clusters x coefficients above which the Bell-McCaffrey df are skipped (memory)


def demean(values: np.ndarray, codes: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Columns of ``values`` minus their weighted projection on the fixed effects given by integer ``codes``."""
    out = np.array(values, dtype=float, copy=True)
    if out.ndim == 1:
        out = out[:, None]
    sums_w = [np.bincount(c, weights=weights) for c in codes]
    for _ in range(DEMEAN_MAX_ITER):
        change = 0.0
        for c, sw in zip(codes, sums_w, strict=True):
            for j in range(out.shape[1]):
                means = np.bincount(c, weights=weights * out[:, j]) / np.where(sw > 0, sw, 1.0)
                step = means[c]
                out[:, j] -= step
                change = max(change, float(np.max(np.abs(step))) if step.size else 0.0)
        if change < DEMEAN_TOL:
            return out
        if len(codes) == 1:
            return out
    raise KnowdoError("fixed effects could not be absorbed: the projections did not converge")


@dataclass(frozen=True)
class FixedEffectsFit:
    """Coefficients of the non-absorbed columns with cluster-robust (CR2 or CR1) errors."""

    coef: np.ndarray
    std_error: np.ndarray
    df: np.ndarray  # per coefficient, for t intervals (G - 1, or Bell-McCaffrey with CR2)
    n_obs: int
    n_clusters: int
    n_params: int  # coefficients plus fixed-effect parameters (the K of the small-sample factor)
    n_dropped: int = 0  # rows dropped because a fixed effect's Poisson estimate would be minus infinity


def _codes(labels: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.unique(np.asarray(lab), return_inverse=True)[1].astype(np.int64) for lab in labels]


def fit_absorbed(
    y: np.ndarray,
    x: np.ndarray,
    fixed: Sequence[np.ndarray],
    clusters: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    family: Family = "gaussian",
    vcov: Vcov = "CR2",
) -> FixedEffectsFit:
    """Fit ``y ~ x + fixed effects`` (WLS or Poisson PML) with errors clustered on ``clusters``."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n, k = x.shape
    n_dropped = 0
    codes = _codes(fixed)
    prior = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    n_fixed = sum(int(c.max()) + 1 for c in codes) - (len(codes) - 1)
    if family == "gaussian":
        w = prior
        z = y
        zt_xt = demean(np.column_stack([z, x]), codes, w)
        beta = _solve(zt_xt[:, 1:], zt_xt[:, 0], w)
        xt = zt_xt[:, 1:]
        resid = zt_xt[:, 0] - xt @ beta
    else:
        keep = _separated(y, codes)
        n_dropped = int((~keep).sum())
        if not keep.all():
            y, x, prior = y[keep], x[keep], prior[keep]
            codes = _codes([c[keep] for c in codes])
            clusters = np.asarray(clusters)[keep]
            fixed = [np.asarray(f)[keep] for f in fixed]
            n = len(y)
            n_fixed = sum(int(c.max()) + 1 for c in codes) - (len(codes) - 1)
        mean_y = float(np.mean(y))
        if not mean_y > 0:
            raise KnowdoError("Poisson fit: the outcome's mean must be positive")
        mu = np.maximum((y + mean_y) / 2, 0.1 * mean_y)  # start as ppmlhdfe does, kept positive
        eta = np.log(mu)
        beta = np.zeros(k)
        for _ in range(IRLS_MAX_ITER):
            w = prior * mu
            z = eta + (y - mu) / mu
            zt_xt = demean(np.column_stack([z, x]), codes, w)
            xt = zt_xt[:, 1:]
            new = _solve(xt, zt_xt[:, 0], w)
            resid = zt_xt[:, 0] - xt @ new
            eta = z - resid
            mu = np.exp(eta)
            done = np.max(np.abs(new - beta)) < IRLS_TOL
            beta = new
            if done:
                break
        else:
            raise KnowdoError("Poisson fit did not converge; check that every site has some positive excess")
        w = prior * mu
        zt_xt = demean(np.column_stack([eta + (y - mu) / mu, x]), codes, w)
        xt = zt_xt[:, 1:]
        resid = zt_xt[:, 0] - xt @ beta
    cov, dfs = cluster_covariance(x, w, resid, fixed, clusters, vcov=vcov, n_params=k + n_fixed)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    n_clusters = len(np.unique(np.asarray(clusters)))
    return FixedEffectsFit(beta, se, dfs, n, n_clusters, k + n_fixed, n_dropped)


def cluster_covariance(
    x: np.ndarray,
    w: np.ndarray,
    resid: np.ndarray,
    fixed: Sequence[np.ndarray],
    clusters: np.ndarray,
    *,
    vcov: Vcov = "CR2",
    n_params: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster-robust covariance of the coefficients on ``x`` in a working regression with weights ``w``.

    ``resid`` is the working residual (``y - fitted`` for least squares,
    ``(y - mu) / w`` for a GLM with working weights ``w``); an intercept
    (or the fixed effects) is always part of the model. Returns the
    covariance and each coefficient's degrees of freedom for t intervals
    (G - 1 for CR1; Bell-McCaffrey for CR2).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    codes = _codes(fixed) if len(fixed) else []
    cluster_codes = _codes([clusters])[0]
    n_clusters = int(cluster_codes.max()) + 1
    if vcov == "CR1":
        xt = demean(x, codes, w) if codes else x - np.average(x, axis=0, weights=w)
        k_total = n_params if n_params is not None else x.shape[1] + 1
        dfs = np.full(x.shape[1], float(max(n_clusters - 1, 1)))
        return _cr1(xt, w, resid, cluster_codes, n_clusters, k_total), dfs
    return _cr2(x, w, resid, codes, cluster_codes, n_clusters)


def _cr1(xt: np.ndarray, w: np.ndarray, resid: np.ndarray, cluster: np.ndarray, n_clusters: int, n_params: int
         ) -> np.ndarray:
    """Liang-Zeger sandwich with the usual G/(G-1) * (N-1)/(N-K) factor (statsmodels' and Stata's CR1)."""
    n, k = xt.shape
    bread = np.linalg.inv((xt * w[:, None]).T @ xt)
    scores = np.zeros((n_clusters, k))
    np.add.at(scores, cluster, xt * (w * resid)[:, None])
    factor = n_clusters / max(n_clusters - 1, 1) * (n - 1) / max(n - n_params, 1)
    return factor * bread @ (scores.T @ scores) @ bread


def _cr2(x: np.ndarray, w: np.ndarray, resid: np.ndarray, codes: Sequence[np.ndarray], cluster: np.ndarray,
         n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Bell & McCaffrey's CR2 sandwich and degrees of freedom for the leading columns of the working regression.

    Fixed effects nested within clusters (each level inside one cluster) are
    absorbed; the others enter as explicit dummies so that the cluster hat
    matrices are right (Pustejovsky & Tipton, *J Bus Econ Stat*
    2018;36(4):672-683). The degrees of freedom are Bell & McCaffrey's
    Satterthwaite approximation under a working model of independent
    errors, as Imbens & Kolesár (*Rev Econ Stat* 2016;98(4):701-712)
    recommend with few or unbalanced clusters; when the data are too large
    for it (:data:`BM_MAX_CELLS`), G - 1 is used.
    """
    nested = [c for c in codes if _is_nested(c, cluster)]
    crossed = [c for c in codes if not _is_nested(c, cluster)]
    n, k = x.shape
    dummies = [np.eye(int(c.max()) + 1)[c][:, 1:] for c in crossed]
    full = np.column_stack([x, *dummies]) if dummies else x
    xt = demean(full, nested, w) if nested else full - np.average(full, axis=0, weights=w)
    root = np.sqrt(w)
    xs = xt * root[:, None]
    es = resid * root
    bread = np.linalg.pinv(xs.T @ xs)
    meat = np.zeros((full.shape[1], full.shape[1]))
    with_df = n * n_clusters * k <= BM_MAX_CELLS
    g_mats = np.zeros((k, n, n_clusters)) if with_df else None
    for g in range(n_clusters):
        rows = np.flatnonzero(cluster == g)
        xg = xs[rows]
        vals, vecs = np.linalg.eigh(np.eye(len(rows)) - xg @ bread @ xg.T)
        inv_root = vecs @ np.diag(1 / np.sqrt(np.clip(vals, 1e-12, None))) @ vecs.T
        u = xg.T @ (inv_root @ es[rows])
        meat += np.outer(u, u)
        if g_mats is not None:
            embedded = np.zeros((n, k))
            embedded[rows] = inv_root @ xg @ bread[:, :k]
            g_mats[:, :, g] = _annihilate(embedded, xs, bread, nested, w, root).T
    cov = (bread @ meat @ bread)[:k, :k]
    if g_mats is None:
        return cov, np.full(k, float(max(n_clusters - 1, 1)))
    dfs = np.empty(k)
    for j in range(k):
        lam = np.linalg.eigvalsh(g_mats[j].T @ g_mats[j])
        dfs[j] = lam.sum() ** 2 / max(float((lam**2).sum()), 1e-300)
    return cov, dfs


def _annihilate(u: np.ndarray, xs: np.ndarray, bread: np.ndarray, nested: Sequence[np.ndarray], w: np.ndarray,
                root: np.ndarray) -> np.ndarray:
    """Residual-maker of the whole working regression (absorbed effects included) applied to columns ``u``."""
    within = root[:, None] * demean(u / root[:, None], nested, w) if nested else u - np.outer(root, root @ u) / w.sum()
    return within - xs @ (bread @ (xs.T @ u))


def _is_nested(code: np.ndarray, cluster: np.ndarray) -> bool:
    pairs = np.unique(np.column_stack([code, cluster]), axis=0)
    return len(pairs) == len(np.unique(code))


def _separated(y: np.ndarray, codes: Sequence[np.ndarray]) -> np.ndarray:
    """Rows to keep for Poisson: drop, repeatedly, every fixed-effect level whose outcomes sum to zero or less.

    Such a level's estimate runs off to minus infinity (separation); its rows
    carry no information on the other coefficients (Correia, Guimarães &
    Zylkin 2021, *Econometrics J* 24(1)).
    """
    keep = np.ones(len(y), dtype=bool)
    changed = True
    while changed:
        changed = False
        for c in codes:
            size = int(c.max()) + 1
            sums = np.bincount(c[keep], weights=y[keep], minlength=size)
            present = np.bincount(c[keep], minlength=size) > 0
            bad = present & (sums <= 0)
            drop = keep & bad[c]
            if drop.any():
                keep &= ~drop
                changed = True
    if not keep.any():
        raise KnowdoError("Poisson fit: no fixed-effect group has a positive total; nothing to estimate")
    return keep


def _solve(xt: np.ndarray, zt: np.ndarray, w: np.ndarray) -> np.ndarray:
    gram = (xt * w[:, None]).T @ xt
    return np.linalg.solve(gram, (xt * w[:, None]).T @ zt)


def spanned(columns: np.ndarray, fixed: Sequence[np.ndarray], *, rel_tol: float = 1e-8) -> list[bool]:
    """For each column in order: True when the fixed effects and the earlier kept columns already span it."""
    cols = np.asarray(columns, dtype=float)
    if cols.ndim == 1:
        cols = cols[:, None]
    resid = demean(cols, _codes(fixed), np.ones(len(cols))) if fixed else cols - cols.mean(axis=0)
    kept: list[int] = []
    out = []
    for j in range(cols.shape[1]):
        r = resid[:, j]
        if kept:
            basis = resid[:, kept]
            r = r - basis @ np.linalg.lstsq(basis, r, rcond=None)[0]
        scale = max(float(np.linalg.norm(cols[:, j])), 1.0)
        is_spanned = not math.isfinite(float(np.linalg.norm(r))) or float(np.linalg.norm(r)) <= rel_tol * scale
        out.append(is_spanned)
        if not is_spanned:
            kept.append(j)
    return out
