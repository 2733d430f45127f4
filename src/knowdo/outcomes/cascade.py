"""Care cascade and effective coverage.

Stages (frameworks.md section 5): people in **need** (estimated: population ×
prevalence) → **detected** (screened positive) → **started** treatment →
**adequate** (minimally adequate treatment: at least the configured number of
sessions) → **effective** (adequate treatment and a response).

For each stage the result gives the count, the *conditional* proportion (this
stage ÷ the stage before) and the *cumulative* proportion (this stage ÷
need). The cumulative proportion is the product of the conditionals up to
that stage (Thornicroft et al. 2017: 0.567 × 0.711 × 0.410 ≈ 16.5%); the last
one is effective coverage. Screening coverage (screened ÷ adults in the
catchment) is reported alongside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import altair as alt
import numpy as np
import pandas as pd

from knowdo.config import Project
from knowdo.errors import ParameterError
from knowdo.outcomes.charts import Chart, bars_with_intervals, chart_data
from knowdo.outcomes.groups import (
    ALL,
    GROUPINGS,
    KEYS,
    Grouping,
    aggregate_panel,
    check_groupings,
    check_panel,
    sort_tidy,
    strata_of,
)
from knowdo.outcomes.intervals import DEFAULT_LEVEL, grouped_cluster_ratio, wilson_unchecked, z_value
from knowdo.outcomes.results import OutcomeResult, Unit, concat_tidy, level_text, make_tidy, num, pct, pct_ci

STAGES = ("need", "detected", "started", "adequate", "effective")
# Panel column holding each stage's count.
STAGE_COLUMNS = {
    "need": "need",
    "detected": "positive",
    "started": "started",
    "adequate": "adequate",
    "effective": "effective",
}
CiMethod = Literal["wilson", "cluster"]
_CI_METHODS: tuple[CiMethod, ...] = ("wilson", "cluster")

NEED_NOTE = (
    "Need is an estimate (adults in the catchment × estimated prevalence). Intervals for shares of need "
    "treat it as known, so they leave out the uncertainty of the prevalence estimate."
)
POOLING_NOTE = (
    "Counts are summed over the months pooled; need and population are averaged over those months for "
    "each site, then summed over sites. Counts follow each person's positive screen to its month."
)


def stage_label(stage: str, adequate_sessions: int | None = None) -> str:
    """Plain-language name of a cascade stage."""
    sessions = f"≥{adequate_sessions} sessions" if adequate_sessions else "minimally adequate"
    return {
        "need": "In need (estimated)",
        "detected": "Detected (screened positive)",
        "started": "Started treatment",
        "adequate": f"Adequate treatment ({sessions})",
        "effective": "Effective (adequate and responded)",
    }[stage]


@dataclass(frozen=True, kw_only=True, eq=False)
class Cascade(OutcomeResult):
    """Care cascade and effective coverage, by group and equity stratum.

    Tidy rows (``domain='cascade'``): ``outcome`` is a stage (``need``,
    ``detected``, ``started``, ``adequate``, ``effective``) with ``measure``
    ``count``, ``conditional`` (÷ previous stage) or ``cumulative`` (÷ need),
    plus ``outcome='screening_coverage'``, ``measure='proportion'``.
    """

    kind: ClassVar[str] = "cascade"

    stages: tuple[str, ...] = STAGES
    adequate_sessions: int | None = None
    ci: str = "wilson"

    def settings(self) -> dict[str, Any]:
        return {"stages": list(self.stages), "adequate_sessions": self.adequate_sessions, "ci": self.ci}

    def stage_table(
        self,
        *,
        group_type: str = "overall",
        group: str = ALL,
        stratum_dimension: str = ALL,
        stratum: str = ALL,
    ) -> pd.DataFrame:
        """One row per stage for one group and stratum: count, conditional and cumulative with bounds."""
        rows = self.select(
            domain="cascade",
            group_type=group_type,
            group=group,
            stratum_dimension=stratum_dimension,
            stratum=stratum,
        )
        out = []
        for stage in self.stages:
            r = {str(x["measure"]): x for x in rows.loc[rows["outcome"] == stage].to_dict(orient="records")}
            rec: dict[str, Any] = {"stage": stage, "label": stage_label(stage, self.adequate_sessions)}
            rec["count"] = float(r["count"]["estimate"]) if "count" in r else np.nan
            for m in ("conditional", "cumulative"):
                for col, name in (("estimate", m), ("conf_low", f"{m}_low"), ("conf_high", f"{m}_high")):
                    rec[name] = float(r[m][col]) if m in r else np.nan
            out.append(rec)
        return pd.DataFrame(out)

    def summary(self) -> str:
        """Plain-text cascade for all sites and the whole period, with effective coverage by stratum."""
        lines = [f"Care cascade and effective coverage: all sites, whole period ({level_text(self.level)} intervals)"]
        st = self.stage_table()
        lines.append(f"{'Stage':<44}{'People':>10}  {'Of previous stage':<24}{'Of people in need':<24}")
        for _, r in st.iterrows():
            if r["stage"] == "need":
                lines.append(f"{r['label']:<44}{num(r['count']):>10}")
                continue
            cond = _pct_bounds(r, "conditional")
            cum = pct(r["cumulative"])
            lines.append(f"{r['label']:<44}{num(r['count']):>10}  {cond:<24}{cum:<24}")
        eff = st.loc[st["stage"] == "effective"]
        if not eff.empty:
            lines.append(f"Effective coverage: {_pct_bounds(eff.iloc[0], 'cumulative')} of people in need.")
        scr = self.select("screening_coverage", "proportion")
        if not scr.empty:
            r0 = scr.iloc[0]
            lines.append(
                f"Screening coverage: {pct_ci(r0)} of adults screened "
                f"({num(r0['numerator'])} of {num(r0['denominator'])})."
            )
        strata = self.select("effective", "cumulative", stratum_dimension=None)
        strata = strata.loc[strata["stratum_dimension"] != ALL]
        if not strata.empty:
            lines.append("Effective coverage by equity stratum:")
            for dim, block in strata.groupby("stratum_dimension", sort=False):
                parts = [f"{s} {pct(e)}" for s, e in zip(block["stratum"], block["estimate"], strict=True)]
                lines.append(f"  {dim}: " + ", ".join(parts))
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self, dimension: str | None = None) -> Chart:
        """Cascade funnel: the share of people in need reaching each stage, side by side per stratum.

        ``dimension`` picks one equity dimension (``'all'`` for the total);
        by default the total and every dimension are stacked vertically.
        """
        rows = self.select(measure="cumulative", domain="cascade", stratum_dimension=None)
        dims = list(pd.unique(rows["stratum_dimension"])) if dimension is None else [dimension]
        if dimension is not None and dimension not in set(rows["stratum_dimension"]):
            known = ", ".join(map(str, pd.unique(rows["stratum_dimension"])))
            raise ParameterError(f"'dimension' must be one of {known} (got {dimension!r}).")
        labels = {s: stage_label(s, self.adequate_sessions) for s in self.stages}
        charts = []
        for dim in dims:
            block = rows.loc[rows["stratum_dimension"] == dim]
            need = block.drop_duplicates("stratum").assign(
                outcome="need", estimate=1.0, conf_low=np.nan, conf_high=np.nan, numerator=np.nan
            )
            data = chart_data(pd.concat([need, block], ignore_index=True))
            data["stage"] = data["outcome"].map(labels)
            title = "Share of people in need reaching each stage" + ("" if dim == ALL else f", by {dim}")
            charts.append(
                bars_with_intervals(
                    data,
                    category="stage",
                    category_title="Stage",
                    sort=[labels[s] for s in self.stages],
                    colour=None if dim == ALL else "stratum",
                    colour_title=dim,
                    value_title="Share of need",
                    title=title,
                )
            )
        if len(charts) == 1:
            return charts[0]
        return alt.vconcat(*charts).resolve_scale(color="independent")


def _pct_bounds(row: pd.Series, measure: str) -> str:
    return pct_ci({"estimate": row[measure], "conf_low": row[f"{measure}_low"], "conf_high": row[f"{measure}_high"]})


def proportion_rows(
    by_group: pd.DataFrame,
    by_site: pd.DataFrame,
    *,
    k: str,
    n: str,
    domain: str,
    outcome: str,
    measure: str,
    level: float,
    ci: CiMethod,
    estimated_denominator: bool,
    unit: Unit = "people",
) -> pd.DataFrame:
    """Tidy rows of ``k / n`` per group with Wilson or (for groups of ≥2 sites) cluster-robust intervals.

    ``unit`` is what ``k`` and ``n`` count: the panel's counts and stocks are people.
    """
    num_ = by_group[k].to_numpy(float)
    den = by_group[n].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(den > 0, num_ / den, np.nan)
    low, high = wilson_unchecked(num_, den, z_value(level))
    se = np.full(len(by_group), np.nan)
    method = np.full(len(by_group), "wilson_fixed_denominator" if estimated_denominator else "wilson", dtype=object)
    if ci == "cluster" and len(by_group):
        cr = grouped_cluster_ratio(by_site.fillna({k: 0.0, n: 0.0}), KEYS, "site_id", k, n, level)
        cr = by_group[KEYS].merge(cr, on=KEYS, how="left")
        use = (cr["n_clusters"].to_numpy(float) >= 2) & np.isfinite(cr["std_error"].to_numpy(float))
        low = np.where(use, np.clip(cr["conf_low"].to_numpy(float), 0, None), low)
        # a share of counts cannot exceed 1; a share of estimated need can, so its bound is left alone there
        cluster_high = cr["conf_high"].to_numpy(float)
        cluster_high = np.where(est <= 1.0, np.minimum(cluster_high, 1.0), cluster_high)
        high = np.where(use, cluster_high, high)
        se = np.where(use, cr["std_error"].to_numpy(float), se)
        method = np.where(use, "cluster_ratio_sites", method)
    return make_tidy(
        by_group[KEYS],
        domain=domain,
        outcome=outcome,
        measure=measure,
        numerator=num_,
        denominator=den,
        estimate=est,
        std_error=se,
        conf_low=low,
        conf_high=high,
        method=method,
        unit=unit,
    )


def compute_cascade(
    panel: pd.DataFrame,
    *,
    project: Project | None = None,
    by: Sequence[Grouping] = GROUPINGS,
    level: float = DEFAULT_LEVEL,
    ci: CiMethod = "wilson",
) -> Cascade:
    """Care cascade and effective coverage from the analysis panel.

    Parameters
    ----------
    panel
        The analysis panel (columns :data:`knowdo.schema.PANEL_COLUMN_NAMES`). Not modified.
    project
        Supplies the adequate-dose threshold (for labels) and the order of equity strata.
    by
        Groupings to report, crossed with every equity stratum in the panel.
    level
        Confidence level.
    ci
        ``'wilson'`` (default) for Wilson intervals everywhere; ``'cluster'``
        for site-clustered ratio intervals (t on sites − 1 df) wherever a
        group pools two or more sites, Wilson elsewhere.

    Returns
    -------
    Cascade

    Examples
    --------
    >>> import pandas as pd
    >>> from knowdo.schema import PANEL_COLUMN_NAMES
    >>> row = dict.fromkeys(PANEL_COLUMN_NAMES, 0)
    >>> row.update(site_id="s1", district_id="d1", period=pd.Timestamp("2024-01-01"), dimension="all",
    ...            stratum="all", population=10_000, need=1000.0, screened=2000, positive=567, started=403,
    ...            adequate=165, effective=90)
    >>> c = compute_cascade(pd.DataFrame([row]), by=["overall"])
    >>> round(c.value("adequate", "cumulative"), 3)
    0.165
    """
    check_panel(panel)
    groupings = check_groupings(by)
    if ci not in _CI_METHODS:
        raise ParameterError(f"'ci' must be one of {', '.join(_CI_METHODS)} (got {ci!r}).")
    z_value(level)
    counts = ["screened", *[STAGE_COLUMNS[s] for s in STAGES[1:]]]
    by_group, by_site = aggregate_panel(panel, groupings, counts)
    keys = by_group[KEYS]
    parts = []
    for stage in STAGES:
        col = STAGE_COLUMNS[stage]
        parts.append(
            make_tidy(
                keys,
                domain="cascade",
                outcome=stage,
                measure="count",
                numerator=by_group[col],
                denominator=np.nan,
                estimate=by_group[col],
                method="estimate" if stage == "need" else "count",
                unit="people",
            )
        )
    for i, stage in enumerate(STAGES[1:], start=1):
        col, prev = STAGE_COLUMNS[stage], STAGE_COLUMNS[STAGES[i - 1]]
        for measure, denominator in (("conditional", prev), ("cumulative", "need")):
            parts.append(
                proportion_rows(
                    by_group,
                    by_site,
                    k=col,
                    n=denominator,
                    domain="cascade",
                    outcome=stage,
                    measure=measure,
                    level=level,
                    ci=ci,
                    estimated_denominator=denominator == "need",
                )
            )
    parts.append(
        proportion_rows(
            by_group,
            by_site,
            k="screened",
            n="population",
            domain="cascade",
            outcome="screening_coverage",
            measure="proportion",
            level=level,
            ci=ci,
            estimated_denominator=False,
        )
    )
    table = sort_tidy(concat_tidy(parts), strata_of(project))
    notes = [NEED_NOTE, POOLING_NOTE]
    over = table.loc[(table["outcome"] == "detected") & (table["measure"] == "conditional")]
    n_over = int((over["numerator"] > over["denominator"]).sum())
    if n_over:
        notes.append(
            f"In {n_over} group(s) more people screened positive than the estimated need; their shares of need "
            "exceed 100% and have no interval. Check the prevalence estimate."
        )
    adequate = project.outcomes.adequate_sessions if project is not None else None
    return Cascade(table=table, level=level, notes=tuple(notes), adequate_sessions=adequate, ci=ci)
