"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021, AER 111(12)).

For a block design (``N1`` treated units all starting at period ``T0 + 1``,
``N0`` never-treated units), SDID re-weights control units so their pre-period
path parallels the treated average, and pre-periods so they resemble the
post-period, then takes the weighted difference in differences:

* unit weights ``omega`` on the simplex with a free intercept minimise
  ``sum_t (omega0 + sum_i omega_i Y_it - mean_tr Y_t)^2 + zeta^2 T0 ||omega||^2``
  over pre-periods, with ``zeta = (N1 T1)^(1/4) sigma`` and ``sigma`` the
  standard deviation of the controls' pre-period first differences (paper
  eq. 2.2-2.3);
* time weights ``lambda`` on the simplex with a free intercept minimise
  ``sum_i (lambda0 + sum_t lambda_t Y_it - mean_post Y_i)^2`` over controls,
  with the reference implementation's tiny ridge ``zeta_lambda = 1e-6 sigma``
  for uniqueness;
* ``tau = (Ybar_tr,post - lambda' Ybar_tr,pre) - sum_i omega_i (Ybar_i,post - lambda' Y_i,pre)``.

Both weight problems are strictly convex least squares on the simplex and are
solved to optimality with the same simplex solver as the synthetic control
(NNLS plus an exact polish) rather than by the reference implementation's
Frank-Wolfe iterations with sparsification, which stop early by design; the
two agree to the precision the paper prints (see the tests).

