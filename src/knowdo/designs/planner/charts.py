"""Power curves and information-content maps as Altair charts.

A power curve evaluates any planner call over a grid of one parameter
(clusters, ICC, effect, cluster-period size) and draws power against it with
the target marked; the information-content map shows which cluster-periods
carry the information of a longitudinal design (Kasza & Forbes 2019).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import altair as alt
import pandas as pd

from knowdo.designs.planner.result import PowerResult
from knowdo.errors import ParameterError

DEFAULT_TARGET = 0.8  # conventional power target (Cohen 1988)


def power_curve_frame(plan: Callable[[float], PowerResult], values: Sequence[float], parameter: str) -> pd.DataFrame:
    """``parameter, value, power`` for ``plan(value)`` at each value (the plan must solve for power)."""
    if len(values) < 2:
        raise ParameterError("give at least two values for a power curve.")
    rows = [{"parameter": parameter, "value": float(v), "power": plan(v).power} for v in values]
    return pd.DataFrame(rows, columns=["parameter", "value", "power"])


def power_curve(
    plan: Callable[[float], PowerResult], values: Sequence[float], parameter: str, *,
    target: float = DEFAULT_TARGET, title: str | None = None,
) -> alt.LayerChart | alt.FacetChart:
    """Line chart of power against ``parameter`` with the target power marked.

    Examples
    --------
    >>> from knowdo.designs.planner.cluster import plan_crt
    >>> chart = power_curve(lambda k: plan_crt(icc=0.05, clusters_per_arm=int(k), cluster_size=20, delta=0.3, sd=1),
    ...                     [4, 6, 8, 10], "clusters per arm")
    >>> chart.to_dict()["layer"][0]["mark"]["type"]
    'line'
    """
    table = power_curve_frame(plan, values, parameter)
    line = alt.Chart(table).mark_line(point=True).encode(
        x=alt.X("value:Q", title=parameter),
        y=alt.Y("power:Q", title="power", scale=alt.Scale(domain=[0, 1])),
        tooltip=["value", "power"],
    )
    rule = alt.Chart(pd.DataFrame({"y": [target]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    return alt.layer(line, rule).properties(title=title or f"Power by {parameter}")


def information_content_chart(table: pd.DataFrame) -> alt.Chart:
    """Heat map of :func:`knowdo.designs.planner.engine.information_content` (cluster × period)."""
    needed = {"cluster", "period", "information_content", "treatment"}
    if not needed <= set(table.columns):
        raise ParameterError(f"the table needs columns {sorted(needed)}; pass information_content(...) output.")
    finite = table.assign(information=table["information_content"].clip(upper=10.0))
    base = alt.Chart(finite).encode(x=alt.X("period:O", title="period"), y=alt.Y("cluster:O", title="cluster"))
    cells = base.mark_rect().encode(color=alt.Color("information:Q", title="Var ratio without cell"),
                                    tooltip=["cluster", "period", "treatment", "information_content"])
    text = base.mark_text(fontSize=9).encode(text=alt.Text("treatment:Q", format=".0f"))
    return (cells + text).properties(title="Information content of cluster-periods")
