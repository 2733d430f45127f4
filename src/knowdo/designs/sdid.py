"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021, AER 111(12)),
for a common adoption date or staggered adoption (Clarke, Pailañir, Athey & Imbens 2023, Stata Journal).

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

Staggered adoption (the paper's Appendix A as implemented by Clarke et al.
2023): each adoption cohort ``a`` is its own block design (the cohort's
units against the never-treated units, pre-periods all periods before ``a``,
post-periods ``a`` to the end), with its own weights and regularisation, and
the ATT is the average of the cohort estimates weighted by each cohort's
number of treated unit-periods, ``N_a (T - a + 1)``. Units treated later never
serve as controls, so already-treated units never act as a comparison.

Both weight problems are strictly convex least squares on the simplex and are
solved to optimality with the same simplex solver as the synthetic control
(NNLS plus an exact polish) rather than by the reference implementation's
Frank-Wolfe iterations with sparsification, which stop early by design; the
two agree to the precision the paper prints (see the tests).

Standard errors, all over the whole (aggregated) ATT, clustered by unit:

* ``placebo`` (Algorithm 4; staggered version of Clarke et al.): ``N1``
  controls drawn without replacement receive the treated units' adoption
  dates, the estimator is re-run on the controls alone, ``replications``
  times; needs more controls than treated units;
* ``bootstrap`` (Algorithm 2): units resampled with replacement (draws
  without a treated or without a control unit are redrawn), weights
  re-estimated; needs two or more treated units;
* ``jackknife`` (Algorithm 3): leave one unit out with the weights held fixed
  (re-normalised); undefined with a single treated unit, so every adoption
  cohort needs two or more.

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
from knowdo.designs._options import check_option, constructor_settings
from knowdo.designs.effect import Effect
from knowdo.designs.synth import _plain, simplex_least_squares
from knowdo.errors import ParameterError

SdidSe = Literal["placebo", "bootstrap", "jackknife"]
SE_METHODS: tuple[str, ...] = ("placebo", "bootstrap", "jackknife")

ASSUMPTIONS = (
    "Absorbing adoption: once treated a unit stays treated; controls are never treated (with staggered "
    "adoption each cohort is compared with the never-treated units only).",
    "After re-weighting units and pre-periods, treated and control outcomes would have moved in parallel "
    "without the intervention (check the pre-period path).",
    "No control unit is affected by the intervention (no spillovers) and there is no anticipation.",
    "Placebo standard errors treat treated units as exchangeable with controls (homoskedasticity across units); "
    "bootstrap and jackknife standard errors need many treated units.",
)

# Ridge on the time weights relative to the noise level (reference implementation default, eta.lambda = 1e-6).
_ETA_LAMBDA = 1e-6
# Redraws allowed per bootstrap replication before giving up (a draw needs both treated and control units).
_MAX_REDRAWS = 1000


@dataclasses.dataclass
class SdidSolution:
    """The SDID point estimate with its unit and time weights, noise level and regularisation."""

    tau: float
    omega: np.ndarray
    lam: np.ndarray
    noise: float
    zeta: float


@dataclasses.dataclass
class CohortSolution:
    """One adoption cohort's block SDID: first treated period (column index), treated rows and solution."""

    start: int
    rows: np.ndarray
    solution: SdidSolution

    @property
    def n_treated(self) -> int:
        return len(self.rows)


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


def sdid_staggered(Y: np.ndarray, N0: int, starts: np.ndarray) -> tuple[float, list[CohortSolution]]:
    """Staggered-adoption SDID: one block SDID per adoption cohort, aggregated by treated unit-periods.

    ``Y`` is units x periods with the ``N0`` never-treated units first; ``starts``
    gives, for each of the remaining rows, the column index of its first treated
    period. Returns the ATT and the cohort solutions (Clarke et al. 2023, eq. for
    the staggered ATT: weights ``N_a (T - a)`` with ``a`` the 0-based start).
    """
    T = Y.shape[1]
    cohorts: list[CohortSolution] = []
    for start in np.unique(starts):
        rows = N0 + np.flatnonzero(starts == start)
        sub = np.vstack([Y[:N0], Y[rows]])
        cohorts.append(CohortSolution(int(start), rows, sdid_solve(sub, N0, int(start))))
    return _aggregate([c.solution.tau for c in cohorts], [c.n_treated for c in cohorts],
                      [c.start for c in cohorts], T), cohorts


