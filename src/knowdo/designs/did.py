"""Staggered difference-in-differences: Callaway & Sant'Anna (2021) group-time ATTs.

When clinics start a programme at different times, the two-way fixed-effects
regression compares late starters with early starters that are already
treated and is biased when effects change over time (Goodman-Bacon 2021; see
:mod:`knowdo.designs.bacon`). Callaway & Sant'Anna instead estimate one clean
2x2 comparison per cohort ``g`` and period ``t`` (ATT(g,t), against
never-treated or not-yet-treated units, with outcome-regression, IPW or
doubly robust adjustment for covariates) and average them into the summaries
a reader asks for: overall, by cohort, by calendar period, and by time since
the start (the event study).

This is our own vectorised implementation rather than a wrapper: the Python
ports (csdid, differences) loop over cells in pandas and are several times
slower than numpy with a much larger memory peak on programme-sized panels
(see ``benchmarks/bench_did.py``), and neither returns the influence-function
representation that lets one set of bootstrap draws serve every aggregation.
The numbers reproduce R ``did`` 2.x to machine precision (tests against the
reference output for ``mpdta``).

Intervals: by default the normal interval on the influence-function variance,
as R ``did`` reports it. With few units per cohort that interval under-covers,
so ``small_sample="satterthwaite"`` offers the published small-sample fix for
robust variances of this kind: the HC2 / bias-reduced-linearisation variance
(Bell & McCaffrey 2002) with t critical values on Welch-Satterthwaite degrees
of freedom (Imbens & Kolesar 2016), or CR1 with ``G - 1`` degrees of freedom
when clustered (Cameron & Miller 2015); details in
:mod:`knowdo.designs.did_inference`. :func:`did_on_panel`, the path the
example programme and the report use, applies it by default and says so in the
Effect's ``settings["interval"]`` and ``diagnostics["small_sample_df"]``.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(1)
>>> units, periods = 200, 6
>>> g = np.repeat(rng.choice([0, 3, 5], units), periods)
>>> t = np.tile(np.arange(1, periods + 1), units)
>>> y = rng.normal(size=units * periods) + 2.0 * ((g > 0) & (t >= g))
>>> df = pd.DataFrame({"id": np.repeat(np.arange(units), periods), "t": t, "g": g, "y": y})
>>> eff = did(df, outcome="y", unit="id", time="t", cohort="g")
>>> bool(abs(eff.estimate - 2.0) < 0.5)
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import stats

from knowdo.designs._frames import (
    check_level,
    headline_and_strata,
    require_frame,
    strata_table,
)
from knowdo.designs._options import check_option, constructor_settings
from knowdo.designs.did_aggregate import (
    AGGREGATIONS,
    Aggregation,
    AggregationKind,
    CohortCoding,
    Linear,
    aggregate,
)
from knowdo.designs.did_attgt import (
    BASE_PERIODS,
    CONTROL_GROUPS,
    EST_METHODS,
    AttGt,
    BasePeriod,
    ControlGroup,
    EstMethod,
    estimate_att_gt,
)
from knowdo.designs.did_data import (
    UNBALANCED,
    Unbalanced,
    WidePanel,
    build_wide_panel,
    last_cohort_as_comparison,
)
from knowdo.designs.did_inference import (
    SMALL_SAMPLE,
    Bootstrap,
    InfluenceRows,
    SmallSample,
    summarise_draws,
)
from knowdo.designs.effect import Effect
from knowdo.designs.panel_input import COHORT, MONTH, RATE, rate_frame
from knowdo.designs.pretrends import PretrendTest, wald_pretrend
from knowdo.errors import ParameterError

DESIGN = "did"
# 999 multiplier-bootstrap draws: the benchmark setting; R did defaults to biters = 1000.
N_BOOT = 999
METHOD_NAMES = {
    "dr": "doubly robust (Sant'Anna & Zhao 2020)",
    "reg": "outcome regression",
    "ipw": "standardised inverse probability weighting",
}
INTERVALS: dict[SmallSample, str] = {
    "none": "normal (Wald) interval, plug-in influence-function variance (R did)",
    "satterthwaite": "small-sample t interval: HC2 cohort-scaled variance, Welch-Satterthwaite df "
    "(Bell & McCaffrey 2002; Imbens & Kolesar 2016); CR1 with G-1 df when clustered (Cameron & Miller 2015)",
}
KEY_COLUMN = {"simple": "term", "group": "group", "calendar": "time", "dynamic": "event_time"}


@dataclass(frozen=True)
class _Core:
    """What one fit leaves behind for later aggregations."""

    panel: WidePanel
    att: AttGt
    coding: CohortCoding
    rows: InfluenceRows  # (cluster sums of) [psi | cohort indicators], in column blocks
    gram: np.ndarray  # S'S of those rows: every analytic covariance
    draws: np.ndarray | None  # n_boot x (cells + cohorts): U @ [S_psi | S_cohort] / n


@functools.lru_cache(maxsize=64)
def _t_quantile(q: float, df: float) -> float:
    return float(stats.t.ppf(q, df))


@dataclass(frozen=True)
class _Inference:
    estimate: np.ndarray
    se: np.ndarray
    crit: float  # uniform-band critical value (NaN without bootstrap)
    df: np.ndarray  # degrees of freedom of the pointwise t interval (inf: normal)

    def point_crit(self, level: float) -> np.ndarray:
        if np.all(np.isinf(self.df)):
            # The usual normal interval: one cached quantile instead of a scipy call per table.
            return np.full(len(self.df), _t_quantile(0.5 + level / 2, math.inf))
        return np.asarray(stats.t.ppf(0.5 + level / 2, self.df))

    def p_value(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(2 * stats.t.sf(np.abs(self.estimate / self.se), self.df))


class CallawaySantAnna:
    """Callaway & Sant'Anna (2021) staggered DiD with aggregations, analytic and bootstrap inference.

    Parameters
    ----------
    outcome, unit, time, cohort
        Columns: the outcome, the unit id, the period (numbers, e.g. a month
        index) and the unit's first treated period (0, NaN or inf for never
        treated).
    covariates
        Columns adjusted for in each 2x2 (values of the earlier period of the pair, as R ``did``).
    control_group
        ``"nevertreated"`` or ``"notyettreated"`` (units not yet treated by the
        later period of the pair plus the anticipation window).
    est_method
        ``"dr"`` (doubly robust), ``"reg"`` (outcome regression) or ``"ipw"``.
    anticipation
        Periods before the start in which units may already react.
    base_period
        ``"varying"`` (pre-periods compare consecutive periods) or ``"universal"`` (all against g-1).
    cluster
        Column to cluster on beyond the unit (constant within unit); ``None`` clusters by unit.
    bootstrap, n_boot, seed
        Multiplier bootstrap (Rademacher weights) for standard errors and uniform bands.
    level
        Confidence level.
    uniform_bands
        Add simultaneous bands (``band_low``/``band_high``) when bootstrapping.
    small_sample
        ``"none"`` (default): R ``did``'s normal interval on the plug-in
        influence-function variance. ``"satterthwaite"``: HC2 cohort-scaled
        variance and t critical values with Welch-Satterthwaite degrees of
        freedom (``G - 1`` when clustered); see :mod:`knowdo.designs.did_inference`.
    unbalanced
        ``"error"`` refuses a panel with missing unit-periods; ``"drop"`` drops those units.
    """

    def __init__(
        self,
        *,
        outcome: str,
        unit: str,
        time: str,
        cohort: str,
        covariates: Sequence[str] = (),
        control_group: ControlGroup = "nevertreated",
        est_method: EstMethod = "dr",
        anticipation: int = 0,
        base_period: BasePeriod = "varying",
        cluster: str | None = None,
        bootstrap: bool = False,
        n_boot: int = N_BOOT,
        seed: int | None = None,
        level: float = 0.95,
        uniform_bands: bool = True,
        unbalanced: Unbalanced = "error",
        small_sample: SmallSample = "none",
    ) -> None:
        self.outcome = outcome
        self.unit = unit
        self.time = time
        self.cohort = cohort
        self.covariates = covariates
        self.control_group = control_group
        self.est_method = est_method
        self.anticipation = anticipation
        self.base_period = base_period
        self.cluster = cluster
        self.bootstrap = bootstrap
        self.n_boot = n_boot
        self.seed = seed
        self.level = level
        self.uniform_bands = uniform_bands
        self.unbalanced = unbalanced
        self.small_sample = small_sample

    # ------------------------------------------------------------------ settings
    def get_params(self) -> dict[str, Any]:
        return constructor_settings(self)

    def _check_settings(self) -> None:
        check_option("control_group", self.control_group, CONTROL_GROUPS)
        check_option("est_method", self.est_method, EST_METHODS)
        check_option("base_period", self.base_period, BASE_PERIODS)
        check_option("unbalanced", self.unbalanced, UNBALANCED)
        check_option("small_sample", self.small_sample, SMALL_SAMPLE)
        check_level(self.level, DESIGN)
        if isinstance(self.covariates, str):
            raise ParameterError(
                f"{DESIGN}: covariates={self.covariates!r} must be a list of column names, e.g. [{self.covariates!r}]."
            )
        if not isinstance(self.anticipation, (int, np.integer)) or isinstance(self.anticipation, bool) or (
            self.anticipation < 0
        ):
            raise ParameterError(f"{DESIGN}: anticipation={self.anticipation!r} must be a whole number >= 0.")
        if not isinstance(self.n_boot, (int, np.integer)) or self.n_boot < 2:
            raise ParameterError(f"{DESIGN}: n_boot={self.n_boot!r} must be an integer >= 2 (e.g. 999).")
        for name in ("outcome", "unit", "time", "cohort"):
            if not isinstance(getattr(self, name), str):
                raise ParameterError(f"{DESIGN}: {name}={getattr(self, name)!r} must be a column name (a string).")

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame, strata: Sequence[str] | None = None) -> Self:
        """Estimate every ATT(g,t) and their aggregations; sets ``result_`` (an :class:`Effect`).

        Parameters
        ----------
        data
            Long panel, one row per unit and period. A knowdo analysis panel
            (with ``dimension``/``stratum`` columns) is estimated on its
            ``dimension == 'all'`` rows, and once more within every stratum.
        strata
            Stratifier columns of a person- or unit-level panel: the estimator
            runs within each level of each column and fills ``result_.strata``.
        """
        self._check_settings()
        frame = require_frame(data, DESIGN)
        headline, groups = headline_and_strata(frame, strata, DESIGN)
        core = self._estimate(headline, self.seed)
        self._core = core
        table = None
        if groups:
            table = strata_table(groups, self._stratum_fitter(), lambda part: int(part[self.unit].nunique()))
        self.result_ = self._build_effect(core, table)
        self.att_gt_ = self.result_.details["att_gt"]
        return self

    def _stratum_fitter(self) -> Any:
        # Each stratum draws from its own child of the fit's seed, so strata are reproducible and independent.
        parent = np.random.SeedSequence(self.seed)

        def fit_one(part: pd.DataFrame) -> Effect:
            core = self._estimate(part, parent.spawn(1)[0])
            return self._build_effect(core, None)

        return fit_one

    def _estimate(self, data: pd.DataFrame, seed: int | np.random.SeedSequence | None) -> _Core:
        panel = build_wide_panel(
            data,
            outcome=self.outcome,
            unit=self.unit,
            time=self.time,
            cohort=self.cohort,
            covariates=tuple(self.covariates),
            cluster=self.cluster,
            anticipation=int(self.anticipation),
            unbalanced=self.unbalanced,
        )
        if np.isfinite(panel.cohort).all():
            if self.control_group == "nevertreated":
                raise ParameterError(
                    f"{DESIGN}: control_group='nevertreated' but no unit is never treated (cohort 0, NaN or inf, "
                    "or a start after the last period); use control_group='notyettreated'."
                )
            panel = last_cohort_as_comparison(panel, int(self.anticipation))
        att = estimate_att_gt(
            panel,
            control_group=self.control_group,
            est_method=self.est_method,
            anticipation=int(self.anticipation),
            base_period=self.base_period,
        )
        if not att.valid.any():
            reasons = sorted({n for n in att.note if n})
            raise ParameterError(f"{DESIGN}: no ATT(g,t) could be estimated ({'; '.join(reasons)}).")
        coding = CohortCoding.from_cohorts(panel.cohort)
        if panel.cluster is None:
            rows = InfluenceRows.from_cohorts(att.cohorts, len(att.att), panel.n_units)
        else:
            rows = InfluenceRows.build(att.inf, coding.code, len(coding.values), panel.cluster)
        draws = None
        if self.bootstrap:
            rng = np.random.default_rng(seed)
            draws = rows.rademacher(int(self.n_boot), rng, corrected=self.small_sample != "none")
        return _Core(panel=panel, att=att, coding=coding, rows=rows, gram=rows.gram(), draws=draws)

    # ------------------------------------------------------------------ inference
    @staticmethod
    def _vcov(core: _Core, lin: Linear) -> np.ndarray:
        """Analytic covariance of the parameters of ``lin``: A' (S'S) A / n^2 with A = [w; h]."""
        a = np.vstack([lin.w, lin.h])
        return np.asarray(a.T @ core.gram @ a) / core.panel.n_units**2

    def _infer(self, core: _Core, lin: Linear, family: bool) -> _Inference:
        if self.small_sample == "none":
            var = np.diag(self._vcov(core, lin))
            df = np.full(len(var), np.inf)
        else:
            var, df = core.rows.small_sample(np.vstack([lin.w, lin.h]))
        if core.draws is None:
            # A parameter with an exactly zero influence function (a reference cell) has no SE.
            se = np.where(var > 0, np.sqrt(np.clip(var, 0, None)), np.nan)
            return _Inference(lin.estimate, se, math.nan, df)
        m = len(core.att.att)
        draws = core.draws[:, :m] @ lin.w + core.draws[:, m:] @ lin.h
        cols = np.arange(draws.shape[1])
        boot: Bootstrap = summarise_draws(draws, {"all": cols} if family else {}, self.level)
        crit = boot.crit.get("all", math.nan) if self.uniform_bands else math.nan
        return _Inference(lin.estimate, boot.se, crit, df)

    def _columns(self, inf: _Inference, bands: bool = True) -> dict[str, np.ndarray]:
        """Estimate, SE, pointwise interval, uniform band and p-value columns (built once, as arrays)."""
        z = inf.point_crit(self.level)
        est, se = inf.estimate, inf.se
        cols = {"estimate": est, "std_error": se, "conf_low": est - z * se, "conf_high": est + z * se}
        if bands:
            cols.update(band_low=est - inf.crit * se, band_high=est + inf.crit * se)
        cols["p_value"] = inf.p_value()
        if self.small_sample != "none":
            cols["df"] = inf.df
        return cols

    def _aggregation_table(self, core: _Core, agg: Aggregation) -> tuple[pd.DataFrame, _Inference]:
        overall = self._infer(core, agg.overall, family=False)
        if agg.kind == "simple":
            return pd.DataFrame({"term": ["overall"], **self._columns(overall, bands=False)}), overall
        comp = self._infer(core, agg.components, family=True)
        key = KEY_COLUMN[agg.kind]
        keys = agg.components.keys
        first, rest = self._columns(overall), self._columns(comp)
        columns: dict[str, Any] = {
            "term": ["overall", *(f"{key}={k:g}" for k in keys)],
            key: np.r_[np.nan, keys],
            **{name: np.r_[first[name], rest[name]] for name in first},
        }
        return pd.DataFrame(columns), overall

    def _att_gt_table(self, core: _Core) -> tuple[pd.DataFrame, float]:
        att = core.att
        plan = att.plan
        lin = Linear(
            keys=np.arange(len(att.att), dtype=float),
            estimate=att.att,
            w=np.eye(len(att.att)),
            h=np.zeros((len(core.coding.values), len(att.att))),
        )
        inf = self._infer(core, lin, family=True)
        if core.draws is not None:
            # The uniform band covers the cells that were estimated (reference cells have no SE).
            inf = _Inference(inf.estimate, np.where(att.valid, inf.se, np.nan), inf.crit, inf.df)
        stats_cols = self._columns(inf)
        stats_cols["att"] = stats_cols.pop("estimate")
        stats_cols["se"] = stats_cols.pop("std_error")
        order = ["att", "se", *(c for c in stats_cols if c not in ("att", "se"))]
        table = pd.DataFrame(
            {
                "group": plan.group,
                "time": plan.time,
                "base_period": plan.base,
                "event_time": plan.time - plan.group,
                "post": plan.post,
                **{c: stats_cols[c] for c in order},
                "n_treated": att.n_treated,
                "n_control": att.n_control,
                "note": list(att.note),
            }
        )
        return table, inf.crit

    def _pretrend(self, core: _Core) -> PretrendTest:
        """R did's pre-test: Wald test that every pre-treatment ATT(g,t) is zero, with the analytic covariance."""
        att, plan = core.att, core.att.plan
        pre = att.valid & (plan.group > plan.time) & ~plan.reference
        vcov = core.gram[np.ix_(pre, pre)] / core.panel.n_units**2
        terms = [f"ATT({g:g},{t:g})" for g, t in zip(plan.group[pre], plan.time[pre], strict=True)]
        return wald_pretrend(att.att[pre], vcov, terms)

    def _event_pretrend(self, core: _Core, agg: Aggregation) -> PretrendTest:
        comp = agg.components
        pre = comp.keys < 0
        lin = Linear(keys=comp.keys[pre], estimate=comp.estimate[pre], w=comp.w[:, pre], h=comp.h[:, pre])
        return wald_pretrend(lin.estimate, self._vcov(core, lin), [f"e={k:g}" for k in lin.keys])

    # ------------------------------------------------------------------ results
    def _settings(self) -> dict[str, Any]:
        params = self.get_params()
        params["bootstrap_weights"] = "rademacher" if self.bootstrap else None
        params["interval"] = INTERVALS[self.small_sample]
        return params

    def _method(self) -> str:
        comparison = "never-treated" if self.control_group == "nevertreated" else "not-yet-treated"
        inference = (
            f"multiplier bootstrap ({self.n_boot} Rademacher draws)"
            if self.bootstrap
            else "analytic influence-function SEs"
        )
        clustered = f", clustered by {self.cluster}" if self.cluster and self.cluster != self.unit else ""
        return (
            f"Callaway & Sant'Anna (2021) ATT(g,t), {METHOD_NAMES[self.est_method]}, {comparison} comparison, "
            f"{self.base_period} base period; {inference}{clustered}; {INTERVALS[self.small_sample]}"
        )

    def _assumptions(self) -> tuple[str, ...]:
        comparison = "never-treated units" if self.control_group == "nevertreated" else "not-yet-treated units"
        conditional = f" conditional on {', '.join(self.covariates)}" if self.covariates else ""
        return (
            f"Parallel trends{conditional}: without the programme, each cohort's mean outcome would have "
            f"changed as that of the {comparison} did.",
            f"No anticipation beyond {self.anticipation} period(s): outcomes do not react before the start "
            "(minus the anticipation window).",
            "Staggered, absorbing treatment: once a unit starts it stays treated; the cohort is its first "
            "treated period.",
            "Overlap: every cohort has comparison units with similar covariates (no propensity score near 1).",
            "No spillovers: one unit's start does not change another unit's outcome.",
        )

    def _diagnostics(self, core: _Core, dynamic: Aggregation) -> dict[str, Any]:
        panel, att = core.panel, core.att
        skipped = [
            f"ATT({g:g},{t:g}): {note}"
            for g, t, note in zip(att.plan.group, att.plan.time, att.note, strict=True)
            if note
        ]
        diag: dict[str, Any] = {
            "n_groups": len(panel.groups),
            "n_periods": panel.n_periods,
            "n_never_treated": int((~np.isfinite(panel.cohort)).sum()),
            "n_cells": len(att.att),
            "n_cells_not_estimated": len(skipped),
            "dropped_always_treated": panel.dropped_always_treated,
            "dropped_no_pre_period": panel.dropped_no_pre_period,
            "dropped_unbalanced": panel.dropped_unbalanced,
            "recoded_never_treated": panel.recoded_never_treated,
        }
        if skipped:
            diag["cells_not_estimated"] = skipped
        diag.update(self._pretrend(core).diagnostics("pretrend"))
        diag.update(self._event_pretrend(core, dynamic).diagnostics("event_pretrend"))
        if panel.cluster is not None:
            diag["n_clusters"] = int(panel.cluster.max() + 1)
        return diag

    def _effect(
        self,
        core: _Core,
        kind: AggregationKind,
        tables: dict[str, pd.DataFrame],
        overall: _Inference,
        path: pd.DataFrame | None,
        strata: pd.DataFrame | None,
        diagnostics: dict[str, Any],
    ) -> Effect:
        z = float(overall.point_crit(self.level)[0])
        est, se = float(overall.estimate[0]), float(overall.se[0])
        p = float(overall.p_value()[0]) if se > 0 else math.nan
        if self.small_sample != "none":
            diagnostics = {**diagnostics, "small_sample_df": float(overall.df[0]), "t_critical_value": z}
        estimand = {
            "simple": "ATT: average effect on treated units over their treated periods "
            "(ATT(g,t) for t >= g, weighted by cohort size)",
            "group": "ATT averaged first within each cohort over its treated periods, then across cohorts "
            "by cohort size",
            "calendar": "ATT averaged first within each calendar period over treated cohorts, then across periods",
            "dynamic": "ATT averaged over event times e >= 0 (time since the start), each event time "
            "weighted by cohort size",
        }[kind]
        return Effect(
            design=DESIGN,
            estimand=estimand,
            estimate=est,
            std_error=se,
            conf_low=est - z * se,
            conf_high=est + z * se,
            method=self._method(),
            level=float(self.level),
            p_value=p,
            settings={**self._settings(), "aggregation": kind},
            n_obs=core.panel.n_units * core.panel.n_periods,
            n_units=core.panel.n_units,
            strata=strata,
            path=path,
            diagnostics=diagnostics,
            assumptions=self._assumptions(),
            details=tables,
            term=f"ATT ({kind})",
        )

    @staticmethod
    def _path(table: pd.DataFrame, key: str) -> pd.DataFrame:
        # The component rows are every row after the leading "overall" one; slicing the columns'
        # arrays is several times faster than filtering, dropping and renaming the frame.
        return pd.DataFrame(
            {("time" if c == key else c): table[c].to_numpy()[1:] for c in table.columns if c != "term"}
        )

    def _build_effect(self, core: _Core, strata: pd.DataFrame | None) -> Effect:
        att_table, att_crit = self._att_gt_table(core)
        tables: dict[str, pd.DataFrame] = {"att_gt": att_table}
        overall: dict[str, _Inference] = {}
        aggs: dict[str, Aggregation] = {}
        for kind in AGGREGATIONS:
            aggs[kind] = aggregate(core.att, core.coding, kind)
            tables[kind], overall[kind] = self._aggregation_table(core, aggs[kind])
        path = self._path(tables["dynamic"], "event_time")
        diagnostics = self._diagnostics(core, aggs["dynamic"])
        if core.draws is not None:
            diagnostics["uniform_crit_att_gt"] = att_crit
        return self._effect(core, "simple", tables, overall["simple"], path, strata, diagnostics)

    # ------------------------------------------------------------------ aggregation
    def aggregate(
        self,
        kind: AggregationKind,
        min_e: float | None = None,
        max_e: float | None = None,
        balance_e: int | None = None,
    ) -> Effect:
        """One aggregation as its own :class:`Effect` (headline = its overall summary).

        ``min_e``/``max_e`` limit the event times (``max_e`` also limits the
        post periods of ``simple`` and ``group``); ``balance_e`` keeps only
        cohorts observed at least ``balance_e`` periods after their start (R
        ``did::aggte`` rules). Uses the fit's bootstrap draws when it bootstrapped.
        """
        check_option("kind", kind, AGGREGATIONS)
        core = getattr(self, "_core", None)
        if core is None:
            raise ParameterError(f"{DESIGN}: call fit(data) before aggregate().")
        if balance_e is not None and (not isinstance(balance_e, (int, np.integer)) or balance_e < 0):
            raise ParameterError(f"{DESIGN}: balance_e={balance_e!r} must be a whole number >= 0 or None.")
        if balance_e is not None and kind != "dynamic":
            raise ParameterError(f"{DESIGN}: balance_e applies to kind='dynamic' only (got kind={kind!r}).")
        agg = aggregate(
            core.att,
            core.coding,
            kind,
            min_e=-np.inf if min_e is None else float(min_e),
            max_e=np.inf if max_e is None else float(max_e),
            balance_e=balance_e,
        )
        if len(agg.components.keys) == 0:
            raise ParameterError(
                f"{DESIGN}: no ATT(g,t) fall inside min_e={min_e}, max_e={max_e}, balance_e={balance_e}; widen them."
            )
        table, overall = self._aggregation_table(core, agg)
        tables = {"att_gt": self.result_.details["att_gt"], kind: table}
        path = None
        if kind in ("dynamic", "calendar"):
            path = self._path(table, KEY_COLUMN[kind])
        diagnostics = dict(self.result_.diagnostics)
        if kind == "dynamic":
            diagnostics.update(self._event_pretrend(core, agg).diagnostics("event_pretrend"))
        effect = self._effect(core, kind, tables, overall, path, None, diagnostics)
        settings = {**effect.settings, "min_e": min_e, "max_e": max_e, "balance_e": balance_e}
        return replace(effect, settings=settings)


