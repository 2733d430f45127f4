"""Inequality over time, and the change in inequality attributable to the programme.

:func:`inequality_trends` follows each HEAT measure over periods and fits a
linear trend per indicator x dimension x measure (inverse-variance weighted
where SEs exist; ratios on the log scale).

:func:`equity_impact` asks whether rollout narrowed the gap: a
difference-in-differences of inequality,

    (M_treated,after - M_treated,before) - (M_comparison,after - M_comparison,before)

for M in D, R, SII, RII (ratios as a ratio of ratios). Treated sites split
at their own rollout month; never-treated comparison sites at the median
rollout month of the treated. Standard errors come from a cluster bootstrap
that resamples sites within each arm (all stratum counts of a site travel
together), which keeps within-clinic correlation; every bootstrap table is
measured in one batched HEAT call. Intervals are t intervals on that SE with
small-sample corrections (see ``_did_table``). The design's assumption, stated on the result, is that
inequality would have moved alike in both arms without the programme.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from scipy import stats

from knowdo.equity.common import DEFAULT_LEVEL, check_frame, check_level, check_positive_int, jsonable
from knowdo.equity.heat import HeatMeasures, HeatResult, check_measures
from knowdo.equity.heat_measures import MEASURES
from knowdo.equity.heat_table import STOCK_COLUMNS
from knowdo.equity.strata import Dimension, IndicatorSpec
from knowdo.errors import ParameterError

IMPACT_MEASURES = ("D", "R", "SII", "RII")
DEFAULT_BOOTSTRAP = 199  # B = 199 bootstrap replicates: ample for a standard error (Efron & Tibshirani 1993, ch. 6)
DEFAULT_BOOTSTRAP_SEED = 20240101
IMPACT_ASSUMPTIONS = (
    "Without the programme, inequality in treated and comparison sites would have changed alike (parallel trends "
    "in the measure).",
    "Sites are independent clusters; people move little between treated and comparison catchments.",
    "The rollout month is known for each treated site; comparison sites were never treated in the window.",
)


# --------------------------------------------------------------------------- trends
@dataclass(frozen=True)
class TrendResult:
    """Each measure per period, and a linear trend per indicator x dimension x measure (per period step)."""

    series: pd.DataFrame
    trends: pd.DataFrame
    level: float

    def tidy(self) -> pd.DataFrame:
        return self.trends.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = ["Inequality trends (change per period; ratios on the log scale):"]
        for rec in self.trends.itertuples(index=False):
            lines.append(f"  {rec.indicator_abbr} by {rec.dimension}, {rec.measure}: slope {rec.slope:.4g} "
                         f"[{rec.conf_low:.4g}, {rec.conf_high:.4g}] over {rec.periods} periods")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "series": jsonable(self.series), "trends": jsonable(self.trends)}

    def plot(self) -> alt.FacetChart:
        data = self.series.copy()
        data["line"] = data["indicator_abbr"] + " by " + data["dimension"]
        base = alt.Chart(data).encode(x=alt.X("date:O", title="period"), color=alt.Color("line:N", title=None))
        band = base.mark_area(opacity=0.2).encode(y=alt.Y("conf_low:Q", title="measure"), y2="conf_high:Q")
        line = base.mark_line(point=True).encode(y="estimate:Q", tooltip=["line", "date", "estimate", "conf_low",
                                                                          "conf_high"])
        return (band + line).facet(row=alt.Row("measure:N", title=None)).resolve_scale(y="independent")


def inequality_trends(result: HeatResult, *, measures: Iterable[str] = IMPACT_MEASURES) -> TrendResult:
    """Follow measures over the ``date`` of a :class:`HeatResult` and fit a linear trend to each series.

    Periods are taken in sorted order and numbered 0, 1, 2 ...; the slope is
    the change per period (per year when the table is yearly).
    """
    codes = check_measures(measures)
    level = float(result.settings.get("level", DEFAULT_LEVEL))
    series = result.tidy()
    series = series[series["measure"].isin(codes)].sort_values(["indicator_abbr", "dimension", "measure", "date"])
    z = float(stats.norm.ppf(0.5 + level / 2))
    rows = []
    for (indicator, dimension, code), part in series.groupby(["indicator_abbr", "dimension", "measure"], sort=False):
        periods = sorted(part["date"].unique())
        t = part["date"].map({p: i for i, p in enumerate(periods)}).to_numpy(dtype=float)
        log = MEASURES[str(code)].log_scale
        y = np.log(part["estimate"].to_numpy(dtype=float)) if log else part["estimate"].to_numpy(dtype=float)
        se = part["std_error"].to_numpy(dtype=float)
        slope, slope_se = _weighted_slope(t, y, se)
        rows.append({"indicator_abbr": indicator, "dimension": dimension, "measure": code, "periods": len(t),
                     "scale": "log" if log else "measure", "slope": slope, "std_error": slope_se,
                     "conf_low": slope - z * slope_se, "conf_high": slope + z * slope_se,
                     "first": part["estimate"].iloc[0], "last": part["estimate"].iloc[-1]})
    columns = ["indicator_abbr", "dimension", "measure", "periods", "scale", "slope", "std_error", "conf_low",
               "conf_high", "first", "last"]
    keep = ["indicator_abbr", "dimension", "measure", "date", "estimate", "conf_low", "conf_high", "ci_method"]
    return TrendResult(series[keep].reset_index(drop=True), pd.DataFrame(rows, columns=columns), level)


def _weighted_slope(t: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(t) & np.isfinite(y)
    t, y, se = t[ok], y[ok], se[ok]
    if len(t) < 3 or np.ptp(t) == 0:
        return float("nan"), float("nan")
    use_w = np.all(np.isfinite(se) & (se > 0))
    w = 1.0 / se**2 if use_w else np.ones_like(t)
    tbar = (w * t).sum() / w.sum()
    ybar = (w * y).sum() / w.sum()
    sxx = (w * (t - tbar) ** 2).sum()
    slope = (w * (t - tbar) * (y - ybar)).sum() / sxx
    resid = y - ybar - slope * (t - tbar)
    # Residual-based variance (allows for extra-sampling variation between periods); n - 2 degrees of freedom.
    s2 = (w * resid**2).sum() / (len(t) - 2)
    return float(slope), float(np.sqrt(s2 / sxx))


# --------------------------------------------------------------------------- equity impact
@dataclass(frozen=True)
class ImpactResult:
    """Change in inequality in treated vs comparison sites, before vs after rollout, with bootstrap intervals.

    ``table`` has one row per measure with the four cell values
    (``treated_before`` ... ``comparison_after``), ``did`` (difference in
    differences; a ratio of ratios for R and RII), its bootstrap ``std_error``
    and t interval, and ``verdict``: ``narrowed``, ``widened`` or
    ``unclear`` (the interval includes no change).
    """

    indicator: IndicatorSpec
    dimension: Dimension
    table: pd.DataFrame
    level: float
    n_treated: int
    n_comparison: int
    assumptions: tuple[str, ...] = IMPACT_ASSUMPTIONS
    settings: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        return self.table.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = [f"Equity impact on {self.indicator.title} by {self.dimension.name} ({self.n_treated} treated, "
                 f"{self.n_comparison} comparison sites; {self.level:.0%} intervals, cluster-bootstrap SE):"]
        for rec in self.table.itertuples(index=False):
            lines.append(f"  {rec.measure}: treated {rec.treated_before:.4g} -> {rec.treated_after:.4g}, comparison "
                         f"{rec.comparison_before:.4g} -> {rec.comparison_after:.4g}; difference in differences "
                         f"{rec.did:.4g} [{rec.conf_low:.4g}, {rec.conf_high:.4g}]: {rec.verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"indicator": self.indicator.name, "dimension": self.dimension.name, "level": self.level,
                "n_treated": self.n_treated, "n_comparison": self.n_comparison, "table": jsonable(self.table),
                "assumptions": list(self.assumptions), "settings": jsonable(self.settings)}

    def plot(self) -> alt.Chart:
        rows = []
        for rec in self.table.to_dict(orient="records"):
            for arm in ("treated", "comparison"):
                for phase in ("before", "after"):
                    rows.append({"measure": rec["measure"], "arm": arm, "phase": phase, "value": rec[f"{arm}_{phase}"]})
        data = pd.DataFrame(rows)
        return (alt.Chart(data).mark_line(point=True)
                .encode(x=alt.X("phase:N", sort=["before", "after"], title=None), y=alt.Y("value:Q", title=None),
                        color=alt.Color("arm:N", title=None))
                .facet(column=alt.Column("measure:N", title=None)).resolve_scale(y="independent"))


def _arm_phase(panel: pd.DataFrame) -> pd.DataFrame:
    """Label each site-month treated/comparison and before/after."""
    first = pd.to_datetime(panel.groupby("site_id")["first_treated"].first())
    treated_sites = first.dropna()
    if treated_sites.empty:
        raise ParameterError("equity_impact: no site was ever treated (first_treated is empty everywhere).")
    cut = treated_sites.sort_values().iloc[len(treated_sites) // 2]
    frame = panel.copy()
    start = frame["site_id"].map(first)
    frame["arm"] = np.where(start.notna(), "treated", "comparison")
    period = pd.to_datetime(frame["period"])
    split = start.fillna(cut)
    frame["phase"] = np.where(period >= split, "after", "before")
    return frame


def equity_impact(
    panel: pd.DataFrame,
    indicator: IndicatorSpec,
    dimension: Dimension,
    *,
    measures: Iterable[str] = IMPACT_MEASURES,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    level: float = DEFAULT_LEVEL,
    sii_model: str = "logistic",
) -> ImpactResult:
    """Difference in differences of inequality measures around rollout, with a cluster bootstrap interval.

    ``panel`` is the knowdo analysis panel (site x month x stratum, with
    ``first_treated``). The indicator is pooled over sites and months within
    each arm x phase. See :func:`equity_impacts` for many pairs at once.
    """
    return equity_impacts(panel, [indicator], [dimension], measures=measures, bootstrap=bootstrap, seed=seed,
                          level=level, sii_model=sii_model)[0]


def equity_impacts(
    panel: pd.DataFrame,
    indicators: Sequence[IndicatorSpec],
    dimensions: Sequence[Dimension],
    *,
    measures: Iterable[str] = IMPACT_MEASURES,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    level: float = DEFAULT_LEVEL,
    sii_model: str = "logistic",
) -> tuple[ImpactResult, ...]:
    """:func:`equity_impact` for every indicator x dimension, sharing one bootstrap and one batched HEAT call.

    The same resampled sites are used for every pair, so their intervals are
    comparable. Pairs whose dimension has no panel rows are left out.
    """
    codes = tuple(c for c in check_measures(measures) if c in IMPACT_MEASURES)
    if not codes:
        raise ParameterError(f"equity_impact: measures must include some of {', '.join(IMPACT_MEASURES)}.")
    level = check_level(level)
    bootstrap = check_positive_int("bootstrap", bootstrap, minimum=19)
    columns = list(dict.fromkeys(c for s in indicators for c in (s.numerator, s.denominator)))
    check_frame(panel, ("site_id", "period", "dimension", "stratum", "first_treated", *columns), "panel")
    wanted = [d for d in dimensions if ((panel["dimension"] == d.name) & panel["stratum"].isin(d.levels)).any()]
    if not wanted:
        raise ParameterError(
            f"equity_impact: the panel has no rows for dimension(s) {', '.join(d.name for d in dimensions)}."
        )
    frame = _arm_phase(panel[panel["dimension"].isin([d.name for d in wanted])])
    counts = _site_counts(frame, columns)
    arms = {arm: sorted(counts.loc[counts["arm"] == arm, "site_id"].unique()) for arm in ("treated", "comparison")}
    if not arms["comparison"]:
        raise ParameterError("equity_impact: every site was treated; there is no comparison arm.")
    rng = np.random.default_rng(seed)
    weights = {arm: _bootstrap_weights(len(sites), bootstrap, rng) for arm, sites in arms.items()}
    grids = _count_grids(counts, arms, wanted, columns)
    cells = pd.concat([_replicate_table(grids, weights, columns, spec, dim) for spec in indicators for dim in wanted],
                      ignore_index=True)
    heat = HeatMeasures(measures=codes, level=level, sii_model=sii_model, draws=2).fit(cells).result_  # type: ignore[arg-type]
    values = _value_grid(heat.tidy(applicable_only=False), codes, bootstrap)
    out = []
    for spec in indicators:
        for dim in wanted:
            grid = values.get((spec.name, dim.name))
            if grid is None:
                continue
            table = _did_table(grid, codes, level, (len(arms["treated"]), len(arms["comparison"])))
            table["min_count"] = _smallest_count(counts[counts["dimension"] == dim.name], spec)
            out.append(ImpactResult(spec, dim, table, level, len(arms["treated"]), len(arms["comparison"]),
                                    settings={"bootstrap": bootstrap, "seed": seed, "sii_model": sii_model}))
    return tuple(out)


CELLS = (("treated", "before"), ("treated", "after"), ("comparison", "before"), ("comparison", "after"))


def _value_grid(tidy: pd.DataFrame, codes: Sequence[str], bootstrap: int) -> dict[tuple[str, str], np.ndarray]:
    """Measure values as arrays [measure, cell, replicate] per (indicator, dimension)."""
    parts = tidy["date"].str.split("|", expand=True)
    cell_of = {f"{a}|{p}": i for i, (a, p) in enumerate(CELLS)}
    cell = (parts[0] + "|" + parts[1]).map(cell_of).to_numpy(dtype=int)
    rep = parts[2].astype(int).to_numpy()
    code = tidy["measure"].map({c: i for i, c in enumerate(codes)}).to_numpy(dtype=int)
    pair = tidy["indicator_abbr"] + "\x1f" + tidy["dimension"]
    pair_id, pairs = pd.factorize(pair)
    grid = np.full((len(pairs), len(codes), len(CELLS), bootstrap + 1), np.nan)
    grid[pair_id, code, cell, rep] = tidy["estimate"].to_numpy(dtype=float)
    out: dict[tuple[str, str], np.ndarray] = {}
    for i, p in enumerate(pairs):
        indicator, dimension = str(p).split("\x1f")
        out[(indicator, dimension)] = grid[i]
    return out


def _site_counts(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    agg = {c: ("mean" if c in STOCK_COLUMNS else "sum") for c in columns}
    data = frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce").astype(float) for c in agg})
    return data.groupby(["arm", "phase", "site_id", "dimension", "stratum"], sort=True).agg(agg).reset_index()


def _bootstrap_weights(sites: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Row 0 is the sample itself (all ones); rows 1..draws are multinomial resampling counts of sites."""
    resampled = rng.multinomial(sites, np.full(sites, 1.0 / sites), size=draws) if sites else np.zeros((draws, 0))
    return np.vstack([np.ones((1, sites)), resampled])


