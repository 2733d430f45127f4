"""Interactive Vega-Lite charts built from tidy outcome frames.

Every builder takes a tidy frame with the outcome columns ``outcome,
group_type, group, stratum_dimension, stratum, numerator, denominator,
estimate, conf_low, conf_high`` (and optionally ``measure``), suppresses small
cells with the disclosure rule *before* drawing anything, and returns an
Altair chart with tooltips and, where there is a choice to make, a dropdown
bound to a Vega-Lite parameter:

* :func:`cascade_funnel`: cumulative share of need reaching each stage, by stratum;
* :func:`reaim_panel` / :func:`small_multiples`: one panel per outcome, overall and by stratum;
* :func:`reach_gaps`: each stratum against the overall estimate;
* :func:`group_comparison`: each district or site against the programme overall;
* :func:`monthly_trend`: programme-wide monthly rows (``group_type == "month"``);
* :func:`trend_chart`: site or district rows over a ``period`` column.

Conventions read from the frame:

* overall rows have ``stratum_dimension`` (and ``stratum``) ``"all"``, empty,
  ``"overall"`` or ``"total"``; the rest are equity strata;
* programme-wide rows have ``group_type`` ``"overall"`` (or ``"all"``,
  ``"programme"``, ``"total"``, or empty);
* a ``measure`` column, when present, says whether estimates are proportions
  (drawn as percentages) or means, ratios and totals.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({
...     "outcome": ["need", "detected"], "group_type": "overall", "group": "all",
...     "stratum_dimension": "all", "stratum": "all", "numerator": [500, 120],
...     "denominator": [500, 500], "estimate": [1.0, 0.24], "conf_low": [1.0, 0.2], "conf_high": [1.0, 0.28]})
>>> cascade_funnel(frame).to_dict()["$schema"].split("/")[-2]
'vega-lite'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd

from knowdo.equity.disclosure import DEFAULT_THRESHOLD
from knowdo.errors import ParameterError
from knowdo.report.publish import UNIT_KEYS, frame_records, suppress_frame

CASCADE_STAGES: tuple[str, ...] = ("need", "detected", "started", "adequate", "effective")
STAGE_LABELS = {
    "need": "In need",
    "detected": "Detected",
    "started": "Started",
    "adequate": "Adequate",
    "effective": "Effective",
}
REAIM_DIMENSIONS: tuple[str, ...] = ("reach", "effectiveness", "adoption", "implementation", "maintenance")
TIDY_COLUMNS: tuple[str, ...] = (
    "outcome",
    "group_type",
    "group",
    "stratum_dimension",
    "stratum",
    "numerator",
    "denominator",
    "estimate",
    "conf_low",
    "conf_high",
)
# Columns a chart's data keep (the tidy columns, the labels added here, the suppression flag, a month, and
# what each count counts, so the disclosure rule reads the same units when the chart is embedded).
CHART_COLUMNS: tuple[str, ...] = (
    *TIDY_COLUMNS,
    *UNIT_KEYS,
    "stratum_label",
    "dimension_label",
    "kind",
    "is_overall",
    "measure",
    "suppressed",
    "period",
)
# Tidy measures whose estimates are proportions.
PROPORTION_MEASURES = frozenset(
    {
        "proportion",
        "cumulative",
        "conditional",
        "of_rolled_out",
        "of_all_sites",
        "sites",
        "providers",
        "patients",
        "share_agree_informal",
    }
)
# Filters for layers sharing one dataset: the all-people rows, or the equity strata.
OVERALL_ONLY = "datum.is_overall"
STRATA_ONLY = "!datum.is_overall"
OVERALL_VALUES = frozenset({"", "all", "overall", "total", "programme", "none", "nan"})

# Okabe & Ito (2008) colour-blind-safe palette, black dropped (black marks the overall figure).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
OVERALL_COLOUR = "#222222"
MUTED_COLOUR = "#b8bec6"


def cascade_funnel(
    frame: pd.DataFrame,
    *,
    stages: Sequence[str] = CASCADE_STAGES,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    title: str = "Care cascade by equity stratum",
) -> alt.TopLevelMixin:
    """Cumulative proportion of people in need reaching each cascade stage, by stratum.

    Bars show each stratum of the equity dimension chosen in the dropdown, with
    their 95% confidence intervals; the dark line is the programme overall.
    Stages present in ``frame`` but not in ``stages`` follow the named ones.
    """
    data = _prepare(frame, threshold=threshold, rounding=rounding)
    data = _overall_groups(data)
    order = _ordered(list(stages), data["outcome"].unique())
    data = data[data["outcome"].isin(order)]
    if data.empty:
        raise ParameterError(f"cascade_funnel: no rows for the stages {list(stages)}; outcomes seen: {_seen(frame)}")
    data = data.assign(stage=data["outcome"].map(_stage_label))
    stage_sort = [_stage_label(s) for s in order]
    percent = _is_proportion(data)
    tooltip = _tooltip(percent, first=[alt.Tooltip("stage:N", title="Stage")])
    x = alt.X("stage:N", sort=stage_sort, title=None, axis=alt.Axis(labelAngle=0))
    y = alt.Y(
        "estimate:Q", title="Share of people in need", axis=_value_axis(percent), scale=_value_scale(data, percent)
    )
    overall = data[data["is_overall"]]
    strata = data[~data["is_overall"]]
    dimensions = _dimensions(strata)
    layers: list[alt.Chart] = []
    param = None
    if dimensions:
        param = _dimension_param(dimensions)
        chosen = alt.datum.stratum_dimension == param
        base = alt.Chart().transform_filter(STRATA_ONLY).transform_filter(chosen)
        offset = alt.XOffset("stratum_label:N", sort=None, title=None)
        colour = alt.Color("stratum_label:N", sort=None, title="Stratum", scale=alt.Scale(range=list(PALETTE)))
        layers.append(base.mark_bar(opacity=0.9).encode(x=x, xOffset=offset, y=y, color=colour, tooltip=tooltip))
        layers.append(
            base.mark_rule(color=OVERALL_COLOUR, opacity=0.7).encode(
                x=x, xOffset=offset, y="conf_low:Q", y2="conf_high:Q", tooltip=tooltip
            )
        )
    if not overall.empty:
        whole = alt.Chart().transform_filter(OVERALL_ONLY)
        line = whole.mark_line(
            color=OVERALL_COLOUR, strokeDash=[5, 3], point=alt.OverlayMarkDef(color=OVERALL_COLOUR, size=50)
        )
        if dimensions:
            layers.append(line.encode(x=x, y=y, tooltip=tooltip))
        else:
            layers.append(whole.mark_bar(color=PALETTE[0]).encode(x=x, y=y, tooltip=tooltip))
            layers.append(
                whole.mark_rule(color=OVERALL_COLOUR).encode(x=x, y="conf_low:Q", y2="conf_high:Q", tooltip=tooltip)
            )
    chart = alt.layer(*layers, data=data).properties(
        width="container", height=320, title=_title(title, _funnel_subtitle(overall))
    )
    if param is not None:
        chart = chart.add_params(param)
    return chart.properties(description=_describe("Cascade funnel", order, dimensions))


def reaim_panel(
    frame: pd.DataFrame,
    *,
    dimensions: Sequence[str] = REAIM_DIMENSIONS,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    columns: int = 3,
    title: str = "RE-AIM dimensions",
    subtitles: Mapping[str, str] | None = None,
) -> alt.TopLevelMixin:
    """The five RE-AIM dimensions as small multiples: overall and by stratum, with 95% CIs.

    ``subtitles`` maps an outcome to a short line under its panel's title
    (for example what the headline figure measures).
    """
    return small_multiples(
        frame,
        outcomes=dimensions,
        threshold=threshold,
        rounding=rounding,
        columns=columns,
        title=title,
        subtitles=subtitles,
    )


def small_multiples(
    frame: pd.DataFrame,
    *,
    outcomes: Sequence[str] = (),
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    columns: int = 3,
    title: str = "Outcomes by equity stratum",
    subtitles: Mapping[str, str] | None = None,
    value_domain: tuple[float, float] | None = None,
) -> alt.TopLevelMixin:
    """One small panel per outcome: the overall estimate and each stratum's, with 95% CIs.

    A dropdown picks the equity dimension. Each panel has its own scale, shown
    as a percentage when the outcome is a proportion; ``value_domain`` fixes
    the range of the other panels (for example ``(1, 5)`` for AIM/IAM/FIM
    means). ``outcomes`` sets the panel order; outcomes not named follow in
    order of appearance.
    """
    data = _overall_groups(_prepare(frame, threshold=threshold, rounding=rounding))
    order = _ordered(list(outcomes), data["outcome"].unique())
    data = data[data["outcome"].isin(order)]
    if data.empty:
        raise ParameterError(f"small_multiples: no rows for outcomes {list(outcomes)}; outcomes seen: {_seen(frame)}")
    dimensions = _dimensions(data[~data["is_overall"]])
    param = _dimension_param(dimensions) if dimensions else None
    panels = []
    for outcome in order:
        part = data[data["outcome"] == outcome]
        percent = _is_proportion(part)
        base = alt.Chart().transform_filter(alt.datum.outcome == outcome)
        if param is not None:
            base = base.transform_filter(alt.datum.is_overall | (alt.datum.stratum_dimension == param))
        y = alt.Y("stratum_label:N", sort=None, title=None)
        scale = _value_scale(part, percent, zero=False, domain=value_domain)
        x = alt.X("estimate:Q", title=None, axis=_value_axis(percent), scale=scale)
        colour = alt.Color(
            "kind:N",
            title=None,
            scale=alt.Scale(domain=["Overall", "Stratum"], range=[OVERALL_COLOUR, PALETTE[0]]),
            legend=None,
        )
        tooltip = _tooltip(percent)
        rule = base.mark_rule(strokeWidth=2).encode(
            y=y, x="conf_low:Q", x2="conf_high:Q", color=colour, tooltip=tooltip
        )
        point = base.mark_point(filled=True, size=70).encode(y=y, x=x, color=colour, tooltip=tooltip)
        heading = alt.TitleParams(_label(outcome), subtitle=(subtitles or {}).get(outcome, ""), anchor="start")
        panels.append(alt.layer(rule, point).properties(title=heading, width=200, height=alt.Step(20)))
    chart = alt.concat(*panels, columns=max(1, columns), data=data).properties(
        title=_title(title, _panel_subtitle(dimensions))
    )
    if param is not None:
        chart = chart.add_params(param)
    return chart.properties(description=_describe("Small multiples", order, dimensions))


def trend_chart(
    frame: pd.DataFrame,
    *,
    group_type: str = "site",
    period_column: str = "period",
    outcome: str | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    title: str | None = None,
) -> alt.TopLevelMixin:
    """Monthly estimates for each site (or district), one of them highlighted from a dropdown.

    Every group is drawn as a faint line; the chosen group is drawn in colour
    with its 95% confidence band; the programme overall, when the frame has
    it, is the dark dashed line. With several outcomes a second dropdown picks
    the outcome (or pass ``outcome`` to fix one).
    """
    if period_column not in frame.columns:
        raise ParameterError(
            f"trend_chart: the frame has no {period_column!r} column; columns: {list(frame.columns)}. "
            "Pass period_column= the monthly date column."
        )
    data = _prepare(frame, threshold=threshold, rounding=rounding, keep=[period_column])
    data = data[data["is_overall"]]
    data = data.assign(period=pd.to_datetime(data[period_column]).dt.strftime("%Y-%m-%d"))
    if outcome is not None:
        data = data[data["outcome"] == outcome]
    groups = data[data["group_type"].astype(str) == group_type]
    if groups.empty:
        seen = sorted(data["group_type"].astype(str).unique())
        raise ParameterError(f"trend_chart: no rows with group_type {group_type!r} (seen {seen}); check group_type=")
    programme = data[data["group_type"].astype(str).str.lower().isin(OVERALL_VALUES)]
    percent = _is_proportion(groups)
    names = _present(groups, "group")
    if not names:
        raise ParameterError(f"trend_chart: every {group_type} estimate is suppressed or missing")
    focus = alt.param(
        name=f"focus_{_slug(group_type)}",
        value=names[0],
        bind=alt.binding_select(options=names, name=f"Highlight {group_type}: "),
    )
    outcomes = _present(groups, "outcome")
    params: list[alt.Parameter] = [focus]
    outcome_filter = None
    if len(outcomes) > 1:
        chosen_outcome = alt.param(
            name=f"outcome_{_slug(group_type)}",
            value=outcomes[0],
            bind=alt.binding_select(options=outcomes, labels=[_label(o) for o in outcomes], name="Outcome: "),
        )
        params.insert(0, chosen_outcome)
        outcome_filter = alt.datum.outcome == chosen_outcome
    x = alt.X("period:T", title="Month", axis=alt.Axis(format="%b %Y", labelOverlap=True, tickCount="month"))
    y = alt.Y("estimate:Q", title=_label(outcomes[0]) if len(outcomes) == 1 else "Estimate", axis=_value_axis(percent))
    tooltip = _tooltip(
        percent,
        first=[
            alt.Tooltip("group:N", title=group_type.capitalize()),
            alt.Tooltip("period:T", title="Month", format="%B %Y"),
        ],
    )

    # One dataset for every layer, each layer picking its rows: the places, or the programme line.
    places = alt.datum.group_type == group_type
    whole = alt.datum.group_type != group_type

    def filtered(rows: Any) -> alt.Chart:
        base = alt.Chart().transform_filter(rows)
        return base.transform_filter(outcome_filter) if outcome_filter is not None else base

    faint = (
        filtered(places).mark_line(color=MUTED_COLOUR, strokeWidth=1, opacity=0.7).encode(x=x, y=y, detail="group:N")
    )
    chosen = filtered(places).transform_filter(alt.datum.group == focus)
    band = chosen.mark_area(color=PALETTE[0], opacity=0.18).encode(x=x, y="conf_low:Q", y2="conf_high:Q")
    line = chosen.mark_line(color=PALETTE[0], strokeWidth=2.5, point=alt.OverlayMarkDef(color=PALETTE[0])).encode(
        x=x, y=y, tooltip=tooltip
    )
    layers = [faint, band, line]
    if not programme.empty:
        overall_tooltip = _tooltip(percent, first=[alt.Tooltip("period:T", title="Month", format="%B %Y")])
        layers.append(
            filtered(whole)
            .mark_line(color=OVERALL_COLOUR, strokeDash=[5, 3], strokeWidth=1.5)
            .encode(x=x, y=y, tooltip=overall_tooltip)
        )
    heading = title or f"Trend by {group_type}"
    subtitle = f"Highlighted {group_type} in colour with its 95% CI; other {group_type}s in grey"
    if not programme.empty:
        subtitle += "; programme overall dashed"
    rows = pd.concat([groups, programme], ignore_index=True)
    chart = alt.layer(*layers).properties(
        width="container",
        height=300,
        title=_title(heading, subtitle),
        description=_describe(f"Monthly trend by {group_type}", outcomes, []),
    )
    chart = chart.add_params(*params)
    # Inline values rather than a frame: a site chart holds sites x months x outcomes rows, past Altair's
    # 5,000-row guard for frames, and the page needs them all (the rows are already suppressed). A plain
    # mapping is not validated record by record as an InlineData object would be, and it is attached last
    # because every Altair method call deep-copies the chart with its data (seconds at this size).
    chart.data = {"values": frame_records(rows)}
    return chart


def reach_gaps(
    frame: pd.DataFrame,
    *,
    outcome: str | None = "reach",
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    title: str | None = None,
) -> alt.TopLevelMixin:
    """Each stratum's estimate against the overall one: a dot plot with 95% CI bars.

    Strata are grouped by equity dimension. A stratum is coloured "below" or
    "above" when its confidence interval excludes the overall estimate. When
    ``outcome`` is ``None`` and the frame holds several outcomes, a dropdown
    picks one.
    """
    data = _overall_groups(_prepare(frame, threshold=threshold, rounding=rounding))
    if outcome is not None:
        data = data[data["outcome"] == outcome]
    if data.empty:
        raise ParameterError(f"reach_gaps: no rows for outcome {outcome!r}; outcomes seen: {_seen(frame)}")
    strata = _against_overall(data[~data["is_overall"]], data[data["is_overall"]])
    if strata["estimate"].isna().all():
        raise ParameterError("reach_gaps: the frame has no equity strata with an estimate to show")
    outcomes = _present(strata[strata["overall_estimate"].notna()], "outcome")
    if not outcomes:
        raise ParameterError("reach_gaps: no outcome has both stratum and overall estimates")
    param = _outcome_param("gap_outcome", outcomes)
    percent = _is_proportion(strata)
    dimensions = _dimensions(strata)
    panels = []
    for i, dimension in enumerate(dimensions):
        last = i == len(dimensions) - 1
        x_title = (_label(outcomes[0]) if len(outcomes) == 1 else "Estimate") if last else None
        panels.append(
            _dots_against_reference(
                None,
                y="stratum_label:N",
                sort=None,
                x_title=x_title,
                percent=percent,
                param=param,
                rows=alt.datum.stratum_dimension == dimension,
            )
            .properties(width=420, height=alt.Step(18))
            .properties(title=alt.TitleParams(_label(dimension), anchor="start", fontSize=13))
        )
    heading = title or (f"{_label(outcomes[0])} gaps by stratum" if len(outcomes) == 1 else "Gaps by stratum")
    chart = (
        alt.vconcat(*panels, spacing=14, data=strata)
        .resolve_scale(x="shared", color="shared")
        .properties(title=_title(heading, "Dashed line: overall estimate. Bars: 95% confidence intervals"))
    )
    if param is not None:
        chart = chart.add_params(param)
    return chart.properties(description=_describe("Dot plot of gaps", outcomes, dimensions))


def group_comparison(
    frame: pd.DataFrame,
    *,
    group_type: str = "district",
    outcomes: Sequence[str] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    title: str | None = None,
) -> alt.TopLevelMixin:
    """Each district (or site) against the programme overall: dots with 95% CI bars, sorted by estimate.

    Uses the rows of ``group_type`` for all people (no equity stratum). A
    dropdown picks the outcome when there are several.
    """
    data = _prepare(frame, threshold=threshold, rounding=rounding)
    data = data[data["is_overall"]]
    if outcomes is not None:
        data = data[data["outcome"].isin(list(outcomes))]
    kinds = data["group_type"].astype(str)
    groups = data[kinds == group_type].assign(stratum_label=lambda d: d["group"].astype(str))
    if groups.empty:
        seen = sorted(kinds.unique())
        raise ParameterError(f"group_comparison: no rows with group_type {group_type!r} (seen {seen})")
    groups = _against_overall(groups, _overall_groups(data[kinds != group_type]))
    if groups["estimate"].isna().all():
        raise ParameterError(f"group_comparison: every {group_type} estimate is suppressed or missing")
    names = _ordered(list(outcomes or []), _present(groups[groups["overall_estimate"].notna()], "outcome"))
    if not names:
        raise ParameterError(f"group_comparison: no outcome has both {group_type} and overall estimates")
    param = _outcome_param(f"outcome_{_slug(group_type)}", names)
    percent = _is_proportion(groups)
    x_title = _label(names[0]) if len(names) == 1 else "Estimate"
    sort = alt.EncodingSortField(field="estimate", order="descending")
    chart = _dots_against_reference(
        groups, y="stratum_label:N", sort=sort, x_title=x_title, percent=percent, param=param, y_title=group_type
    ).properties(
        width=520,
        height=alt.Step(16),
        title=_title(
            title or f"{_label(group_type)}s compared",
            f"Each {group_type} with its 95% CI; dashed line: programme overall",
        ),
    )
    if param is not None:
        chart = chart.add_params(param)
    return chart.properties(description=_describe(f"Comparison of {group_type}s", names, []))


def monthly_trend(
    frame: pd.DataFrame,
    *,
    outcomes: Sequence[str] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    title: str = "Month by month",
) -> alt.TopLevelMixin:
    """Programme-wide estimates per month: overall (dashed) and each stratum of a chosen dimension.

    Reads rows with ``group_type == "month"`` whose ``group`` is a month label
    such as ``2024-01`` (or a ``period`` column). Dropdowns pick the outcome
    and the equity dimension.
    """
    data = _prepare(frame, threshold=threshold, rounding=rounding)
    data = data[data["group_type"].astype(str) == "month"]
    if outcomes is not None:
        data = data[data["outcome"].isin(list(outcomes))]
    source = data["period"] if "period" in data.columns else data["group"].astype(str) + "-01"
    months = pd.to_datetime(source, errors="coerce", format="mixed")
    data = data.assign(period=months.dt.strftime("%Y-%m-%d"))[months.notna()]
    if data.empty:
        raise ParameterError(f"monthly_trend: no monthly rows (group_type 'month'); outcomes seen: {_seen(frame)}")
    has_overall = bool(data["is_overall"].any())
    names = _ordered(list(outcomes or []), _present(data[data["is_overall"]] if has_overall else data, "outcome"))
    if not names:
        raise ParameterError("monthly_trend: every monthly estimate is suppressed or missing")
    outcome_param = _outcome_param("trend_outcome", names)
    percent = _is_proportion(data)
    strata = data[~data["is_overall"]]
    dimensions = _dimensions(strata)
    x = alt.X("period:T", title="Month", axis=alt.Axis(format="%b %Y", labelOverlap=True, tickCount="month"))
    y = alt.Y("estimate:Q", title=_label(names[0]) if len(names) == 1 else "Estimate", axis=_value_axis(percent))
    tooltip = _tooltip(percent, first=[alt.Tooltip("period:T", title="Month", format="%B %Y")])

    def base(rows: str) -> alt.Chart:
        chart = alt.Chart().transform_filter(rows)
        return chart.transform_filter(alt.datum.outcome == outcome_param) if outcome_param is not None else chart

    layers: list[alt.Chart] = []
    params: list[alt.Parameter] = [p for p in (outcome_param,) if p is not None]
    if dimensions:
        dimension = _dimension_param(dimensions, name="trend_dimension")
        params.append(dimension)
        colour = alt.Color("stratum_label:N", sort=None, title="Stratum", scale=alt.Scale(range=list(PALETTE)))
        chosen = base(STRATA_ONLY).transform_filter(alt.datum.stratum_dimension == dimension)
        layers.append(chosen.mark_line(strokeWidth=1.8, point=True).encode(x=x, y=y, color=colour, tooltip=tooltip))
    overall = data[data["is_overall"]]
    if not overall.empty:
        band = (
            base(OVERALL_ONLY)
            .mark_area(color=OVERALL_COLOUR, opacity=0.08)
            .encode(x=x, y="conf_low:Q", y2="conf_high:Q")
        )
        line = (
            base(OVERALL_ONLY)
            .mark_line(color=OVERALL_COLOUR, strokeDash=[5, 3], strokeWidth=2)
            .encode(x=x, y=y, tooltip=tooltip)
        )
        layers = [band, *layers, line]
    subtitle = "Dashed line and grey band: all people, with 95% CI"
    if dimensions:
        subtitle += "; coloured lines: strata of the chosen dimension"
    chart = alt.layer(*layers, data=data).properties(width="container", height=300, title=_title(title, subtitle))
    if params:
        chart = chart.add_params(*params)
    return chart.properties(description=_describe("Monthly trend", names, dimensions))


def _against_overall(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Add the overall estimate per outcome, the gap to it and whether the CI excludes it."""
    overall = reference.groupby("outcome")["estimate"].first()
    out = rows.copy()
    out["overall_estimate"] = out["outcome"].map(overall)
    out["gap"] = out["estimate"] - out["overall_estimate"]
    out["position"] = [
        _position(low, high, ref)
        for low, high, ref in zip(out["conf_low"], out["conf_high"], out["overall_estimate"], strict=True)
    ]
    return out


