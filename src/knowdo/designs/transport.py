"""Generalising or transporting a trial's effect to a target population.

The participation (sampling) propensity ``p(X) = P(S = 1 | X)`` is fitted by
logistic regression on the stacked trial (``S = 1``) and target (``S = 0``)
rows (Stuart, Cole, Bradshaw & Leaf 2011). Trial members are then weighted
to the target:

* ``nested`` (the trial was drawn from the population the other rows
  describe, so the population is trial plus non-participants): inverse
  probability of sampling weights ``w = 1 / p`` (IPSW; Cole & Stuart 2010);
* ``disjoint`` (trial and target samples do not overlap; the target is the
  ``S = 0`` rows only): inverse odds of sampling weights ``w = (1 - p) / p``
  (IOSW; Westreich et al. 2017).

The target average treatment effect is the weighted difference of arm means
in the trial, with a percentile bootstrap interval that resamples trial and
target rows separately and refits the participation model each time.

Diagnostics say how far the trial is from the target: the standardised
difference of mean propensity (Stuart et al. 2011; above 0.25 flags a poor
match), Tipton's (2014) generalizability index (the Bhattacharyya coefficient
of the two propensity distributions, Gaussian kernels with Silverman's
bandwidth; >= 0.9 very high, 0.8-0.9 high, 0.5-0.8 medium, < 0.5 low),
weighted covariate differences and Kish's effective sample size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from knowdo.designs._frames import (
    check_level,
    kish_ess,
    require_binary,
    require_columns,
    require_complete,
    require_frame,
    require_numeric,
)
from knowdo.designs._options import check_option
from knowdo.designs.effect import STRATA_COLUMNS, Effect
from knowdo.designs.emulation import covariate_matrix, fit_propensity
from knowdo.errors import ParameterError

TargetKind = Literal["nested", "disjoint"]
TARGET_KINDS: tuple[str, ...] = ("nested", "disjoint")

SMD_POOR_MATCH = 0.25  # |standardised propensity difference| above 0.25 (Stuart et al. 2011, Rubin 2001)
TIPTON_BANDS = ((0.9, "very high"), (0.8, "high"), (0.5, "medium"), (0.0, "low"))  # Tipton 2014, JEBS 39:478

ASSUMPTIONS = (
    "Within the trial, treatment was randomised (internal validity).",
    "Conditional on the covariates, the effect is the same in trial and target (no unmeasured effect modifiers "
    "that differ between them): transportability / sample ignorability.",
    "Positivity of participation: every kind of target member has a chance to be in the trial "
    "(see the propensity overlap and Tipton's index).",
    "Covariates are measured the same way in trial and target data.",
)


def participation_weights(p: np.ndarray, target: str) -> np.ndarray:
    """Weights for trial members: ``1/p`` (nested, IPSW) or ``(1-p)/p`` (disjoint, inverse odds).

    Examples
    --------
    >>> participation_weights(np.array([0.25, 0.5]), "nested").tolist()
    [4.0, 2.0]
    >>> participation_weights(np.array([0.25, 0.5]), "disjoint").tolist()
    [3.0, 1.0]
    """
    check_option("target", target, TARGET_KINDS)
    p = np.asarray(p, dtype=float)
    return 1.0 / p if target == "nested" else (1.0 - p) / p


def tipton_index(p_trial: np.ndarray, p_target: np.ndarray, grid_size: int = 2048) -> float:
    """Tipton's generalizability index: Bhattacharyya coefficient of the two propensity densities.

    Each density is a Gaussian kernel estimate with Silverman's rule-of-thumb
    bandwidth ``0.9 min(sd, IQR/1.34) n^(-1/5)`` (R's ``bw.nrd0``), computed on
    a common grid by linear binning and convolution (exact to the grid
    spacing, and linear in n, so large registries stay fast); the index is
    the integral of ``sqrt(f_trial f_target)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(0, 1, 4000); b = rng.normal(0, 1, 4000)
    >>> round(tipton_index(a, b), 2)
    1.0
    """
    x1 = np.asarray(p_trial, dtype=float)
    x0 = np.asarray(p_target, dtype=float)
    h1, h0 = _silverman(x1), _silverman(x0)
    if h1 == 0 or h0 == 0:
        return 1.0 if np.allclose(x1.mean(), x0.mean()) else 0.0
    pad = 5 * max(h1, h0)
    grid = np.linspace(min(x1.min(), x0.min()) - pad, max(x1.max(), x0.max()) + pad, grid_size)
    f1, f0 = _binned_kde(x1, grid, h1), _binned_kde(x0, grid, h0)
    return float(min(1.0, np.trapezoid(np.sqrt(f1 * f0), grid)))


def _silverman(x: np.ndarray) -> float:
    iqr = float(np.subtract(*np.quantile(x, [0.75, 0.25])))
    spread = min(float(x.std(ddof=1)), iqr / 1.34) if iqr > 0 else float(x.std(ddof=1))
    return 0.9 * spread * len(x) ** -0.2


def _binned_kde(x: np.ndarray, grid: np.ndarray, h: float) -> np.ndarray:
    step = grid[1] - grid[0]
    pos = (x - grid[0]) / step
    left = np.clip(np.floor(pos).astype(int), 0, len(grid) - 2)
    frac = pos - left
    counts = np.bincount(left, weights=1 - frac, minlength=len(grid))
    counts += np.bincount(left + 1, weights=frac, minlength=len(grid))
    half = int(np.ceil(5 * h / step))
    offsets = np.arange(-half, half + 1) * step
    kernel = np.exp(-0.5 * (offsets / h) ** 2) / (h * np.sqrt(2 * np.pi))
    return np.asarray(np.convolve(counts, kernel, mode="same") / len(x))


def tipton_band(index: float) -> str:
    """Tipton's (2014) verbal band for a generalizability index.

    >>> tipton_band(0.85)
    'high'
    """
    for threshold, label in TIPTON_BANDS:
        if index >= threshold:
            return label
    return "low"


class Transport:
    """Weighted target-population effect of a trial, with the distance between trial and target.

    Parameters
    ----------
    outcome, treatment
        Trial outcome and randomised 0/1 arm (ignored on target rows).
    covariates
        Effect modifiers / participation predictors measured in both trial and target.
    sample
        0/1 column: 1 for trial rows, 0 for target (or non-participant) rows.
    target
        ``disjoint`` (inverse-odds weights) or ``nested`` (inverse-probability weights).
    n_bootstrap, seed
        Bootstrap draws and their seed.
    strata
        Stratifier columns: target effects within each level.

    Examples
    --------
    >>> rng = np.random.default_rng(11)
    >>> n = 2000
    >>> x = np.r_[rng.normal(0.5, 1, n), rng.normal(0, 1, n)]
    >>> s = np.r_[np.ones(n), np.zeros(n)].astype(int)
    >>> a = np.r_[rng.integers(0, 2, n), np.zeros(n)].astype(int)
    >>> y = np.where(s == 1, 1 + (1 + x) * a + rng.normal(size=2 * n), np.nan)
    >>> df = pd.DataFrame({"x": x, "s": s, "a": a, "y": y})
    >>> e = Transport(outcome="y", treatment="a", covariates=["x"], sample="s", n_bootstrap=50).fit(df).result_
    >>> bool(abs(e.estimate - 1.0) < 0.2)
    True
    """

    def __init__(
        self,
        *,
        outcome: str,
        treatment: str,
        covariates: Sequence[str],
        sample: str = "in_trial",
        target: TargetKind = "disjoint",
        n_bootstrap: int = 500,  # enough for a stable 95% percentile interval (Efron & Tibshirani 1993, ch. 13)
        seed: int | None = 0,
        strata: Sequence[str] = (),
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.outcome = outcome
        self.treatment = treatment
        self.covariates = covariates
        self.sample = sample
        self.target = target
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.strata = strata
        self.level = level

    def fit(self, data: pd.DataFrame) -> Transport:
        """Estimate the target effect, its bootstrap interval and the diagnostics; returns self."""
        design = "transport"
        require_frame(data, design)
        check_option("target", self.target, TARGET_KINDS)
        check_level(self.level, design)
        if not isinstance(self.n_bootstrap, (int, np.integer)) or self.n_bootstrap < 20:
            raise ParameterError(f"transport: n_bootstrap={self.n_bootstrap!r} must be an integer >= 20.")
        covs = list(self.covariates)
        if not covs:
            raise ParameterError("transport: name at least one covariate measured in both trial and target.")
        require_columns(data, [self.outcome, self.treatment, self.sample, *covs, *self.strata], design)
        require_complete(data, [self.sample, *covs, *self.strata], design)
        require_binary(data, self.sample, design)
        trial = data[data[self.sample].astype(float) == 1]
        require_complete(trial, [self.outcome, self.treatment], design)
        require_numeric(trial, [self.outcome, self.treatment], design)
        require_binary(trial, self.treatment, design)

        X_df = covariate_matrix(data, covs)
        X_df = X_df.loc[:, X_df.std(ddof=0) > 0]
        X = np.column_stack([np.ones(len(data)), X_df.to_numpy(dtype=float)])
        s = data[self.sample].to_numpy(dtype=float)
        a = np.nan_to_num(data[self.treatment].to_numpy(dtype=float))
        y = np.nan_to_num(data[self.outcome].to_numpy(dtype=float))
        labels = {c: data[c].astype(str).to_numpy() for c in self.strata}
        levels = [(c, lv) for c in self.strata for lv in sorted(pd.unique(labels[c][s == 1]))]

        p = fit_propensity(X, s, "transport participation")
        w = participation_weights(p[s == 1], self.target)
        est, strata_est = self._estimates(a[s == 1], y[s == 1], w, {c: v[s == 1] for c, v in labels.items()}, levels)
        sate = _weighted_diff(a[s == 1], y[s == 1], np.ones(int(s.sum())))

        rng = np.random.default_rng(self.seed)
        trial_idx, target_idx = np.flatnonzero(s == 1), np.flatnonzero(s == 0)
        draws = np.full(self.n_bootstrap, np.nan)
        strata_draws = np.full((self.n_bootstrap, len(levels)), np.nan)
        for b in range(self.n_bootstrap):
            idx = np.concatenate([rng.choice(trial_idx, len(trial_idx)), rng.choice(target_idx, len(target_idx))])
            sb = s[idx]
            try:
                pb = fit_propensity(X[idx], sb, "transport bootstrap")
            except ParameterError:
                continue
            wb = participation_weights(pb[sb == 1], self.target)
            tb = idx[sb == 1]
            draws[b], strata_draws[b] = self._estimates(a[tb], y[tb], wb, {c: v[tb] for c, v in labels.items()},
                                                        levels)
        ok = np.isfinite(draws)
        if ok.sum() < 0.9 * self.n_bootstrap:
            raise ParameterError(
                f"transport: only {int(ok.sum())} of {self.n_bootstrap} bootstrap fits succeeded; the participation "
                "model is unstable (near-separation): coarsen covariates or check overlap."
            )
        alpha = 1 - self.level
        low, high = np.quantile(draws[ok], [alpha / 2, 1 - alpha / 2])
        se = float(draws[ok].std(ddof=1))

        target_rows = np.ones(len(s), bool) if self.target == "nested" else s == 0
        diagnostics = self._diagnostics(p, s, target_rows, w, a, sate)
        diagnostics["bootstrap_failures"] = int((~ok).sum())
        strata = None
        if levels:
            rows = []
            for j, (col, lv) in enumerate(levels):
                good = np.isfinite(strata_draws[:, j])
                lo, hi = (np.quantile(strata_draws[good, j], [alpha / 2, 1 - alpha / 2]) if good.sum() > 10
                          else (math.nan, math.nan))
                sd = float(strata_draws[good, j].std(ddof=1)) if good.sum() > 10 else math.nan
                n = int(((labels[col] == lv) & (s == 1)).sum())
                rows.append({"dimension": col, "stratum": lv, "estimate": strata_est[j], "std_error": sd,
                             "conf_low": lo, "conf_high": hi,
                             "p_value": float(2 * stats.norm.sf(abs(strata_est[j] / sd))) if sd > 0 else math.nan,
                             "n": n})
            strata = pd.DataFrame(rows, columns=list(STRATA_COLUMNS))
        details = {
            "balance": self._balance(X_df, s, target_rows, w),
            "propensity": _propensity_summary(p, s, target_rows),
        }
        kind = ("inverse probability of sampling (1/p)" if self.target == "nested"
                else "inverse odds of sampling ((1-p)/p)")
        effect = Effect(
            design="transport",
            estimand=(
                f"average effect of {self.treatment!r} on {self.outcome!r} in the target population "
                f"({'trial plus non-participants' if self.target == 'nested' else 'the S = 0 sample'}), "
                "from the trial re-weighted to it (TATE)"
            ),
            estimate=est,
            std_error=se,
            conf_low=float(low),
            conf_high=float(high),
            method=f"trial weighted by {kind} from a logistic participation model; percentile bootstrap "
                   f"({self.n_bootstrap} draws) interval",
            level=self.level,
            p_value=float(2 * stats.norm.sf(abs(est / se))) if se > 0 else math.nan,
            settings={"outcome": self.outcome, "treatment": self.treatment, "covariates": covs,
                      "sample": self.sample, "target": self.target, "n_bootstrap": self.n_bootstrap,
                      "seed": self.seed, "strata": list(self.strata), "level": self.level},
            n_obs=len(data),
            n_units=int(s.sum()),
            strata=strata,
            diagnostics=diagnostics,
            assumptions=ASSUMPTIONS,
            details=details,
            term="tate",
        )
        self.result_ = effect
        return self

    def _estimates(
        self, a: np.ndarray, y: np.ndarray, w: np.ndarray, labels: dict[str, np.ndarray],
        levels: list[tuple[str, str]],
    ) -> tuple[float, np.ndarray]:
        overall = _weighted_diff(a, y, w)
        per = np.array([_weighted_diff(a[labels[c] == lv], y[labels[c] == lv], w[labels[c] == lv])
                        for c, lv in levels], dtype=float)
        return overall, per

    def _diagnostics(
        self, p: np.ndarray, s: np.ndarray, target_rows: np.ndarray, w: np.ndarray, a: np.ndarray, sate: float
    ) -> dict[str, Any]:
        p1, p0 = p[s == 1], p[target_rows]
        pooled = math.sqrt((p1.var(ddof=1) + p0.var(ddof=1)) / 2)
        lg1, lg0 = np.log(p1 / (1 - p1)), np.log(p0 / (1 - p0))
        pooled_logit = math.sqrt((lg1.var(ddof=1) + lg0.var(ddof=1)) / 2)
        index = tipton_index(p1, p0)
        a1 = a[s == 1]
        return {
            "n_trial": int(s.sum()),
            "n_target": int(target_rows.sum()),
            "trial_effect_unweighted": sate,
            "propensity_smd": float((p1.mean() - p0.mean()) / pooled) if pooled > 0 else 0.0,
            "propensity_logit_smd": float((lg1.mean() - lg0.mean()) / pooled_logit) if pooled_logit > 0 else 0.0,
            "propensity_smd_threshold": SMD_POOR_MATCH,
            "tipton_index": index,
            "tipton_band": tipton_band(index),
            "ess_trial": kish_ess(w),
            "ess_treated": kish_ess(w[a1 == 1]),
            "ess_control": kish_ess(w[a1 == 0]),
            "max_weight_share": float(w.max() / w.sum()),
        }

    def _balance(self, X_df: pd.DataFrame, s: np.ndarray, target_rows: np.ndarray, w: np.ndarray) -> pd.DataFrame:
        rows = []
        for col in X_df.columns:
            x = X_df[col].to_numpy(dtype=float)
            x1, x0 = x[s == 1], x[target_rows]
            denom = math.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2)
            m1, m0, mw = float(x1.mean()), float(x0.mean()), float(np.average(x1, weights=w))
            rows.append({"covariate": col, "mean_trial": m1, "mean_trial_weighted": mw, "mean_target": m0,
                         "asmd_before": abs(m1 - m0) / denom if denom > 0 else 0.0,
                         "asmd_after": abs(mw - m0) / denom if denom > 0 else 0.0})
        return pd.DataFrame(rows, columns=["covariate", "mean_trial", "mean_trial_weighted", "mean_target",
                                           "asmd_before", "asmd_after"])


def _weighted_diff(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    t = a == 1
    if not t.any() or t.all():
        return math.nan
    return float(np.average(y[t], weights=w[t]) - np.average(y[~t], weights=w[~t]))


def _propensity_summary(p: np.ndarray, s: np.ndarray, target_rows: np.ndarray) -> pd.DataFrame:
    rows = []
    for label, mask in (("trial", s == 1), ("target", target_rows)):
        q = np.quantile(p[mask], [0.0, 0.05, 0.5, 0.95, 1.0])
        rows.append({"sample": label, "n": int(mask.sum()), "mean": float(p[mask].mean()), "min": q[0],
                     "p05": q[1], "median": q[2], "p95": q[3], "max": q[4]})
    return pd.DataFrame(rows)


def transport(data: pd.DataFrame, **settings: Any) -> Effect:
    """Generalise or transport a trial's effect in one call; see :class:`Transport` for the settings."""
    return Transport(**settings).fit(data).result_
