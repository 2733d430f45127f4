"""Interrupted time series (ITS) and controlled ITS by segmented regression.

The model (Wagner et al. 2002; Lopez Bernal, Cummins & Gasparrini 2017) is

    g(E[Y_t]) = b0 + b1 t + b2 D_t + b3 (t - T0 + 1) D_t [+ seasonal terms] [+ log offset]

with ``D_t = 1`` from the first intervention period ``T0`` on, so ``b2`` is the
level change and ``b3`` the change in slope per period, counting the first
intervention period as 1 as in both sources. A controlled ITS stacks a
comparison series and interacts every term with the treated-series
indicator; the effect is then the treated-minus-comparison change.

Gaussian outcomes use OLS with Newey-West (HAC) standard errors or a
regression with AR(p) errors fitted by exact maximum likelihood (statsmodels
``SARIMAX``; the AR coefficients are estimated jointly with the mean rather
than from OLS residuals as feasible GLS does, which in our coverage study
(docs/studies/designs-coverage.md) raised 95% coverage at 60 points from
0.89 to 0.93, with t intervals on n - k - p degrees of freedom); counts use Poisson,
quasi-Poisson (Pearson chi-square scale, as R's ``quasipoisson``) or negative
binomial (NB2) regression with a population offset. Count effects are on the
log scale (log rate ratio) so that the tidy table's statistic stays a Wald z;
the rate ratio and its interval are in ``diagnostics``. statsmodels does the
fitting; this module builds the design, the counterfactual path and its band.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.stats.stattools import durbin_watson

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
from knowdo.errors import ParameterError

Family = Literal["gaussian", "poisson", "quasipoisson", "negbin"]
Errors = Literal["iid", "newey-west", "ar"]
Seasonality = Literal["none", "fourier", "month"]
ItsEstimand = Literal["level", "average"]

FAMILIES: tuple[str, ...] = ("gaussian", "poisson", "quasipoisson", "negbin")
ERRORS: tuple[str, ...] = ("iid", "newey-west", "ar")
SEASONALITY: tuple[str, ...] = ("none", "fourier", "month")
ESTIMANDS: tuple[str, ...] = ("level", "average")
COUNT_FAMILIES = ("poisson", "quasipoisson", "negbin")

ASSUMPTIONS = (
    "Without the intervention the pre-intervention trend (and seasonal pattern) would have continued unchanged.",
    "No other event or change in measurement coincides with the intervention start.",
    "The model captures the autocorrelation and seasonality of the series (check the residual diagnostics).",
    "The intervention start is known and the population offset (for counts) is correct.",
)
CONTROLLED_ASSUMPTIONS = (
    "The comparison series is not affected by the intervention and shares the treated series' other shocks.",
    "Without the intervention the gap between the treated and comparison trends would have continued unchanged.",
    "No other event or change in measurement coincides with the intervention start in one series only.",
    "The model captures the autocorrelation and seasonality of the series (check the residual diagnostics).",
)


def newey_west_lags(n: int) -> int:
    """Default HAC truncation lag floor(4 (n/100)^(2/9)) (Newey & West 1994, rule of thumb).

    >>> newey_west_lags(60), newey_west_lags(150)
    (3, 4)
    """
    return max(1, math.floor(4 * (n / 100) ** (2 / 9)))


class InterruptedTimeSeries:
    """Segmented regression for an interrupted (or controlled interrupted) time series.

    Parameters
    ----------
    outcome, time
        Columns with the outcome and the period (integers or dates, one row
        per period and series, equally spaced).
    start
        The first period of the intervention (a value of ``time``).
    family
        ``gaussian`` (OLS/GLS), ``poisson``, ``quasipoisson`` or ``negbin``.
    errors
        ``ar`` (AR(``ar_order``) errors by exact ML, Gaussian single series only),
        ``newey-west`` (HAC) or ``iid`` (model-based); None picks ``ar`` for a
        Gaussian series, ``newey-west`` for a controlled ITS, ``iid`` for counts.
    offset
        Column with the population at risk for count families (log is taken).
    seasonality
        ``fourier`` (``harmonics`` sine/cosine pairs of ``season_length``),
        ``month`` (indicators) or ``none``; the season is ``season`` if named,
        else the calendar month of a date ``time``.
    slope_change
        Include the change-in-slope term.
    group
        0/1 column marking the treated series (1) against a comparison series
        (0): makes the model a controlled ITS.
    estimand
        ``level`` (the step at the intervention) or ``average`` (the modelled
        effect averaged over the observed post-intervention periods).

    Examples
    --------
    >>> t = np.arange(1, 41)
    >>> df = pd.DataFrame({"t": t, "y": 10 + 0.2 * t + 3.0 * (t >= 21)})
    >>> fit = InterruptedTimeSeries(outcome="y", time="t", start=21, errors="iid").fit(df)
    >>> round(fit.result_.estimate, 6)
    3.0
    """

    def __init__(
        self,
        *,
        outcome: str,
        start: Any,
        time: str = "period",
        family: Family = "gaussian",
        # None: AR(1) errors by ML for a Gaussian series (95% coverage study, docs/studies/designs-coverage.md:
        # Newey-West covered 78% at 60 points), panel Newey-West for a controlled ITS, model-based
        # (quasi-Poisson scale) for counts as in Lopez Bernal et al. 2017
        errors: Errors | None = None,
        ar_order: int = 1,  # AR(1) is the usual first model for monthly health series (Lopez Bernal et al. 2017)
        maxlags: int | None = None,  # None: Newey & West (1994) rule floor(4 (n/100)^(2/9))
        offset: str | None = None,
        seasonality: Seasonality = "none",
        harmonics: int = 2,  # two harmonics as in Lopez Bernal et al. 2017 (harmonic(month, 2, 12))
        season: str | None = None,
        season_length: int = 12,  # months in a year
        slope_change: bool = True,
        group: str | None = None,
        estimand: ItsEstimand = "level",
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.outcome = outcome
        self.start = start
        self.time = time
        self.family = family
        self.errors = errors
        self.ar_order = ar_order
        self.maxlags = maxlags
        self.offset = offset
        self.seasonality = seasonality
        self.harmonics = harmonics
        self.season = season
        self.season_length = season_length
        self.slope_change = slope_change
        self.group = group
        self.estimand = estimand
        self.level = level

    # ------------------------------------------------------------------ API
    def fit(self, data: pd.DataFrame) -> InterruptedTimeSeries:
        """Fit the segmented regression; sets ``result_`` (an :class:`Effect`) and returns self."""
        self._validate(data)
        frame = headline_rows(data)
        effect = self._fit_frame(frame, with_details=True)
        strata = strata_table(panel_strata(data), lambda part: self._fit_frame(part, with_details=False), len)
        if len(strata):
            effect = dataclasses.replace(effect, strata=strata)
        self.result_ = effect
        return self

    def _error_model(self) -> str:
        """The error model in force: ``errors`` if given, else the default for the family and design."""
        if self.errors is not None:
            return self.errors
        if self.family != "gaussian":
            return "iid"
        return "newey-west" if self.group is not None else "ar"

    # -------------------------------------------------------------- checks
    def _validate(self, data: pd.DataFrame) -> None:
        design = "its"
        require_frame(data, design)
        check_option("family", self.family, FAMILIES)
        if self.errors is not None:
            check_option("errors", self.errors, ERRORS)
        check_option("seasonality", self.seasonality, SEASONALITY)
        check_option("estimand", self.estimand, ESTIMANDS)
        check_level(self.level, design)
        require_columns(data, [self.outcome, self.time, self.offset, self.season, self.group], design)
        require_complete(data, [self.outcome, self.time, self.offset, self.season, self.group], design)
        require_numeric(data, [self.outcome, self.offset, self.season], design)
        if self.group is not None:
            require_binary(data, self.group, design)
            if self._error_model() == "ar":
                raise ParameterError(
                    "its: errors='ar' fits one series; a controlled ITS (group set) uses errors='newey-west' "
                    "(panel HAC) or 'iid'."
                )
        if self.family == "gaussian" and self.offset is not None:
            raise ParameterError(
                f"its: offset={self.offset!r} applies to count families; for a Gaussian model divide the outcome "
                "by the population first, or use family='poisson'/'quasipoisson'/'negbin'."
            )
        if self.family != "gaussian" and self._error_model() == "ar":
            raise ParameterError(
                f"its: errors='ar' is for family='gaussian'; with family={self.family!r} use errors='newey-west'."
            )
        if self.family != "gaussian" and (data[self.outcome] < 0).any():
            raise ParameterError(f"its: family={self.family!r} needs non-negative counts in {self.outcome!r}.")
        if self.offset is not None and (data[self.offset] <= 0).any():
            raise ParameterError(f"its: offset column {self.offset!r} must be positive (its log is taken).")
        for name, value, low in (("ar_order", self.ar_order, 1), ("harmonics", self.harmonics, 1),
                                 ("season_length", self.season_length, 2)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ParameterError(f"its: {name}={value!r} must be an integer >= {low}.")
        if self.maxlags is not None and (not isinstance(self.maxlags, (int, np.integer)) or self.maxlags < 0):
            raise ParameterError(f"its: maxlags={self.maxlags!r} must be a non-negative integer or None.")

    # --------------------------------------------------------------- design
    def _design(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """Return (sorted rows with t/k columns, design matrix, effect term names)."""
        group_col = self.group
        key = [group_col, self.time] if group_col else [self.time]
        if frame.duplicated(key).any():
            where = "series and period" if group_col else "period"
            raise ParameterError(
                f"its: more than one row per {where} in {self.time!r}; filter to one series "
                f"(e.g. one site and dimension == 'all') or aggregate first."
            )
        rows = frame.sort_values(key).reset_index(drop=True)
        times = np.sort(rows[self.time].drop_duplicates().to_numpy())
        try:
            start = pd.Timestamp(self.start) if isinstance(times[0], (pd.Timestamp, np.datetime64)) else self.start
            post_times = times[times >= start]
        except TypeError as err:
            raise ParameterError(
                f"its: start={self.start!r} cannot be compared with the {self.time!r} values ({times[0]!r})."
            ) from err
        if len(post_times) == 0 or len(post_times) == len(times):
            raise ParameterError(
                f"its: start={self.start!r} leaves no {'post' if len(post_times) == 0 else 'pre'}-intervention "
                f"periods (periods run {times[0]!r} to {times[-1]!r}); choose a start inside the series."
            )
        index = pd.Series(np.arange(1, len(times) + 1), index=times)
        t = rows[self.time].map(index).to_numpy(dtype=float)
        t0 = float(index[post_times[0]])
        post = (t >= t0).astype(float)
        n_pre = int(t0 - 1)
        if n_pre < 3:
            raise ParameterError(f"its: only {n_pre} pre-intervention period(s); segmented regression needs >= 3.")
        rows = rows.assign(_t=t, _post=post, _k=(t - t0 + 1) * post)
        X = pd.DataFrame({"const": 1.0, "time": t, "level_change": post}, index=rows.index)
        if self.slope_change:
            X["slope_change"] = rows["_k"]
        X = pd.concat([X, self._seasonal(rows)], axis=1)
        effect_terms = ["level_change", "slope_change"] if self.slope_change else ["level_change"]
        if group_col:
            g = rows[group_col].astype(float)
            if g.sum() == 0 or g.sum() == len(g):
                raise ParameterError(
                    f"its: group column {group_col!r} must mark both a treated and a comparison series."
                )
            for name in ["const", "time", *effect_terms]:
                X[f"group:{name}"] = X[name] * g
            effect_terms = [f"group:{name}" for name in effect_terms]
        return rows, X, effect_terms

    def _seasonal(self, rows: pd.DataFrame) -> pd.DataFrame:
        if self.seasonality == "none":
            return pd.DataFrame(index=rows.index)
        if self.season is not None:
            s = rows[self.season].to_numpy(dtype=float)
        elif pd.api.types.is_datetime64_any_dtype(rows[self.time]):
            s = pd.DatetimeIndex(rows[self.time]).month.to_numpy(dtype=float)
        else:
            raise ParameterError(
                f"its: seasonality={self.seasonality!r} needs the position in the seasonal cycle: name a `season` "
                f"column (e.g. 'month') or give {self.time!r} as dates."
            )
        if self.seasonality == "fourier":
            cols: dict[str, np.ndarray] = {}
            for k in range(1, self.harmonics + 1):
                angle = 2 * np.pi * k * s / self.season_length
                cols[f"sin{k}"] = np.sin(angle)
                cols[f"cos{k}"] = np.cos(angle)
            out = pd.DataFrame(cols, index=rows.index)
            return out.loc[:, out.abs().max() > 1e-9]  # sin at k = L/2 vanishes on integer seasons
        dummies = pd.get_dummies(pd.Series(s.astype(int), index=rows.index), prefix="season", drop_first=True)
        return dummies.astype(float)

    # ------------------------------------------------------------------ fit
    def _fit_model(self, rows: pd.DataFrame, X: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame, Any, float]:
        """Fit and return (params, covariance of mean params, results, residual df or inf for z)."""
        y = rows[self.outcome].to_numpy(dtype=float)
        n_times = int(rows["_t"].max())
        lags = self.maxlags if self.maxlags is not None else newey_west_lags(n_times)
        hac: dict[str, Any]
        if self.group:
            hac = {"cov_type": "hac-panel", "cov_kwds": {"groups": rows[self.group].to_numpy(), "maxlags": lags}}
        else:
            hac = {"cov_type": "HAC", "cov_kwds": {"maxlags": lags}}
        offset = np.log(rows[self.offset].to_numpy(dtype=float)) if self.offset else None
        if self.family == "gaussian":
            if self._error_model() == "ar":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter; checked through mle_retvals
                    res = sm.tsa.SARIMAX(y, exog=X, order=(self.ar_order, 0, 0), trend="n").fit(
                        disp=False, maxiter=500)
                names = list(X.columns)
                df = float(len(y) - len(names) - self.ar_order)
                return res.params[names], res.cov_params().loc[names, names], res, df
            model = sm.OLS(y, X)
            res = model.fit(**hac) if self._error_model() == "newey-west" else model.fit()
            return res.params, res.cov_params(), res, float(res.df_resid) if self._error_model() == "iid" else np.inf
        if self.family == "negbin":
            nb = sm.NegativeBinomial(y, X, offset=offset, loglike_method="nb2")
            kwargs = hac if self._error_model() == "newey-west" else {}
            res = nb.fit(disp=0, maxiter=200, **kwargs)
            params = res.params.drop("alpha")
            return params, res.cov_params().loc[params.index, params.index], res, np.inf
        glm = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset)
        if self._error_model() == "newey-west":
            res = glm.fit(**hac)
        else:
            res = glm.fit(scale="X2" if self.family == "quasipoisson" else None)
        return res.params, res.cov_params(), res, np.inf

    def _fit_frame(self, frame: pd.DataFrame, *, with_details: bool) -> Effect:
        rows, X, effect_terms = self._design(frame)
        params, cov, res, df_resid = self._fit_model(rows, X)
        use_t = math.isfinite(df_resid)
        crit = float(stats.t.ppf(0.5 + self.level / 2, df_resid) if use_t else stats.norm.ppf(0.5 + self.level / 2))
        treated = rows[self.group].astype(float).to_numpy() == 1 if self.group else np.ones(len(rows), bool)
        post_k = np.sort(rows.loc[treated & (rows["_post"].to_numpy() == 1), "_k"].unique())

        contrast = pd.Series(0.0, index=params.index)
        contrast[effect_terms[0]] = 1.0
        if self.estimand == "average" and len(effect_terms) > 1:
            contrast[effect_terms[1]] = float(post_k.mean())
        c = contrast.to_numpy()
        estimate = float(c @ params.to_numpy())
        se = float(np.sqrt(c @ cov.to_numpy() @ c))
        p_value = _p_value(estimate, se, df_resid if use_t else None)

        counts = self.family != "gaussian"
        design = "cits" if self.group else "its"
        diagnostics = self._diagnostics(rows, res, params, cov, effect_terms, crit, counts)
        details: dict[str, pd.DataFrame] = {}
        path = None
        if with_details:
            details["coefficients"] = _coefficient_table(params, cov, crit, counts)
            path, details["series"] = self._paths(rows, X, params, cov, effect_terms, crit, treated)
        scale = "log rate ratio" if counts else "difference"
        what = "level change at" if self.estimand == "level" else "average modelled effect over the periods after"
        estimand = (
            f"{what} the intervention start ({self.start}) in {self.outcome!r}, as a {scale}, "
            f"against the {'comparison-adjusted ' if self.group else ''}counterfactual continuation of the "
            "pre-intervention trend"
        )
        return Effect(
            design=design,
            estimand=estimand,
            estimate=estimate,
            std_error=se,
            conf_low=estimate - crit * se,
            conf_high=estimate + crit * se,
            method=self._method_text(),
            level=self.level,
            p_value=p_value,
            settings=self._settings(rows),
            n_obs=len(rows),
            n_units=2 if self.group else 1,
            path=path,
            diagnostics=diagnostics,
            assumptions=CONTROLLED_ASSUMPTIONS if self.group else ASSUMPTIONS,
            details=details,
            term="log_rate_ratio" if counts else "effect",
        )

    # ------------------------------------------------------------- outputs
    def _paths(
        self,
        rows: pd.DataFrame,
        X: pd.DataFrame,
        params: pd.Series,
        cov: pd.DataFrame,
        effect_terms: list[str],
        crit: float,
        treated: np.ndarray,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        counts = self.family != "gaussian"
        offset = np.log(rows[self.offset].to_numpy(dtype=float)) if self.offset else np.zeros(len(rows))
        Xv = X[params.index].to_numpy(dtype=float)
        beta = params.to_numpy()
        V = cov.to_numpy()
        X_cf = X[params.index].copy()
        X_cf[effect_terms] = 0.0
        Xc = X_cf.to_numpy(dtype=float)
        eta = Xv @ beta + offset
        eta_cf = Xc @ beta + offset
        se_cf = np.sqrt(np.einsum("ij,jk,ik->i", Xc, V, Xc))
        inv = np.exp if counts else (lambda v: v)
        series = pd.DataFrame(
            {
                "time": rows[self.time].to_numpy(),
                "series": np.where(treated, "treated", "comparison"),
                "observed": rows[self.outcome].to_numpy(dtype=float),
                "fitted": inv(eta),
                "counterfactual": inv(eta_cf),
                "counterfactual_low": inv(eta_cf - crit * se_cf),
                "counterfactual_high": inv(eta_cf + crit * se_cf),
                "post": rows["_post"].to_numpy(dtype=int),
            }
        )
        D = (Xv - Xc)[treated & (rows["_post"].to_numpy() == 1)]
        eff = D @ beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", D, V, D))
        path = pd.DataFrame(
            {
                "time": rows.loc[treated & (rows["_post"].to_numpy() == 1), self.time].to_numpy(),
                "estimate": eff,
                "std_error": se,
                "conf_low": eff - crit * se,
                "conf_high": eff + crit * se,
            }
        )
        if pd.api.types.is_datetime64_any_dtype(path["time"]):
            path["time"] = path["time"].dt.strftime("%Y-%m-%d")
            series["time"] = pd.to_datetime(series["time"]).dt.strftime("%Y-%m-%d")
        return path, series

    def _diagnostics(
        self,
        rows: pd.DataFrame,
        res: Any,
        params: pd.Series,
        cov: pd.DataFrame,
        effect_terms: list[str],
        crit: float,
        counts: bool,
    ) -> dict[str, Any]:
        if counts:
            resid = np.asarray(res.resid_pearson, dtype=float)
        elif self._error_model() == "ar":
            # one-step innovations after the first p points: what the AR(p) errors leave unexplained
            resid = np.asarray(res.resid, dtype=float)[self.ar_order:]
        else:
            resid = np.asarray(res.resid, dtype=float)
        if self.group is None:
            order = np.argsort(rows["_t"].to_numpy())
            resid = resid[order] if len(resid) == len(order) else resid
        lb_lag = int(max(1, min(12, len(resid) // 4)))  # lag 12 for monthly data, shorter for short series
        out: dict[str, Any] = {
            "n_pre": int((rows["_post"] == 0).sum()),
            "n_post": int((rows["_post"] == 1).sum()),
            "durbin_watson": float(durbin_watson(resid)),
            "residual_lag1_autocorrelation": float(pd.Series(resid).autocorr(lag=1)),
            f"ljung_box_p_lag{lb_lag}": float(acorr_ljungbox(resid, lags=[lb_lag])["lb_pvalue"].iloc[0]),
        }
        for term in effect_terms:
            name = term.replace("group:", "")
            out[name] = float(params[term])
            out[f"{name}_se"] = math.sqrt(_cell(cov, term))
        if counts:
            level = float(params[effect_terms[0]])
            se = math.sqrt(_cell(cov, effect_terms[0]))
            out["rate_ratio"] = math.exp(level)
            out["rate_ratio_conf_low"] = math.exp(level - crit * se)
            out["rate_ratio_conf_high"] = math.exp(level + crit * se)
            if self.family == "quasipoisson" and self._error_model() == "iid":
                out["dispersion"] = float(res.scale)
            elif self.family != "negbin":
                out["pearson_dispersion"] = float(res.pearson_chi2 / res.df_resid)
            else:
                out["negbin_alpha"] = float(res.params["alpha"])
        if self._error_model() == "ar":
            out["ar_coefficients"] = [float(res.params[f"ar.L{k}"]) for k in range(1, self.ar_order + 1)]
            out["converged"] = bool(res.mle_retvals.get("converged", True))
        if self._error_model() == "newey-west":
            out["newey_west_maxlags"] = int(
                self.maxlags if self.maxlags is not None else newey_west_lags(int(rows["_t"].max()))
            )
        return out

    def _method_text(self) -> str:
        errors = self._error_model()
        model = {
            "gaussian": "OLS" if errors != "ar" else f"regression with AR({self.ar_order}) errors (exact ML)",
            "poisson": "Poisson GLM",
            "quasipoisson": "quasi-Poisson GLM (Pearson scale)",
            "negbin": "negative binomial (NB2) regression",
        }[self.family]
        parts = [("controlled " if self.group else "") + "segmented regression", model]
        if self.offset:
            parts.append(f"log({self.offset}) offset")
        if self.seasonality == "fourier":
            parts.append(f"Fourier seasonality ({self.harmonics} harmonics of {self.season_length})")
        elif self.seasonality == "month":
            parts.append("seasonal indicators")
        se = {"iid": "model-based SEs", "newey-west": "Newey-West (HAC) SEs", "ar": "ML SEs, t intervals"}[errors]
        parts.append(se)
        return ", ".join(parts)

    def _settings(self, rows: pd.DataFrame) -> dict[str, Any]:
        start = self.start.isoformat() if hasattr(self.start, "isoformat") else self.start
        return {
            "outcome": self.outcome, "time": self.time, "start": start, "family": self.family,
            "errors": self._error_model(), "ar_order": self.ar_order, "maxlags": self.maxlags, "offset": self.offset,
            "seasonality": self.seasonality, "harmonics": self.harmonics, "season": self.season,
            "season_length": self.season_length, "slope_change": self.slope_change, "group": self.group,
            "estimand": self.estimand, "level": self.level,
        }


def _cell(cov: pd.DataFrame, term: str) -> float:
    """Diagonal element of a labelled covariance matrix."""
    i = list(cov.index).index(term)
    return float(cov.to_numpy()[i, i])


def _p_value(estimate: float, se: float, df: float | None) -> float:
    if not se or not math.isfinite(se) or se <= 0:
        return math.nan
    z = abs(estimate / se)
    return float(2 * (stats.t.sf(z, df) if df is not None and math.isfinite(df) else stats.norm.sf(z)))


def _coefficient_table(params: pd.Series, cov: pd.DataFrame, crit: float, counts: bool) -> pd.DataFrame:
    se = np.sqrt(np.diag(cov.loc[params.index, params.index].to_numpy()))
    table = pd.DataFrame(
        {
            "term": params.index,
            "estimate": params.to_numpy(),
            "std_error": se,
            "conf_low": params.to_numpy() - crit * se,
            "conf_high": params.to_numpy() + crit * se,
        }
    )
    if counts:
        table["ratio"] = np.exp(table["estimate"])
        table["ratio_low"] = np.exp(table["conf_low"])
        table["ratio_high"] = np.exp(table["conf_high"])
    return table


def its(data: pd.DataFrame, **settings: Any) -> Effect:
    """Fit an interrupted time series in one call; see :class:`InterruptedTimeSeries` for the settings.

    Examples
    --------
    >>> t = np.arange(1, 31)
    >>> df = pd.DataFrame({"t": t, "y": 5 + 0.1 * t - 2.0 * (t >= 16)})
    >>> round(its(df, outcome="y", time="t", start=16, errors="iid").estimate, 6)
    -2.0
    """
    return InterruptedTimeSeries(**settings).fit(data).result_