def _dots_against_reference(
    part: pd.DataFrame | None,
    *,
    y: str,
    sort: Any,
    x_title: str | None,
    percent: bool,
    param: alt.Parameter | None,
    y_title: str | None = None,
    rows: Any = None,
) -> alt.LayerChart:
    """Dots with CI bars against a dashed overall line.

    ``part`` is the data (``None`` uses the parent chart's); ``rows`` filters it.
    """
    # Rows without an estimate (suppressed) stay in the data but are not drawn, so they leave no empty line.
    base = alt.Chart().transform_filter("isValid(datum.estimate)")
    if rows is not None:
        base = base.transform_filter(rows)
    if param is not None:
        base = base.transform_filter(alt.datum.outcome == param)
    y_channel = alt.Y(y, sort=sort, title=_label(y_title) if y_title else None)
    x = alt.X("estimate:Q", title=x_title, axis=_value_axis(percent))
    colour = alt.Color(
        "position:N",
        title="Against overall",
        scale=alt.Scale(domain=["below", "similar", "above"], range=["#D55E00", "#6b7280", "#0072B2"]),
    )
    gap_format = ".1%" if percent else ".2f"
    first = [alt.Tooltip("group:N", title="Group")] if y_title else []
    tooltip = [
        *_tooltip(percent, first=first),
        alt.Tooltip("overall_estimate:Q", title="Overall", format=gap_format),
        alt.Tooltip("gap:Q", title="Difference from overall", format="+" + gap_format),
    ]
    reference = base.mark_rule(color=OVERALL_COLOUR, strokeDash=[4, 3]).encode(x="overall_estimate:Q")
    bars = base.mark_rule(strokeWidth=2).encode(
        y=y_channel, x="conf_low:Q", x2="conf_high:Q", color=colour, tooltip=tooltip
    )
    dots = base.mark_point(filled=True, size=70).encode(y=y_channel, x=x, color=colour, tooltip=tooltip)
    if part is None:
        return alt.LayerChart(layer=[reference, bars, dots])
    return alt.LayerChart(layer=[reference, bars, dots], data=part)


