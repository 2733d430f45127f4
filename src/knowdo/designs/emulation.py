"""Target (and policy) trial emulation: the protocol, and IPW / AIPW estimation with its diagnostics.

A :class:`Protocol` writes down the trial one would have run, in the seven
components of policy trial emulation (Seewald, McGinty & Stuart 2024, Ann
Intern Med 177(11):1530-38; Hernan & Robins 2016): eligibility, exposure and
comparison, assignment, time zero and follow-up, outcomes, estimand, and
analysis with its assumptions. The report prints it beside the estimate.

:class:`TrialEmulation` estimates the protocol's contrast from one row per
eligible unit at time zero:

* ``ipw``: normalised (Hajek) inverse-probability weighting with a logistic
  propensity model; the standard error stacks the propensity score equations
  with the weighted means (M-estimation sandwich, Lunceford & Davidian 2004),
  so it accounts for estimating the propensity;
* ``aipw``: augmented IPW (doubly robust; Robins, Rotnitzky & Zhao 1994;
  ATT form as in Moodie et al. 2018), outcome models fitted by arm, standard
  error from the influence function.

Diagnostics are those a reader needs to trust weights: the propensity
distribution by arm (overlap), Kish effective sample sizes, and covariate
balance as standardised mean differences before and after weighting (pooled
unweighted SD in both, Austin & Stuart 2015). statsmodels fits the models.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import PerfectSeparationError

from knowdo.designs._frames import (
    check_level,
    column_strata,
    kish_ess,
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

EmulationMethod = Literal["ipw", "aipw"]
EmulationEstimand = Literal["ate", "att"]
OutcomeModel = Literal["linear", "logistic"]
METHODS: tuple[str, ...] = ("ipw", "aipw")
ESTIMANDS: tuple[str, ...] = ("ate", "att")
OUTCOME_MODELS: tuple[str, ...] = ("linear", "logistic")

BALANCE_THRESHOLD = 0.1  # |SMD| above 0.1 flags imbalance (Austin 2009, Stat Med 28:3083)
OVERLAP_BOUNDS = (0.1, 0.9)  # propensities outside flag limited overlap (Crump et al. 2009, Biometrika 96:187)

ASSUMPTIONS = (
    "No unmeasured confounding: the covariates capture everything that drives both exposure and outcome "
    "at time zero (exchangeability).",
    "Positivity: every kind of eligible unit could have received either strategy (see the overlap table).",
    "Consistency: the exposure is well defined, as written in the protocol, and one unit's exposure does "
    "not change another's outcome.",
    "The propensity model (IPW) or at least one of the propensity and outcome models (AIPW) is correct.",
    "Eligibility, assignment and follow-up are aligned at time zero (no immortal time).",
)

PROTOCOL_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("eligibility", "Units and eligibility criteria"),
    ("exposure_comparison", "Exposure and comparison conditions"),
    ("assignment", "Assignment mechanism"),
    ("time_zero_follow_up", "Baseline (time zero) and follow-up"),
    ("outcomes", "Outcomes"),
    ("estimand", "Causal estimand"),
    ("analysis", "Statistical analysis and assumptions"),
)


@dataclass(frozen=True)
class Protocol:
    """The seven components of a (policy) target trial, and how the data emulate each.

    Examples
    --------
    >>> p = Protocol(eligibility="Adults screening positive at a study clinic",
    ...              exposure_comparison="Clinic delivers lay-worker PST vs usual care",
    ...              assignment="Not randomised: emulated by weighting on baseline covariates",
    ...              time_zero_follow_up="Positive screen; 3 months",
    ...              outcomes="PHQ-9 response at 3 months",
    ...              estimand="Average treatment effect among the eligible",
    ...              analysis="AIPW with logistic propensity and linear outcome models")
    >>> print(p.summary().splitlines()[0])
    Target trial protocol (7 components)
    """

    eligibility: str
    exposure_comparison: str
    assignment: str
    time_zero_follow_up: str
    outcomes: str
    estimand: str
    analysis: str
    emulation: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {name for name, _ in PROTOCOL_COMPONENTS}
        for name, _ in PROTOCOL_COMPONENTS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ParameterError(f"Protocol: component {name!r} is empty; write what the target trial specifies.")
        unknown = set(self.emulation) - names
        if unknown:
            raise ParameterError(
                f"Protocol: emulation notes for unknown component(s) {sorted(unknown)}; use {sorted(names)}."
            )

    def components(self) -> pd.DataFrame:
        """One row per component: number, name, the target trial's specification and its emulation."""
        return pd.DataFrame(
            [
                {"number": i, "component": label, "specification": getattr(self, name),
                 "emulation": self.emulation.get(name, "")}
                for i, (name, label) in enumerate(PROTOCOL_COMPONENTS, start=1)
            ]
        )

    def summary(self) -> str:
        lines = ["Target trial protocol (7 components)"]
        for i, (name, label) in enumerate(PROTOCOL_COMPONENTS, start=1):
            lines.append(f"  {i}. {label}: {getattr(self, name)}")
            if self.emulation.get(name):
                lines.append(f"     emulated by: {self.emulation[name]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name, _ in PROTOCOL_COMPONENTS}
        out["emulation"] = dict(self.emulation)
        return out

    def __str__(self) -> str:
        return self.summary()


def covariate_matrix(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric covariates as they are; categorical ones as indicators (first level dropped)."""
    parts: list[pd.Series | pd.DataFrame] = []
    for col in covariates:
        s = data[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(col))
        else:
            dummies = pd.get_dummies(s.astype(str), prefix=col, prefix_sep="=", drop_first=True)
            parts.append(dummies.astype(float))
    if not parts:
        return pd.DataFrame(index=data.index)
    return pd.concat(parts, axis=1)


def smd(x: np.ndarray, a: np.ndarray, w: np.ndarray | None = None, *, denominator: float | None = None) -> float:
    """Standardised mean difference of x between a == 1 and a == 0 (optionally weighted).

    The denominator defaults to the pooled unweighted SD sqrt((s1^2 + s0^2) / 2).

    >>> smd(np.array([1.0, 2.0, 3.0, 2.0, 3.0, 4.0]), np.array([1, 1, 1, 0, 0, 0]))
    -1.0
    """
    x = np.asarray(x, dtype=float)
    a = np.asarray(a) == 1
    if denominator is None:
        denominator = math.sqrt((x[a].var(ddof=1) + x[~a].var(ddof=1)) / 2)
    w = np.ones(len(x)) if w is None else np.asarray(w, dtype=float)
    m1 = np.average(x[a], weights=w[a])
    m0 = np.average(x[~a], weights=w[~a])
    return float((m1 - m0) / denominator) if denominator > 0 else (0.0 if m1 == m0 else math.inf)


def fit_propensity(X: np.ndarray, a: np.ndarray, where: str) -> np.ndarray:
    """Logistic-regression probabilities of ``a`` given X (X includes the intercept)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # separation is checked below, with a message that says what to do
            res = sm.GLM(a, X, family=sm.families.Binomial()).fit()
    except (PerfectSeparationError, np.linalg.LinAlgError, ValueError) as err:
        raise ParameterError(
            f"{where}: the logistic model could not be fitted ({err}); a covariate may perfectly predict "
            "membership: drop or coarsen it."
        ) from err
    p = np.asarray(res.fittedvalues, dtype=float)
    if np.any(p < 1e-8) or np.any(p > 1 - 1e-8):
        raise ParameterError(
            f"{where}: estimated probabilities of 0 or 1 (perfect separation); a covariate predicts membership "
            "exactly: drop or coarsen it, or restrict to the region of overlap."
        )
    return p


class TrialEmulation:
    """IPW / AIPW estimate of an emulated target trial's contrast, with overlap and balance diagnostics.

    Parameters
    ----------
    outcome, treatment, covariates
        Outcome, 0/1 exposure at time zero, and baseline confounders (numeric or categorical).
    protocol
        The :class:`Protocol` being emulated (printed with the result).
    method
        ``aipw`` (doubly robust) or ``ipw``.
    estimand
        ``ate`` (all eligible) or ``att`` (the exposed).
    outcome_model
        ``linear`` or ``logistic`` (0/1 outcome) for AIPW.
    trim
        Drop units with propensity outside ``[trim, 1 - trim]`` (changes the population; None keeps all).
    cluster
        Column of clusters (e.g. clinics) for cluster-robust standard errors.
    strata
        Stratifier columns for per-stratum estimates.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> x = rng.normal(size=3000)
    >>> a = (rng.random(3000) < 1 / (1 + np.exp(-x))).astype(int)
    >>> df = pd.DataFrame({"x": x, "a": a, "y": 1.0 + 2.0 * a + x + rng.normal(size=3000)})
    >>> e = TrialEmulation(outcome="y", treatment="a", covariates=["x"]).fit(df).result_
    >>> bool(abs(e.estimate - 2.0) < 0.15)
    True
    """

    def __init__(
        self,
        *,
        outcome: str,
        treatment: str,
        covariates: Sequence[str],
        protocol: Protocol | None = None,
        method: EmulationMethod = "aipw",
        estimand: EmulationEstimand = "ate",
        outcome_model: OutcomeModel = "linear",
        trim: float | None = None,
        cluster: str | None = None,
        strata: Sequence[str] = (),
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.outcome = outcome
        self.treatment = treatment
        self.covariates = covariates
        self.protocol = protocol
        self.method = method
        self.estimand = estimand
        self.outcome_model = outcome_model
        self.trim = trim
        self.cluster = cluster
        self.strata = strata
        self.level = level

    def fit(self, data: pd.DataFrame) -> TrialEmulation:
        """Estimate weights, effect and diagnostics; sets ``result_`` and returns self."""
        design = "emulation"
        require_frame(data, design)
        check_option("method", self.method, METHODS)
        check_option("estimand", self.estimand, ESTIMANDS)
        check_option("outcome_model", self.outcome_model, OUTCOME_MODELS)
        check_level(self.level, design)
        if self.protocol is not None and not isinstance(self.protocol, Protocol):
            raise ParameterError("emulation: protocol must be a knowdo.designs.emulation.Protocol or None.")
        if self.trim is not None and not (isinstance(self.trim, float) and 0 < self.trim < 0.5):
            raise ParameterError(f"emulation: trim={self.trim!r} must be a number in (0, 0.5), e.g. 0.1, or None.")
        covs = list(self.covariates)
        cols = [self.outcome, self.treatment, self.cluster, *covs]
        require_columns(data, [*cols, *self.strata], design)
        require_complete(data, cols, design)
        require_numeric(data, [self.outcome, self.treatment], design)
        require_binary(data, self.treatment, design)
        if self.outcome_model == "logistic":
            require_binary(data, self.outcome, design)
        effect = self._fit_frame(data, with_details=True)
        if self.strata:
            table = strata_table(column_strata(data, list(self.strata)),
                                 lambda part: self._fit_frame(part, with_details=False), len)
            effect = dataclasses.replace(effect, strata=table)
        self.result_ = effect
        return self

    def _fit_frame(self, data: pd.DataFrame, *, with_details: bool) -> Effect:
        Xc = covariate_matrix(data, list(self.covariates))
        keep_cols = Xc.columns[Xc.std(ddof=0) > 0]
        Xc = Xc[keep_cols]
        X = np.column_stack([np.ones(len(data)), Xc.to_numpy(dtype=float)])
        a = data[self.treatment].to_numpy(dtype=float)
        y = data[self.outcome].to_numpy(dtype=float)
        if a.sum() < 2 or (1 - a).sum() < 2:
            raise ParameterError("emulation: need at least 2 exposed and 2 unexposed units.")
        groups = data[self.cluster].to_numpy() if self.cluster is not None else None
        e = fit_propensity(X, a, "emulation propensity")
        n_all = len(y)
        trimmed = 0
        if self.trim is not None:
            keep = (e >= self.trim) & (e <= 1 - self.trim)
            trimmed = int((~keep).sum())
            X, a, y, Xc = X[keep], a[keep], y[keep], Xc.loc[keep]
            groups = groups[keep] if groups is not None else None
            e = fit_propensity(X, a, "emulation propensity (after trimming)")
        if self.method == "ipw":
            estimate, se = _ipw(X, a, y, e, self.estimand, groups)
        else:
            estimate, se = self._aipw(X, a, y, e, groups)
        w = _balancing_weights(a, e, self.estimand)
        z = float(stats.norm.ppf(0.5 + self.level / 2))
        balance = _balance_table(Xc, a, w)
        overlap = _overlap_table(e, a)
        diagnostics: dict[str, Any] = {
            "n_exposed": int(a.sum()),
            "n_unexposed": int((1 - a).sum()),
            "n_trimmed": trimmed,
            "propensity_min": float(e.min()),
            "propensity_max": float(e.max()),
            "share_outside_overlap_bounds": float(np.mean((e < OVERLAP_BOUNDS[0]) | (e > OVERLAP_BOUNDS[1]))),
            "ess_exposed": kish_ess(w[a == 1]),
            "ess_unexposed": kish_ess(w[a == 0]),
            "max_abs_smd_before": float(balance["smd_before"].abs().max()) if len(balance) else math.nan,
            "max_abs_smd_after": float(balance["smd_after"].abs().max()) if len(balance) else math.nan,
            "balance_threshold": BALANCE_THRESHOLD,
        }
        details: dict[str, pd.DataFrame] = {}
        if with_details:
            details = {"balance": balance, "overlap": overlap}
            if self.protocol is not None:
                details["protocol"] = self.protocol.components()
        who = "all eligible units" if self.estimand == "ate" else "the exposed"
        if trimmed and self.trim is not None:
            who += f" with propensity in [{self.trim}, {1 - self.trim}]"
        scale = "risk difference" if self.outcome_model == "logistic" else "difference in means"
        settings = {"outcome": self.outcome, "treatment": self.treatment, "covariates": list(self.covariates),
                    "method": self.method, "estimand": self.estimand, "outcome_model": self.outcome_model,
                    "trim": self.trim, "cluster": self.cluster, "strata": list(self.strata), "level": self.level,
                    "protocol": self.protocol.to_dict() if self.protocol is not None else None}
        return Effect(
            design="emulation",
            estimand=f"{self.estimand.upper()}: average effect of {self.treatment!r} on {self.outcome!r} among "
                     f"{who} ({scale})",
            estimate=estimate,
            std_error=se,
            conf_low=estimate - z * se,
            conf_high=estimate + z * se,
            method=("augmented inverse-probability weighting (doubly robust), influence-function SE"
                    if self.method == "aipw" else
                    "inverse-probability weighting (normalised), M-estimation sandwich SE")
                   + (", cluster-robust" if self.cluster else ""),
            level=self.level,
            p_value=float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else math.nan,
            settings=settings,
            n_obs=len(y),
            n_units=len(np.unique(groups)) if groups is not None else int(n_all),
            diagnostics=diagnostics,
            assumptions=ASSUMPTIONS,
            details=details,
            term=self.estimand,
        )

    def _aipw(self, X: np.ndarray, a: np.ndarray, y: np.ndarray, e: np.ndarray,
              groups: np.ndarray | None) -> tuple[float, float]:
        m1 = self._outcome_fit(X, y, a == 1)
        m0 = self._outcome_fit(X, y, a == 0)
        n = len(y)
        if self.estimand == "ate":
            psi = m1 - m0 + a * (y - m1) / e - (1 - a) * (y - m0) / (1 - e)
            tau = float(psi.mean())
            infl = psi - tau
        else:
            p1 = a.mean()
            odds = e / (1 - e)
            num = a * (y - m0) - (1 - a) * odds * (y - m0)
            tau = float(num.sum() / a.sum())
            infl = (num - a * tau) / p1
        return tau, _if_se(infl, n, groups)

    def _outcome_fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if rows.sum() <= X.shape[1]:
            raise ParameterError(
                f"emulation: only {int(rows.sum())} units in one arm for {X.shape[1]} outcome-model terms; "
                "use fewer covariates or method='ipw'."
            )
        if self.outcome_model == "logistic":
            res = sm.GLM(y[rows], X[rows], family=sm.families.Binomial()).fit()
        else:
            res = sm.OLS(y[rows], X[rows]).fit()
        return np.asarray(X @ res.params, dtype=float) if self.outcome_model == "linear" else \
            np.asarray(1 / (1 + np.exp(-(X @ res.params))), dtype=float)


def _balancing_weights(a: np.ndarray, e: np.ndarray, estimand: str) -> np.ndarray:
    if estimand == "ate":
        return a / e + (1 - a) / (1 - e)
    return a + (1 - a) * e / (1 - e)


def _ipw(X: np.ndarray, a: np.ndarray, y: np.ndarray, e: np.ndarray, estimand: str,
         groups: np.ndarray | None) -> tuple[float, float]:
    """Hajek IPW estimate with the stacked (propensity + means) sandwich SE."""
    k = X.shape[1]
    if estimand == "ate":
        w1, w0 = a / e, (1 - a) / (1 - e)
    else:
        w1, w0 = a, (1 - a) * e / (1 - e)
    mu1 = float(np.sum(w1 * y) / np.sum(w1))
    mu0 = float(np.sum(w0 * y) / np.sum(w0))
    psi = np.column_stack([X * (a - e)[:, None], w1 * (y - mu1), w0 * (y - mu0)])
    J = np.zeros((k + 2, k + 2))
    J[:k, :k] = -(X * (e * (1 - e))[:, None]).T @ X
    if estimand == "ate":
        J[k, :k] = (a * (y - mu1) * (-(1 - e) / e)) @ X
    J[k, k] = -w1.sum()
    J[k + 1, :k] = ((1 - a) * (y - mu0) * e / (1 - e)) @ X
    J[k + 1, k + 1] = -w0.sum()
    if groups is not None:
        psi = pd.DataFrame(psi).groupby(groups).sum().to_numpy()
    meat = psi.T @ psi
    Jinv = np.linalg.inv(J)
    V = Jinv @ meat @ Jinv.T
    c = np.zeros(k + 2)
    c[k], c[k + 1] = 1.0, -1.0
    return mu1 - mu0, float(np.sqrt(c @ V @ c))


def _if_se(infl: np.ndarray, n: int, groups: np.ndarray | None) -> float:
    if groups is not None:
        sums = pd.Series(infl).groupby(groups).sum().to_numpy()
        return float(np.sqrt(np.sum(sums**2)) / n)
    return float(np.sqrt(np.sum(infl**2)) / n)


def _balance_table(Xc: pd.DataFrame, a: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    rows = []
    t = a == 1
    for col in Xc.columns:
        x = Xc[col].to_numpy(dtype=float)
        denom = math.sqrt((x[t].var(ddof=1) + x[~t].var(ddof=1)) / 2)
        rows.append({
            "covariate": col,
            "mean_exposed": float(x[t].mean()),
            "mean_unexposed": float(x[~t].mean()),
            "smd_before": smd(x, a, denominator=denom),
            "mean_exposed_weighted": float(np.average(x[t], weights=w[t])),
            "mean_unexposed_weighted": float(np.average(x[~t], weights=w[~t])),
            "smd_after": smd(x, a, w, denominator=denom),
        })
    return pd.DataFrame(rows, columns=["covariate", "mean_exposed", "mean_unexposed", "smd_before",
                                       "mean_exposed_weighted", "mean_unexposed_weighted", "smd_after"])


def _overlap_table(e: np.ndarray, a: np.ndarray) -> pd.DataFrame:
    rows = []
    for label, mask in (("exposed", a == 1), ("unexposed", a == 0)):
        q = np.quantile(e[mask], [0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0])
        rows.append({"arm": label, "n": int(mask.sum()), "min": q[0], "p01": q[1], "p05": q[2], "median": q[3],
                     "p95": q[4], "p99": q[5], "max": q[6]})
    return pd.DataFrame(rows)


def emulate(data: pd.DataFrame, **settings: Any) -> Effect:
    """Estimate an emulated target trial in one call; see :class:`TrialEmulation` for the settings."""
    return TrialEmulation(**settings).fit(data).result_
