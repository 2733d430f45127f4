"""The Equity section of the report: every equity result for a project, disclosure-controlled.

:func:`equity_report` gathers, for the project's outcomes and equity
dimensions: subgroup estimates (the equiplot), the HEAT summary measures with
intervals, their trends, the change in inequality after rollout, the effect
of each design by stratum, and intersectional estimates (MAIHDA) when
person-level episodes are supplied by the caller.

Disclosure control is applied before anything is kept on the result:

* subgroup counts go through :func:`~knowdo.equity.disclosure.protect_table`
  (periods x subgroups with all margins; numerators, and denominators that
  are counts of people), and an estimate is published only when its counts are;
* a summary measure is withheld when any subgroup it would summarise was
  hidden (it could otherwise be solved back to the hidden estimate);
* an equity-impact row is withheld when any pooled count behind it is small;
* per-stratum design effects with a small ``n`` are blanked (primary suppression);
* MAIHDA never carries raw means or counts of small intersections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from knowdo.config import Project
from knowdo.equity.common import check_frame, check_option, jsonable
from knowdo.equity.disclosure import ProtectedTable, protect_table, suppress_table
from knowdo.equity.heat import HeatResult, equiplot, heat_measures
from knowdo.equity.heat_ci import DEFAULT_DRAWS, DEFAULT_SEED
from knowdo.equity.heat_table import SET_KEYS, STOCK_COLUMNS, Period, heat_table_from_panel
from knowdo.equity.heterogeneity import EffectLike, HeterogeneityResult, heterogeneity
from knowdo.equity.maihda import MaihdaResult, maihda
from knowdo.equity.sentences import gap_sentence, heterogeneity_sentence, impact_sentence, maihda_sentence
from knowdo.equity.strata import DEFAULT_INDICATOR_NAMES, IndicatorSpec, indicator_specs, project_dimensions
from knowdo.equity.trends import DEFAULT_BOOTSTRAP, ImpactResult, TrendResult, equity_impacts, inequality_trends
from knowdo.errors import KnowdoError, ParameterError

WITHHELD = "withheld: a subgroup it summarises was suppressed"


@dataclass(frozen=True)
class EquityReport:
    """Everything the Equity section shows, already disclosure-controlled."""

    project: str
    threshold: int
    subgroups: pd.DataFrame
    heat: HeatResult
    disclosure: tuple[ProtectedTable, ...]
    trends: TrendResult
    impacts: tuple[ImpactResult, ...] = ()
    heterogeneity: tuple[HeterogeneityResult, ...] = ()
    intersections: MaihdaResult | None = None
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        return self.heat.tidy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = [f"Equity: {self.project} (cells under {self.threshold} suppressed)"]
        lines += [f"  - {s}" for s in self.sentences()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def sentences(self) -> list[str]:
        """Plain-language findings: gaps in the latest period, changes after rollout, effects by stratum."""
        out: list[str] = []
        subgroups = self.subgroups
        if len(subgroups):
            # One sentence per indicator: the dimension with the widest published gap in the latest period.
            latest = subgroups[subgroups["date"] == subgroups["date"].max()]
            for _indicator, rows in latest.groupby("indicator_abbr", sort=False):
                spread = rows.groupby("dimension", sort=False)["estimate"].agg(lambda e: e.max() - e.min())
                for dimension in spread.sort_values(ascending=False).index:
                    sentence = gap_sentence(rows[rows["dimension"] == dimension])
                    if sentence:
                        out.append(sentence)
                        break
        unclear = 0
        for impact in self.impacts:
            for code in ("D", "SII"):
                rows = impact.table[impact.table["measure"] == code]
                if rows.empty:
                    continue
                if rows["verdict"].iloc[0] in ("narrowed", "widened"):
                    sentence = impact_sentence(impact, code)
                    if sentence:
                        out.append(sentence)
                elif rows["verdict"].iloc[0] == "unclear":
                    unclear += 1
        if unclear:
            out.append(f"For {unclear} other gap(s) the change after rollout could not be told apart from no change "
                       "(intervals include zero); see the equity impact table.")
        for het in self.heterogeneity:
            out += heterogeneity_sentence(het)
        if self.intersections is not None:
            out.append(maihda_sentence(self.intersections))
        return out

    def charts(self) -> list[alt.TopLevelMixin]:
        """Altair charts in reading order: equiplot, measures, trends, impact, effects by stratum, intersections."""
        charts: list[alt.TopLevelMixin] = []
        if len(self.subgroups):
            charts.append(equiplot(self.subgroups, title="Subgroup estimates (equiplot)"))
        if len(self.heat.tidy()):
            charts.append(self.heat.plot_measures())
        if len(self.trends.series):
            charts.append(self.trends.plot())
        charts += [impact.plot() for impact in self.impacts]
        charts += [het.plot() for het in self.heterogeneity]
        if self.intersections is not None:
            charts.append(self.intersections.plot())
        return charts

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "threshold": self.threshold,
            "subgroups": jsonable(self.subgroups),
            "measures": jsonable(self.heat.tidy()),
            "withheld_measures": int((self.heat.measures["note"] == WITHHELD).sum()),
            "trends": self.trends.to_dict(),
            "impacts": [i.to_dict() for i in self.impacts],
            "heterogeneity": [h.to_dict() for h in self.heterogeneity],
            "intersections": self.intersections.to_dict() if self.intersections is not None else None,
            "disclosure": [
                {"table": t.value, "hidden": t.hidden, "audit_ok": t.audit.ok} for t in self.disclosure
            ],
            "sentences": self.sentences(),
            "notes": list(self.notes),
            "settings": jsonable(self.settings),
        }


def protect_subgroups(
    table: pd.DataFrame, specs: Sequence[IndicatorSpec], threshold: int, rounding: int | None
) -> tuple[pd.DataFrame, tuple[ProtectedTable, ...]]:
    """Hide subgroup rows whose numerator or (count) denominator cannot be published, with complementary cells."""
    by_name = {s.name: s for s in specs}
    hidden = np.zeros(len(table), dtype=bool)
    protected: list[ProtectedTable] = []
    out = table.copy()
    for (indicator, dimension), part in table.groupby(["indicator_abbr", "dimension"], sort=False):
        spec = by_name[str(indicator)]
        columns = [("numerator", spec.numerator)]
        if spec.denominator not in STOCK_COLUMNS:
            columns.append(("denominator", spec.denominator))
        part_hidden = np.zeros(len(part), dtype=bool)
        for column, _source in columns:
            cells = part[["date", "subgroup", column]].copy()
            cells[column] = cells[column].fillna(0.0).round()
            result = protect_table(cells, rows="date", columns="subgroup", value=column, threshold=threshold,
                                   rounding=rounding)
            protected.append(dataclasses.replace(result, value=f"{indicator}/{dimension}/{column}"))
            status = result.table.set_index(["date", "subgroup"])["status"]
            keys = list(zip(part["date"].astype(str), part["subgroup"].astype(str), strict=True))
            part_hidden |= np.array([status.get(k, "released") != "released" for k in keys])
            if rounding:
                released = result.table.set_index(["date", "subgroup"])[column]
                out.loc[part.index, column] = [released.get(k, np.nan) for k in keys]
        hidden[table.index.get_indexer(part.index)] = part_hidden
    for column in ("estimate", "se", "numerator", "denominator", "population"):
        out.loc[hidden, column] = np.nan
    out["suppressed"] = hidden
    return out, tuple(protected)


def withhold_measures(result: HeatResult, published: pd.DataFrame) -> HeatResult:
    """Blank every measure whose set has a suppressed subgroup, and attach the published subgroup table."""
    hidden_sets = published.loc[published["suppressed"], list(SET_KEYS)].drop_duplicates()
    measures = result.measures.copy()
    if len(hidden_sets):
        flag = measures[list(SET_KEYS)].merge(hidden_sets.assign(_h=True), on=list(SET_KEYS), how="left")["_h"]
        mask = flag.fillna(False).to_numpy(dtype=bool)
        for column in ("estimate", "std_error", "conf_low", "conf_high"):
            measures.loc[mask, column] = np.nan
        measures.loc[mask, "applicable"] = False
        measures.loc[mask, "note"] = WITHHELD
    return dataclasses.replace(result, measures=measures, subgroups=published.drop(columns=["suppressed"]))


def equity_report(
    panel: pd.DataFrame,
    project: Project,
    *,
    outcomes: Iterable[str | IndicatorSpec] = DEFAULT_INDICATOR_NAMES,
    effects: Iterable[EffectLike] | None = None,
    dimensions: Sequence[str] | None = None,
    period: Period = "year",
    episodes: pd.DataFrame | None = None,
    intersections: Sequence[str] | None = None,
    intersection_outcome: str = "started",
    impact: bool = True,
    draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    bootstrap: int = DEFAULT_BOOTSTRAP,
) -> EquityReport:
    """Build the Equity section for a project from its analysis panel.

    Parameters
    ----------
    panel
        The knowdo analysis panel (site x month x stratum).
    project
        The project: equity dimensions and the disclosure threshold/rounding.
    outcomes
        Indicator names from :data:`~knowdo.equity.strata.DEFAULT_INDICATORS` or
        :class:`IndicatorSpec` objects (any numerator/denominator of the panel).
    effects
        Design results (``Effect``) whose per-stratum estimates are compared.
    dimensions
        Equity dimensions to use (default: all declared in ``knowdo.toml``).
    period
        Pooling of months for the subgroup table: ``month``, ``quarter``, ``year`` or ``all``.
    episodes, intersections, intersection_outcome
        Person-level episodes (kept inside the store's caller) and the dimensions
        to cross for MAIHDA; skipped when not given.
    impact
        Estimate the change in inequality after rollout.
    """
    check_frame(panel, ("site_id", "period", "dimension", "stratum"), "panel")
    check_option("period", period, ("month", "quarter", "year", "all"))
    specs = indicator_specs(outcomes)
    dims = project_dimensions(project, dimensions)
    notes: list[str] = []
    usable = [s for s in specs if s.numerator in panel.columns and s.denominator in panel.columns]
    for s in specs:
        if s not in usable:
            notes.append(f"outcome {s.name!r} skipped: the panel lacks {s.numerator!r} or {s.denominator!r}.")
    if not usable:
        raise ParameterError("equity_report: none of the outcomes can be built from the panel's columns.")
    threshold, rounding = project.disclosure_threshold, project.disclosure_rounding
    table = heat_table_from_panel(panel, dims, usable, period=period, setting=project.name)
    published, protected = protect_subgroups(table, usable, threshold, rounding)
    full = heat_measures(table.drop(columns=["numerator", "denominator"]), draws=draws, seed=seed)
    heat = withhold_measures(full, published)
    trends = inequality_trends(heat)
    impacts: list[ImpactResult] = []
    if impact and "first_treated" in panel.columns and panel["first_treated"].notna().any():
        try:
            found = equity_impacts(panel, usable, dims, bootstrap=bootstrap, seed=seed)
        except ParameterError as exc:
            notes.append(f"equity impact not estimated: {exc}")
            found = ()
        impacts = [_guard_impact(result, threshold) for result in found]
    hets: list[HeterogeneityResult] = []
    for effect in effects or ():
        if getattr(effect, "strata", None) is None:
            continue
        het = heterogeneity(effect)
        strata = het.strata
        tests = het.tests
        if strata["n"].notna().any():
            checked = suppress_table(strata.assign(n=strata["n"].astype(float)), count_columns=["n"],
                                     threshold=threshold,
                                     dependent_columns=["estimate", "std_error", "conf_low", "conf_high", "p_value",
                                                        "p_holm", "p_bh"])
            # A heterogeneity test over a dimension with a hidden stratum is withheld too (it uses that stratum).
            hidden_dims = set(checked.loc[checked["suppressed"], "dimension"])
            tests = tests.copy()
            withheld = ["q", "p_value", "i_squared", "pooled", "pooled_se"]
            tests.loc[tests["dimension"].isin(hidden_dims), withheld] = np.nan
            strata = checked.drop(columns=["suppressed"])
        hets.append(dataclasses.replace(het, strata=strata, tests=tests))
    mai = None
    if episodes is not None and intersections:
        try:
            data = episodes.assign(**{intersection_outcome: pd.to_numeric(episodes[intersection_outcome],
                                                                          errors="coerce").astype(float)})
            mai = maihda(data, outcome=intersection_outcome, dimensions=list(intersections), threshold=threshold)
        except (KnowdoError, KeyError) as exc:
            notes.append(f"intersectional estimates not computed: {exc}")
    hidden = int(published["suppressed"].sum())
    if hidden:
        notes.append(f"{hidden} subgroup estimate(s) suppressed (counts under {threshold} or needed to protect them); "
                     "summary measures that would summarise them are withheld.")
    return EquityReport(
        project=project.name, threshold=threshold, subgroups=heat.subgroups, heat=heat, disclosure=protected,
        trends=trends, impacts=tuple(impacts), heterogeneity=tuple(hets), intersections=mai, notes=tuple(notes),
        settings={"period": period, "draws": draws, "seed": seed, "bootstrap": bootstrap,
                  "outcomes": [s.name for s in usable], "dimensions": [d.name for d in dims]},
    )


def _guard_impact(result: ImpactResult, threshold: int) -> ImpactResult:
    """Withhold the impact rows when any pooled arm x phase x subgroup count behind them is small."""
    if result.table.empty or "min_count" not in result.table.columns:
        return result
    small = (result.table["min_count"] > 0) & (result.table["min_count"] < threshold)
    if not small.any():
        return result
    table = result.table.copy()
    numeric = ["treated_before", "treated_after", "comparison_before", "comparison_after", "did", "std_error",
               "conf_low", "conf_high"]
    table.loc[small, numeric] = np.nan
    table.loc[small, "verdict"] = "withheld"
    return dataclasses.replace(result, table=table)
