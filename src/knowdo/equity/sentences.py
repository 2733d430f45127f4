"""Plain-language sentences for the Equity section of the report.

Each function turns one result into one sentence a programme manager can read
aloud: the gap between the least and most advantaged, whether rollout
narrowed it, whether the effect differed by stratum, how much intersections
matter. Sentences use only published (disclosure-controlled) figures; a
figure that was withheld yields no sentence.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from knowdo.equity.heterogeneity import HeterogeneityResult
from knowdo.equity.maihda import MaihdaResult
from knowdo.equity.strata import PERCENT
from knowdo.equity.trends import ImpactResult


def _value(x: float, scale: float) -> str:
    if scale == PERCENT:
        return f"{x:.1f}%"
    return f"{x:,.1f} per {scale:,.0f}"


def _points(x: float, scale: float) -> str:
    if scale == PERCENT:
        return f"{abs(x):.1f} percentage points"
    return f"{abs(x):,.1f} per {scale:,.0f}"


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float | np.floating) and math.isfinite(float(v)) for v in values)


def gap_sentence(subgroups: pd.DataFrame) -> str | None:
    """One indicator x dimension x period: least vs most advantaged (ordered) or lowest vs highest (non-ordered).

    Examples
    --------
    >>> t = pd.DataFrame({"indicator_name": "Reach", "dimension": "wealth", "date": "2024", "subgroup": ["Q1", "Q5"],
    ...     "estimate": [10.0, 20.0], "indicator_scale": 100.0, "ordered_dimension": 1, "subgroup_order": [1, 2]})
    >>> gap_sentence(t)
    'Reach among the Q1 group (wealth) was 10.0% against 20.0% among the Q5 group in 2024.'
    """
    data = subgroups[np.isfinite(subgroups["estimate"].astype(float))]
    if len(data) < 2:
        return None
    first = data.iloc[0]
    scale = float(first["indicator_scale"])
    name = str(first.get("indicator_name") or first.get("indicator_abbr", "The indicator"))
    when = f" in {first['date']}" if str(first.get("date", "")) else ""
    if int(first["ordered_dimension"]) == 1:
        # Compare the extremes of the gradient only; a hidden extreme gives no sentence.
        everyone = subgroups.sort_values("subgroup_order")
        low, high = everyone.iloc[0], everyone.iloc[-1]
        if not _finite(low["estimate"], high["estimate"]):
            return None
        return (f"{name} among the {low['subgroup']} group ({first['dimension']}) was {_value(low['estimate'], scale)} "
                f"against {_value(high['estimate'], scale)} among the {high['subgroup']} group{when}.")
    ranked = data.sort_values("estimate")
    low, high = ranked.iloc[0], ranked.iloc[-1]
    return (f"By {first['dimension']}, {name} was "
            f"highest among {high['subgroup']} ({_value(high['estimate'], scale)}) and lowest among "
            f"{low['subgroup']} ({_value(low['estimate'], scale)}){when}.")


def impact_sentence(impact: ImpactResult, measure: str = "D") -> str | None:
    """Whether the gap narrowed, widened or could not be told after rollout, with the interval."""
    rows = impact.table[impact.table["measure"] == measure]
    if rows.empty:
        return None
    rec = rows.iloc[0]
    if not _finite(rec["did"]):
        return None
    pct = f"{impact.level:.0%}"
    scale = impact.indicator.scale
    what = f"the gap in {impact.indicator.title.lower()} by {impact.dimension.name}"
    if measure in ("R", "RII"):
        size = f"by a factor of {rec['did']:.2f} ({pct} CI {rec['conf_low']:.2f} to {rec['conf_high']:.2f})"
    else:
        unit = "percentage points" if scale == PERCENT else f"per {scale:,.0f}"
        size = (f"by {_points(rec['did'], scale)} ({pct} CI {rec['conf_low']:.1f} to {rec['conf_high']:.1f} {unit})")
    if rec["verdict"] == "unclear":
        return (f"After rollout, whether {what} narrowed or widened could not be told apart from no change: "
                f"the difference-in-differences in {measure} was {rec['did']:.2f} ({pct} CI {rec['conf_low']:.2f} "
                f"to {rec['conf_high']:.2f}), relative to comparison clinics.")
    return f"After rollout, {what} {rec['verdict']} {size} relative to comparison clinics ({measure})."


def heterogeneity_sentence(result: HeterogeneityResult) -> list[str]:
    """One sentence per dimension: did the effect differ across its strata (Cochran's Q)?"""
    out = []
    for rec in result.tests.to_dict(orient="records"):
        q, p = float(rec["q"]), float(rec["p_value"])
        if not _finite(q, p):
            continue
        differs = "differed" if p < 0.05 else "did not differ detectably"
        out.append(f"The {result.estimand} {differs} across {rec['dimension']} strata "
                   f"(Cochran's Q = {q:.2f} on {rec['df']} df, p = {p:.3g}; I² = {float(rec['i_squared']):.0%}).")
    strong = result.strata[result.strata["p_holm"] < 0.05]
    if len(strong):
        names = ", ".join(f"{r.dimension} {r.stratum}" for r in strong.itertuples(index=False))
        out.append(f"After Holm adjustment across {len(result.strata)} strata, the effect was distinguishable from "
                   f"zero in: {names}.")
    return out


def maihda_sentence(result: MaihdaResult) -> str:
    """How much of the person-to-person variation the intersections hold, and how much main effects explain."""
    return (f"Intersections of {', '.join(result.dimensions)} account for {result.vpc:.1%} of the variation between "
            f"people in {result.outcome}; their separate (main) effects explain {result.pcv:.0%} of that, leaving "
            f"{result.vpc_additive:.1%} to intersectional effects. Small intersections are shown only as shrunken "
            "estimates.")
