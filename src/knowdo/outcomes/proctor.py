"""Proctor et al. (2011) implementation outcomes computable from routine data.

Behavioural measures only (frameworks.md section 2.1):

``adoption``
    ``providers``: trained providers who delivered ≥1 session ÷ trained
    providers; ``sites``: rolled-out sites delivering ≥1 session ÷ sites
    rolled out.
``fidelity``
    ``mean``: mean session fidelity (share of protocol components delivered).
``penetration``
    both forms: ``providers`` (trained providers in post who deliver ÷
    trained providers in post) and ``patients`` (eligible people who started
    treatment ÷ all eligible, i.e. estimated need).
``implementation_cost``
    ``total`` (implementation + delivery costs recorded) and
    ``per_participant`` (total ÷ people who started treatment).
``sustainability``
    ``proportion``: sites still delivering ≥ ``maintenance_months`` after
    external support ended (default 6).

Acceptability, appropriateness and feasibility are perceptions; their
AIM/IAM/FIM scores are in :mod:`knowdo.outcomes.perceptions`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from knowdo.config import Project
from knowdo.errors import ParameterError
from knowdo.outcomes.cascade import CiMethod, proportion_rows
from knowdo.outcomes.charts import Chart, bars_with_intervals, chart_data
from knowdo.outcomes.delivery import (
    outside_rollout_note,
    panel_ratio,
    provider_frame,
    settings_adoption,
    staff_measures,
    sustainability,
    totals,
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
    expand_groups,
    period_ends,
    sort_tidy,
)
from knowdo.outcomes.intervals import DEFAULT_LEVEL, z_value
from knowdo.outcomes.results import OutcomeResult, concat_tidy, level_text, make_tidy, num, num_ci, pct_ci

DOMAIN = "proctor"
_LABELS = {
    ("adoption", "providers"): "Adoption: trained providers who delivered",
    ("adoption", "sites"): "Adoption: rolled-out sites that delivered",
    ("fidelity", "mean"): "Fidelity: protocol components delivered",
    ("penetration", "providers"): "Penetration: trained providers in post delivering",
    ("penetration", "patients"): "Penetration: people in need treated",
    ("sustainability", "proportion"): "Sustainability: sites delivering after support ended",
}


@dataclass(frozen=True, kw_only=True, eq=False)
class Proctor(OutcomeResult):
    """Proctor implementation outcomes (``domain='proctor'``; ``outcome`` is the Proctor outcome).

    Measures: adoption ``providers``/``sites``; fidelity ``mean``;
    penetration ``providers``/``patients``; implementation_cost
    ``total``/``per_participant``; sustainability ``proportion``.
    """

    kind: ClassVar[str] = "proctor"

    maintenance_months: int
    data_end: dt.date

    def settings(self) -> dict[str, Any]:
        return {"maintenance_months": self.maintenance_months, "data_end": self.data_end.isoformat()}

    def summary(self) -> str:
        """Plain-text summary for all sites and the whole period."""
        lines = [
            f"Implementation outcomes (Proctor): all sites, data to {self.data_end.isoformat()} "
            f"({level_text(self.level)} intervals)"
        ]
        for (outcome, measure), label in _LABELS.items():
            sel = self.select(outcome, measure)
            if sel.empty:
                continue
            r = sel.iloc[0]
            if outcome == "sustainability":
                label = f"Sustainability: sites delivering {self.maintenance_months}+ months after support ended"
            lines.append(f"  {label}: {pct_ci(r)} ({num(r['numerator'])} of {num(r['denominator'], 0)})")
        total = self.select("implementation_cost", "total")
        per = self.select("implementation_cost", "per_participant")
        if not total.empty:
            lines.append(f"  Implementation cost: {num(total.iloc[0]['estimate'], 2)} in total")
        if not per.empty:
            lines.append(f"  Cost per person starting treatment: {num_ci(per.iloc[0], 2)}")
        lines.append(
            "  Acceptability, appropriateness and feasibility: see the AIM/IAM/FIM perception scores "
            "(perceptions, not behaviour)."
        )
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self) -> Chart:
        """Bars of the proportion-type outcomes (all sites, whole period) with intervals."""
        rows = []
        for (outcome, measure), label in _LABELS.items():
            sel = self.select(outcome, measure)
            if not sel.empty:
                rows.append(sel.iloc[0].to_dict() | {"label": label})
        if not rows:
            raise ParameterError("nothing to plot: the Proctor result has no overall rows.")
        data = chart_data(pd.DataFrame(rows))
        return bars_with_intervals(
            data,
            category="label",
            category_title="Outcome",
            sort=list(data["label"]),
            colour="outcome",
            colour_title="Proctor outcome",
            horizontal=True,
            title="Implementation outcomes: all sites, whole period",
        )


def compute_proctor(
    panel: pd.DataFrame,
    providers: pd.DataFrame,
    sites: pd.DataFrame,
    rollout: pd.DataFrame,
    project: Project,
    *,
    by: Sequence[Grouping] = GROUPINGS,
    level: float = DEFAULT_LEVEL,
    ci: CiMethod = "wilson",
) -> Proctor:
    """Proctor implementation outcomes from the panel, providers, sites and rollout (none is modified).

    Patient penetration is crossed with every equity stratum in the panel;
    the other outcomes concern sites and providers and are not. ``ci``
    applies to patient penetration as in
    :func:`~knowdo.outcomes.cascade.compute_cascade`.

    Examples
    --------
    >>> result = compute_proctor(panel, providers, sites, rollout, project)  # doctest: +SKIP
    >>> result.value("penetration", "patients")  # doctest: +SKIP
    """
    check_panel(panel)
    groupings = check_groupings(by)
    z_value(level)
    months = project.outcomes.maintenance_months
    end = data_end(panel, project)
    ends = period_ends(panel, groupings, end)

    sites_rows, units = settings_adoption(
        panel, sites, rollout, groupings, ends, end, level=level, domain=DOMAIN, outcome="adoption"
    )
    sites_rows = sites_rows.loc[sites_rows["measure"] == "of_rolled_out"].assign(measure="sites")
    prov = provider_frame(providers, units.set_index("site_id")["district_id"], end)
    staff = staff_measures(
        prov,
        groupings,
        ends,
        end,
        level=level,
        domain=DOMAIN,
        adoption_outcome="adoption",
        penetration_outcome="penetration",
    ).assign(measure="providers")

    all_rows = pd.Series(True, index=panel.index)
    fidelity = panel_ratio(
        panel,
        groupings,
        y="fidelity_sum",
        x="fidelity_n",
        rows=all_rows,
        level=level,
        domain=DOMAIN,
        outcome="fidelity",
        upper=1.0,
        measure="mean",
        unit="score",
        denominator_unit="sessions",
    )

    by_group, by_site = aggregate_panel(panel, groupings, ["started"], ["need"])
    patients = proportion_rows(
        by_group,
        by_site,
        k="started",
        n="need",
        domain=DOMAIN,
        outcome="penetration",
        measure="patients",
        level=level,
        ci=ci,
        estimated_denominator=True,
    )

    t = totals(panel)
    total_mask = (panel["dimension"] == ALL) & (panel["stratum"] == ALL)
    stack = expand_groups(t[["site_id", "district_id", "period", "cost"]], groupings).assign(
        stratum_dimension=ALL, stratum=ALL
    )
    cost_sum = stack.groupby(KEYS, sort=False)["cost"].sum(min_count=1).reset_index()
    cost_total = make_tidy(
        cost_sum,
        domain=DOMAIN,
        outcome="implementation_cost",
        measure="total",
        numerator=cost_sum["cost"],
        denominator=float("nan"),
        estimate=cost_sum["cost"],
        method="sum",
        unit="money",
    )
    per_participant = panel_ratio(
        panel,
        groupings,
        y="cost",
        x="started",
        rows=total_mask,
        level=level,
        domain=DOMAIN,
        outcome="implementation_cost",
        measure="per_participant",
        unit="money",
        denominator_unit="people",
    )

    sustain, _ = sustainability(
        panel, rollout, units, groupings, end, months, level=level, domain=DOMAIN, outcome="sustainability"
    )
    parts = [
        staff.loc[staff["outcome"] == "adoption"],
        sites_rows,
        fidelity,
        staff.loc[staff["outcome"] == "penetration"],
        patients,
        cost_total,
        per_participant,
        sustain,
    ]
    notes = (
        "Adoption and penetration among providers use each provider's training, leaving and first-session "
        "dates; a period's value is cumulative to its end.",
        "Patient penetration divides people who started treatment by estimated need (population × prevalence).",
        "Implementation cost covers every month recorded, before and after the intervention started, "
        "implementation and delivery together.",
        f"Sustainability counts sites whose external support ended at least {months} months before {end.isoformat()}.",
    )
    return Proctor(
        table=sort_tidy(concat_tidy(parts), project.strata),
        level=level,
        notes=notes + tuple(outside_rollout_note(units)),
        maintenance_months=months,
        data_end=end,
    )