def did(data: pd.DataFrame, *, strata: Sequence[str] | None = None, **settings: Any) -> Effect:
    """Fit :class:`CallawaySantAnna` in one call and return its :class:`Effect`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3], "t": [1, 2] * 3, "g": [2, 2, 0, 0, 0, 0],
    ...                    "y": [0.0, 1.0, 0.0, 0.2, 0.1, 0.1]})
    >>> round(did(df, outcome="y", unit="id", time="t", cohort="g").estimate, 3)
    0.9
    """
    return CallawaySantAnna(**settings).fit(data, strata=strata).result_


def did_on_panel(
    panel: pd.DataFrame,
    outcome: str,
    per: float = 1000.0,
    *,
    denominator: str = "population",
    unit: str = "site_id",
    **settings: Any,
) -> Effect:
    """Callaway & Sant'Anna on the knowdo analysis panel, with an estimate per equity stratum.

    The outcome is ``outcome / denominator * per`` per site and month (e.g.
    treatment starts per 1,000 adults); time is a month index and the cohort
    the month of ``first_treated`` (0 when never treated). Rows with
    ``dimension == 'all'`` give the headline; every other
    ``(dimension, stratum)`` gives one row of ``Effect.strata``. Sites with a
    missing or zero denominator in some month are dropped from that estimate
    (``unbalanced='drop'`` unless set). The interval is the small-sample t
    interval (``small_sample='satterthwaite'`` unless set; ``'none'`` gives R
    ``did``'s normal interval). Other settings go to :class:`CallawaySantAnna`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> months = pd.date_range("2024-01-01", periods=4, freq="MS")
    >>> start = {"A": "2024-03-01", "B": None, "C": "2024-03-01", "D": None}
    >>> panel = pd.DataFrame([
    ...     {"site_id": s, "period": m, "dimension": "all", "stratum": "all", "population": 1000,
    ...      "started": 5 + (3 if start[s] and m >= pd.Timestamp(start[s]) else 0) + i % 2,
    ...      "first_treated": pd.Timestamp(start[s]) if start[s] else pd.NaT}
    ...     for s in start for i, m in enumerate(months)])
    >>> round(did_on_panel(panel, "started").estimate, 6)
    3.0
    """
    rates = rate_frame(panel, outcome, per, denominator, unit, DESIGN, settings)
    settings.setdefault("unbalanced", "drop")
    # Programme panels have few sites per rollout cohort; R did's normal interval under-covers there
    # (docs/studies/did-coverage.md), so the example-programme path uses the small-sample t interval.
    settings.setdefault("small_sample", "satterthwaite")
    effect = did(rates.data, outcome=RATE, unit=unit, time=MONTH, cohort=COHORT, **settings)
    settings_out, estimand = rates.describe(dict(effect.settings), effect.estimand)
    return replace(effect, estimand=estimand, settings=settings_out)
