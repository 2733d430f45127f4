"""RE-AIM: Reach, Effectiveness, Adoption, Implementation, Maintenance.

Operationalised from routine data as in frameworks.md section 2.2 (Glasgow,
Vogt & Boles 1999; Glasgow et al. 2019):

Reach
    participants (people who started treatment) ÷ the eligible population
    (estimated need: population × prevalence). Need is a valid denominator;
    people screened or referred are not. Representativeness: for each equity
    dimension, each level's share of participants against its share of need,
    with a standardised mean difference.
Effectiveness
    among participants followed up: response, remission, mean PHQ-9 change
    (follow-up − baseline) and deterioration (harm); the follow-up rate too.
Adoption
    settings (sites delivering ≥1 session ÷ sites rolled out, and ÷ all
    sites) and staff (trained providers delivering ≥1 session ÷ trained
    providers), with adopting vs non-adopting sites compared.
Implementation
    fidelity (mean session fidelity), sessions per participant against the
    planned dose, and cost per participant (the time-and-cost element of
    Implementation; cost is not a RE-AIM dimension of its own).
Maintenance
    setting: sites still delivering ≥ ``maintenance_months`` after external
    support ended, among sites whose support ended at least that long before
    the data end; individual: outcomes measured ≥ ``maintenance_months``
    after the last contact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from knowdo.config import Project
from knowdo.errors import ParameterError
from knowdo.outcomes.cascade import CiMethod, proportion_rows
from knowdo.outcomes.charts import Chart, bars_with_intervals, chart_data
from knowdo.outcomes.delivery import (
    adopter_representativeness,
    outside_rollout_note,
    panel_ratio,
    provider_frame,
    settings_adoption,
    staff_measures,
    sustainability,
)
from knowdo.outcomes.episodes import (
    ParticipantCells,
    cell_mean_rows,
    cell_rate_rows,
    participant_cells,
    participant_outcomes,
    strata_present,
)
from knowdo.outcomes.groups import (
    ALL,
    GROUPINGS,
    KEYS,
    Grouping,
    aggregate_panel,
    check_groupings,
    check_panel,
    data_end,
    period_ends,
    sort_tidy,
)
from knowdo.outcomes.intervals import DEFAULT_LEVEL, smd_proportions, wilson_unchecked, z_value
from knowdo.outcomes.results import (
    OutcomeResult,
    concat_tidy,
    level_text,
    make_tidy,
    num,
    num_ci,
    pct,
    pct_ci,
)

DIMENSIONS = ("reach", "effectiveness", "adoption", "implementation", "maintenance")
# |SMD| above 0.1 is the usual flag for a meaningful imbalance (Austin, Stat Med 2009;28:3083).
SMD_FLAG = 0.1


@dataclass(frozen=True, kw_only=True, eq=False)
class ReAim(OutcomeResult):
    """The five RE-AIM dimensions, by group and (where people are counted) equity stratum.

    ``domain`` in the tidy table is the RE-AIM dimension. Outcomes:

    * reach: ``reach`` (``participants``, ``eligible``, ``proportion``),
      ``reach_representativeness`` (``participant_share``, ``eligible_share``, ``smd``);
    * effectiveness: ``follow_up``, ``response``, ``remission``,
      ``deterioration`` (``proportion``), ``phq9_change`` (``mean``);
    * adoption: ``adoption_settings`` (``of_rolled_out``, ``of_all_sites``),
      ``adoption_staff`` (``proportion``), ``adoption_representativeness``;
    * implementation: ``fidelity`` (``mean``), ``sessions_per_participant``
      (``mean``), ``dose_vs_planned`` (``ratio``), ``cost_per_participant`` (``ratio``);
    * maintenance: ``maintenance_settings``, ``late_follow_up``,
      ``late_response``, ``late_remission`` (``proportion``), ``late_phq9_change`` (``mean``).
    """

    kind: ClassVar[str] = "reaim"

    adequate_sessions: int
    maintenance_months: int
    response_fraction: float
    remission_below: int
    data_end: dt.date

    def settings(self) -> dict[str, Any]:
        return {
            "adequate_sessions": self.adequate_sessions,
            "maintenance_months": self.maintenance_months,
            "response_fraction": self.response_fraction,
            "remission_below": self.remission_below,
            "data_end": self.data_end.isoformat(),
        }

    def headlines(self) -> pd.DataFrame:
        """One overall row per headline measure of each dimension, with a plain-language label."""
        m = self.maintenance_months
        specs = [
            ("reach", "reach", "proportion", "Reach: people in need who started treatment"),
            ("effectiveness", "response", "proportion", "Effectiveness: response among those followed up"),
            ("effectiveness", "remission", "proportion", "Effectiveness: remission among those followed up"),
            ("effectiveness", "deterioration", "proportion", "Effectiveness (harm): deterioration"),
            ("adoption", "adoption_settings", "of_rolled_out", "Adoption: rolled-out sites delivering"),
            ("adoption", "adoption_staff", "proportion", "Adoption: trained providers delivering"),
            ("implementation", "fidelity", "mean", "Implementation: session fidelity"),
            ("implementation", "dose_vs_planned", "ratio", "Implementation: sessions delivered ÷ planned"),
            ("maintenance", "maintenance_settings", "proportion", f"Maintenance: sites delivering {m}+ months on"),
            ("maintenance", "late_remission", "proportion", f"Maintenance: remission {m}+ months after care"),
        ]
        rows = []
        for domain, outcome, measure, label in specs:
            sel = self.select(outcome, measure, domain=domain)
            if sel.empty:
                continue
            rows.append(sel.iloc[0].to_dict() | {"label": label})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """Plain-text RE-AIM summary for all sites and the whole period."""
        m = self.maintenance_months
        lines = [f"RE-AIM summary: all sites, data to {self.data_end.isoformat()} ({level_text(self.level)} intervals)"]

        def row(outcome: str, measure: str) -> pd.Series | None:
            sel = self.select(outcome, measure)
            return None if sel.empty else sel.iloc[0]

        lines.append("REACH")
        r = row("reach", "proportion")
        if r is not None:
            lines.append(
                f"  {num(r['numerator'])} people started treatment of an estimated {num(r['denominator'])} in need: "
                f"{pct_ci(r)}."
            )
        rep = self.select("reach_representativeness", "smd", stratum_dimension=None)
        if not rep.empty:
            for dim, block in rep.groupby("stratum_dimension", sort=False):
                if not block["estimate"].notna().any():
                    continue
                worst = block.iloc[int(np.nanargmax(block["estimate"].abs().to_numpy(float)))]
                flag = "imbalanced" if abs(worst["estimate"]) > SMD_FLAG else "balanced"
                lines.append(
                    f"  Representativeness by {dim}: {flag} (largest |SMD| {abs(worst['estimate']):.2f}, "
                    f"{worst['stratum']})."
                )
        lines.append("EFFECTIVENESS (people who started treatment)")
        for outcome, label in (
            ("follow_up", "followed up"),
            ("response", f"responded (≥{self.response_fraction:.0%} drop in PHQ-9)"),
            ("remission", f"remitted (PHQ-9 < {self.remission_below})"),
            ("deterioration", "deteriorated (harm)"),
        ):
            r = row(outcome, "proportion")
            if r is not None:
                lines.append(f"  {label}: {pct_ci(r)} ({num(r['numerator'])} of {num(r['denominator'])})")
        r = row("phq9_change", "mean")
        if r is not None:
            lines.append(f"  mean PHQ-9 change (follow-up − baseline): {num_ci(r)} points")
        lines.append("ADOPTION")
        for outcome, measure, label in (
            ("adoption_settings", "of_rolled_out", "sites delivering ≥1 session, of sites rolled out"),
            ("adoption_settings", "of_all_sites", "sites delivering ≥1 session, of all sites"),
            ("adoption_staff", "proportion", "trained providers delivering ≥1 session"),
        ):
            r = row(outcome, measure)
            if r is not None:
                lines.append(f"  {label}: {pct_ci(r)} ({num(r['numerator'])} of {num(r['denominator'])})")
        u_a, u_n = (
            row("adoption_representativeness", "urban_share_adopters"),
            row("adoption_representativeness", "urban_share_non_adopters"),
        )
        c_a, c_n = (
            row("adoption_representativeness", "catchment_mean_adopters"),
            row("adoption_representativeness", "catchment_mean_non_adopters"),
        )
        if u_a is not None and u_n is not None and c_a is not None and c_n is not None:
            lines.append(
                f"  adopting sites: {pct(u_a['estimate'])} urban, mean catchment {num(c_a['estimate'])}; "
                f"others: {pct(u_n['estimate'])} urban, mean catchment {num(c_n['estimate'])}"
            )
        lines.append("IMPLEMENTATION")
        r = row("fidelity", "mean")
        if r is not None:
            lines.append(f"  mean session fidelity: {pct_ci(r)} of protocol components")
        r, d = row("sessions_per_participant", "mean"), row("dose_vs_planned", "ratio")
        if r is not None and d is not None:
            lines.append(
                f"  sessions per participant: {num_ci(r)} of {self.adequate_sessions} planned ({pct(d['estimate'])})"
            )
        r = row("cost_per_participant", "ratio")
        if r is not None:
            lines.append(f"  cost per participant (months delivering): {num_ci(r, 2)}")
        lines.append("MAINTENANCE")
        r = row("maintenance_settings", "proportion")
        if r is not None:
            lines.append(
                f"  sites still delivering {m}+ months after support ended: {pct_ci(r)} "
                f"({num(r['numerator'])} of {num(r['denominator'])} sites whose support ended {m}+ months before "
                "the data end)"
            )
        for outcome, label in (
            ("late_follow_up", "measured"),
            ("late_remission", "in remission"),
            ("late_response", "responded"),
        ):
            r = row(outcome, "proportion")
            if r is not None:
                lines.append(
                    f"  {m}+ months after last contact, {label}: {pct_ci(r)} "
                    f"({num(r['numerator'])} of {num(r['denominator'])})"
                )
        lines = _fill_empty_sections(lines)
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self) -> Chart:
        """RE-AIM panel: the headline measure(s) of each dimension with intervals."""
        data = self.headlines()
        if data.empty:
            raise ParameterError("nothing to plot: the RE-AIM result has no overall rows.")
        data = chart_data(data.drop(columns=["label"]).assign(label=data["label"].to_numpy()))
        return bars_with_intervals(
            data,
            category="label",
            category_title="Measure",
            sort=list(data["label"]),
            colour="domain",
            colour_title="RE-AIM dimension",
            value_title="Estimate",
            horizontal=True,
            title="RE-AIM: all sites, whole period",
        )


def _fill_empty_sections(lines: list[str]) -> list[str]:
    """Add "no data" under section headings (unindented lines after the title) that have no lines."""
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        is_heading = i > 0 and not line.startswith(" ")
        next_is_heading = i + 1 == len(lines) or not lines[i + 1].startswith(" ")
        if is_heading and next_is_heading:
            out.append("  no data")
    return out


_RATE_COLUMNS = (
    "followed_up",
    "responded",
    "remitted",
    "deteriorated",
    "late_measured",
    "late_responded",
    "late_remitted",
)
_MEAN_COLUMNS = ("change", "sessions", "late_change")


def _person_level_rows(
    cells: ParticipantCells, by: Sequence[Grouping], *, level: float, planned: int
) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[pd.DataFrame]]:
    """Effectiveness, dose and individual-maintenance rows from participants' cell statistics."""
    effectiveness = [
        cell_rate_rows(cells, by, col, domain="effectiveness", outcome=outcome, level=level)
        for col, outcome in (
            ("followed_up", "follow_up"),
            ("responded", "response"),
            ("remitted", "remission"),
            ("deteriorated", "deterioration"),
        )
    ]
    effectiveness.append(
        cell_mean_rows(
            cells,
            by,
            "change",
            domain="effectiveness",
            outcome="phq9_change",
            measure="mean",
            level=level,
            unit="score",
        )
    )
    dose = [
        cell_mean_rows(
            cells,
            by,
            "sessions",
            domain="implementation",
            outcome="sessions_per_participant",
            measure="mean",
            level=level,
            unit="sessions",
        ),
        cell_mean_rows(
            cells,
            by,
            "sessions",
            domain="implementation",
            outcome="dose_vs_planned",
            measure="ratio",
            level=level,
            unit="sessions",
            scale=float(planned),
        ),
    ]
    late = [
        cell_rate_rows(cells, by, col, domain="maintenance", outcome=outcome, level=level)
        for col, outcome in (
            ("late_measured", "late_follow_up"),
            ("late_responded", "late_response"),
            ("late_remitted", "late_remission"),
        )
    ]
    late.append(
        cell_mean_rows(
            cells,
            by,
            "late_change",
            domain="maintenance",
            outcome="late_phq9_change",
            measure="mean",
            level=level,
            unit="score",
        )
    )
    return effectiveness, dose, late


