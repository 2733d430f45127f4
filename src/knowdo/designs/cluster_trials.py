"""Cluster randomised and stepped-wedge trial analysis.

Three analyses, each the standard one for its situation:

* ``lmm``: the Hussey & Hughes (2007) linear mixed model, outcome on
  treatment plus categorical period effects with a cluster random intercept
  (``correlation="exchangeable"``), or with cluster and cluster x period random
  effects (``"nested-exchangeable"``, Hooper et al. 2016 / Girling & Hemming
  2016), or with a cluster x period effect whose correlation decays as
  ``r^|s - t|`` between periods ``s`` and ``t`` (``"decay"``, Kasza et al.
  2019), fitted by REML (:mod:`knowdo.designs.cluster_lmm`, which says why
  it is our own code). Binary outcomes give a risk difference. Degrees of
  freedom for the treatment effect: ``clusters - 2``, Kenward-Roger (with
  its bias-corrected variance) or Satterthwaite.
* ``gee``: generalised estimating equations (statsmodels ``GEE``,
  exchangeable working correlation; logit link for binary outcomes, so the
  effect is a log odds ratio) with a small-sample corrected sandwich
  variance: Kauermann & Carroll (2001) or Mancl & DeRouen (2001). The
  corrections are computed here from the fitted model because statsmodels
  offers only Mancl-DeRouen (``bias_reduced``); the test suite checks ours
  against it.
* ``cluster-summary``: for few clusters, analysis of cluster (or
  cluster-period) means: a two-sample t-test of cluster means in a parallel
  trial, or a two-way fixed-effects regression of cluster-period means
  (cluster and period effects) in a stepped wedge.

With few clusters, Wald tests are too liberal; by default intervals use a t
distribution with ``clusters - 2`` degrees of freedom (Donner & Klar 2000;
Li & Redden 2015 use clusters minus cluster-level parameters). For the mixed
model, ``df="kenward-roger"`` (Kenward & Roger 1997) also corrects the
variance for the estimated covariance parameters and, like
``df="satterthwaite"``, derives the degrees of freedom from the design: in a
balanced parallel trial both equal the exact ``clusters - 2``; in a stepped
wedge, where much of the information is within clusters, they are larger
(docs/studies/stepped-wedge-decay.md).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from knowdo.designs import cluster_lmm
from knowdo.designs._frames import (
    check_level,
    column_strata,
    require_binary,
    require_columns,
    require_complete,
    require_frame,
    require_numeric,
    strata_table,
)
from knowdo.designs._options import check_option, constructor_settings
from knowdo.designs.cluster_lmm import CORRELATIONS, Correlation
from knowdo.designs.effect import Effect
from knowdo.errors import ParameterError

ClusterMethod = Literal["lmm", "gee", "cluster-summary"]
TrialFamily = Literal["gaussian", "binomial"]
SmallSample = Literal["kauermann-carroll", "mancl-derouen", "none"]
DfMethod = Literal["clusters", "kenward-roger", "satterthwaite", "normal"]
METHODS: tuple[str, ...] = ("lmm", "gee", "cluster-summary")
FAMILIES: tuple[str, ...] = ("gaussian", "binomial")
SMALL_SAMPLE: tuple[str, ...] = ("kauermann-carroll", "mancl-derouen", "none")
DF_METHODS: tuple[str, ...] = ("clusters", "kenward-roger", "satterthwaite", "normal")

ASSUMPTIONS = (
    "Clusters (or the order in which they cross over) were randomised, so treated and control cluster-periods "
    "are comparable given the period effects.",
    "Period effects are common to all clusters (stepped wedge): secular trends do not differ by cluster.",
    "The effect does not depend on time since crossing over (no learning or fade-out), unless modelled.",
    "The correlation model (random intercept, cluster x period effect or decaying correlation) is adequate "
    "for the LMM; "
    "GEE needs only the mean model right.",
    "No contamination between clusters; recruitment into clusters is not influenced by allocation.",
)


class ClusterTrial:
    """Analyse a parallel cluster RCT or a stepped-wedge trial from individual-level rows.

    Parameters
    ----------
    outcome, cluster, treatment
        Outcome, cluster identifier and 0/1 treatment (of the cluster in that period) columns.
    period
        Period column (stepped wedge, or repeated measurement); None for a single cross-section.
    method
        ``lmm``, ``gee`` or ``cluster-summary``.
    family
        ``gaussian`` or ``binomial`` (0/1 outcome).
    correlation
        Within-cluster correlation of the LMM: ``exchangeable`` (cluster random
        intercept), ``nested-exchangeable`` (plus a cluster x period effect) or
        ``decay`` (cluster x period effects correlated ``r^|s - t|`` across periods,
        periods counted by their rank).
    small_sample
        Sandwich correction for GEE: ``kauermann-carroll``, ``mancl-derouen`` or ``none``.
    df
        ``clusters`` (t with clusters - 2 df), ``kenward-roger`` or ``satterthwaite``
        (LMM only), or ``normal``.
    covariates, strata
        Adjustment covariates (numeric columns); stratifier columns for per-stratum estimates.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> rows = []
    >>> for c in range(12):
    ...     u = rng.normal(0, 0.5)
    ...     for t in range(4):
    ...         d = int(t >= 1 + c % 3)
    ...         rows += [(c, t, d, 1.0 + 0.2 * t + 0.8 * d + u + rng.normal()) for _ in range(10)]
    >>> df = pd.DataFrame(rows, columns=["cluster", "period", "treated", "y"])
    >>> e = ClusterTrial(outcome="y", cluster="cluster", period="period", treatment="treated").fit(df).result_
    >>> bool(abs(e.estimate - 0.8) < 0.4)
    True
    """

    def __init__(
        self,
        *,
        outcome: str,
        cluster: str,
        treatment: str = "treated",
        period: str | None = None,
        method: ClusterMethod = "lmm",
        family: TrialFamily = "gaussian",
        correlation: Correlation = "exchangeable",
        # Kauermann-Carroll with t(clusters - 2) keeps near-nominal size with few clusters (Li & Redden 2015)
        small_sample: SmallSample = "kauermann-carroll",
        df: DfMethod = "clusters",
        covariates: Sequence[str] = (),
        strata: Sequence[str] = (),
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.outcome = outcome
        self.cluster = cluster
        self.treatment = treatment
        self.period = period
        self.method = method
        self.family = family
        self.correlation = correlation
        self.small_sample = small_sample
        self.df = df
        self.covariates = covariates
        self.strata = strata
        self.level = level

    def fit(self, data: pd.DataFrame) -> ClusterTrial:
        """Fit the chosen analysis; sets ``result_`` and returns self."""
        design = "cluster trial"
        require_frame(data, design)
        check_option("method", self.method, METHODS)
        check_option("family", self.family, FAMILIES)
        check_option("small_sample", self.small_sample, SMALL_SAMPLE)
        check_option("df", self.df, DF_METHODS)
        check_option("correlation", self.correlation, CORRELATIONS)
        check_level(self.level, design)
        covs = list(self.covariates)
        cols = [self.outcome, self.cluster, self.treatment, self.period, *covs]
        require_columns(data, [*cols, *self.strata], design)
        require_complete(data, cols, design)
        require_numeric(data, [self.outcome, self.treatment, *covs], design)
        require_binary(data, self.treatment, design)
        if self.family == "binomial":
            require_binary(data, self.outcome, design)
        if self.correlation != "exchangeable" and (self.period is None or self.method != "lmm"):
            raise ParameterError(
                f"cluster trial: correlation={self.correlation!r} needs method='lmm' and a period column "
                f"(got method={self.method!r}, period={self.period!r})."
            )
        if self.df in ("kenward-roger", "satterthwaite") and self.method != "lmm":
            raise ParameterError(
                f"cluster trial: df={self.df!r} is defined for the mixed model only; use method='lmm' or "
                "df='clusters'."
            )
        if data[self.cluster].nunique() < 4:
            raise ParameterError(
                f"cluster trial: {data[self.cluster].nunique()} cluster(s); at least 4 are needed for any "
                "cluster-level inference."
            )
        effect = self._fit_frame(data, with_details=True)
        if self.strata:
            table = strata_table(column_strata(data, list(self.strata)),
                                 lambda part: self._fit_frame(part, with_details=False), len)
            effect = dataclasses.replace(effect, strata=table)
        self.result_ = effect
        return self

    # ------------------------------------------------------------------ core
    def _frame(self, data: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(
            {"y_": data[self.outcome].astype(float).to_numpy(), "c_": data[self.cluster].astype(str).to_numpy(),
             "d_": data[self.treatment].astype(float).to_numpy()}
        )
        if self.period is not None:
            out["p_"] = data[self.period].astype(str).to_numpy()
            # rank of the period in its natural (numeric or date) order: the lag of the decay model
            out["k_"] = np.unique(data[self.period].to_numpy(), return_inverse=True)[1].ravel()
        for i, cov in enumerate(self.covariates):
            out[f"x{i}_"] = data[cov].astype(float).to_numpy()
        return out

    def _formula(self) -> str:
        terms = ["d_"]
        if self.period is not None:
            terms.append("C(p_)")
        terms += [f"x{i}_" for i in range(len(self.covariates))]
        return "y_ ~ " + " + ".join(terms)

    def _fit_frame(self, data: pd.DataFrame, *, with_details: bool) -> Effect:
        frame = self._frame(data)
        n_clusters = int(frame["c_"].nunique())
        if frame["d_"].nunique() < 2:
            raise ParameterError("cluster trial: every row has the same treatment value; nothing to compare.")
        dof = float(n_clusters - 2) if self.df == "clusters" else math.inf
        if self.method == "lmm":
            estimate, se, lmm_dof, diag, details = self._lmm(frame)
            if lmm_dof is not None:
                dof = lmm_dof
        elif self.method == "gee":
            estimate, se, diag, details = self._gee(frame)
        else:
            estimate, se, dof_summary, diag, details = self._summary(frame)
            dof = dof_summary if self.df == "clusters" else math.inf
        crit = float(stats.t.ppf(0.5 + self.level / 2, dof) if math.isfinite(dof) else
                     stats.norm.ppf(0.5 + self.level / 2))
        pval = float(2 * (stats.t.sf(abs(estimate / se), dof) if math.isfinite(dof) else
                          stats.norm.sf(abs(estimate / se)))) if se > 0 else math.nan
        sizes = frame.groupby("c_").size()
        diag.update(
            n_clusters=n_clusters,
            n_periods=int(frame["p_"].nunique()) if self.period is not None else 1,
            mean_cluster_size=float(sizes.mean()),
            cluster_size_cv=float(sizes.std(ddof=0) / sizes.mean()),
            degrees_of_freedom=dof if math.isfinite(dof) else None,
        )
        logit = self.method == "gee" and self.family == "binomial"
        if logit:
            diag.update(odds_ratio=math.exp(estimate), odds_ratio_conf_low=math.exp(estimate - crit * se),
                        odds_ratio_conf_high=math.exp(estimate + crit * se))
        scale = "log odds ratio" if logit else ("risk difference" if self.family == "binomial" else "difference")
        design = "stepped-wedge" if self._is_stepped(frame) else "cluster-rct"
        return Effect(
            design=design,
            estimand=f"effect of treatment on {self.outcome!r} as a {scale}"
                     + (", adjusted for period" if self.period is not None else ""),
            estimate=float(estimate),
            std_error=float(se),
            conf_low=float(estimate - crit * se),
            conf_high=float(estimate + crit * se),
            method=self._method_text(),
            level=self.level,
            p_value=pval,
            settings=self._settings(),
            n_obs=len(frame),
            n_units=n_clusters,
            diagnostics=diag,
            assumptions=ASSUMPTIONS,
            details=details if with_details else {},
            term="log_odds_ratio" if logit else "effect",
        )

    def _is_stepped(self, frame: pd.DataFrame) -> bool:
        return bool((frame.groupby("c_")["d_"].nunique() > 1).any())

    def _lmm(self, frame: pd.DataFrame) -> tuple[float, float, float | None, dict[str, Any], dict[str, pd.DataFrame]]:
        """REML fit of the chosen correlation structure; small-sample df and variance when asked."""
        cluster_codes = pd.factorize(frame["c_"], sort=True)[0]
        periods = frame["k_"].to_numpy() if self.period is not None else np.zeros(len(frame), dtype=int)
        columns = {"Intercept": np.ones(len(frame)), "treatment": frame["d_"].to_numpy()}
        if self.period is not None:
            labels = frame.groupby("k_")["p_"].first()
            for k in range(1, int(periods.max()) + 1):
                columns[f"period[{labels.loc[k]}]"] = (periods == k).astype(float)
        for i, cov in enumerate(self.covariates):
            columns[cov] = frame[f"x{i}_"].to_numpy()
        names = list(columns)
        X = np.column_stack(list(columns.values()))
        if np.linalg.matrix_rank(X) < X.shape[1]:
            raise ParameterError("cluster trial: treatment, period effects and covariates are collinear; "
                                 "check that treatment varies within periods and drop redundant covariates.")
        data = cluster_lmm.lmm_data(frame["y_"].to_numpy(), X, cluster_codes, periods)
        try:
            fit = cluster_lmm.fit_reml(data, self.correlation)
        except np.linalg.LinAlgError:
            raise ParameterError("cluster trial: the mixed model could not be fitted (singular covariance); "
                                 "check for clusters with a single observation or try method='gee'.") from None
        j = names.index("treatment")
        estimate = float(fit.beta[j])
        se = float(math.sqrt(fit.cov[j, j]))
        dof: float | None = None
        diag: dict[str, Any] = {"residual_variance": fit.sigma2, "converged": fit.converged,
                                "reml_loglik": fit.reml_loglik, "model_based_se": se}
        total = fit.sigma2 + float(fit.g_params[0]) + (float(fit.g_params[1]) if self.correlation ==
                                                         "nested-exchangeable" else 0.0)
        if self.correlation == "exchangeable":
            diag.update(cluster_variance=float(fit.g_params[0]), icc=float(fit.g_params[0]) / total)
        elif self.correlation == "nested-exchangeable":
            tau2, gamma2 = (float(v) for v in fit.g_params)
            diag.update(cluster_variance=tau2, cluster_period_variance=gamma2, icc=(tau2 + gamma2) / total,
                        cluster_autocorrelation=tau2 / (tau2 + gamma2) if tau2 + gamma2 > 0 else math.nan)
        else:
            gamma2, r = (float(v) for v in fit.g_params)
            diag.update(cluster_period_variance=gamma2, icc=gamma2 / total, decay=r)
        if self.df in ("kenward-roger", "satterthwaite"):
            small = (cluster_lmm.kenward_roger(fit, j) if self.df == "kenward-roger"
                     else cluster_lmm.satterthwaite(fit, j))
            # the Kenward-Roger F statistic is scale * estimate^2 / variance, so its t has SE sqrt(variance / scale)
            se = math.sqrt(small.variance / small.scale)
            dof = small.df
            diag.update(small_sample_scale=small.scale)
        cov_table = pd.DataFrame(fit.cov, index=names, columns=names)
        details = {"coefficients": _coef_table(pd.Series(fit.beta, index=names), cov_table)}
        return estimate, se, dof, diag, details

    def _gee(self, frame: pd.DataFrame) -> tuple[float, float, dict[str, Any], dict[str, pd.DataFrame]]:
        family = sm.families.Binomial() if self.family == "binomial" else sm.families.Gaussian()
        frame = frame.sort_values("c_", kind="stable").reset_index(drop=True)
        model = smf.gee(self._formula(), groups="c_", data=frame, family=family,
                        cov_struct=sm.cov_struct.Exchangeable())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(maxiter=100)
        cov = gee_sandwich(res, self.small_sample)
        names = list(res.params.index)
        j = names.index("d_")
        diag: dict[str, Any] = {
            "working_correlation": float(res.model.cov_struct.dep_params),
            "robust_se_uncorrected": float(np.sqrt(gee_sandwich(res, "none")[j, j])),
            "converged": bool(getattr(res, "converged", True)),
        }
        details = {"coefficients": _coef_table(res.params, pd.DataFrame(cov, index=names, columns=names))}
        return float(res.params["d_"]), float(np.sqrt(cov[j, j])), diag, details

    def _summary(self, frame: pd.DataFrame) -> tuple[float, float, float, dict[str, Any], dict[str, pd.DataFrame]]:
        if self.covariates:
            raise ParameterError("cluster trial: method='cluster-summary' does not adjust for covariates; "
                                 "drop them or use method='lmm'/'gee'.")
        keys = ["c_", "p_"] if self.period is not None else ["c_"]
        cells = frame.groupby(keys).agg(y_=("y_", "mean"), d_=("d_", "mean"), n=("y_", "size")).reset_index()
        if not np.isin(cells["d_"], (0.0, 1.0)).all():
            raise ParameterError("cluster trial: treatment varies within a cluster-period; cluster summaries need "
                                 "one treatment status per cluster and period.")
        if not self._is_stepped(frame):
            per = cells.groupby("c_").agg(y_=("y_", "mean"), d_=("d_", "first")).reset_index()
            a, b = per.loc[per["d_"] == 1, "y_"], per.loc[per["d_"] == 0, "y_"]
            if len(a) < 2 or len(b) < 2:
                raise ParameterError("cluster trial: cluster-summary t-test needs >= 2 clusters per arm.")
            dof = float(len(a) + len(b) - 2)
            pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / dof
            se = math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
            return float(a.mean() - b.mean()), se, dof, {"analysis": "t-test of cluster means"}, {"clusters": per}
        ols = smf.ols("y_ ~ d_ + C(p_) + C(c_)", data=cells).fit()
        diag = {"analysis": "two-way fixed effects on cluster-period means"}
        return float(ols.params["d_"]), float(ols.bse["d_"]), float(ols.df_resid), diag, {"cluster_periods": cells}

    def _method_text(self) -> str:
        if self.method == "lmm":
            re = {"exchangeable": "cluster random intercept (Hussey & Hughes 2007)",
                  "nested-exchangeable": "cluster and cluster x period random effects (Hooper et al. 2016)",
                  "decay": "cluster x period effects with exponentially decaying correlation (Kasza et al. 2019)",
                  }[self.correlation]
            df = {"clusters": "t(clusters - 2)", "kenward-roger": "Kenward-Roger df and variance",
                  "satterthwaite": "Satterthwaite df", "normal": "normal"}[self.df]
            return f"linear mixed model (REML), period fixed effects, {re}, {df}"
        if self.method == "gee":
            link = "logit link" if self.family == "binomial" else "identity link"
            corr = {"kauermann-carroll": "Kauermann-Carroll", "mancl-derouen": "Mancl-DeRouen",
                    "none": "uncorrected"}[self.small_sample]
            return f"GEE ({link}, exchangeable working correlation), {corr} sandwich SE"
        return "cluster-level summary analysis"

    def _settings(self) -> dict[str, Any]:
        return constructor_settings(self)


def gee_sandwich(result: Any, correction: str) -> np.ndarray:
    """Sandwich covariance of a fitted statsmodels GEE (exchangeable), optionally small-sample corrected.

    ``mancl-derouen`` scales each cluster's residuals by ``(I - H_i)^-1`` and
    ``kauermann-carroll`` by ``(I - H_i)^-1/2``, with ``H_i = D_i B^-1 D_i' V_i^-1``
    the cluster's leverage and ``B = sum D_i' V_i^-1 D_i``. With ``V_i = L L'``,
    ``H_i = L Ht L^-1`` for the symmetric ``Ht = L^-1 D_i B^-1 D_i' L^-T``, so
    the score contribution is ``(L^-1 D_i)' f(I - Ht) L^-1 r_i``. For an
    exchangeable working correlation ``L^-1`` is applied in O(n) and ``Ht``
    has rank p, so no n x n matrix is formed: large clusters stay cheap. The
    dispersion cancels.
    """
    check_option("correction", correction, SMALL_SAMPLE)
    model = result.model
    if not isinstance(model.cov_struct, (sm.cov_struct.Exchangeable, sm.cov_struct.Independence)):
        raise ParameterError("gee_sandwich: only exchangeable or independence working correlations are supported.")
    alpha = float(np.atleast_1d(model.cov_struct.dep_params)[0]) if isinstance(
        model.cov_struct, sm.cov_struct.Exchangeable) else 0.0
    beta = np.asarray(result.params)
    p = len(beta)
    whitened = []
    bread = np.zeros((p, p))
    for i in range(model.num_group):
        X = model.exog_li[i]
        off = model.offset_li[i] if model.offset_li is not None else 0.0
        lin = X @ beta + off
        mu = model.family.link.inverse(lin)
        sd = np.sqrt(model.family.variance(mu))
        D = X * model.family.link.inverse_deriv(lin)[:, None]
        n = len(mu)
        # R^(-1/2) of (1 - a) I + a 11': (1-a)^(-1/2) off the ones direction, (1-a+na)^(-1/2) along it
        low, high = (1 - alpha) ** -0.5, (1 - alpha + n * alpha) ** -0.5

        def r_inv_root(Z: np.ndarray, low: float = low, high: float = high) -> np.ndarray:
            mean = Z.mean(axis=0)
            return np.asarray(low * (Z - mean) + high * mean)

        Dt = r_inv_root(D / sd[:, None])
        rt = r_inv_root((model.endog_li[i] - mu) / sd)
        bread += Dt.T @ Dt
        whitened.append((Dt, rt))
    bread_inv = np.linalg.inv(bread)
    chol = np.linalg.cholesky(bread_inv)
    power = {"mancl-derouen": -1.0, "kauermann-carroll": -0.5, "none": 0.0}[correction]
    meat = np.zeros((p, p))
    for Dt, rt in whitened:
        adj = rt
        if power:
            U, sv, _ = np.linalg.svd(Dt @ chol, full_matrices=False)
            shrink = np.clip(1 - sv**2, 1e-10, None) ** power - 1
            adj = rt + U @ (shrink * (U.T @ rt))
        u = Dt.T @ adj
        meat += np.outer(u, u)
    return np.asarray(bread_inv @ meat @ bread_inv)


def _coef_table(params: pd.Series, cov: pd.DataFrame) -> pd.DataFrame:
    se = np.sqrt(np.clip(np.diag(cov.to_numpy()), 0.0, None))
    names = [n.replace("d_", "treatment") if n == "d_" else n for n in params.index]
    return pd.DataFrame({"term": names, "estimate": params.to_numpy(), "std_error": se})


def stepped_wedge(data: pd.DataFrame, **settings: Any) -> Effect:
    """Analyse a stepped-wedge (or parallel cluster) trial in one call; see :class:`ClusterTrial`."""
    return ClusterTrial(**settings).fit(data).result_


def cluster_rct(data: pd.DataFrame, **settings: Any) -> Effect:
    """Analyse a parallel cluster randomised trial in one call; see :class:`ClusterTrial`."""
    return ClusterTrial(**settings).fit(data).result_
