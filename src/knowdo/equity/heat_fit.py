"""Batched two-parameter regression fits for the slope and relative indices of inequality (SII, RII).

HEAT fits one population-weighted regression of the subgroup estimates on
their relative rank per indicator x dimension x period. A project panel has
thousands of such sets, each with 3-10 points, so fitting them one statsmodels
GLM at a time costs minutes; here every set is fitted at once by a damped
Newton iteration on stacked arrays, with the HC1 sandwich covariance R's
``sandwich::vcovHC`` gives (the reference package's choice). Agreement with
statsmodels' binomial GLM is tested.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NEWTON_STEPS = 100  # Newton converges in < 10 steps for well-posed two-parameter logits; cap for separation
_NEWTON_TOL = 1e-10
_MAX_STEP = 2.0  # logit units per Newton step: damping keeps the iteration from overshooting


def newton_logit(
    y: FloatArray, w: FloatArray, x: FloatArray, start: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, BoolArray]:
    """Batched quasi-binomial logit of proportions ``y`` on ``x`` (weights ``w``): a, b, fitted p, info, ok."""
    g = y.shape[0]
    a = start.copy()
    bcoef = np.zeros(g)
    converged = np.zeros(g, dtype=bool)
    for _ in range(_NEWTON_STEPS):
        eta = a[:, None] + bcoef[:, None] * x
        prob = special.expit(eta)
        resid = w * (y - prob)
        u0, u1 = resid.sum(axis=1), (resid * x).sum(axis=1)
        v = w * prob * (1.0 - prob)
        i00, i01, i11 = v.sum(axis=1), (v * x).sum(axis=1), (v * x * x).sum(axis=1)
        det = i00 * i11 - i01**2
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (i11 * u0 - i01 * u1) / det
            db = (-i01 * u0 + i00 * u1) / det
        # Cap the step: the quasi-likelihood is concave, so a damped Newton step cannot overshoot into divergence.
        with np.errstate(invalid="ignore"):
            size = np.maximum(np.abs(da), np.abs(db))
            damp = np.where(size > _MAX_STEP, _MAX_STEP / np.maximum(size, _MAX_STEP), 1.0)
            da = np.where(converged, 0.0, da * damp)
            db = np.where(converged, 0.0, db * damp)
        a = a + np.nan_to_num(da)
        bcoef = bcoef + np.nan_to_num(db)
        converged |= (np.abs(da) < _NEWTON_TOL) & (np.abs(db) < _NEWTON_TOL)
        if converged.all():
            break
    prob = special.expit(a[:, None] + bcoef[:, None] * x)
    v = w * prob * (1.0 - prob)
    info = np.stack([v.sum(axis=1), (v * x).sum(axis=1), (v * x * x).sum(axis=1)], axis=1)
    return a, bcoef, prob, info, converged & np.isfinite(a) & np.isfinite(bcoef)


def hc1_sandwich(info: FloatArray, score: FloatArray, x: FloatArray, n: npt.NDArray[np.int64]) -> FloatArray:
    """HC1 sandwich covariance of (intercept, slope): inverse(info) * meat * inverse(info) * n / (n - 2)."""
    i00, i01, i11 = info[:, 0], info[:, 1], info[:, 2]
    det = i00 * i11 - i01**2
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.stack([i11 / det, -i01 / det, i00 / det], axis=1)
        m00 = (score**2).sum(axis=1)
        m01 = (score**2 * x).sum(axis=1)
        m11 = (score**2 * x * x).sum(axis=1)
        a00, a01, a11 = inv[:, 0], inv[:, 1], inv[:, 2]
        # (A M A) for symmetric 2x2 A and M
        t00 = a00 * m00 + a01 * m01
        t01 = a00 * m01 + a01 * m11
        t10 = a01 * m00 + a11 * m01
        t11 = a01 * m01 + a11 * m11
        v00 = t00 * a00 + t01 * a01
        v01 = t00 * a01 + t01 * a11
        v11 = t10 * a01 + t11 * a11
        hc1 = n / (n - 2.0)
    return np.stack([v00, v01, v11], axis=1) * hc1[:, None]