def _panel_level_rows(
    panel: pd.DataFrame, by: Sequence[Grouping], *, level: float, ci: CiMethod, planned: int
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Effectiveness and dose rows from the panel's counts, for programmes without person-level data."""
    by_group, by_site = aggregate_panel(panel, by, ["started", "followed_up", "responded", "remitted"], [])
    effectiveness = [
        proportion_rows(
            by_group,
            by_site,
            k=k,
            n=n,
            domain="effectiveness",
            outcome=outcome,
            measure="proportion",
            level=level,
            ci=ci,
            estimated_denominator=False,
        )
        for k, n, outcome in (
            ("followed_up", "started", "follow_up"),
            ("responded", "followed_up", "response"),
            ("remitted", "followed_up", "remission"),
        )
    ]
    sessions = panel_ratio(
        panel,
        by,
        y="sessions",
        x="started",
        rows=pd.Series(True, index=panel.index),
        level=level,
        domain="implementation",
        outcome="sessions_per_participant",
        measure="mean",
        unit="sessions",
        denominator_unit="people",
    )
    scaled = sessions.assign(
        outcome="dose_vs_planned",
        measure="ratio",
        **{c: sessions[c] / planned for c in ("numerator", "estimate", "std_error", "conf_low", "conf_high")},
    )
    return effectiveness, [sessions, scaled]


def reach_rows(
    panel: pd.DataFrame,
    by: Sequence[Grouping],
    *,
    level: float,
    ci: CiMethod,
    domain: str = "reach",
    outcome: str = "reach",
) -> pd.DataFrame:
    """Participants, eligible (need), participants ÷ need, and representativeness rows."""
    by_group, by_site = aggregate_panel(panel, by, ["started"], ["need"])
    keys = by_group[KEYS]
    parts = [
        make_tidy(
            keys,
            domain=domain,
            outcome=outcome,
            measure="participants",
            numerator=by_group["started"],
            denominator=np.nan,
            estimate=by_group["started"],
            method="count",
            unit="people",
        ),
        make_tidy(
            keys,
            domain=domain,
            outcome=outcome,
            measure="eligible",
            numerator=by_group["need"],
            denominator=np.nan,
            estimate=by_group["need"],
            method="estimate",
            unit="people",
        ),
        proportion_rows(
            by_group,
            by_site,
            k="started",
            n="need",
            domain=domain,
            outcome=outcome,
            measure="proportion",
            level=level,
            ci=ci,
            estimated_denominator=True,
        ),
    ]
    strata = by_group.loc[by_group["stratum_dimension"] != ALL].copy()
    if not strata.empty:
        dim_keys = ["group_type", "group", "stratum_dimension"]
        tot = strata.groupby(dim_keys, sort=False)[["started", "need"]].transform("sum")
        k = strata["started"].to_numpy(float)
        n = tot["started"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            p1 = np.where(n > 0, k / n, np.nan)
            p2 = np.where(tot["need"] > 0, strata["need"] / tot["need"], np.nan)
        low, high = wilson_unchecked(k, n, z_value(level))
        skeys = strata[KEYS]
        rep = f"{outcome}_representativeness"
        parts += [
            make_tidy(
                skeys,
                domain=domain,
                outcome=rep,
                measure="participant_share",
                numerator=k,
                denominator=n,
                estimate=p1,
                conf_low=low,
                conf_high=high,
                method="wilson",
                unit="people",
            ),
            make_tidy(
                skeys,
                domain=domain,
                outcome=rep,
                measure="eligible_share",
                numerator=strata["need"],
                denominator=tot["need"],
                estimate=p2,
                method="estimate",
                unit="people",
            ),
            make_tidy(
                skeys,
                domain=domain,
                outcome=rep,
                measure="smd",
                numerator=p1,
                denominator=p2,
                estimate=smd_proportions(p1, p2),
                method="smd_proportions",
                # the two shares stand in for the counts; participant_share gives its count away, so kept with people
                unit="people",
            ),
        ]
    return concat_tidy(parts)


def compute_reaim(
    panel: pd.DataFrame,
    episodes: pd.DataFrame,
    providers: pd.DataFrame,
    sites: pd.DataFrame,
    rollout: pd.DataFrame,
    project: Project,
    *,
    by: Sequence[Grouping] = GROUPINGS,
    level: float = DEFAULT_LEVEL,
    ci: CiMethod = "wilson",
) -> ReAim:
    """RE-AIM from the panel, episodes, providers, sites and rollout tables (none is modified).

    ``by`` picks the groupings; person-level measures (reach, effectiveness,
    sessions, individual maintenance) are also crossed with every equity
    stratum; setting- and staff-level measures are not (sites and providers
    have no equity stratum). ``ci`` applies to reach as in
    :func:`~knowdo.outcomes.cascade.compute_cascade`.

    Examples
    --------
    >>> result = compute_reaim(panel, episodes, providers, sites, rollout, project)  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    check_panel(panel)
    groupings = check_groupings(by)
    z_value(level)
    defs = project.outcomes
    end = data_end(panel, project)
    ends = period_ends(panel, groupings, end)
    notes: list[str] = []

    parts = [reach_rows(panel, groupings, level=level, ci=ci)]
    person_level = len(episodes) > 0
    if person_level:
        dims, absent = strata_present(episodes, project)
        if absent:
            notes.append(f"Episodes have no column for equity dimension(s) {', '.join(absent)}; not stratified.")
        # per-cell sufficient statistics instead of one stacked copy of every participant per group and stratum
        cells = participant_cells(participant_outcomes(episodes, defs, dims), dims, [*_RATE_COLUMNS, *_MEAN_COLUMNS])
        effectiveness, dose, late = _person_level_rows(cells, groupings, level=level, planned=defs.adequate_sessions)
    else:
        effectiveness, dose = _panel_level_rows(panel, groupings, level=level, ci=ci, planned=defs.adequate_sessions)
        late = []
        notes.append(
            "No person-level episodes (aggregate data): follow-up, response and remission come from the panel's "
            "counts and sessions per participant from sessions delivered ÷ people starting treatment; PHQ-9 change, "
            "deterioration and individual maintenance need person-level data."
        )
    parts += effectiveness

    adoption, units = settings_adoption(
        panel, sites, rollout, groupings, ends, end, level=level, domain="adoption", outcome="adoption_settings"
    )
    parts.append(adoption)
    prov = provider_frame(providers, units.set_index("site_id")["district_id"], end)
    parts.append(
        staff_measures(
            prov,
            groupings,
            ends,
            end,
            level=level,
            domain="adoption",
            adoption_outcome="adoption_staff",
            penetration_outcome=None,
        )
    )
    if "overall" in groupings:
        parts.append(
            adopter_representativeness(units, level=level, domain="adoption", outcome="adoption_representativeness")
        )

    all_rows = pd.Series(True, index=panel.index)
    parts.append(
        panel_ratio(
            panel,
            groupings,
            y="fidelity_sum",
            x="fidelity_n",
            rows=all_rows,
            level=level,
            domain="implementation",
            outcome="fidelity",
            upper=1.0,
            measure="mean",
            unit="score",
            denominator_unit="sessions",
        )
    )
    parts += dose
    treated = (panel["dimension"] == ALL) & (panel["stratum"] == ALL) & (panel["treated"].fillna(0) == 1)
    parts.append(
        panel_ratio(
            panel,
            groupings,
            y="cost",
            x="started",
            rows=treated,
            level=level,
            domain="implementation",
            outcome="cost_per_participant",
            measure="ratio",
            unit="money",
            denominator_unit="people",
        )
    )

    sustain, _ = sustainability(
        panel,
        rollout,
        units,
        groupings,
        end,
        defs.maintenance_months,
        level=level,
        domain="maintenance",
        outcome="maintenance_settings",
    )
    parts.append(sustain)
    parts += late

    n_sites = len(units)
    notes += outside_rollout_note(units)
    notes += [
        "Reach uses estimated need (population × prevalence) as the eligible population; intervals treat it as known.",
        "Effectiveness is among people who started treatment and had a follow-up PHQ-9; follow_up gives how many "
        "did. Without a comparison group these are changes, not effects.",
        f"Adoption counts {n_sites} delivery sites; a period's adoption is cumulative to the end of that period.",
        "Cost per participant is total cost ÷ people starting treatment over site-months delivering the "
        "intervention; it belongs to Implementation (cost is not a RE-AIM dimension).",
        f"Setting maintenance counts sites whose external support ended at least {defs.maintenance_months} months "
        f"before {end.isoformat()}; individual maintenance uses PHQ-9 measured at least "
        f"{defs.maintenance_months} months after the last contact.",
    ]
    table = sort_tidy(concat_tidy(parts), project.strata)
    return ReAim(
        table=table,
        level=level,
        notes=tuple(notes),
        adequate_sessions=defs.adequate_sessions,
        maintenance_months=defs.maintenance_months,
        response_fraction=defs.response_fraction,
        remission_below=defs.remission_below,
        data_end=end,
    )