Standard errors: ``placebo`` (Algorithm 4: controls reassigned as pseudo-treated,
weights re-estimated, ``replications`` draws) or ``jackknife`` (Algorithm 3,
leave-one-unit-out with the weights held fixed; needs two or more treated units).
Placebo SEs need many more controls than treated units: on the example
programme (cohorts of up to 8 clinics, 12 controls) they covered 91.5%, the
jackknife 100% (docs/studies/designs-coverage.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from knowdo.designs._frames import (
    check_level,
    headline_rows,
    panel_strata,
    require_binary,
    require_columns,
    require_complete,
    require_frame,
    require_numeric,
    strata_table,
)
from knowdo.designs._options import check_option
from knowdo.designs.effect import Effect
from knowdo.designs.synth import _plain, simplex_least_squares
from knowdo.errors import ParameterError

SdidSe = Literal["placebo", "jackknife"]
SE_METHODS: tuple[str, ...] = ("placebo", "jackknife")

ASSUMPTIONS = (
    "Block adoption: all treated units start at the same period and stay treated; controls are never treated.",
    "After re-weighting units and pre-periods, treated and control outcomes would have moved in parallel "
    "without the intervention (check the pre-period path).",
    "No control unit is affected by the intervention (no spillovers) and there is no anticipation.",
    "Placebo standard errors treat treated units as exchangeable with controls (homoskedasticity across units).",
)

# Ridge on the time weights relative to the noise level (reference implementation default, eta.lambda = 1e-6).
_ETA_LAMBDA = 1e-6


@dataclasses.dataclass
class SdidSolution:
    """The SDID point estimate with its unit and time weights, noise level and regularisation."""

    tau: float
    omega: np.ndarray
    lam: np.ndarray
    noise: float
    zeta: float


def _weights(A: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """Simplex weights with a free intercept: centre over rows, then append the ridge rows."""
    Ac = A - A.mean(axis=0)
    bc = b - b.mean()
    k = A.shape[1]
    if ridge > 0:
        Ac = np.vstack([Ac, math.sqrt(ridge) * np.eye(k)])
        bc = np.concatenate([bc, np.zeros(k)])
    return simplex_least_squares(Ac, bc)


def sdid_solve(Y: np.ndarray, N0: int, T0: int) -> SdidSolution:
    """SDID estimate for Y (units x periods) whose first N0 rows are controls and first T0 columns pre-periods."""
    N, T = Y.shape
    N1, T1 = N - N0, T - T0
    diffs = np.diff(Y[:N0, :T0], axis=1)
    noise = float(diffs.std(ddof=1)) if diffs.size > 1 else 0.0
    zeta_omega = (N1 * T1) ** 0.25 * noise  # paper eq. (2.3)
    zeta_lambda = _ETA_LAMBDA * noise
    treated_pre = Y[N0:, :T0].mean(axis=0)
    omega = _weights(Y[:N0, :T0].T, treated_pre, zeta_omega**2 * T0)
    control_post = Y[:N0, T0:].mean(axis=1)
    lam = _weights(Y[:N0, :T0], control_post, zeta_lambda**2 * N0)
    tau = _tau(Y, N0, T0, omega, lam)
    return SdidSolution(tau=tau, omega=omega, lam=lam, noise=noise, zeta=zeta_omega)


def _tau(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, lam: np.ndarray) -> float:
    N, T = Y.shape
    unit = np.concatenate([-omega, np.full(N - N0, 1.0 / (N - N0))])
    time = np.concatenate([-lam, np.full(T - T0, 1.0 / (T - T0))])
    return float(unit @ Y @ time)


def _normalise(w: np.ndarray) -> np.ndarray:
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


class SyntheticDiD:
    """Synthetic difference-in-differences for a block (common start) design.

    Parameters
    ----------
    unit, time, outcome, treatment
        Columns of a balanced long panel; ``treatment`` is 0/1 per unit-period.
    se
        ``placebo`` (default; works with one treated unit) or ``jackknife``.
    replications
        Placebo draws (the reference implementation uses 200).
    seed
        Seed for the placebo draws.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> rows = [(u, t, u * 0.5 + t * 0.3 + rng.normal(0, 0.1) + (1.0 if u >= 18 and t >= 8 else 0.0),
    ...          int(u >= 18 and t >= 8)) for u in range(20) for t in range(12)]
    >>> df = pd.DataFrame(rows, columns=["unit", "time", "y", "d"])
    >>> fit = SyntheticDiD(unit="unit", time="time", outcome="y", treatment="d", replications=50, seed=1).fit(df)
    >>> bool(abs(fit.result_.estimate - 1.0) < 0.2)
    True
    """

    def __init__(
        self,
        *,
        unit: str = "site_id",
        time: str = "period",
        outcome: str,
        treatment: str = "treated",
        se: SdidSe = "placebo",
        replications: int = 200,  # placebo draws, reference implementation default
        seed: int | None = 0,
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.unit = unit
        self.time = time
        self.outcome = outcome
        self.treatment = treatment
        self.se = se
        self.replications = replications
        self.seed = seed
        self.level = level

    def fit(self, data: pd.DataFrame) -> SyntheticDiD:
        """Estimate weights, effect and standard error; sets ``result_`` and returns self."""
        design = "sdid"
        require_frame(data, design)
        check_option("se", self.se, SE_METHODS)
        check_level(self.level, design)
        cols = [self.unit, self.time, self.outcome, self.treatment]
        require_columns(data, cols, design)
        require_complete(data, cols, design)
        require_numeric(data, [self.outcome, self.treatment], design)
        require_binary(data, self.treatment, design)
        if not isinstance(self.replications, (int, np.integer)) or self.replications < 2:
            raise ParameterError(f"sdid: replications={self.replications!r} must be an integer >= 2.")
        effect = self._fit_frame(headline_rows(data), with_details=True)
        strata = strata_table(
            panel_strata(data),
            lambda part: self._fit_frame(part, with_details=False),
            lambda part: int(part[self.unit].nunique()),
        )
        if len(strata):
            effect = dataclasses.replace(effect, strata=strata)
        self.result_ = effect
        return self

    def _matrix(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
        """Outcome matrix with controls first, and (N0, T0); checks the block design."""
        if frame.duplicated([self.unit, self.time]).any():
            raise ParameterError(
                f"sdid: more than one row per ({self.unit!r}, {self.time!r}); aggregate first or filter the panel "
                "to dimension == 'all'."
            )
        Y = frame.pivot(index=self.unit, columns=self.time, values=self.outcome).sort_index(axis=1)
        D = frame.pivot(index=self.unit, columns=self.time, values=self.treatment).sort_index(axis=1)
        if Y.isna().any().any():
            raise ParameterError(f"sdid: the panel is unbalanced (missing {self.outcome!r} for some unit-periods).")
        D = D.fillna(0).astype(int)
        ever = D.max(axis=1) == 1
        if not ever.any() or ever.all():
            raise ParameterError("sdid: need both treated and never-treated units.")
        starts = D[ever].idxmax(axis=1)
        if starts.nunique() > 1:
            raise ParameterError(
                f"sdid: treated units start at {starts.nunique()} different periods; SDID here needs a common "
                "start. Use the staggered DiD estimators (Callaway-Sant'Anna) or analyse one cohort at a time."
            )
        times: list[Any] = list(Y.columns)
        T0 = times.index(starts.iloc[0])
        after = D[ever].iloc[:, T0:]
        if (after != 1).any().any():
            raise ParameterError("sdid: a treated unit switches treatment off; SDID assumes absorbing treatment.")
        if T0 < 2:
            raise ParameterError(f"sdid: only {T0} pre-treatment period(s); need at least 2.")
        order = list(Y.index[~ever]) + list(Y.index[ever])
        return Y.loc[order], int((~ever).sum()), T0

    def _fit_frame(self, frame: pd.DataFrame, *, with_details: bool) -> Effect:
        Y_df, N0, T0 = self._matrix(frame)
        Y = Y_df.to_numpy(dtype=float)
        N, T = Y.shape
        N1, T1 = N - N0, T - T0
        sol = sdid_solve(Y, N0, T0)
        rng = np.random.default_rng(self.seed)
        if self.se == "placebo":
            if N0 <= N1:
                raise ParameterError(
                    f"sdid: placebo SEs need more controls ({N0}) than treated units ({N1}); use se='jackknife'."
                )
            draws = np.empty(self.replications)
            for r in range(self.replications):
                perm = rng.permutation(N0)
                draws[r] = sdid_solve(Y[perm], N0 - N1, T0).tau
            se = float(draws.std(ddof=0))
        else:
            if N1 < 2:
                raise ParameterError("sdid: the jackknife needs two or more treated units; use se='placebo'.")
            draws = np.empty(N)
            for i in range(N):
                keep = np.delete(np.arange(N), i)
                n0 = N0 - 1 if i < N0 else N0
                omega = _normalise(np.delete(sol.omega, i) if i < N0 else sol.omega)
                draws[i] = _tau(Y[keep], n0, T0, omega, sol.lam)
            se = float(math.sqrt((N - 1) / N * ((draws - draws.mean()) ** 2).sum()))
        z = float(stats.norm.ppf(0.5 + self.level / 2))
        did = _tau(Y, N0, T0, np.full(N0, 1.0 / N0), np.full(T0, 1.0 / T0))
        diagnostics: dict[str, Any] = {
            "n_treated": N1,
            "n_control": N0,
            "pre_periods": T0,
            "post_periods": T1,
            "noise_level": sol.noise,
            "zeta_omega": sol.zeta,
            "effective_controls": float(1.0 / np.sum(sol.omega**2)),
            "effective_pre_periods": float(1.0 / np.sum(sol.lam**2)),
            "did_estimate": did,
            "se_method": self.se,
        }
        details: dict[str, pd.DataFrame] = {}
        path = None
        times = list(Y_df.columns)
        if with_details:
            details["weights"] = pd.DataFrame({"unit": list(Y_df.index[:N0]), "weight": sol.omega})
            details["time_weights"] = pd.DataFrame({"time": [_plain(t) for t in times[:T0]], "weight": sol.lam})
            details["placebo"] = pd.DataFrame({"replication": np.arange(len(draws)), "estimate": draws})
            synth = sol.omega @ Y[:N0]
            treated = Y[N0:].mean(axis=0)
            diff = treated - synth
            gap = diff - float(sol.lam @ diff[:T0])
            path = pd.DataFrame({"time": [_plain(t) for t in times], "estimate": gap,
                                 "std_error": np.nan, "conf_low": np.nan, "conf_high": np.nan})
            details["series"] = pd.DataFrame({"time": [_plain(t) for t in times], "treated": treated,
                                              "synthetic": synth, "gap": gap,
                                              "post": (np.arange(T) >= T0).astype(int)})
        return Effect(
            design="sdid",
            estimand=(
                f"average effect on {self.outcome!r} in the {N1} treated unit(s) over the {T1} post-treatment "
                f"period(s) from {_plain(times[T0])} (ATT)"
            ),
            estimate=sol.tau,
            std_error=se,
            conf_low=sol.tau - z * se,
            conf_high=sol.tau + z * se,
            method=f"synthetic difference-in-differences (Arkhangelsky et al. 2021), {self.se} standard error",
            level=self.level,
            p_value=float(2 * stats.norm.sf(abs(sol.tau / se))) if se > 0 else math.nan,
            settings={"unit": self.unit, "time": self.time, "outcome": self.outcome, "treatment": self.treatment,
                      "se": self.se, "replications": self.replications, "seed": self.seed, "level": self.level},
            n_obs=int(N * T),
            n_units=int(N),
            path=path,
            diagnostics=diagnostics,
            assumptions=ASSUMPTIONS,
            details=details,
            term="att",
        )


def sdid(data: pd.DataFrame, **settings: Any) -> Effect:
    """Fit synthetic difference-in-differences in one call; see :class:`SyntheticDiD` for the settings."""
    return SyntheticDiD(**settings).fit(data).result_