def _count_grids(
    counts: pd.DataFrame, arms: dict[str, list[str]], dimensions: Sequence[Dimension], columns: Sequence[str]
) -> dict[tuple[str, str, str], np.ndarray]:
    """Per dimension x arm x phase: an array sites x levels x columns of pooled counts (zeros where absent)."""
    out = {}
    for dim in dimensions:
        for arm, phase in CELLS:
            sub = counts[(counts["arm"] == arm) & (counts["phase"] == phase) & (counts["dimension"] == dim.name)]
            wide = pd.DataFrame(sub.set_index(["site_id", "stratum"])[list(columns)].unstack("stratum"))
            full = pd.MultiIndex.from_product([list(columns), list(dim.levels)])
            wide = wide.reindex(index=arms[arm], columns=full).fillna(0.0)
            out[(dim.name, arm, phase)] = wide.to_numpy(dtype=float).reshape(len(arms[arm]), len(columns),
                                                                            len(dim.levels)).transpose(0, 2, 1)
    return out


def _replicate_table(
    grids: dict[tuple[str, str, str], np.ndarray],
    weights: dict[str, np.ndarray],
    columns: Sequence[str],
    spec: IndicatorSpec,
    dimension: Dimension,
) -> pd.DataFrame:
    """A HEAT table with one set per replicate x arm x phase: subgroup estimates from re-weighted site sums."""
    levels = list(dimension.levels)
    i_num, i_den = list(columns).index(spec.numerator), list(columns).index(spec.denominator)
    dates: list[np.ndarray] = []
    est: list[np.ndarray] = []
    pop: list[np.ndarray] = []
    for arm, phase in CELLS:
        grid = grids[(dimension.name, arm, phase)]
        w = weights[arm]
        n_sum, d_sum = w @ grid[:, :, i_num], w @ grid[:, :, i_den]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(d_sum > 0, n_sum / d_sum, np.nan)
        est.append(((1.0 - share) if spec.complement else share).ravel() * spec.scale)
        pop.append(d_sum.ravel())
        reps = np.repeat(np.arange(w.shape[0]), len(levels))
        dates.append(np.char.add(f"{arm}|{phase}|", reps.astype(str)))
    k = sum(len(d) for d in dates) // len(levels)
    return pd.DataFrame({
        "date": np.concatenate(dates),
        "subgroup": np.tile(np.array(levels, dtype=object), k),
        "estimate": np.concatenate(est),
        "population": np.concatenate(pop),
        "subgroup_order": np.tile([float(dimension.order_of(x)) for x in levels], k),
        "reference_subgroup": np.tile([int(x == dimension.reference) for x in levels], k),
        "indicator_abbr": spec.name,
        "dimension": dimension.name,
        "favourable_indicator": int(spec.favourable),
        "ordered_dimension": int(dimension.ordered),
        "indicator_scale": spec.scale,
        "se": np.nan,
    })


