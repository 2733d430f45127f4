"""Small Altair building blocks shared by the outcome results' ``plot()`` methods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import altair as alt
import pandas as pd

Chart: TypeAlias = alt.Chart | alt.LayerChart | alt.VConcatChart | alt.HConcatChart | alt.FacetChart


def chart_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a chart needs, with missing numbers left as NaN (Vega-Lite skips them)."""
    cols = [c for c in frame.columns if c != "method"]
    return frame[cols].reset_index(drop=True)


def bars_with_intervals(
    data: pd.DataFrame,
    *,
    category: str,
    category_title: str,
    sort: Sequence[str] | None = None,
    colour: str | None = None,
    colour_title: str | None = None,
    value_title: str = "Estimate",
    percent: bool = True,
    horizontal: bool = False,
    title: str = "",
) -> alt.LayerChart:
    """Bars of ``estimate`` per ``category`` (optionally side by side per ``colour``) with CI rules."""
    fmt = ".0%" if percent else ",.2f"
    tooltip = [
        alt.Tooltip(f"{category}:N", title=category_title),
        alt.Tooltip("estimate:Q", title=value_title, format=".1%" if percent else ",.2f"),
        alt.Tooltip("conf_low:Q", title="lower bound", format=".1%" if percent else ",.2f"),
        alt.Tooltip("conf_high:Q", title="upper bound", format=".1%" if percent else ",.2f"),
        alt.Tooltip("numerator:Q", title="numerator", format=",.0f"),
        alt.Tooltip("denominator:Q", title="denominator", format=",.0f"),
    ]
    cat_sort = list(sort) if sort is not None else None
    value_axis = alt.Axis(format=fmt, title=value_title)
    encode: dict[str, Any] = {}
    if horizontal:
        encode["y"] = alt.Y(f"{category}:N", sort=cat_sort, title=category_title)
        value_enc: dict[str, Any] = {"x": alt.X("estimate:Q", axis=value_axis)}
        bounds: dict[str, Any] = {"x": alt.X("conf_low:Q"), "x2": alt.X2("conf_high:Q")}
        if colour:
            encode["yOffset"] = alt.YOffset(f"{colour}:N")
    else:
        encode["x"] = alt.X(f"{category}:N", sort=cat_sort, title=category_title, axis=alt.Axis(labelAngle=0))
        value_enc = {"y": alt.Y("estimate:Q", axis=value_axis)}
        bounds = {"y": alt.Y("conf_low:Q"), "y2": alt.Y2("conf_high:Q")}
        if colour:
            encode["xOffset"] = alt.XOffset(f"{colour}:N")
    if colour:
        tooltip.insert(1, alt.Tooltip(f"{colour}:N", title=colour_title or colour))
    bar_colour = alt.Color(f"{colour}:N", title=colour_title or colour) if colour else alt.value("#4c78a8")
    base = alt.Chart(data)
    bars = base.mark_bar().encode(**encode, **value_enc, color=bar_colour, tooltip=tooltip)
    rules = base.mark_rule(color="black").encode(**encode, **bounds)
    return alt.LayerChart(layer=[bars, rules], title=title)