def _outcome_param(name: str, outcomes: list[str]) -> alt.Parameter | None:
    if len(outcomes) <= 1:
        return None
    return alt.param(
        name=name,
        value=outcomes[0],
        bind=alt.binding_select(options=outcomes, labels=[_label(o) for o in outcomes], name="Outcome: "),
    )


def _prepare(frame: pd.DataFrame, *, threshold: int, rounding: int | None, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Suppress small cells, fill the tidy columns and add the labels the charts use.

    Only the columns the charts read are kept (plus ``keep`` and ``period``),
    and numbers are rounded to six decimals, to keep the page light.
    """
    missing = [c for c in ("outcome", "estimate") if c not in frame.columns]
    if missing:
        raise ParameterError(
            f"chart: the frame lacks the tidy columns {missing}; "
            f"expected {list(TIDY_COLUMNS)}, saw {list(frame.columns)}"
        )
    data = suppress_frame(frame, threshold=threshold, rounding=rounding).frame
    for column in TIDY_COLUMNS:
        if column not in data.columns:
            data[column] = pd.NA
    data = data.reset_index(drop=True)
    data["outcome"] = data["outcome"].astype(str)
    dimension = data["stratum_dimension"].astype("string").fillna("all")
    data["is_overall"] = dimension.str.lower().isin(OVERALL_VALUES).astype(bool)
    data["stratum_dimension"] = dimension.where(~data["is_overall"], "all")
    data["stratum"] = data["stratum"].astype("string").fillna("all")
    data["stratum_label"] = data["stratum"].where(~data["is_overall"], "Overall").astype(str)
    data["dimension_label"] = data["stratum_dimension"].map(_label)
    data["kind"] = data["is_overall"].map({True: "Overall", False: "Stratum"})
    data["group_type"] = data["group_type"].astype("string").fillna("overall")
    data["group"] = data["group"].astype("string").fillna("all")
    for column in ("numerator", "denominator", "estimate", "conf_low", "conf_high"):
        data[column] = pd.to_numeric(data[column], errors="coerce").round(6)
    wanted = [*CHART_COLUMNS, *keep]
    return data[[c for c in data.columns if c in wanted]]


def _overall_groups(data: pd.DataFrame) -> pd.DataFrame:
    """Rows describing the whole programme rather than one site or district."""
    kinds = data["group_type"].astype(str).str.lower()
    chosen = data[kinds.isin(OVERALL_VALUES)]
    if chosen.empty and kinds.nunique() == 1:
        return data
    return chosen


def _dimensions(strata: pd.DataFrame) -> list[str]:
    """Equity dimensions with at least one estimate to draw, in order of appearance."""
    return _present(strata, "stratum_dimension")


def _present(data: pd.DataFrame, column: str) -> list[str]:
    """Values of ``column`` with at least one estimate (a dropdown offers nothing that draws empty)."""
    shown = data[data["estimate"].notna()]
    return list(dict.fromkeys(shown[column].astype(str)))


def _dimension_param(dimensions: list[str], *, name: str = "equity_dimension") -> alt.Parameter:
    return alt.param(
        name=name,
        value=dimensions[0],
        bind=alt.binding_select(options=dimensions, labels=[_label(d) for d in dimensions], name="Equity dimension: "),
    )


def _tooltip(percent: bool, *, first: Sequence[alt.Tooltip] = ()) -> list[alt.Tooltip]:
    value = ".1%" if percent else ".2f"
    return [
        *first,
        alt.Tooltip("dimension_label:N", title="Equity dimension"),
        alt.Tooltip("stratum_label:N", title="Stratum"),
        alt.Tooltip("estimate:Q", title="Estimate", format=value),
        alt.Tooltip("conf_low:Q", title="95% CI low", format=value),
        alt.Tooltip("conf_high:Q", title="95% CI high", format=value),
        alt.Tooltip("numerator:Q", title="Numerator", format=",.0f"),
        alt.Tooltip("denominator:Q", title="Denominator", format=",.0f"),
    ]


def _value_axis(percent: bool) -> alt.Axis:
    return alt.Axis(format="~%" if percent else ",~r", grid=True, tickCount=5)


def _value_scale(
    data: pd.DataFrame, percent: bool, *, zero: bool = True, domain: tuple[float, float] | None = None
) -> alt.Scale:
    """0-100% for proportions that stay within it; otherwise the data's own range (or ``domain``)."""
    if percent and _within_unit(data):
        return alt.Scale(domain=[0, 1])
    if domain is not None and not percent:
        return alt.Scale(domain=list(domain))
    return alt.Scale(zero=zero)


def _is_proportion(data: pd.DataFrame) -> bool:
    """Whether estimates are proportions, shown as percentages.

    The tidy ``measure`` decides when the frame has one (a share of need can
    pass 100% where more people are detected than estimated in need);
    otherwise estimates and limits must all lie within 0..1.
    """
    if "measure" in data.columns and data["measure"].notna().any():
        measures = set(data["measure"].dropna().astype(str))
        return measures <= PROPORTION_MEASURES
    return _within_unit(data)


def _within_unit(data: pd.DataFrame) -> bool:
    values = pd.concat([data["estimate"], data["conf_low"], data["conf_high"]]).dropna()
    return bool(((values >= 0) & (values <= 1)).all())


def _position(low: Any, high: Any, reference: Any) -> str:
    if pd.isna(low) or pd.isna(high) or pd.isna(reference):
        return "similar"
    if high < reference:
        return "below"
    if low > reference:
        return "above"
    return "similar"


def _ordered(preferred: list[str], present: Any) -> list[str]:
    seen = [str(p) for p in present]
    lowered = {s.lower(): s for s in seen}
    named = [lowered[p.lower()] for p in preferred if p.lower() in lowered]
    return named + [s for s in seen if s not in named]


def _label(name: Any) -> str:
    text = str(name).replace("_", " ").strip()
    if text.lower() in OVERALL_VALUES:
        return "Overall"
    return text[:1].upper() + text[1:]


def _stage_label(stage: str) -> str:
    return STAGE_LABELS.get(stage.lower(), _label(stage))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower())


def _seen(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["outcome"].astype(str).unique()) if "outcome" in frame.columns else []


def _title(text: str, subtitle: str) -> alt.TitleParams:
    return alt.TitleParams(text=text, subtitle=subtitle, anchor="start")


def _funnel_subtitle(overall: pd.DataFrame) -> str:
    parts = ["Bars: strata of the chosen dimension, with 95% CIs"]
    if not overall.empty:
        parts.append("dashed line: programme overall")
    return "; ".join(parts)


def _panel_subtitle(dimensions: list[str]) -> str:
    if dimensions:
        return "Dark: overall; blue: strata of the chosen dimension. Lines are 95% confidence intervals"
    return "Lines are 95% confidence intervals"


def _describe(kind: str, outcomes: Sequence[str], dimensions: Sequence[str]) -> str:
    text = f"{kind} of {', '.join(_label(o) for o in outcomes)}"
    if dimensions:
        text += f"; equity dimension chosen from a list ({', '.join(_label(d) for d in dimensions)})"
    return text + "."
