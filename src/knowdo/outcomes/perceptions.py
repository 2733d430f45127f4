"""AIM, IAM and FIM: providers' perceived acceptability, appropriateness and feasibility.

Weiner et al. (*Implement Sci* 2017;12:108): three separate 4-item scales,
each item rated 1 (completely disagree) to 5 (completely agree). A scale's
score is the mean of its four items (1-5). The three are never summed or
combined, no item is reverse-scored and there are no validated cut-offs; the
share of responses scoring 4 or more ("agree") is reported as an informal
threshold only (frameworks.md section 2.3). They are perceptions, often
leading indicators of adoption, and not the same thing as the behavioural
outcomes of the same names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import altair as alt
import numpy as np
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.outcomes.charts import Chart, chart_data
from knowdo.outcomes.groups import (
    GROUPINGS,
    KEYS,
    Grouping,
    check_columns,
    check_groupings,
    expand_groups,
    lookup,
    sort_tidy,
)
from knowdo.outcomes.intervals import DEFAULT_LEVEL, grouped_mean, wilson_unchecked, z_value
from knowdo.outcomes.results import OutcomeResult, concat_tidy, level_text, make_tidy, num, num_ci, pct_ci

SCALES = ("AIM", "IAM", "FIM")
SCALE_NAMES = {"AIM": "acceptability", "IAM": "appropriateness", "FIM": "feasibility"}
ITEMS = ("item_1", "item_2", "item_3", "item_4")
# Items are rated 1-5 (Weiner et al. 2017).
ITEM_MIN, ITEM_MAX = 1, 5
# Mean >= 4 ("agree") is a common informal threshold; there is no validated cut-off (frameworks.md section 2.3).
AGREE_THRESHOLD = 4.0
PERCEPTION_COLUMNS = ("measure_id", "provider_id", "site_id", "date", "instrument", "total", *ITEMS)


def scale_scores(perceptions: pd.DataFrame) -> pd.DataFrame:
    """One score per AIM/IAM/FIM response: the mean of its four items.

    When an item is missing the recorded ``total`` (itself the item mean)
    is used; with neither, the score is missing. Rows of other instruments
    are ignored.

    Returns
    -------
    DataFrame with ``measure_id, provider_id, site_id, date, instrument, score, source``
    (``source`` is ``items`` or ``total``).

    Raises
    ------
    ParameterError
        If an item lies outside 1-5.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"measure_id": ["m1"], "provider_id": ["p1"], "site_id": ["s1"],
    ...                    "date": [pd.Timestamp("2024-03-01")], "instrument": ["AIM"], "total": [None],
    ...                    "item_1": [4], "item_2": [5], "item_3": [4], "item_4": [3]})
    >>> float(scale_scores(df)["score"].iloc[0])
    4.0
    """
    check_columns(perceptions, PERCEPTION_COLUMNS, "perceptions")
    rows = perceptions.loc[perceptions["instrument"].isin(SCALES)]
    items = rows[list(ITEMS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isnan(items) & ((items < ITEM_MIN) | (items > ITEM_MAX))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ParameterError(
            f"AIM/IAM/FIM items must lie between {ITEM_MIN} and {ITEM_MAX} (got {items[i, j]:g} in {ITEMS[j]} of "
            f"measure {rows['measure_id'].iloc[i]!r}); fix the source data and reload."
        )
    complete = ~np.isnan(items).any(axis=1)
    with np.errstate(invalid="ignore"):
        item_mean = np.where(complete, np.nanmean(np.where(complete[:, None], items, 0.0), axis=1), np.nan)
    total = pd.to_numeric(rows["total"], errors="coerce").to_numpy(float)
    score = np.where(complete, item_mean, total)
    source = np.where(complete, "items", np.where(np.isnan(total), "missing", "total"))
    return pd.DataFrame(
        {
            "measure_id": rows["measure_id"].to_numpy(),
            "provider_id": rows["provider_id"].to_numpy(),
            "site_id": rows["site_id"].astype(str).to_numpy(),
            "date": pd.to_datetime(rows["date"]).to_numpy(),
            "instrument": rows["instrument"].astype(str).to_numpy(),
            "score": score,
            "source": source,
        }
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class Perceptions(OutcomeResult):
    """AIM/IAM/FIM summaries: one block per scale, never combined.

    Tidy rows: ``domain='perceptions'``, ``outcome`` the scale (``AIM``,
    ``IAM``, ``FIM``), ``measure`` ``mean`` (t interval), ``sd`` or
    ``share_agree_informal`` (share of responses scoring ≥ 4, Wilson interval;
    an informal threshold, not a validated cut-off). ``scores`` holds one
    scale score per response.
    """

    kind: ClassVar[str] = "perceptions"

    scores: pd.DataFrame
    agree_threshold: float = AGREE_THRESHOLD

    def settings(self) -> dict[str, Any]:
        return {
            "scales": list(SCALES),
            "scoring": "mean of 4 items (1-5); scales are never combined",
            "agree_threshold_informal": self.agree_threshold,
        }

    def summary(self) -> str:
        """Plain-text summary per scale for all sites and the whole period."""
        lines = [f"Provider perceptions (AIM/IAM/FIM, 1-5; {level_text(self.level)} intervals)"]
        for scale in SCALES:
            mean = self.select(scale, "mean")
            if mean.empty or not np.isfinite(mean.iloc[0]["denominator"]):
                lines.append(f"  {scale} ({SCALE_NAMES[scale]}): no responses")
                continue
            m = mean.iloc[0]
            sd = self.value(scale, "sd")
            share = self.select(scale, "share_agree_informal")
            text = (
                f"  {scale} ({SCALE_NAMES[scale]}): mean {num_ci(m, 2)}, SD {num(sd, 2)}, "
                f"n = {num(m['denominator'])} responses"
            )
            if not share.empty:
                text += f"; {pct_ci(share.iloc[0])} scored {self.agree_threshold:g} or more (informal)"
            lines.append(text)
        lines.append(
            "  Each scale is the mean of its 4 items; the three are reported separately and never combined. "
            f"'{self.agree_threshold:g} or more' is an informal 'agree' threshold, not a validated cut-off."
        )
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self, group_type: str = "overall") -> Chart:
        """Mean score per scale with intervals on the 1-5 scale, per group of ``group_type``."""
        data = self.select(measure="mean", group_type=group_type)
        if data.empty:
            raise ParameterError(f"nothing to plot for group_type {group_type!r}: no AIM/IAM/FIM rows.")
        data = chart_data(data)
        scale = alt.Scale(domain=[ITEM_MIN, ITEM_MAX])
        x = alt.X("outcome:N", title="Scale", sort=list(SCALES), axis=alt.Axis(labelAngle=0))
        base = alt.Chart(data)
        offset = {} if group_type == "overall" else {"xOffset": alt.XOffset("group:N")}
        colour = alt.Color("outcome:N", title="Scale") if group_type == "overall" else alt.Color("group:N")
        points = base.mark_point(filled=True, size=80).encode(
            x=x,
            y=alt.Y("estimate:Q", scale=scale, title="Mean score (1-5)"),
            color=colour,
            tooltip=["outcome:N", "group:N", alt.Tooltip("estimate:Q", format=".2f"), "denominator:Q"],
            **offset,
        )
        rules = base.mark_rule().encode(
            x=x, y=alt.Y("conf_low:Q", scale=scale), y2="conf_high:Q", color=colour, **offset
        )
        agree = alt.Chart(pd.DataFrame({"y": [self.agree_threshold]})).mark_rule(strokeDash=[4, 4], color="grey")
        return alt.layer(points, rules, agree.encode(y="y:Q")).properties(
            title="AIM / IAM / FIM: mean scores (dashed: informal 'agree' line)"
        )


def compute_perceptions(
    perceptions: pd.DataFrame,
    *,
    sites: pd.DataFrame | None = None,
    by: Sequence[Grouping] = GROUPINGS,
    level: float = DEFAULT_LEVEL,
) -> Perceptions:
    """Summaries of each AIM/IAM/FIM scale: mean, SD, n, interval and the informal ≥ 4 share.

    Grouped by ``by`` (``district`` needs ``sites`` for each site's parent;
    periods use the response date). Providers have no equity stratum, so
    every row has ``stratum_dimension='all'``. ``perceptions`` is not modified.

    Examples
    --------
    >>> result = compute_perceptions(perceptions, sites=sites)  # doctest: +SKIP
    >>> result.value("AIM", "mean")  # doctest: +SKIP
    """
    groupings = check_groupings(by)
    z = z_value(level)
    scores = scale_scores(perceptions)
    notes = []
    n_missing = int((scores["source"] == "missing").sum())
    if n_missing:
        notes.append(f"{n_missing} response(s) had neither all four items nor a total and were left out.")
    n_total = int((scores["source"] == "total").sum())
    if n_total:
        notes.append(f"{n_total} response(s) with missing items were scored from their recorded total.")
    data = scores.loc[scores["source"] != "missing"].rename(columns={"date": "period"})
    if sites is not None and "parent_id" in sites.columns:
        parent = sites.set_index(sites["site_id"].astype(str))["parent_id"]
        data = data.assign(district_id=lookup(data["site_id"], parent))
    else:
        data = data.assign(district_id=np.nan)
        if "district" in groupings:
            notes.append("No sites table was given, so there are no district rows.")
    data = data.assign(agree=(data["score"] >= AGREE_THRESHOLD).astype(float))
    stack = expand_groups(data, groupings).assign(stratum_dimension="all", stratum="all")
    parts = []
    keys = ["instrument", *KEYS]
    means = grouped_mean(stack, keys, "score", level)
    shares = stack.groupby(keys, sort=False)["agree"].agg(["sum", "count"]).reset_index()
    low, high = wilson_unchecked(shares["sum"].to_numpy(float), shares["count"].to_numpy(float), z)
    for scale in SCALES:
        m = means.loc[means["instrument"] == scale]
        parts.append(
            make_tidy(
                m,
                domain="perceptions",
                outcome=scale,
                measure="mean",
                numerator=m["numerator"],
                denominator=m["denominator"],
                estimate=m["estimate"],
                std_error=m["std_error"],
                conf_low=m["conf_low"],
                conf_high=m["conf_high"],
                method="t",
                unit="score",
                denominator_unit="providers",
            )
        )
        parts.append(
            make_tidy(
                m,
                domain="perceptions",
                outcome=scale,
                measure="sd",
                numerator=np.nan,
                denominator=m["denominator"],
                estimate=m["sd"],
                method="sample_sd",
                unit="score",
                denominator_unit="providers",
            )
        )
        sel = (shares["instrument"] == scale).to_numpy()
        s = shares.loc[sel]
        with np.errstate(divide="ignore", invalid="ignore"):
            est = s["sum"].to_numpy(float) / s["count"].to_numpy(float)
        parts.append(
            make_tidy(
                s,
                domain="perceptions",
                outcome=scale,
                measure="share_agree_informal",
                numerator=s["sum"],
                denominator=s["count"],
                estimate=est,
                conf_low=low[sel],
                conf_high=high[sel],
                method="wilson",
                unit="providers",
            )
        )
    return Perceptions(
        table=sort_tidy(concat_tidy(parts)),
        level=level,
        notes=tuple(notes),
        scores=scores,
    )
