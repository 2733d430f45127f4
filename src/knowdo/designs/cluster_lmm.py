"""REML linear mixed models for cluster trials, with Kenward-Roger and Satterthwaite degrees of freedom.

The model for outcome ``y_ijk`` of person ``k`` in cluster ``i`` and period ``j`` is

    y_ijk = x_ijk' beta + CP_ij + e_ijk,   e ~ N(0, sigma2),

with the cluster-period effects ``CP_i = (CP_i1, ..., CP_iT)`` normal with
covariance ``G`` chosen by ``correlation``:

* ``exchangeable``: ``G = tau2 J`` (one cluster random intercept; Hussey &
  Hughes 2007);
* ``nested-exchangeable``: ``G = tau2 J + gamma2 I`` (cluster and cluster x
  period random effects; Hooper et al. 2016, Girling & Hemming 2016);
* ``decay``: ``G = gamma2 R(r)`` with ``R_st = r^|s - t|`` (discrete-time
  decay, Kasza, Hemming, Hooper, Matthews & Forbes 2019, Stat Methods Med Res
  28(3):703-716; Kasza & Forbes 2019, "Inference for the treatment effect in
  multiple-period cluster randomised trials when the correlation structure is
  misspecified", Stat Methods Med Res 28(10-11):3112-3122), periods counted
  by their rank, so they should be equally spaced.

Why our own code: statsmodels ``MixedLM`` fits the first two structures but
not the decay, and offers neither Kenward-Roger nor Satterthwaite degrees of
freedom, which need the derivatives of the fitted covariance. Each cluster's
covariance splits exactly into a small ``T x T`` block acting on the
size-scaled cluster-period means (``sigma2 I + M^1/2 G M^1/2``) and
``sigma2 I`` on the within-cell deviations, so REML, its information matrix
and the Kenward-Roger terms are computed from cluster-period sums, in time
independent of the number of people. The tests check REML against
``MixedLM`` for the two structures it has, and Kenward-Roger against the
exact between-cluster t-test of a balanced parallel trial.

Kenward-Roger (Kenward & Roger 1997, Biometrics 53:983-997, with the second
derivative term R of their eq. 2): the small-sample bias-corrected
covariance ``Phi_A = Phi + 2 Phi Lambda Phi`` and the scaled F test with
approximate denominator degrees of freedom ``m``; the formulas follow the
paper's section 4 (as also implemented in R's pbkrtest, Halekoh & Hojsgaard
2014). Satterthwaite: ``df = 2 (l' Phi l)^2 / (g' W g)`` with ``g`` the
gradient of ``l' Phi l`` in the covariance parameters and ``W`` the inverse
expected REML information (as R's lmerTest, Kuznetsova et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize

Correlation = Literal["exchangeable", "nested-exchangeable", "decay"]
CORRELATIONS: tuple[str, ...] = ("exchangeable", "nested-exchangeable", "decay")

# Upper bound on a variance ratio (random-effect variance / residual variance) in the REML search:
# far beyond any ICC seen in cluster trials (ratio 1000 is an ICC of 0.999).
_MAX_RATIO = 1e3
# Decay parameter kept inside [0, 1): r = 1 is the exchangeable model, fitted separately.
_MAX_DECAY = 1 - 1e-6


@dataclass(frozen=True)
class LmmData:
    """Cluster-period sufficient statistics of ``y`` on ``X`` (built by :func:`lmm_data`)."""

    Xb: np.ndarray  # clusters x periods x p: sqrt(m) x cell mean of X (0 for empty cells)
    yb: np.ndarray  # clusters x periods: sqrt(m) x cell mean of y
    root_m: np.ndarray  # clusters x periods: sqrt(cell size)
    XwX: np.ndarray  # within-cell cross products of X
    Xwy: np.ndarray
    ywy: float
    n: int
    n_within: int  # n minus the number of non-empty cells
    n_empty: int


def lmm_data(y: np.ndarray, X: np.ndarray, cluster: np.ndarray, period: np.ndarray) -> LmmData:
    """Reduce individual rows to cluster-period sums; ``cluster``/``period`` are 0-based integer codes."""
    C, T = int(cluster.max()) + 1, int(period.max()) + 1
    p = X.shape[1]
    cell = cluster * T + period
    m = np.bincount(cell, minlength=C * T).astype(float)
    sx = np.zeros((C * T, p))
    np.add.at(sx, cell, X)
    sy = np.bincount(cell, weights=y, minlength=C * T)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_root = np.where(m > 0, 1 / np.sqrt(np.where(m > 0, m, 1)), 0.0)
    Xb = (sx * inv_root[:, None]).reshape(C, T, p)
    yb = (sy * inv_root).reshape(C, T)
    XwX = X.T @ X - np.einsum("ci,cj->ij", Xb.reshape(-1, p), Xb.reshape(-1, p))
    Xwy = X.T @ y - Xb.reshape(-1, p).T @ yb.ravel()
    ywy = float(y @ y - yb.ravel() @ yb.ravel())
    cells = int((m > 0).sum())
    return LmmData(Xb=Xb, yb=yb, root_m=np.sqrt(m).reshape(C, T), XwX=XwX, Xwy=Xwy, ywy=ywy, n=len(y),
                   n_within=len(y) - cells, n_empty=C * T - cells)


def _lag(T: int) -> np.ndarray:
    idx = np.arange(T)
    return np.abs(idx[:, None] - idx[None, :]).astype(float)


def g_matrices(correlation: str, params: np.ndarray, T: int) -> tuple[np.ndarray, list[np.ndarray],
                                                                      dict[tuple[int, int], np.ndarray]]:
    """G, its first derivatives and non-zero second derivatives in the G parameters (variances, decay)."""
    J, eye = np.ones((T, T)), np.eye(T)
    if correlation == "exchangeable":
        return params[0] * J, [J], {}
    if correlation == "nested-exchangeable":
        return params[0] * J + params[1] * eye, [J, eye], {}
    gamma2, r = params
    lag = _lag(T)
    R = r**lag
    dR = np.where(lag >= 1, lag * r ** np.maximum(lag - 1, 0), 0.0)
    d2R = np.where(lag >= 2, lag * (lag - 1) * r ** np.maximum(lag - 2, 0), 0.0)
    return gamma2 * R, [R, gamma2 * dR], {(0, 1): dR, (1, 0): dR, (1, 1): gamma2 * d2R}


def _blocks(data: LmmData, sigma2: float, G: np.ndarray) -> np.ndarray:
    """Between-cell covariance blocks sigma2 I + M^1/2 G M^1/2, one per cluster."""
    T = G.shape[0]
    return sigma2 * np.eye(T)[None] + data.root_m[:, :, None] * G[None] * data.root_m[:, None, :]


def _gls(data: LmmData, sigma2: float, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """X'V^-1X, its inverse, beta, r'V^-1 r and log|V| for the given covariance."""
    V = _blocks(data, sigma2, G)
    chol = np.linalg.cholesky(V)
    logdet = 2 * float(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
    logdet += (data.n_within - data.n_empty) * math.log(sigma2)
    Xs = np.linalg.solve(V, data.Xb)
    ys = np.linalg.solve(V, data.yb[:, :, None])[:, :, 0]
    XVX = np.einsum("ctp,ctq->pq", data.Xb, Xs) + data.XwX / sigma2
    XVy = np.einsum("ctp,ct->p", data.Xb, ys) + data.Xwy / sigma2
    yVy = float(np.einsum("ct,ct->", data.yb, ys)) + data.ywy / sigma2
    Phi = np.linalg.inv(XVX)
    beta = Phi @ XVy
    return XVX, Phi, beta, yVy - float(beta @ XVy), logdet


@dataclass(frozen=True)
class LmmFit:
    """A REML fit: fixed effects, their model-based covariance and the covariance parameters."""

    correlation: str
    beta: np.ndarray
    cov: np.ndarray  # Phi = (X'V^-1X)^-1 at the REML estimates
    sigma2: float
    g_params: np.ndarray  # (tau2,), (tau2, gamma2) or (gamma2, r)
    reml_loglik: float
    converged: bool
    data: LmmData

    @property
    def theta(self) -> np.ndarray:
        """All covariance parameters: sigma2 first, then those of G."""
        return np.concatenate([[self.sigma2], self.g_params])


def fit_reml(data: LmmData, correlation: str) -> LmmFit:
    """Maximise the REML likelihood, profiled over sigma2, from a few starting points."""
    n, p = data.n, data.Xb.shape[2]
    T = data.Xb.shape[1]

    def unpack(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=float)

    def profile(x: np.ndarray) -> tuple[float, float]:
        G, _, _ = g_matrices(correlation, unpack(x), T)
        XVX, _, _, rss, logdet = _gls(data, 1.0, G)
        s2 = rss / (n - p)
        logdet_xvx = float(np.linalg.slogdet(XVX)[1])
        # V = s2 W: log|V| = n log s2 + log|W|; X'V^-1X = X'W^-1X / s2
        value = -0.5 * ((n - p) * math.log(s2) + logdet + logdet_xvx + (n - p))
        return value, s2

    def objective(x: np.ndarray) -> float:
        try:
            return -profile(x)[0]
        except np.linalg.LinAlgError:
            return math.inf

    if correlation == "decay":
        bounds = [(0.0, _MAX_RATIO), (0.0, _MAX_DECAY)]
        starts = [np.array([0.1, 0.5]), np.array([0.05, 0.9]), np.array([0.3, 0.2])]
    elif correlation == "nested-exchangeable":
        bounds = [(0.0, _MAX_RATIO), (0.0, _MAX_RATIO)]
        starts = [np.array([0.1, 0.05]), np.array([0.02, 0.2]), np.array([0.3, 0.01])]
    else:
        bounds = [(0.0, _MAX_RATIO)]
        starts = [np.array([0.1]), np.array([0.01]), np.array([1.0])]
    best: optimize.OptimizeResult | None = None
    for x0 in starts:
        res = optimize.minimize(objective, x0, method="L-BFGS-B", bounds=bounds,
                                options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    ratios = unpack(best.x)
    loglik, s2 = profile(ratios)
    g_params = ratios.copy()
    if correlation == "decay":
        g_params[0] *= s2
    else:
        g_params *= s2
    G, _, _ = g_matrices(correlation, g_params, T)
    _, Phi, beta, _, _ = _gls(data, s2, G)
    return LmmFit(correlation=correlation, beta=beta, cov=Phi, sigma2=s2, g_params=g_params,
                  reml_loglik=loglik, converged=bool(best.success), data=data)


@dataclass(frozen=True)
class _Terms:
    Phi: np.ndarray
    P: list[np.ndarray]
    Q: dict[tuple[int, int], np.ndarray]
    R: dict[tuple[int, int], np.ndarray]
    W: np.ndarray


def _terms(fit: LmmFit) -> _Terms:
    """P_i, Q_ij, R_ij of Kenward & Roger (1997) and W, the inverse expected REML information."""
    data = fit.data
    T = data.Xb.shape[1]
    G, dG, d2G = g_matrices(fit.correlation, fit.g_params, T)
    V = _blocks(data, fit.sigma2, G)
    Vinv = np.linalg.inv(V)
    A = Vinv @ data.Xb  # V^-1 X, per cluster
    mask = (data.root_m > 0).astype(float)
    rm = data.root_m
    D = [mask[:, :, None] * np.eye(T)[None]] + [rm[:, :, None] * g[None] * rm[:, None, :] for g in dG]
    k = len(D)
    s2 = fit.sigma2
    P, VD = [], []
    for i in range(k):
        Pi = -np.einsum("ctp,ctu,cuq->pq", A, D[i], A)
        if i == 0:
            Pi -= data.XwX / s2**2
        P.append(Pi)
        VD.append(Vinv @ D[i])
    Phi = fit.cov
    Q: dict[tuple[int, int], np.ndarray] = {}
    info = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            Qij = np.einsum("ctp,ctu,cuq->pq", A, D[i] @ VD[j], A)
            tr = float(np.einsum("ctu,cut->", VD[i], VD[j]))
            if i == 0 and j == 0:
                Qij = Qij + data.XwX / s2**3
                tr += data.n_within / s2**2
            Q[(i, j)] = Qij
            Q[(j, i)] = Qij.T
            info[i, j] = info[j, i] = 0.5 * (tr - 2 * np.trace(Phi @ Qij) + np.trace(Phi @ P[i] @ Phi @ P[j]))
    R: dict[tuple[int, int], np.ndarray] = {}
    for (i, j), g2 in d2G.items():
        Dij = rm[:, :, None] * g2[None] * rm[:, None, :]
        R[(i + 1, j + 1)] = np.einsum("ctp,ctu,cuq->pq", A, Dij, A)
    W = np.linalg.pinv(info)
    return _Terms(Phi=Phi, P=P, Q=Q, R=R, W=W)


@dataclass(frozen=True)
class SmallSample:
    """Inference for one coefficient: variance to use, degrees of freedom and the F scaling (1 if none)."""

    variance: float
    df: float
    scale: float = 1.0


def satterthwaite(fit: LmmFit, index: int) -> SmallSample:
    """Satterthwaite degrees of freedom for coefficient ``index`` with the model-based variance."""
    t = _terms(fit)
    Phi = t.Phi
    var = float(Phi[index, index])
    grad = np.array([-(Phi @ Pi @ Phi)[index, index] for Pi in t.P])
    denom = float(grad @ t.W @ grad)
    return SmallSample(variance=var, df=2 * var**2 / denom if denom > 0 else math.inf)


def kenward_roger(fit: LmmFit, index: int) -> SmallSample:
    """Kenward-Roger adjusted variance, denominator df and F scaling for coefficient ``index`` (l = 1)."""
    t = _terms(fit)
    Phi, P, W = t.Phi, t.P, t.W
    k, p = len(P), Phi.shape[0]
    Lam = np.zeros((p, p))
    for i in range(k):
        for j in range(k):
            term = t.Q[(i, j)] - P[i] @ Phi @ P[j]
            if (i, j) in t.R:
                term = term - 0.25 * t.R[(i, j)]
            Lam += W[i, j] * term
    Phi_A = Phi + 2 * Phi @ Lam @ Phi
    ell = 1.0
    L = np.zeros((p, 1))
    L[index, 0] = 1.0
    Theta = L @ np.linalg.inv(L.T @ Phi @ L) @ L.T
    M = [Theta @ Phi @ Pi @ Phi for Pi in P]
    A1 = sum(W[i, j] * np.trace(M[i]) * np.trace(M[j]) for i in range(k) for j in range(k))
    A2 = sum(W[i, j] * np.trace(M[i] @ M[j]) for i in range(k) for j in range(k))
    B = (A1 + 6 * A2) / (2 * ell)
    g = ((ell + 1) * A1 - (ell + 4) * A2) / ((ell + 2) * A2)
    denom = 3 * ell + 2 * (1 - g)
    c1, c2, c3 = g / denom, (ell - g) / denom, (ell + 2 - g) / denom
    E = 1 / (1 - A2 / ell)
    Vstar = 2 / ell * (1 + c1 * B) / ((1 - c2 * B) ** 2 * (1 - c3 * B))
    rho = Vstar / (2 * E**2)
    m = 4 + (ell + 2) / (ell * rho - 1)
    lam = m / (E * (m - 2))
    return SmallSample(variance=float(Phi_A[index, index]), df=float(m), scale=float(lam))
