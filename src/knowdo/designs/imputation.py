"""Borusyak, Jaravel & Spiess (2024) imputation estimator for staggered adoption.

Under parallel trends an untreated outcome is ``a_i + b_t (+ x_it'g)``. The
estimator fits that model by OLS on the untreated observations only (never
treated units, and treated units before their start), imputes ``Y_it(0)`` for
every treated observation, and averages ``tau_it = Y_it - Y_it(0)`` with the
estimand's weights: all treated unit-periods equally for the overall ATT, one
event time at a time for the path (Borusyak, Jaravel & Spiess 2024, Review of
Economic Studies 91(6):3253-3285, Theorem 2). Because it uses every
untreated period of a unit rather than the single period before the start,
it is the efficient estimator when errors are homoskedastic and serially
uncorrelated, and its sampling distribution stays close to normal on sparse
counts, where Callaway & Sant'Anna's one-period base makes the t statistic
skewed (docs/studies/did-coverage.md).

Inference is the paper's Theorem 3 conservative clustered variance: the
estimator is linear in the outcomes, ``sum v_it Y_it``; the weights ``v`` of
the untreated observations come from the first-stage projection, and the
residuals of the treated observations are ``tau_it`` minus an auxiliary
average of ``tau`` within its cohort x event-time group (their equation 8),
by default leaving the unit's own observation out (their recommendation for
small groups). The pre-trend check is their Test 1: on untreated observations
only, leads of the start are added to the model and tested jointly
(cluster-robust Wald test), so the test does not depend on the effect estimates.

Own code rather than a wrapper: pyfixest's ``did2s`` (Gardner's two-stage
estimator) gives the same point estimates but neither the Theorem 3 variance
nor arbitrary estimand weights. The unit effects are eliminated in closed
form (a Schur complement on the period and covariate block), so nothing of
size units x estimands x periods is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse
from scipy import stats

from knowdo.designs._frames import (
    check_level,
    headline_and_strata,
    require_columns,
    require_frame,
    require_numeric,
    strata_table,
)
from knowdo.designs._options import constructor_settings
from knowdo.designs.effect import Effect
from knowdo.designs.panel_input import COHORT, MONTH, RATE, rate_frame
from knowdo.designs.pretrends import PretrendTest, wald_pretrend
from knowdo.errors import ParameterError

DESIGN = "ImputationDiD"


@dataclass(frozen=True)
class _Work:
    """The estimation sample as integer-coded arrays."""

    unit: np.ndarray  # unit code per row
    period: np.ndarray  # period code per row (0 .. n_periods - 1)
    cohort: np.ndarray  # first treated period (np.inf when never)
    time: np.ndarray  # calendar time value per row
    y: np.ndarray
    x: np.ndarray  # (rows, covariates)
    cluster: np.ndarray  # cluster code per row
    untreated: np.ndarray  # bool: in the first-stage sample
    treated: np.ndarray  # bool: an observation whose effect enters an estimand
    event_time: np.ndarray  # time - cohort (nan when never treated)
    n_units: int
    n_periods: int
    n_clusters: int
    dropped: int  # treated observations that cannot be imputed


@dataclass(frozen=True)
class _FirstStage:
    """Fitted untreated-outcome model and the pieces needed to project new weights."""

    unit_effect: np.ndarray  # (units,)
    period_effect: np.ndarray  # (periods,), first observed period fixed at 0
    slope: np.ndarray  # (covariates,)
    unit_count: np.ndarray  # untreated observations per unit
    cross: np.ndarray  # (units, periods - 1 + covariates): per-unit sums of the non-unit regressors
    schur: np.ndarray  # Schur complement of the unit block
    residual_by_unit_period: np.ndarray  # (units, periods) sum of first-stage residuals
    residual_x_by_unit: np.ndarray  # (units, covariates) sum of residual * x
    residual: np.ndarray  # first-stage residual per untreated row

    def fitted(self, w: _Work, rows: np.ndarray) -> np.ndarray:
        return self.unit_effect[w.unit[rows]] + self.period_effect[w.period[rows]] + w.x[rows] @ self.slope


class ImputationDiD:
    """Imputation DiD (Borusyak, Jaravel & Spiess 2024): overall ATT and event-time path.

    Parameters
    ----------
    outcome, unit, time, cohort
        Columns: the outcome, the unit id, a numeric period and the first
        treated period in the same units (0, missing or infinite when never
        treated).
    covariates
        Time-varying covariates added to the untreated-outcome model.
    anticipation
        Periods before the start in which units may already react; those
        observations leave the first stage and appear in the path at negative
        event times.
    max_event_time
        Leave treated observations beyond this event time out of every
        estimand (as R ``did``'s ``max_e``); ``None`` keeps all.
    pretrend_periods
        Leads tested in the pre-trend check (Test 1), nearest the start first;
        ``None`` tests every lead but the longest (testing all of them would be
        collinear with the unit effects of the cohort observed longest).
    leave_out
        Leave-one-unit-out auxiliary averages in the variance (equation 8);
        ``False`` uses the plain group averages.
    cluster
        Column to cluster by; the unit when ``None``.
    level
        Confidence level.
    """

    design = "did-imputation"

    def __init__(
        self,
        *,
        outcome: str,
        unit: str,
        time: str,
        cohort: str,
        covariates: Sequence[str] = (),
        anticipation: int = 0,
        max_event_time: int | None = None,
        # Three leads: on sparse counts the joint test's size grows with the number of leads
        # (docs/studies/did-coverage.md), and the periods nearest the start show anticipation and dips.
        pretrend_periods: int | None = 3,
        leave_out: bool = True,
        cluster: str | None = None,
        level: float = 0.95,
    ) -> None:
        self.outcome = outcome
        self.unit = unit
        self.time = time
        self.cohort = cohort
        self.covariates = covariates
        self.anticipation = anticipation
        self.max_event_time = max_event_time
        self.pretrend_periods = pretrend_periods
        self.leave_out = leave_out
        self.cluster = cluster
        self.level = level

    def get_params(self) -> dict[str, Any]:
        return constructor_settings(self)

    # ------------------------------------------------------------------ fit
    def fit(self, data: pd.DataFrame, strata: Sequence[str] | None = None) -> Self:
        """Fit on ``data``; per-stratum estimates from stratifier columns or the panel's (dimension, stratum) rows."""
        frame = require_frame(data, DESIGN)
        self._check_settings()
        headline, groups = headline_and_strata(frame, strata, DESIGN)
        effect = self._fit_one(headline, pretrend=True)
        if groups:
            table = strata_table(
                groups, lambda part: self._fit_one(part, pretrend=False), lambda part: int(part[self.unit].nunique())
            )
            effect = replace(effect, strata=table)
        self.result_ = effect
        return self

    def _check_settings(self) -> None:
        check_level(self.level, DESIGN)
        if isinstance(self.covariates, str):
            raise ParameterError(f"{DESIGN}: covariates={self.covariates!r} must be a list of column names.")
        for name in ("anticipation", "max_event_time", "pretrend_periods"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
                raise ParameterError(f"{DESIGN}: {name}={value!r} must be a whole number >= 0.")
        if self.pretrend_periods == 0:
            raise ParameterError(f"{DESIGN}: pretrend_periods=0 tests nothing; use None for every lead or >= 1.")

    def _fit_one(self, data: pd.DataFrame, *, pretrend: bool) -> Effect:
        frame = self._clean(data)
        work = self._encode(frame)
        first = _first_stage(work)
        treated_rows = np.flatnonzero(work.treated)
        tau = work.y[treated_rows] - first.fitted(work, treated_rows)
        event = work.event_time[treated_rows]
        post = event >= 0
        keys = np.unique(event)
        weights = np.zeros((len(treated_rows), 1 + len(keys)))
        weights[post, 0] = 1.0 / post.sum()
        for j, e in enumerate(keys, start=1):
            here = event == e
            weights[here, j] = 1.0 / here.sum()
        estimates = weights.T @ tau
        se = _theorem3_se(work, first, treated_rows, tau, weights, self.leave_out)
        test, leads = self._pretrend(work, first) if pretrend else (None, None)
        return self._effect(work, estimates, se, keys, event, test, leads)

    # ----------------------------------------------------------- data prep
    def _clean(self, data: pd.DataFrame) -> pd.DataFrame:
        frame = require_frame(data, DESIGN)
        cols = [self.outcome, self.unit, self.time, self.cohort, *self.covariates, self.cluster]
        require_columns(frame, cols, DESIGN)
        require_numeric(frame, [self.outcome, self.time, self.cohort, *self.covariates], DESIGN)
        keep = list(dict.fromkeys(c for c in cols if c is not None))
        work = frame[keep].dropna(subset=[self.outcome, self.time, *self.covariates])
        if work.empty:
            raise ParameterError(f"{DESIGN}: no rows with a finite outcome, time and covariates.")
        dup = work.duplicated(subset=[self.unit, self.time])
        if dup.any():
            first = work.loc[dup, [self.unit, self.time]].iloc[0].tolist()
            raise ParameterError(
                f"{DESIGN}: {int(dup.sum())} duplicate ({self.unit}, {self.time}) rows, e.g. {first}; "
                "the panel needs one row per unit and period."
            )
        cohorts = work.groupby(self.unit, sort=False)[self.cohort].nunique(dropna=False)
        if (cohorts > 1).any():
            raise ParameterError(
                f"{DESIGN}: unit {cohorts.index[cohorts > 1][0]!r} has more than one {self.cohort!r} value; "
                "the first treated period must be constant within a unit."
            )
        return work

    def _encode(self, frame: pd.DataFrame) -> _Work:
        t = frame[self.time].to_numpy(dtype=float)
        g = frame[self.cohort].to_numpy(dtype=float)
        g = np.where(np.isfinite(g) & (g > 0), g, np.inf)
        event = np.where(np.isfinite(g), t - g, np.nan)
        untreated = ~np.isfinite(g) | (t < g - self.anticipation)
        treated = ~untreated & (event >= -self.anticipation)
        if self.max_event_time is not None:
            treated &= event <= self.max_event_time
        unit = pd.factorize(frame[self.unit])[0]
        cluster = pd.factorize(frame[self.cluster or self.unit])[0]
        x = frame[list(self.covariates)].to_numpy(dtype=float).reshape(len(frame), len(self.covariates))
        # Only periods and units seen untreated have an estimated effect; other treated rows cannot be imputed.
        period_values = np.unique(t[untreated])
        if len(period_values) == 0 or not treated.any():
            raise ParameterError(
                f"{DESIGN}: need both untreated and treated observations (untreated: {int(untreated.sum())}, "
                f"treated: {int(treated.sum())}); check {self.cohort!r} and {self.time!r}."
            )
        imputable = np.isin(t, period_values) & np.isin(unit, np.unique(unit[untreated]))
        dropped = int((treated & ~imputable).sum())
        keep = untreated | (treated & imputable)
        if not (treated & imputable).any():
            raise ParameterError(
                f"{DESIGN}: no treated observation can be imputed: every treated unit-period lacks an untreated "
                "observation of the same unit or the same period (e.g. no never-treated or not-yet-treated units)."
            )
        unit_codes = pd.factorize(unit[keep])[0]
        cluster_codes = pd.factorize(cluster[keep])[0]
        return _Work(
            unit=unit_codes,
            period=np.searchsorted(period_values, t[keep]),
            cohort=g[keep],
            time=t[keep],
            y=frame[self.outcome].to_numpy(dtype=float)[keep],
            x=x[keep],
            cluster=cluster_codes,
            untreated=untreated[keep],
            treated=treated[keep],
            event_time=event[keep],
            n_units=int(unit_codes.max()) + 1,
            n_periods=len(period_values),
            n_clusters=int(cluster_codes.max()) + 1,
            dropped=dropped,
        )

    # ------------------------------------------------------------ pre-trends
    def _pretrend(self, work: _Work, first: _FirstStage) -> tuple[PretrendTest, pd.DataFrame]:
        """Test 1: leads added to the untreated-outcome model on untreated observations, CRV1 Wald test.

        By Frisch-Waugh-Lovell the lead coefficients come from the first-stage residuals regressed on the
        leads with the unit and period effects (and covariates) partialled out, so the model is not refitted.
        Returns the test and the leads (event time, coefficient, SE, rows) for the event-study path.
        """
        no_leads = pd.DataFrame(columns=["time", "estimate", "std_error", "n_obs"])
        rows = np.flatnonzero(work.untreated)
        lead = -work.event_time[rows]  # 1, 2, ... before the start (nan when never treated)
        available = np.unique(lead[np.isfinite(lead)]).astype(int)
        available = available[(available > self.anticipation)]
        if self.pretrend_periods is not None:
            available = available[available <= self.pretrend_periods + self.anticipation]
        else:
            available = available[:-1]
        if len(available) == 0:
            return wald_pretrend([], np.zeros((0, 0)), []), no_leads
        terms = [f"e=-{k}" for k in available]
        partialled = np.column_stack([_partial_out(work, lead == k) for k in available])
        gram = partialled.T @ partialled
        try:
            coef = np.linalg.solve(gram, partialled.T @ first.residual)
        except np.linalg.LinAlgError:
            note = "leads collinear with the effects"
            return PretrendTest(math.nan, len(terms), math.nan, tuple(terms), note=note), no_leads
        resid = first.residual - partialled @ coef
        scores = _sum_by(work.cluster[rows], partialled * resid[:, None], work.n_clusters)
        bread = np.linalg.inv(gram)
        # fixest's default small-sample factor for CRV1: unit effects nested in the clusters are not counted, the
        # period effects, covariates, leads and one intercept are.
        n, k, g = len(rows), work.n_periods + work.x.shape[1] + len(terms), work.n_clusters
        factor = g / (g - 1) * (n - 1) / (n - k) if g > 1 and n > k else math.nan
        vcov = factor * bread @ (scores.T @ scores) @ bread
        leads = pd.DataFrame({"time": -available.astype(float), "estimate": coef,
                              "std_error": np.sqrt(np.diag(vcov)),
                              "n_obs": [int((lead == k).sum()) for k in available]})
        return wald_pretrend(coef, vcov, terms), leads.sort_values("time", ignore_index=True)

    # ---------------------------------------------------------------- result
    def _effect(
        self,
        work: _Work,
        estimates: np.ndarray,
        se: np.ndarray,
        keys: np.ndarray,
        event: np.ndarray,
        test: PretrendTest | None,
        leads: pd.DataFrame | None,
    ) -> Effect:
        z = float(stats.norm.ppf(0.5 + self.level / 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            p = 2 * stats.norm.sf(np.abs(estimates / se))
        effects = pd.DataFrame(
            {
                "time": keys.astype(float),
                "estimate": estimates[1:],
                "std_error": se[1:],
                "n_obs": [int((event == e).sum()) for e in keys],
                "source": "imputed effect",
            }
        )
        # The event study shows the tested leads before the start, as BJS's event plots do.
        path = effects if leads is None or leads.empty else pd.concat(
            [leads.assign(source="pre-trend test lead"), effects], ignore_index=True
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            path = path.assign(
                conf_low=path["estimate"] - z * path["std_error"],
                conf_high=path["estimate"] + z * path["std_error"],
                p_value=2 * stats.norm.sf(np.abs(path["estimate"] / path["std_error"])),
            )[["time", "estimate", "std_error", "conf_low", "conf_high", "p_value", "n_obs", "source"]]
        diagnostics: dict[str, Any] = {
            "untreated_observations": int(work.untreated.sum()),
            "treated_observations": int((event >= 0).sum()),
            "not_imputable_dropped": work.dropped,
            "clusters": work.n_clusters,
            "leave_out": self.leave_out,
        }
        details: dict[str, pd.DataFrame] = {"event_study": path}
        if test is not None:
            diagnostics.update(test.diagnostics())
        return Effect(
            design=self.design,
            estimand="ATT: mean effect over treated unit-periods, each weighted equally",
            estimate=float(estimates[0]),
            std_error=float(se[0]),
            conf_low=float(estimates[0] - z * se[0]),
            conf_high=float(estimates[0] + z * se[0]),
            method=(
                "Borusyak, Jaravel & Spiess (2024) imputation: unit and period effects"
                f"{' and covariates' if self.covariates else ''} fitted on untreated observations, "
                "treated outcomes minus their imputed untreated outcome; Theorem 3 conservative variance "
                f"clustered by {self.cluster or self.unit}"
                f"{' with leave-out auxiliary averages' if self.leave_out else ''}; normal interval"
            ),
            level=self.level,
            p_value=float(p[0]),
            settings=self.get_params(),
            n_obs=len(work.y),
            n_units=work.n_units,
            path=path,
            diagnostics=diagnostics,
            assumptions=(
                "Parallel trends in every period: without the programme, each unit's outcome is its own level "
                "plus a period effect common to all units (plus covariates), in all periods, not only the one "
                "before the start.",
                f"No anticipation beyond {self.anticipation} period(s) before the start.",
                "Staggered, absorbing treatment: once a unit starts it stays treated.",
                "The Theorem 3 variance is conservative when effects vary across units within a cohort and event "
                "time; intervals are then wider than necessary, not narrower.",
            ),
            details=details,
            term="ATT",
        )


def _first_stage(w: _Work) -> _FirstStage:
    """OLS of y on unit effects, period effects (first period omitted) and covariates, untreated rows only."""
    rows = np.flatnonzero(w.untreated)
    u, t, x, y = w.unit[rows], w.period[rows], w.x[rows], w.y[rows]
    n_units, n_periods = w.n_units, w.n_periods
    count = np.bincount(u, minlength=n_units).astype(float)
    cells = np.bincount(u * n_periods + t, minlength=n_units * n_periods).reshape(n_units, n_periods)
    cross = np.hstack([cells[:, 1:], _sum_by(u, x, n_units)])
    period_count = np.bincount(t, minlength=n_periods).astype(float)[1:]
    period_x = _sum_by(t, x, n_periods)[1:]
    gram = np.block([[np.diag(period_count), period_x], [period_x.T, x.T @ x]])
    schur = gram - cross.T @ (cross / count[:, None])
    other_y = np.concatenate([np.bincount(t, y, minlength=n_periods)[1:], x.T @ y])
    unit_y = np.bincount(u, y, minlength=n_units)
    beta = _solve(schur, other_y - cross.T @ (unit_y / count))
    unit_effect = (unit_y - cross @ beta) / count
    period_effect = np.concatenate([[0.0], beta[: n_periods - 1]])
    slope = beta[n_periods - 1 :]
    resid = y - unit_effect[u] - period_effect[t] - x @ slope
    by_cell = np.bincount(u * n_periods + t, resid, minlength=n_units * n_periods).reshape(n_units, n_periods)
    return _FirstStage(
        unit_effect=unit_effect,
        period_effect=period_effect,
        slope=slope,
        unit_count=count,
        cross=cross,
        schur=schur,
        residual_by_unit_period=by_cell,
        residual_x_by_unit=_sum_by(u, x * resid[:, None], n_units),
        residual=resid,
    )


def _partial_out(w: _Work, column: np.ndarray) -> np.ndarray:
    """Residuals of ``column`` (one value per untreated row) on the unit and period effects and covariates."""
    y = np.zeros(len(w.y))
    y[w.untreated] = column
    return _first_stage(replace(w, y=y)).residual


def _sum_by(codes: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """(size, columns) sums of ``values`` columns by integer code."""
    out = np.zeros((size, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(codes, values[:, j], minlength=size)
    return out


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return scipy.linalg.solve(matrix, rhs, assume_a="sym")
    except (np.linalg.LinAlgError, ValueError) as err:
        raise ParameterError(
            f"{DESIGN}: the untreated-outcome model is singular (covariates collinear with the unit and period "
            "effects, or periods not linked through units); drop such covariates."
        ) from err


def _theorem3_se(
    w: _Work, first: _FirstStage, rows: np.ndarray, tau: np.ndarray, weights: np.ndarray, leave_out: bool
) -> np.ndarray:
    """Clustered conservative SEs (Theorem 3) of ``weights.T @ tau``, one per estimand column."""
    n_units, n_periods, n_rows = w.n_units, w.n_periods, len(rows)
    to_unit = scipy.sparse.csr_matrix((np.ones(n_rows), (w.unit[rows], np.arange(n_rows))), shape=(n_units, n_rows))
    to_period = scipy.sparse.csr_matrix(
        (np.ones(n_rows), (w.period[rows], np.arange(n_rows))), shape=(n_periods, n_rows)
    )
    # Untreated weights v0 = -Z0 (Z0'Z0)^-1 Z1' w, solved blockwise: unit block diagonal, rest through the Schur
    # complement. Only their inner products with the first-stage residuals are needed.
    r_unit = to_unit @ weights
    r_other = np.vstack([(to_period @ weights)[1:], w.x[rows].T @ weights])
    b = _solve(first.schur, r_other - first.cross.T @ (r_unit / first.unit_count[:, None]))
    # sum_t v0_it e_it per unit; the unit-effect part vanishes because residuals sum to zero within a unit.
    b_period = np.vstack([np.zeros((1, weights.shape[1])), b[: n_periods - 1]])
    untreated_score = -(first.residual_by_unit_period @ b_period + first.residual_x_by_unit @ b[n_periods - 1 :])
    residual = _treated_residuals(w, rows, tau, leave_out)
    score = untreated_score + to_unit @ (weights * residual[:, None])
    unit_cluster = np.zeros(n_units, dtype=np.int64)
    unit_cluster[w.unit] = w.cluster
    to_cluster = scipy.sparse.csr_matrix(
        (np.ones(n_units), (unit_cluster, np.arange(n_units))), shape=(w.n_clusters, n_units)
    )
    return np.asarray(np.sqrt(((to_cluster @ score) ** 2).sum(axis=0))).ravel()


def _treated_residuals(w: _Work, rows: np.ndarray, tau: np.ndarray, leave_out: bool) -> np.ndarray:
    """tau minus its equation-8 auxiliary average within its cohort x event-time group.

    Every estimand here weights the rows of a cohort x event-time group equally (or leaves the whole group
    out), and a unit has one row per group, so equation 8's average is the group's plain mean of tau for
    every estimand; the leave-out version drops the unit's own row. A group with a single unit keeps its
    plain mean (residual 0): its spread cannot be estimated.
    """
    cohort = pd.factorize(w.cohort[rows])[0].astype(np.int64)
    event = pd.factorize(w.event_time[rows])[0].astype(np.int64)
    group = pd.factorize(cohort * (int(event.max()) + 1) + event)[0]
    size = np.bincount(group)[group].astype(float)
    total = np.bincount(group, tau)[group]
    if leave_out:
        with np.errstate(invalid="ignore", divide="ignore"):
            aux = np.where(size > 1, (total - tau) / (size - 1), tau)
    else:
        aux = total / size
    return tau - aux


def imputation_did(data: pd.DataFrame, *, strata: Sequence[str] | None = None, **settings: Any) -> Effect:
    """Fit :class:`ImputationDiD` in one call and return its :class:`Effect`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2], "t": [1, 2, 3] * 2, "g": [3, 3, 3, 0, 0, 0],
    ...                    "y": [1.0, 2.0, 5.0, 0.0, 1.0, 2.0]})
    >>> round(imputation_did(df, outcome="y", unit="id", time="t", cohort="g").estimate, 3)
    2.0
    """
    return ImputationDiD(**settings).fit(data, strata=strata).result_


def imputation_on_panel(
    panel: pd.DataFrame,
    outcome: str,
    per: float = 1000.0,
    *,
    denominator: str = "population",
    unit: str = "site_id",
    **settings: Any,
) -> Effect:
    """The imputation estimator on the knowdo analysis panel, with an estimate per equity stratum.

    Same input as :func:`knowdo.designs.did.did_on_panel`: the outcome is
    ``outcome / denominator * per`` per site and month, time a month index,
    the cohort the month of ``first_treated``; ``dimension == 'all'`` rows give
    the headline and the other ``(dimension, stratum)`` rows ``Effect.strata``.
    Site-months with a missing or zero denominator are left out. Other
    settings go to :class:`ImputationDiD`.

    Examples
    --------
    Site A starts in March and gains 3 starts a month; site B never starts:

    >>> import pandas as pd
    >>> counts = {"A": [5, 5, 8, 8], "B": [5, 5, 5, 5]}
    >>> panel = pd.DataFrame({
    ...     "site_id": [s for s in counts for _ in range(4)],
    ...     "period": list(pd.date_range("2024-01-01", periods=4, freq="MS")) * 2,
    ...     "population": 1000, "started": counts["A"] + counts["B"],
    ...     "first_treated": [pd.Timestamp("2024-03-01")] * 4 + [pd.NaT] * 4})
    >>> round(imputation_on_panel(panel, "started", pretrend_periods=1).estimate, 6)
    3.0
    """
    rates = rate_frame(panel, outcome, per, denominator, unit, DESIGN, settings)
    effect = imputation_did(rates.data, outcome=RATE, unit=unit, time=MONTH, cohort=COHORT, **settings)
    settings_out, estimand = rates.describe(dict(effect.settings), effect.estimand)
    return replace(effect, estimand=estimand, settings=settings_out)