def _aggregate(taus: list[float], sizes: list[int], starts: list[int], T: int) -> float:
    w = np.array([n * (T - s) for n, s in zip(sizes, starts, strict=True)], dtype=float)
    return float(np.dot(w, taus) / w.sum())


def _tau(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, lam: np.ndarray) -> float:
    N, T = Y.shape
    unit = np.concatenate([-omega, np.full(N - N0, 1.0 / (N - N0))])
    time = np.concatenate([-lam, np.full(T - T0, 1.0 / (T - T0))])
    return float(unit @ Y @ time)


def _normalise(w: np.ndarray) -> np.ndarray:
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def _placebo_draws(Y: np.ndarray, N0: int, starts: np.ndarray, replications: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Algorithm 4, staggered: N1 controls take the treated units' adoption dates; controls only."""
    N1 = len(starts)
    draws = np.empty(replications)
    for r in range(replications):
        perm = rng.permutation(N0)
        draws[r] = sdid_staggered(Y[perm], N0 - N1, starts)[0]
    return draws


def _bootstrap_draws(Y: np.ndarray, N0: int, starts: np.ndarray, replications: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Algorithm 2: resample units with replacement, re-estimate the weights and the staggered ATT."""
    N = Y.shape[0]
    draws = np.empty(replications)
    for r in range(replications):
        for _ in range(_MAX_REDRAWS):
            pick = np.asarray(rng.integers(0, N, size=N))
            controls, treated = pick[pick < N0], pick[pick >= N0]
            if len(controls) and len(treated):
                break
        else:  # pragma: no cover - needs an absurd design (e.g. 1 control among thousands)
            raise ParameterError("sdid: bootstrap draws keep missing treated or control units; use se='placebo'.")
        draws[r] = sdid_staggered(Y[np.concatenate([controls, treated])], len(controls), starts[treated - N0])[0]
    return draws


def _jackknife_draws(Y: np.ndarray, N0: int, cohorts: list[CohortSolution]) -> np.ndarray:
    """Algorithm 3: leave each unit out with every cohort's weights held fixed (omega re-normalised)."""
    N, T = Y.shape
    draws = np.empty(N)
    for i in range(N):
        taus, sizes, starts = [], [], []
        for c in cohorts:
            rows = c.rows[c.rows != i]
            keep = np.delete(np.arange(N0), i) if i < N0 else np.arange(N0)
            omega = _normalise(c.solution.omega[keep])
            sub = np.vstack([Y[keep], Y[rows]])
            taus.append(_tau(sub, len(keep), c.start, omega, c.solution.lam))
            sizes.append(len(rows))
            starts.append(c.start)
        draws[i] = _aggregate(taus, sizes, starts, T)
    return draws


class SyntheticDiD:
    """Synthetic difference-in-differences, common or staggered adoption.

    Parameters
    ----------
    unit, time, outcome, treatment
        Columns of a balanced long panel; ``treatment`` is 0/1 per unit-period
        and, once 1, stays 1. Units first treated at different periods form
        adoption cohorts, each compared with the never-treated units.
    se
        ``placebo`` (default; works with one treated unit), ``bootstrap`` or
        ``jackknife`` (two or more treated units in every cohort).
    replications
        Placebo or bootstrap draws (the reference implementation uses 200).
    seed
        Seed for the placebo or bootstrap draws.

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
        replications: int = 200,  # placebo/bootstrap draws, reference implementation (R synthdid) default
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

    def _matrix(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, int, np.ndarray]:
        """Outcome matrix (controls first, treated by start) with N0 and each treated row's start column."""
        if frame.duplicated([self.unit, self.time]).any():
            raise ParameterError(
                f"sdid: more than one row per ({self.unit!r}, {self.time!r}); aggregate first or filter the panel "
                "to dimension == 'all'."
            )
        Y = frame.pivot(index=self.unit, columns=self.time, values=self.outcome).sort_index(axis=1)
        D = frame.pivot(index=self.unit, columns=self.time, values=self.treatment).sort_index(axis=1)
        if Y.isna().any().any():
            raise ParameterError(f"sdid: the panel is unbalanced (missing {self.outcome!r} for some unit-periods).")
        Dm = D.fillna(0).to_numpy(dtype=int)
        ever = Dm.max(axis=1) == 1
        if not ever.any() or ever.all():
            raise ParameterError("sdid: need both treated and never-treated units.")
        first = np.where(ever, Dm.argmax(axis=1), -1)
        on_after = Dm[ever] == 1
        cols = np.arange(Dm.shape[1])
        if (~on_after & (cols[None, :] >= first[ever][:, None])).any():
            raise ParameterError("sdid: a treated unit switches treatment off; SDID assumes absorbing treatment.")
        times: list[Any] = list(Y.columns)
        too_early = sorted({int(s) for s in first[ever] if s < 2})
        if too_early:
            raise ParameterError(
                f"sdid: units first treated at {_plain(times[too_early[0]])} have only {too_early[0]} "
                "pre-treatment period(s); need at least 2. Drop those units or extend the panel backwards."
            )
        treated_idx = np.flatnonzero(ever)
        treated_idx = treated_idx[np.argsort(first[treated_idx], kind="stable")]
        order = np.concatenate([np.flatnonzero(~ever), treated_idx])
        return Y.iloc[order], int((~ever).sum()), first[treated_idx]

    def _se_draws(self, Y: np.ndarray, N0: int, starts: np.ndarray, cohorts: list[CohortSolution]) -> np.ndarray:
        N1 = len(starts)
        rng = np.random.default_rng(self.seed)
        if self.se == "placebo":
            if N0 <= N1:
                raise ParameterError(
                    f"sdid: placebo SEs need more controls ({N0}) than treated units ({N1}); "
                    "use se='bootstrap' or se='jackknife'."
                )
            return _placebo_draws(Y, N0, starts, self.replications, rng)
        if self.se == "bootstrap":
            if N1 < 2:
                raise ParameterError("sdid: the bootstrap needs two or more treated units; use se='placebo'.")
            return _bootstrap_draws(Y, N0, starts, self.replications, rng)
        small = [c for c in cohorts if c.n_treated < 2]
        if small:
            raise ParameterError(
                "sdid: the jackknife needs two or more treated units in every adoption cohort "
                f"({len(small)} cohort(s) have one); use se='placebo'."
            )
        return _jackknife_draws(Y, N0, cohorts)

    def _fit_frame(self, frame: pd.DataFrame, *, with_details: bool) -> Effect:
        Y_df, N0, starts = self._matrix(frame)
        Y = Y_df.to_numpy(dtype=float)
        N, T = Y.shape
        N1 = N - N0
        att, cohorts = sdid_staggered(Y, N0, starts)
        draws = self._se_draws(Y, N0, starts, cohorts)
        if self.se == "jackknife":
            se = float(math.sqrt((N - 1) / N * ((draws - draws.mean()) ** 2).sum()))
        else:
            se = float(draws.std(ddof=0))
        z = float(stats.norm.ppf(0.5 + self.level / 2))
        times = list(Y_df.columns)
        units = list(Y_df.index)
        did_taus = []
        for c in cohorts:
            sub = np.vstack([Y[:N0], Y[c.rows]])
            did_taus.append(_tau(sub, N0, c.start, np.full(N0, 1.0 / N0), np.full(c.start, 1.0 / c.start)))
        sizes = [c.n_treated for c in cohorts]
        cohort_starts = [c.start for c in cohorts]
        did = _aggregate(did_taus, sizes, cohort_starts, T)
        share = np.array([n * (T - s) for n, s in zip(sizes, cohort_starts, strict=True)], dtype=float)
        table = pd.DataFrame({
            "cohort": [_plain(times[c.start]) for c in cohorts],
            "n_treated": sizes,
            "pre_periods": cohort_starts,
            "post_periods": [T - s for s in cohort_starts],
            "estimate": [c.solution.tau for c in cohorts],
            "weight": share / share.sum(),
            "did_estimate": did_taus,
            "noise_level": [c.solution.noise for c in cohorts],
            "zeta_omega": [c.solution.zeta for c in cohorts],
            "effective_controls": [float(1.0 / np.sum(c.solution.omega**2)) for c in cohorts],
            "effective_pre_periods": [float(1.0 / np.sum(c.solution.lam**2)) for c in cohorts],
        })
        single = len(cohorts) == 1
        diagnostics: dict[str, Any] = {
            "n_treated": N1,
            "n_control": N0,
            "n_cohorts": len(cohorts),
            "treated_unit_periods": int(share.sum()),
            "did_estimate": did,
            "se_method": self.se,
        }
        if single:
            first = table.iloc[0]
            diagnostics.update(
                pre_periods=int(first["pre_periods"]), post_periods=int(first["post_periods"]),
                noise_level=float(first["noise_level"]), zeta_omega=float(first["zeta_omega"]),
                effective_controls=float(first["effective_controls"]),
                effective_pre_periods=float(first["effective_pre_periods"]),
            )
        details: dict[str, pd.DataFrame] = {}
        path = None
        if with_details:
            details["cohorts"] = table
            details["placebo"] = pd.DataFrame({"replication": np.arange(len(draws)), "estimate": draws})
            series = [self._cohort_series(Y, N0, c, times) for c in cohorts]
            if single:
                c = cohorts[0]
                details["weights"] = pd.DataFrame({"unit": units[:N0], "weight": c.solution.omega})
                details["time_weights"] = pd.DataFrame({"time": [_plain(t) for t in times[:c.start]],
                                                        "weight": c.solution.lam})
                details["series"] = series[0].drop(columns=["cohort", "event_time"])
                path = series[0][["time", "gap"]].rename(columns={"gap": "estimate"})
            else:
                details["weights"] = pd.concat(
                    [pd.DataFrame({"cohort": _plain(times[c.start]), "unit": units[:N0], "weight": c.solution.omega})
                     for c in cohorts], ignore_index=True)
                details["time_weights"] = pd.concat(
                    [pd.DataFrame({"cohort": _plain(times[c.start]), "time": [_plain(t) for t in times[:c.start]],
                                   "weight": c.solution.lam}) for c in cohorts], ignore_index=True)
                details["series"] = pd.concat(series, ignore_index=True)
                path = _event_time_path(details["series"])
            path = path.assign(std_error=np.nan, conf_low=np.nan, conf_high=np.nan)
        if single:
            estimand = (f"average effect on {self.outcome!r} in the {N1} treated unit(s) over the {T - starts[0]} "
                        f"post-treatment period(s) from {_plain(times[starts[0]])} (ATT)")
        else:
            estimand = (f"average effect on {self.outcome!r} over the {int(share.sum())} treated unit-periods of "
                        f"{N1} units in {len(cohorts)} adoption cohorts (ATT, cohorts weighted by treated "
                        "unit-periods)")
        return Effect(
            design="sdid",
            estimand=estimand,
            estimate=att,
            std_error=se,
            conf_low=att - z * se,
            conf_high=att + z * se,
            method=("synthetic difference-in-differences (Arkhangelsky et al. 2021"
                    + ("" if single else "; staggered adoption by cohort, Clarke et al. 2023")
                    + f"), {self.se} standard error"),
            level=self.level,
            p_value=float(2 * stats.norm.sf(abs(att / se))) if se > 0 else math.nan,
            settings=constructor_settings(self),
            n_obs=int(N * T),
            n_units=int(N),
            path=path,
            diagnostics=diagnostics,
            assumptions=ASSUMPTIONS,
            details=details,
            term="att",
        )

    @staticmethod
    def _cohort_series(Y: np.ndarray, N0: int, c: CohortSolution, times: list[Any]) -> pd.DataFrame:
        """Treated mean, its synthetic control and the gap net of the weighted pre-period gap."""
        synth = c.solution.omega @ Y[:N0]
        treated = Y[c.rows].mean(axis=0)
        diff = treated - synth
        gap = diff - float(c.solution.lam @ diff[:c.start])
        T = len(times)
        return pd.DataFrame({"cohort": _plain(times[c.start]), "time": [_plain(t) for t in times],
                             "event_time": np.arange(T) - c.start, "treated": treated, "synthetic": synth,
                             "gap": gap, "post": (np.arange(T) >= c.start).astype(int), "n_treated": c.n_treated})


def _event_time_path(series: pd.DataFrame) -> pd.DataFrame:
    """Cohort gaps averaged by event time (periods since adoption), weighting cohorts by their treated units."""
    weighted = series.assign(w=series["gap"] * series["n_treated"])
    by = weighted.groupby("event_time", sort=True)[["w", "n_treated"]].sum()
    return pd.DataFrame({"time": by.index.to_numpy(), "estimate": (by["w"] / by["n_treated"]).to_numpy()})


def sdid(data: pd.DataFrame, **settings: Any) -> Effect:
    """Fit synthetic difference-in-differences in one call; see :class:`SyntheticDiD` for the settings."""
    return SyntheticDiD(**settings).fit(data).result_
