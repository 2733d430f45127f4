"""HEAT Plus tables in and out: read and write the WHO template, and build one from the knowdo panel.

A HEAT Plus table has one row per setting x date x source x indicator x
dimension x subgroup, with the subgroup estimate, its standard error and
population, and the flags HEAT needs (frameworks.md section 4.1):

    setting, date, source, indicator_abbr, indicator_name, dimension, subgroup,
    estimate, se, ci_lb, ci_ub, population, flag, setting_average, iso3,
    favourable_indicator, indicator_scale, ordered_dimension, subgroup_order,
    reference_subgroup

Older templates say ``year`` for ``date`` and ``indicator`` for
``indicator_abbr``; :func:`normalise_heat_table` accepts both. Building from
the panel (:func:`heat_table_from_panel`) turns any numerator/denominator pair
of panel columns into an indicator, pooled over sites and over a period
(month, quarter, year or the whole window). Counts are flows and are summed;
``population`` and ``need`` are stocks, averaged over the months pooled for
each site and then summed over sites (as :mod:`knowdo.outcomes` does).

Standard errors from the panel are cluster-robust by default: the ratio
estimator's linearisation over sites (people at one clinic share its staff
and catchment, so a binomial SE would be too small).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from knowdo.equity.common import check_frame, check_option
from knowdo.equity.strata import Dimension, IndicatorSpec
from knowdo.errors import ParameterError

HEAT_COLUMNS = (
    "setting", "date", "source", "indicator_abbr", "indicator_name", "dimension", "subgroup",
    "estimate", "se", "ci_lb", "ci_ub", "population", "flag", "setting_average", "iso3",
    "favourable_indicator", "indicator_scale", "ordered_dimension", "subgroup_order", "reference_subgroup",
)  # fmt: skip
SET_KEYS = ("setting", "date", "source", "indicator_abbr", "dimension")
REQUIRED = ("indicator_abbr", "dimension", "subgroup", "estimate", "favourable_indicator", "ordered_dimension")
ALIASES = {
    "year": "date",
    "indicator": "indicator_abbr",
    "country": "setting",
    "favourable": "favourable_indicator",
    "ordered": "ordered_dimension",
    "scale": "indicator_scale",
    "reference": "reference_subgroup",
    "order": "subgroup_order",
    "pop": "population",
    "national": "setting_average",
}
STOCK_COLUMNS = ("population", "need")  # averaged over the months pooled (see module docstring)

Period = Literal["month", "quarter", "year", "all"]
SeMethod = Literal["cluster", "binomial"]
MIN_CLUSTERS = 5  # below 5 sites a sandwich SE is too unstable; fall back to binomial (Cameron & Miller 2015)


def _flag(series: pd.Series, name: str) -> pd.Series:
    """HEAT 0/1 flags; accept booleans and yes/no words too."""
    words = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0, "1.0": 1, "0.0": 0}
    text = series.astype(str).str.strip().str.lower()
    out = text.map(words)
    bad = out.isna() & series.notna() & (text != "") & (text != "nan")
    if bad.any():
        raise ParameterError(f"column '{name}' must hold 0/1 flags; saw {series[bad].iloc[0]!r}.")
    return out.fillna(0).astype(int)


def normalise_heat_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with HEAT Plus column names and types, checking the rules HEAT enforces.

    Raises :class:`ParameterError` naming the set and the rule when flags
    vary within an indicator or dimension, subgroup orders are not
    consecutive integers, a set flags more than one reference subgroup, or a
    subgroup appears twice.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"a HEAT table must be a pandas DataFrame; got {type(frame).__name__}.")
    out = frame.rename(columns={c: c.strip().lower() for c in frame.columns})
    out = out.rename(columns={k: v for k, v in ALIASES.items() if k in out.columns and v not in out.columns})
    check_frame(out, REQUIRED, "HEAT table")
    for column in ("setting", "date", "source", "indicator_name", "iso3", "flag"):
        if column not in out.columns:
            out[column] = ""
    for column in ("se", "ci_lb", "ci_ub", "population", "setting_average"):
        out[column] = pd.to_numeric(out[column], errors="coerce") if column in out.columns else np.nan
    if "indicator_scale" not in out.columns:
        raise ParameterError(
            "the HEAT table has no 'indicator_scale' column; give 100 for percentages, 1000 for rates per 1,000."
        )
    out["estimate"] = pd.to_numeric(out["estimate"], errors="coerce")
    out["indicator_scale"] = pd.to_numeric(out["indicator_scale"], errors="coerce")
    out["favourable_indicator"] = _flag(out["favourable_indicator"], "favourable_indicator")
    out["ordered_dimension"] = _flag(out["ordered_dimension"], "ordered_dimension")
    out["reference_subgroup"] = (
        _flag(out["reference_subgroup"], "reference_subgroup") if "reference_subgroup" in out.columns else 0
    )
    order = pd.to_numeric(out["subgroup_order"], errors="coerce") if "subgroup_order" in out.columns else 0
    out["subgroup_order"] = pd.Series(order, index=out.index).fillna(0).astype(float)
    for column in ("setting", "date", "source", "indicator_abbr", "indicator_name", "dimension", "subgroup"):
        out[column] = out[column].fillna("").astype(str)
    out = out[list(HEAT_COLUMNS) + [c for c in out.columns if c not in HEAT_COLUMNS]].reset_index(drop=True)
    _check_rules(out)
    return out


def _check_rules(table: pd.DataFrame) -> None:
    keys = list(SET_KEYS)
    dup = table.duplicated([*keys, "subgroup"], keep=False)
    if dup.any():
        row = table[dup].iloc[0]
        raise ParameterError(
            f"subgroup {row['subgroup']!r} appears more than once for indicator {row['indicator_abbr']!r}, "
            f"dimension {row['dimension']!r}, date {row['date']!r}; keep one row per subgroup."
        )
    per_indicator = table.groupby(["setting", "indicator_abbr"])[["favourable_indicator", "indicator_scale"]].nunique()
    bad = per_indicator[(per_indicator > 1).any(axis=1)]
    if len(bad):
        raise ParameterError(
            f"favourable_indicator and indicator_scale must be constant within an indicator; indicator "
            f"{bad.index[0][1]!r} has more than one value."
        )
    per_dimension = table.groupby(["setting", "dimension"])["ordered_dimension"].nunique()
    if (per_dimension > 1).any():
        raise ParameterError(
            f"ordered_dimension must be constant within a dimension; {per_dimension[per_dimension > 1].index[0][1]!r} "
            "is flagged both ordered and non-ordered."
        )
    refs = table.groupby(keys)["reference_subgroup"].sum()
    if (refs > 1).any():
        raise ParameterError(
            f"at most one reference subgroup per indicator and dimension; {refs[refs > 1].index[0]} "
            f"flags {int(refs.max())}."
        )
    ordered = table[table["ordered_dimension"] == 1]
    if len(ordered):
        order = ordered["subgroup_order"]
        grouped = ordered.assign(_whole=(order == np.floor(order))).groupby(keys)
        spread = grouped["subgroup_order"].agg(["min", "max", "size", "nunique"])
        whole = grouped["_whole"].all().to_numpy(dtype=bool)
        gaps = (spread["max"] - spread["min"] + 1 != spread["size"]) | (spread["nunique"] != spread["size"])
        broken = pd.Series(~whole | gaps.to_numpy(dtype=bool), index=spread.index)
        if broken.any():
            key = broken[broken].index[0]
            values = sorted(ordered.set_index(keys).loc[key, "subgroup_order"].tolist())
            raise ParameterError(
                f"subgroup_order must be consecutive integers in an ordered dimension; {key} has {values}."
            )


def read_heat_csv(path: str | Path) -> pd.DataFrame:
    """Read a HEAT Plus CSV (the WHO template) into a normalised table."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: file not found; give a HEAT Plus CSV.")
    try:
        frame = pd.read_csv(path, dtype={"date": str, "year": str, "setting": str, "subgroup": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ParameterError(f"{path}: not a readable CSV ({exc}).") from None
    try:
        return normalise_heat_table(frame)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None


def to_heat_plus(table: pd.DataFrame) -> pd.DataFrame:
    """The table in the HEAT Plus template's column order (for upload to HEAT Plus)."""
    normal = normalise_heat_table(table)
    return normal[list(HEAT_COLUMNS)].copy()


def write_heat_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` as a HEAT Plus CSV and return the path."""
    path = Path(path)
    to_heat_plus(table).to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- from the knowdo panel
def _period_labels(dates: pd.Series, period: Period) -> pd.Series:
    d = pd.to_datetime(dates)
    if period == "month":
        return d.dt.strftime("%Y-%m")
    if period == "quarter":
        return d.dt.year.astype(str) + "-Q" + d.dt.quarter.astype(str)
    if period == "year":
        return d.dt.year.astype(str)
    start, end = d.min(), d.max()
    return pd.Series(f"{start:%Y-%m}..{end:%Y-%m}", index=dates.index)


def pooled_counts(
    panel: pd.DataFrame,
    columns: Sequence[str],
    *,
    period: Period,
    by: Sequence[str] = ("dimension", "stratum"),
) -> pd.DataFrame:
    """Sum flows and average stocks per site over each period, keeping site as a column (for cluster SEs)."""
    cols = list(dict.fromkeys(columns))
    check_frame(panel, ["site_id", "period", *by, *cols], "panel")
    frame = panel[["site_id", "period", *by, *cols]].copy()
    frame["date"] = _period_labels(frame["period"], period)
    keys = ["date", *by, "site_id"]
    flows = [c for c in cols if c not in STOCK_COLUMNS]
    stocks = [c for c in cols if c in STOCK_COLUMNS]
    agg: dict[str, str] = {c: "sum" for c in flows}
    agg.update({c: "mean" for c in stocks})
    for c in cols:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    return frame.groupby(keys, sort=True, dropna=False).agg(agg).reset_index()


def heat_table_from_panel(
    panel: pd.DataFrame,
    dimensions: Sequence[Dimension],
    indicators: Sequence[IndicatorSpec],
    *,
    period: Period = "year",
    setting: str = "",
    se_method: SeMethod = "cluster",
) -> pd.DataFrame:
    """A HEAT Plus table for every indicator x dimension x period of the panel.

    ``estimate = scale * sum(numerator) / sum(denominator)`` pooled over
    sites (``1 - ...`` for complement indicators); ``population`` is the
    pooled denominator; ``setting_average`` comes from the panel's
    ``dimension == 'all'`` rows. The pooled numerator and denominator are
    kept as extra columns for disclosure control.

    Examples
    --------
    >>> panel = pd.DataFrame({"site_id": ["a"] * 3, "period": pd.to_datetime(["2024-01-01"] * 3),
    ...     "dimension": ["all", "sex", "sex"], "stratum": ["all", "female", "male"],
    ...     "started": [30, 20, 10], "positive": [60, 40, 20]})
    >>> sex = Dimension("sex", "Gender/sex", False, ("female", "male"))
    >>> t = heat_table_from_panel(panel, [sex], [IndicatorSpec("start", "started", "positive")], se_method="binomial")
    >>> t[["subgroup", "estimate", "setting_average"]].values.tolist()
    [['female', 50.0, 50.0], ['male', 50.0, 50.0]]
    """
    check_option("period", period, ("month", "quarter", "year", "all"))
    check_option("se_method", se_method, ("cluster", "binomial"))
    if not indicators:
        raise ParameterError("heat_table_from_panel: give at least one indicator.")
    columns = [c for spec in indicators for c in (spec.numerator, spec.denominator)]
    names = {d.name for d in dimensions}
    keep = panel["dimension"].isin(names | {"all"})
    pooled = pooled_counts(panel[keep], columns, period=period)
    return _indicator_rows(pooled, indicators, dimensions, setting, se_method)


def _indicator_rows(
    pooled: pd.DataFrame,
    specs: Sequence[IndicatorSpec],
    dimensions: Sequence[Dimension],
    setting: str,
    se_method: SeMethod,
) -> pd.DataFrame:
    """Every indicator at once: ratio estimates per period x stratum with binomial or cluster SEs."""
    keys = ["date", "dimension", "stratum"]
    group = pooled.groupby(keys, sort=True, dropna=False)
    gid = group.ngroup().to_numpy()
    index = group.size().index.to_frame(index=False)
    n_groups = len(index)
    num = pooled[[s.numerator for s in specs]].fillna(0.0).to_numpy(dtype=float)
    den = pooled[[s.denominator for s in specs]].fillna(0.0).to_numpy(dtype=float)

    def by_group(values: np.ndarray) -> np.ndarray:
        out = np.zeros((n_groups, values.shape[1]))
        np.add.at(out, gid, values)
        return out

    tot_n, tot_d = by_group(num), by_group(den)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(tot_d > 0, tot_n / tot_d, np.nan)
        resid2 = by_group((num - share[gid] * den) ** 2)
        clusters = by_group((den > 0).astype(float))
        cluster_se = np.sqrt(clusters / (clusters - 1.0) * resid2) / tot_d
        binomial_se = np.sqrt(share * np.clip(1.0 - share, 0.0, None) / tot_d)
    se = binomial_se if se_method == "binomial" else np.where(clusters >= MIN_CLUSTERS, cluster_se, binomial_se)
    complement = np.array([s.complement for s in specs])
    scale = np.array([s.scale for s in specs])
    estimate = np.where(complement, 1.0 - share, share) * scale
    se = se * scale
    # Setting average per period and indicator, from the 'all' rows.
    overall = index["dimension"].to_numpy() == "all"
    average = pd.DataFrame(estimate[overall], index=index.loc[overall, "date"].to_numpy())
    parts = []
    for dim in dimensions:
        mine = (index["dimension"] == dim.name).to_numpy() & index["stratum"].isin(dim.levels).to_numpy()
        rows = np.flatnonzero(mine)
        if not rows.size:
            continue
        level_rank = {level: i for i, level in enumerate(dim.levels)}
        sub = index.iloc[rows]
        order = np.lexsort((sub["stratum"].map(level_rank).to_numpy(), sub["date"].to_numpy()))
        rows = rows[order]
        sub = index.iloc[rows].reset_index(drop=True)
        k = len(specs)
        take = np.repeat(rows, k)
        spec_i = np.tile(np.arange(k), len(rows))
        stratum = np.repeat(sub["stratum"].to_numpy(dtype=object), k)
        dates = np.repeat(sub["date"].to_numpy(dtype=object), k)
        avg = average.reindex(sub["date"].to_numpy()).to_numpy(dtype=float) if len(average) else np.full(
            (len(rows), k), np.nan)
        parts.append(pd.DataFrame({
            "date": dates,
            "dimension": dim.name,
            "subgroup": stratum,
            "estimate": estimate[take, spec_i],
            "se": se[take, spec_i],
            "numerator": tot_n[take, spec_i],
            "denominator": tot_d[take, spec_i],
            "setting_average": avg.ravel(),
            "subgroup_order": np.array([float(dim.order_of(x)) for x in stratum]) if dim.ordered else 0.0,
            "ordered_dimension": int(dim.ordered),
            "reference_subgroup": (stratum == dim.reference).astype(int),
            "_spec": spec_i,
        }))
    if not parts:
        return pd.DataFrame(columns=[*HEAT_COLUMNS, "numerator", "denominator"])
    out = pd.concat(parts, ignore_index=True)
    spec_i = out.pop("_spec").to_numpy()
    out["setting"] = setting
    out["source"] = "knowdo panel"
    out["indicator_abbr"] = np.array([s.name for s in specs], dtype=object)[spec_i]
    out["indicator_name"] = np.array([s.title for s in specs], dtype=object)[spec_i]
    out["population"] = out["denominator"]
    out["favourable_indicator"] = np.array([int(s.favourable) for s in specs])[spec_i]
    out["indicator_scale"] = scale[spec_i]
    out["iso3"] = ""
    out["flag"] = ""
    out["ci_lb"] = np.nan
    out["ci_ub"] = np.nan
    out.loc[out["denominator"] <= 0, ["estimate", "se"]] = np.nan
    out = out.assign(_spec=spec_i).sort_values(["_spec", "dimension", "date"], kind="stable")
    return out[[*HEAT_COLUMNS, "numerator", "denominator"]].reset_index(drop=True)
