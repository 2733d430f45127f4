"""Two-way fixed-effects event study and Sun & Abraham's interaction-weighted estimator, via pyfixest.

The TWFE regression ``y_it = a_i + l_t + d D_it`` (and its event-study form
with leads and lags) is what most evaluations of staggered rollouts still
report. With effects that change over time it mixes in comparisons against
already-treated units and can even flip sign (Goodman-Bacon 2021; see
:mod:`knowdo.designs.bacon`, whose decomposition is reported in the
diagnostics). Sun & Abraham (2021, J. Econometrics 225(2)) fix the event study
by saturating it: one coefficient per cohort and relative period, against
never-treated (or, without them, the last-treated) units, then averaged with
cohort shares. Both regressions run in pyfixest (fixed effects absorbed,
cluster-robust CRV1 errors by unit unless told otherwise); knowdo builds the
indicators, the interaction weights and the pre-trend test itself.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Self

import numpy as np
import pandas as pd
import pyfixest as pf
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
from knowdo.designs.bacon import bacon_decomposition
from knowdo.designs.effect import Effect
from knowdo.designs.pretrends import PretrendTest, wald_pretrend
from knowdo.errors import KnowdoError, ParameterError

# The event study normalises the period just before the start to zero (the usual choice, e.g. fixest's sunab).
REFERENCE_EVENT_TIME = -1
_SAFE = re.compile(r"[^0-9A-Za-z]")


def _label(value: float) -> str:
    text = f"{int(value)}" if float(value).is_integer() else f"{value:g}"
    return _SAFE.sub("p", text.replace("-", "m"))


class _EventStudyBase:
    """Settings, validation and strata handling shared by the two pyfixest event studies."""

    design = "did"

    def __init__(
        self,
        *,
        outcome: str,
        unit: str,
        time: str,
        cohort: str,
        covariates: Sequence[str] = (),
        cluster: str | None = None,
        level: float = 0.95,
    ) -> None:
        self.outcome = outcome
        self.unit = unit
        self.time = time
        self.cohort = cohort
        self.covariates = covariates
        self.cluster = cluster
        self.level = level

    def get_params(self) -> dict[str, Any]:
        return constructor_settings(self)

    def _prepare(self, data: pd.DataFrame) -> pd.DataFrame:
        name = type(self).__name__
        if isinstance(self.covariates, str):
            raise ParameterError(f"{name}: covariates={self.covariates!r} must be a list of column names.")
        check_level(self.level, name)
        frame = require_frame(data, name)
        cols = [self.outcome, self.unit, self.time, self.cohort, *self.covariates, self.cluster]
        require_columns(frame, cols, name)
        require_numeric(frame, [self.outcome, self.time, self.cohort, *self.covariates], name)
        work = frame[list(dict.fromkeys(c for c in cols if c is not None))].copy()
        work = work.dropna(subset=[self.outcome, self.time, *self.covariates])
        if work.empty:
            raise ParameterError(f"{name}: no rows with a finite outcome and time.")
        g = work[self.cohort].to_numpy(dtype=float)
        g = np.where(np.isfinite(g) & (g > 0), g, np.inf)
        t = work[self.time].to_numpy(dtype=float)
        g = np.where(g > t.max(), np.inf, g)
        work["_g"] = g
        work["_treated"] = (np.isfinite(g) & (t >= g)).astype(float)
        work["_rel"] = np.where(np.isfinite(g), t - g, np.nan)
        return work

    def _vcov_arg(self) -> dict[str, str]:
        return {"CRV1": self.cluster or self.unit}

    def _covariate_terms(self) -> str:
        return "".join(f" + {c}" for c in self.covariates)

    def fit(self, data: pd.DataFrame, strata: Sequence[str] | None = None) -> Self:
        """Fit the event study; sets ``result_``. Strata as in :class:`~knowdo.designs.did.CallawaySantAnna`."""
        frame = require_frame(data, type(self).__name__)
        headline, groups = headline_and_strata(frame, strata, type(self).__name__)
        effect = self._fit_one(headline)
        if groups:
            table = strata_table(groups, self._fit_one, lambda part: int(part[self.unit].nunique()))
            effect = replace(effect, strata=table)
        self.result_ = effect
        return self

    def _fit_one(self, data: pd.DataFrame) -> Effect:
        raise NotImplementedError

    def _feols(self, fml: str, work: pd.DataFrame) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pf.feols(fml, data=work, vcov=self._vcov_arg())
            except KnowdoError:
                raise
            except Exception as err:  # pyfixest raises plain exceptions on singular or empty designs
                raise ParameterError(f"{type(self).__name__}: the regression failed in pyfixest: {err}") from err

    def _path_rows(
        self, keys: np.ndarray, est: np.ndarray, se: np.ndarray, df: int
    ) -> pd.DataFrame:
        crit = float(stats.t.ppf(0.5 + self.level / 2, df)) if df > 0 else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            p = 2 * stats.t.sf(np.abs(est / se), df) if df > 0 else np.full(len(est), np.nan)
        return pd.DataFrame(
            {
                "time": keys,
                "estimate": est,
                "std_error": se,
                "conf_low": est - crit * se,
                "conf_high": est + crit * se,
                "p_value": p,
            }
        )

    def _assumptions(self) -> tuple[str, ...]:
        return (
            "Parallel trends: without the programme, treated and comparison units' outcomes would have "
            "moved in parallel.",
            "No anticipation: outcomes do not react before the start.",
            "Staggered, absorbing treatment: once a unit starts it stays treated.",
        )


class TwfeEventStudy(_EventStudyBase):
    """Two-way fixed-effects DiD: the static coefficient (headline) and the event-study path.

    The headline is ``d`` from ``y ~ D | unit + time`` (cluster-robust by
    unit); the path has one coefficient per event time, relative to
    ``e = -1``, with never-treated units in the reference (without them, the
    earliest event time is dropped too). Under heterogeneous effects both are
    biased; the Goodman-Bacon decomposition in ``diagnostics`` shows how much
    weight goes to comparisons against already-treated units.
    """

    def _fit_one(self, data: pd.DataFrame) -> Effect:
        work = self._prepare(data)
        static = self._feols(f"{self.outcome} ~ _treated{self._covariate_terms()} | {self.unit} + {self.time}", work)
        coef, se = static.coef(), static.se()
        if "_treated" not in coef.index:
            raise ParameterError("TwfeEventStudy: the treatment indicator is collinear with the fixed effects.")
        n_clusters = int(work[self.cluster or self.unit].nunique())
        df = n_clusters - 1
        delta, delta_se = float(coef["_treated"]), float(se["_treated"])

        rel = work["_rel"].to_numpy()
        event_times = np.unique(rel[np.isfinite(rel)])
        drop: set[float] = {float(REFERENCE_EVENT_TIME)}
        if np.isfinite(work["_g"]).all():
            drop.add(float(event_times.min()))
        keep_e = [e for e in event_times if e not in drop]
        names = {e: f"ev_{_label(e)}" for e in keep_e}
        dummies = pd.DataFrame({names[e]: (rel == e).astype(float) for e in keep_e}, index=work.index)
        dyn_work = pd.concat([work, dummies], axis=1)
        rhs = " + ".join(names.values())
        dynamic = self._feols(f"{self.outcome} ~ {rhs}{self._covariate_terms()} | {self.unit} + {self.time}", dyn_work)
        d_coef, d_se = dynamic.coef(), dynamic.se()
        est = np.array([float(d_coef.get(names[e], np.nan)) for e in keep_e])
        err = np.array([float(d_se.get(names[e], np.nan)) for e in keep_e])
        path = self._path_rows(np.array(keep_e, dtype=float), est, err, df)
        path = pd.concat(
            [path, pd.DataFrame([{"time": float(REFERENCE_EVENT_TIME), "estimate": 0.0}])], ignore_index=True
        ).sort_values("time", ignore_index=True)

        leads = [names[e] for e in keep_e if e < REFERENCE_EVENT_TIME and names[e] in d_coef.index]
        pretrend = self._pretrend(dynamic, leads)
        diagnostics: dict[str, Any] = {"n_clusters": n_clusters, **pretrend.diagnostics("pretrend")}
        diagnostics.update(self._bacon_diagnostics(work))
        crit = float(stats.t.ppf(0.5 + self.level / 2, df))
        return Effect(
            design=self.design,
            estimand="TWFE coefficient on the treated indicator (a variance-weighted average of 2x2 DiDs; "
            "equals the ATT only if effects are homogeneous)",
            estimate=delta,
            std_error=delta_se,
            conf_low=delta - crit * delta_se,
            conf_high=delta + crit * delta_se,
            method=f"two-way fixed effects (pyfixest {pf.__version__}), CRV1 by {self.cluster or self.unit}",
            level=float(self.level),
            p_value=float(2 * stats.t.sf(abs(delta / delta_se), df)),
            settings={**self.get_params(), "estimator": "twfe", "reference_event_time": REFERENCE_EVENT_TIME},
            n_obs=len(work),
            n_units=int(work[self.unit].nunique()),
            path=path,
            diagnostics=diagnostics,
            assumptions=(
                *self._assumptions(),
                "Homogeneous effects across cohorts and over time (otherwise TWFE is biased: see the "
                "Goodman-Bacon weights in the diagnostics).",
            ),
            details={"event_study": path},
            term="TWFE",
        )

    @staticmethod
    def _pretrend(fit: Any, leads: list[str]) -> PretrendTest:
        if not leads:
            return wald_pretrend([], np.zeros((0, 0)), [])
        names = list(fit.coef().index)
        idx = [names.index(c) for c in leads]
        # pyfixest 0.60 exposes the coefficient covariance only as ``_vcov`` (its public ``vcov()`` re-fits in place).
        vcov = np.asarray(fit._vcov)[np.ix_(idx, idx)]
        return wald_pretrend(fit.coef().to_numpy()[idx], vcov, leads)

    def _bacon_diagnostics(self, work: pd.DataFrame) -> dict[str, Any]:
        if self.covariates:
            return {"bacon_note": "not computed: the decomposition is for TWFE without covariates"}
        try:
            bacon = bacon_decomposition(work, self.outcome, self.unit, self.time, "_g")
        except ParameterError as err:
            return {"bacon_note": f"not computed: {err}"}
        weights = bacon.weights_by_type()
        return {f"bacon_weight_{k.replace(' ', '_')}": v for k, v in weights.items()}


class SunAbraham(_EventStudyBase):
    """Sun & Abraham (2021) interaction-weighted event study (headline: share-weighted post-period ATT).

    One coefficient per cohort and relative period (``e = -1`` left out)
    against never-treated units, or against the last-treated cohort when no
    unit is never treated (its treated periods are then dropped). Event-time
    estimates average the cohort coefficients with each cohort's share of the
    observations at that event time; the headline averages all post-period
    coefficients by observation count. Standard errors by the delta method
    (weights treated as fixed, as fixest's ``aggregate``).
    """

    def _fit_one(self, data: pd.DataFrame) -> Effect:
        work = self._prepare(data)
        g = work["_g"].to_numpy()
        t = work[self.time].to_numpy(dtype=float)
        always = np.isfinite(g) & (g <= t.min())
        work = work[~always]
        g = work["_g"].to_numpy()
        control_note = "never-treated units"
        if np.isfinite(g).all():
            last = float(g.max())
            work = work[work[self.time] < last].copy()
            work.loc[work["_g"] == last, "_g"] = np.inf
            work["_rel"] = np.where(np.isfinite(work["_g"]), work[self.time] - work["_g"], np.nan)
            control_note = f"the last-treated cohort ({last:g}), before it starts"
        if not np.isfinite(work["_g"]).any() or np.isfinite(work["_g"]).all():
            raise ParameterError("SunAbraham: needs treated units and a comparison group (never or last treated).")
        cells = (
            work[np.isfinite(work["_rel"]) & (work["_rel"] != REFERENCE_EVENT_TIME)]
            .groupby(["_g", "_rel"])
            .size()
            .rename("n")
            .reset_index()
        )
        cells["name"] = [f"sa_g{_label(a)}_e{_label(b)}" for a, b in zip(cells["_g"], cells["_rel"], strict=True)]
        rel, gg = work["_rel"].to_numpy(), work["_g"].to_numpy()
        dummies = pd.DataFrame(
            {
                name: ((gg == cg) & (rel == ce)).astype(float)
                for name, cg, ce in zip(cells["name"], cells["_g"], cells["_rel"], strict=True)
            },
            index=work.index,
        )
        fit = self._feols(
            f"{self.outcome} ~ {' + '.join(cells['name'])}{self._covariate_terms()} | {self.unit} + {self.time}",
            pd.concat([work, dummies], axis=1),
        )
        coef = fit.coef()
        names = list(coef.index)
        # pyfixest 0.60 exposes the coefficient covariance only as ``_vcov``.
        vcov_all = np.asarray(fit._vcov)
        present = cells["name"].isin(names).to_numpy()
        cells = cells[present].reset_index(drop=True)
        idx = np.array([names.index(c) for c in cells["name"]])
        beta = coef.to_numpy()[idx]
        vcov = vcov_all[np.ix_(idx, idx)]
        cells["estimate"] = beta
        cells["std_error"] = np.sqrt(np.diag(vcov))

        event_times = np.sort(cells["_rel"].unique())
        weights = np.zeros((len(event_times), len(cells)))
        for i, e in enumerate(event_times):
            at = (cells["_rel"] == e).to_numpy()
            weights[i, at] = cells.loc[at, "n"] / cells.loc[at, "n"].sum()
        path_est = weights @ beta
        path_vcov = weights @ vcov @ weights.T
        n_clusters = int(work[self.cluster or self.unit].nunique())
        df = n_clusters - 1
        path = self._path_rows(event_times.astype(float), path_est, np.sqrt(np.diag(path_vcov)), df)
        path = pd.concat(
            [path, pd.DataFrame([{"time": float(REFERENCE_EVENT_TIME), "estimate": 0.0}])], ignore_index=True
        ).sort_values("time", ignore_index=True)

        post = (cells["_rel"] >= 0).to_numpy()
        w_att = np.where(post, cells["n"], 0.0) / cells.loc[post, "n"].sum()
        att = float(w_att @ beta)
        att_se = float(np.sqrt(w_att @ vcov @ w_att))
        pre = event_times < REFERENCE_EVENT_TIME
        pretrend = wald_pretrend(
            path_est[pre], path_vcov[np.ix_(pre, pre)], [f"e={e:g}" for e in event_times[pre]]
        )
        crit = float(stats.t.ppf(0.5 + self.level / 2, df))
        cohort_table = cells.rename(columns={"_g": "group", "_rel": "event_time"}).drop(columns=["name"])
        cohort_table.loc[~np.isfinite(cohort_table["group"]), "group"] = np.nan
        return Effect(
            design=self.design,
            estimand="ATT: average of the cohort x event-time effects after the start, weighted by observations",
            estimate=att,
            std_error=att_se,
            conf_low=att - crit * att_se,
            conf_high=att + crit * att_se,
            method=f"Sun & Abraham (2021) interaction-weighted event study (pyfixest {pf.__version__}), "
            f"CRV1 by {self.cluster or self.unit}; comparison: {control_note}",
            level=float(self.level),
            p_value=float(2 * stats.t.sf(abs(att / att_se), df)) if att_se > 0 else math.nan,
            settings={**self.get_params(), "estimator": "sun_abraham", "reference_event_time": REFERENCE_EVENT_TIME},
            n_obs=len(work),
            n_units=int(work[self.unit].nunique()),
            path=path,
            diagnostics={
                "n_clusters": n_clusters,
                "dropped_always_treated_rows": int(always.sum()),
                **pretrend.diagnostics("pretrend"),
            },
            assumptions=self._assumptions(),
            details={"event_study": path, "cohort_event": cohort_table},
            term="ATT (Sun & Abraham)",
        )


def twfe_event_study(data: pd.DataFrame, *, strata: Sequence[str] | None = None, **settings: Any) -> Effect:
    """Fit :class:`TwfeEventStudy` in one call.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"id": np.repeat(np.arange(6), 4), "t": np.tile([1, 2, 3, 4], 6),
    ...                    "g": np.repeat([3, 3, 0, 0, 0, 0], 4)})
    >>> df["y"] = 0.1 * df["t"] + 2.0 * ((df["g"] > 0) & (df["t"] >= df["g"])) + 0.01 * (df["id"] % 3)
    >>> round(twfe_event_study(df, outcome="y", unit="id", time="t", cohort="g").estimate, 6)
    2.0
    """
    return TwfeEventStudy(**settings).fit(data, strata=strata).result_


def sun_abraham(data: pd.DataFrame, *, strata: Sequence[str] | None = None, **settings: Any) -> Effect:
    """Fit :class:`SunAbraham` in one call.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"id": np.repeat(np.arange(6), 4), "t": np.tile([1, 2, 3, 4], 6),
    ...                    "g": np.repeat([3, 3, 0, 0, 0, 0], 4)})
    >>> df["y"] = 0.1 * df["t"] + 2.0 * ((df["g"] > 0) & (df["t"] >= df["g"])) + 0.01 * (df["id"] % 3)
    >>> round(sun_abraham(df, outcome="y", unit="id", time="t", cohort="g").estimate, 6)
    2.0
    """
    return SunAbraham(**settings).fit(data, strata=strata).result_