def _smallest_count(counts: pd.DataFrame, spec: IndicatorSpec) -> float:
    """Smallest non-zero pooled count (arm x phase x subgroup) behind the table, for disclosure checks."""
    columns = [c for c in (spec.numerator, spec.denominator) if c not in STOCK_COLUMNS]
    pooled = counts.groupby(["arm", "phase", "stratum"])[columns].sum().to_numpy(dtype=float).ravel()
    positive = pooled[pooled > 0]
    return float(positive.min()) if positive.size else float("nan")


def _did_table(grid: np.ndarray, codes: Sequence[str], level: float, clusters: tuple[int, int]) -> pd.DataFrame:
    """Difference in differences per measure from values [measure, cell, replicate] (replicate 0 = the sample).

    The interval is ``estimate +/- t * SE`` with the bootstrap SE widened by
    sqrt(G / (G - 1)) for the smaller arm's G clusters (the bootstrap variance
    of a mean over G clusters is (G - 1)/G of the unbiased one) and t on
    G_treated + G_comparison - 2 degrees of freedom. With a handful of clinics
    per arm the plain percentile interval undercovers (see
    docs/studies/equity-impact-coverage.md).
    """
    smaller = min(clusters)
    inflate = np.sqrt(smaller / (smaller - 1.0)) if smaller > 1 else 1.0
    df = max(sum(clusters) - 2, 1)
    t_crit = float(stats.t.ppf(0.5 + level / 2.0, df))
    rows = []
    for m, code in enumerate(codes):
        log = MEASURES[code].log_scale
        tb, ta, cb, ca = grid[m]
        with np.errstate(divide="ignore", invalid="ignore"):
            did = (np.log(ta) - np.log(tb)) - (np.log(ca) - np.log(cb)) if log else (ta - tb) - (ca - cb)
        point, draws = did[0], did[1:]
        draws = draws[np.isfinite(draws)]
        if draws.size >= 10 and np.isfinite(point):
            se = float(np.std(draws, ddof=1)) * inflate
            low, high = point - t_crit * se, point + t_crit * se
        else:
            low = high = se = np.nan
        if not np.isfinite(point) and not np.isfinite(tb[0]):
            continue
        if log:
            point, low, high = np.exp(point), np.exp(low), np.exp(high)
        neutral = 1.0 if log else 0.0
        gap_sign = _gap_sign(tb[0], log)
        verdict = "unclear"
        if np.isfinite(low) and np.isfinite(high) and gap_sign == 0:
            # No gap before rollout: any change opened one.
            verdict = "widened" if (high < neutral or low > neutral) else "unclear"
        elif np.isfinite(low) and np.isfinite(high):
            if high < neutral:
                verdict = "narrowed" if gap_sign > 0 else "widened"
            elif low > neutral:
                verdict = "widened" if gap_sign > 0 else "narrowed"
        rows.append({"measure": code, "treated_before": tb[0], "treated_after": ta[0], "comparison_before": cb[0],
                     "comparison_after": ca[0], "did": point, "std_error": se, "conf_low": low, "conf_high": high,
                     "scale": "ratio of ratios" if log else "difference", "verdict": verdict,
                     "replicates": int(draws.size)})
    columns = ["measure", "treated_before", "treated_after", "comparison_before", "comparison_after", "did",
               "std_error", "conf_low", "conf_high", "scale", "verdict", "replicates"]
    return pd.DataFrame(rows, columns=columns)


def _gap_sign(before: float, log: bool) -> int:
    """+1 when the treated arm's gap before rollout was positive on the measure's scale, -1 if negative, 0 if none.

    A gap narrows when the measure moves towards equality (0, or 1 for ratios)
    from the side it started on.
    """
    neutral = 1.0 if log else 0.0
    if not np.isfinite(before) or before == neutral:
        return 0
    return 1 if before > neutral else -1
