"""Setting- and staff-level measures shared by RE-AIM and Proctor.

Adoption (sites and providers that delivered at least one session),
penetration among providers, fidelity, cost per participant and setting-level
sustainability. These are computed once here and labelled by the framework
that reports them.

Units and intervals:

* Settings and providers are counted as units, so their proportions get
  Wilson intervals (each site or provider is one trial).
* Ratios pooled over site-months (fidelity, cost per participant) get
  cluster-robust intervals with sites as clusters when a group pools two or
  more sites, and months as clusters within a single site.
* Adoption for a period is cumulative to the end of that period: sites (or
  providers) that had delivered by then, among those rolled out (or trained)
  by then. Site and district rows are judged at the data end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from knowdo.outcomes.groups import (
    ALL,
    KEYS,
    Grouping,
    check_columns,
    cumulative_units,
    expand_groups,
    lookup,
    month_index,
    period_label,
)
from knowdo.outcomes.intervals import (
    grouped_cluster_ratio,
    mean_interval,
    smd_means,
    smd_proportions,
    wilson_unchecked,
    z_value,
)
from knowdo.outcomes.results import Unit, concat_tidy, make_tidy

PROVIDER_COLUMNS = ("provider_id", "site_id", "trained_date", "left_date", "sessions_delivered", "first_session_date")
SITE_COLUMNS = ("site_id", "parent_id", "level")
ROLLOUT_COLUMNS = ("site_id", "kind", "name", "start", "end")


def totals(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel's total rows (``dimension == 'all'`` and ``stratum == 'all'``)."""
    return panel.loc[(panel["dimension"] == ALL) & (panel["stratum"] == ALL)]


def facility_sites(panel: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Every delivery site: facilities in the sites table plus any site in the panel.

    Columns: ``site_id, district_id, urbanicity, catchment_population``. The
    district comes from the panel where the site appears there, otherwise
    from the site's ``parent_id``.
    """
    check_columns(sites, SITE_COLUMNS, "sites")
    facilities = sites.loc[sites["level"] == "facility"]
    if facilities.empty:
        facilities = sites.loc[~sites["site_id"].isin(sites["parent_id"].dropna())]
    out = pd.DataFrame({"site_id": facilities["site_id"].astype(str).to_numpy()})
    out["district_id"] = facilities["parent_id"].astype(object).to_numpy()
    for col in ("urbanicity", "catchment_population"):
        out[col] = facilities[col].to_numpy() if col in facilities.columns else np.nan
    from_panel = panel[["site_id", "district_id"]].dropna(subset=["site_id"]).drop_duplicates("site_id")
    from_panel = from_panel.assign(site_id=from_panel["site_id"].astype(str))
    missing = from_panel.loc[~from_panel["site_id"].isin(out["site_id"])]
    if not missing.empty:
        extra = sites.set_index(sites["site_id"].astype(str))
        add = missing.assign(
            urbanicity=lookup(missing["site_id"], extra["urbanicity"]) if "urbanicity" in extra.columns else np.nan,
            catchment_population=lookup(missing["site_id"], extra["catchment_population"])
            if "catchment_population" in extra.columns
            else np.nan,
        )
        out = pd.concat([out, add[out.columns]], ignore_index=True)
    district = from_panel.set_index("site_id")["district_id"]
    out["district_id"] = lookup(out["site_id"], district).where(out["site_id"].isin(district.index), out["district_id"])
    return out.reset_index(drop=True)


def first_session_month(panel: pd.DataFrame, *, treated: bool = True) -> pd.Series:
    """Each site's first month with at least one session (sites never delivering are absent).

    With ``treated`` (the default) only months in which the site was
    delivering the intervention count (``treated == 1``, from its rollout
    start), so sessions of usual care at sites or in months outside the
    rollout are not taken for adoption. With ``treated=False``, only the
    months outside the rollout count.
    """
    t = totals(panel)
    in_rollout = t["treated"].fillna(0).to_numpy(float) == 1
    t = t.loc[(t["sessions"].fillna(0).to_numpy(float) > 0) & (in_rollout if treated else ~in_rollout)]
    return pd.to_datetime(t.groupby(t["site_id"].astype(str))["period"].min())


def rollout_start(rollout: pd.DataFrame) -> pd.Series:
    """Each site's earliest intervention start."""
    check_columns(rollout, ROLLOUT_COLUMNS, "rollout")
    r = rollout.loc[rollout["kind"] == "intervention"]
    return pd.to_datetime(r.groupby(r["site_id"].astype(str))["start"].min())


def _wilson_rows(
    frame: pd.DataFrame, k: str, n: str, *, domain: str, outcome: str, measure: str, level: float, unit: Unit
) -> pd.DataFrame:
    low, high = wilson_unchecked(frame[k].to_numpy(float), frame[n].to_numpy(float), z_value(level))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(frame[n] > 0, frame[k] / frame[n], np.nan)
    return make_tidy(
        frame,
        domain=domain,
        outcome=outcome,
        measure=measure,
        numerator=frame[k],
        denominator=frame[n],
        estimate=est,
        conf_low=low,
        conf_high=high,
        method="wilson",
        unit=unit,
    )


def _with_strata_keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(stratum_dimension=ALL, stratum=ALL)


def settings_adoption(
    panel: pd.DataFrame,
    sites: pd.DataFrame,
    rollout: pd.DataFrame,
    by: Sequence[Grouping],
    ends: pd.DataFrame,
    end: dt.date,
    *,
    level: float,
    domain: str,
    outcome: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sites delivering ≥1 session ÷ sites rolled out (``of_rolled_out``) and ÷ all sites (``of_all_sites``).

    A site adopts in the first month it delivers a session while running the
    intervention (see :func:`first_session_month`). Returns the tidy rows and
    the per-site frame (``adopted``, ``rolled_out`` and
    ``sessions_outside_rollout`` flags at the data end).
    """
    units = facility_sites(panel, sites)
    units["rolled_start"] = lookup(units["site_id"], rollout_start(rollout))
    units["first_session"] = lookup(units["site_id"], first_session_month(panel))
    units["sessions_outside_rollout"] = lookup(units["site_id"], first_session_month(panel, treated=False)).notna()
    groupings = [g for g in by if g != "site"]  # a single site's adoption is 0 or 1
    stack = cumulative_units(units, groupings, ends, end)
    rolled = stack["rolled_start"].notna() & (stack["rolled_start"] <= stack["end"])
    adopted = stack["first_session"].notna() & (stack["first_session"] <= stack["end"])
    stack = stack.assign(rolled=rolled.astype(float), adopted_rolled=(rolled & adopted).astype(float))
    stack = stack.assign(adopted=adopted.astype(float), one=1.0)
    g = _with_strata_keys(
        stack.groupby(["group_type", "group"], sort=False)[["rolled", "adopted_rolled", "adopted", "one"]]
        .sum()
        .reset_index()
    )
    rows = concat_tidy(
        [
            _wilson_rows(
                g,
                "adopted_rolled",
                "rolled",
                domain=domain,
                outcome=outcome,
                measure="of_rolled_out",
                level=level,
                unit="sites",
            ),
            _wilson_rows(
                g, "adopted", "one", domain=domain, outcome=outcome, measure="of_all_sites", level=level, unit="sites"
            ),
        ]
    )
    ts_end = pd.Timestamp(end)
    units["adopted"] = units["first_session"].notna() & (units["first_session"] <= ts_end)
    units["rolled_out"] = units["rolled_start"].notna() & (units["rolled_start"] <= ts_end)
    return rows, units


def provider_frame(providers: pd.DataFrame, site_district: pd.Series, end: dt.date) -> pd.DataFrame:
    """Providers with their district and the date they first delivered (data end if delivered but undated)."""
    check_columns(providers, PROVIDER_COLUMNS, "providers")
    p = pd.DataFrame(
        {
            "provider_id": providers["provider_id"].to_numpy(),
            "site_id": providers["site_id"].astype(str).to_numpy(),
            "trained": pd.to_datetime(providers["trained_date"]).to_numpy(),
            "left": pd.to_datetime(providers["left_date"]).to_numpy(),
            "first_session": pd.to_datetime(providers["first_session_date"]).to_numpy(),
            "sessions": providers["sessions_delivered"].fillna(0).to_numpy(float),
        }
    )
    p["district_id"] = lookup(p["site_id"], site_district)
    delivered = p["sessions"] > 0
    undated = delivered & p["first_session"].isna()
    p.loc[undated, "first_session"] = pd.Timestamp(end)
    p.loc[~delivered, "first_session"] = pd.NaT
    return p


def staff_measures(
    prov: pd.DataFrame,
    by: Sequence[Grouping],
    ends: pd.DataFrame,
    end: dt.date,
    *,
    level: float,
    domain: str,
    adoption_outcome: str | None,
    penetration_outcome: str | None,
) -> pd.DataFrame:
    """Staff adoption (delivered ≥1 session ÷ trained) and provider penetration (the same among those in post).

    A provider counts as trained once ``trained_date`` has passed; as in post
    while ``left_date`` is empty or later than the end of the period.
    """
    stack = cumulative_units(prov, by, ends, end)
    trained = stack["trained"].notna() & (stack["trained"] <= stack["end"])
    adopted = trained & stack["first_session"].notna() & (stack["first_session"] <= stack["end"])
    in_post = stack["left"].isna() | (stack["left"] > stack["end"])
    stack = stack.assign(
        trained_n=trained.astype(float),
        adopted_n=adopted.astype(float),
        post_n=(trained & in_post).astype(float),
        post_adopted_n=(adopted & in_post).astype(float),
    )
    g = _with_strata_keys(
        stack.groupby(["group_type", "group"], sort=False)[["trained_n", "adopted_n", "post_n", "post_adopted_n"]]
        .sum()
        .reset_index()
    )
    parts = []
    if adoption_outcome:
        parts.append(
            _wilson_rows(
                g,
                "adopted_n",
                "trained_n",
                domain=domain,
                outcome=adoption_outcome,
                measure="proportion",
                level=level,
                unit="providers",
            )
        )
    if penetration_outcome:
        parts.append(
            _wilson_rows(
                g,
                "post_adopted_n",
                "post_n",
                domain=domain,
                outcome=penetration_outcome,
                measure="proportion",
                level=level,
                unit="providers",
            )
        )
    return concat_tidy(parts)


def adopter_representativeness(units: pd.DataFrame, *, level: float, domain: str, outcome: str) -> pd.DataFrame:
    """Adopting vs non-adopting sites: urban share and mean catchment, each with a standardised difference."""
    keys = pd.DataFrame({k: [v] for k, v in zip(KEYS, ["overall", ALL, ALL, ALL], strict=True)})
    z = z_value(level)
    rows = []
    adopters = units.loc[units["adopted"]]
    others = units.loc[~units["adopted"]]
    shares = {}
    for label, grp in (("adopters", adopters), ("non_adopters", others)):
        known = grp["urbanicity"].isin(["urban", "rural"])
        k = float((grp.loc[known, "urbanicity"] == "urban").sum())
        n = float(known.sum())
        low, high = wilson_unchecked(k, n, z)
        shares[label] = k / n if n > 0 else np.nan
        rows.append(
            make_tidy(
                keys,
                domain=domain,
                outcome=outcome,
                measure=f"urban_share_{label}",
                numerator=k,
                denominator=n,
                estimate=shares[label],
                conf_low=low,
                conf_high=high,
                method="wilson",
                unit="sites",
            )
        )
    rows.append(
        make_tidy(
            keys,
            domain=domain,
            outcome=outcome,
            measure="urban_smd",
            numerator=np.nan,
            denominator=np.nan,
            estimate=smd_proportions(shares["adopters"], shares["non_adopters"]),
            method="smd_proportions",
            unit="sites",
        )
    )
    stats_ = {}
    for label, grp in (("adopters", adopters), ("non_adopters", others)):
        values = pd.to_numeric(grp["catchment_population"], errors="coerce").to_numpy(float)
        iv = mean_interval(values, level)
        sd = float(np.nanstd(values, ddof=1)) if iv.n >= 2 else np.nan
        stats_[label] = (iv.estimate, sd)
        rows.append(
            make_tidy(
                keys,
                domain=domain,
                outcome=outcome,
                measure=f"catchment_mean_{label}",
                numerator=np.nansum(values) if iv.n else np.nan,
                denominator=iv.n,
                estimate=iv.estimate,
                std_error=iv.std_error,
                conf_low=iv.conf_low,
                conf_high=iv.conf_high,
                method="t",
                # residents of the catchments summed over sites; the denominator counts sites
                unit="people",
                denominator_unit="sites",
            )
        )
    (m1, s1), (m2, s2) = stats_["adopters"], stats_["non_adopters"]
    rows.append(
        make_tidy(
            keys,
            domain=domain,
            outcome=outcome,
            measure="catchment_smd",
            numerator=np.nan,
            denominator=np.nan,
            estimate=smd_means(m1, s1, m2, s2),
            method="smd_means",
            unit="sites",
        )
    )
    return concat_tidy(rows)


def panel_ratio(
    panel: pd.DataFrame,
    by: Sequence[Grouping],
    *,
    y: str,
    x: str,
    rows: pd.Series,
    level: float,
    domain: str,
    outcome: str,
    measure: str,
    unit: Unit,
    denominator_unit: Unit,
    drop_empty_strata: bool = True,
    upper: float | None = None,
) -> pd.DataFrame:
    """``sum(y) / sum(x)`` over the selected panel rows, per group and stratum, with a cluster-robust interval.

    Clusters are sites where the group pools two or more sites and months
    otherwise (one site's months). ``upper`` caps the upper bound (1 for a
    share such as fidelity). ``unit`` and ``denominator_unit`` say what ``y``
    and ``x`` count or sum.
    """
    cols = ["site_id", "district_id", "period", "dimension", "stratum", y, x]
    data = panel.loc[rows, cols].rename(columns={"dimension": "stratum_dimension"})
    data = data.assign(**{y: data[y].fillna(0.0).astype(float), x: data[x].fillna(0.0).astype(float)})
    stack = expand_groups(data, by)
    if stack.empty:
        return concat_tidy([])
    n_sites = stack.groupby(KEYS, sort=False)["site_id"].transform("nunique")
    multi = n_sites.to_numpy() >= 2
    stack["cluster"] = np.where(multi, stack["site_id"].astype(str), pd.to_datetime(stack["period"]).astype(str))
    stack["multi"] = multi
    cr = grouped_cluster_ratio(stack, KEYS, "cluster", y, x, level)
    multi_by_group = stack.groupby(KEYS, sort=False)["multi"].first().reset_index()
    cr = cr.merge(multi_by_group, on=KEYS, how="left")
    if drop_empty_strata:
        cr = cr.loc[(cr["stratum_dimension"] == ALL) | (cr["denominator"] > 0)]
    method = np.where(cr["multi"].to_numpy(bool), "cluster_ratio_sites", "cluster_ratio_months")
    # Both totals are non-negative (fidelity, cost, people), so a lower bound below zero is cut at zero.
    cr = cr.assign(conf_low=cr["conf_low"].clip(lower=0.0), conf_high=cr["conf_high"].clip(upper=upper))
    return make_tidy(
        cr,
        domain=domain,
        outcome=outcome,
        measure=measure,
        numerator=cr["numerator"],
        denominator=cr["denominator"],
        estimate=cr["estimate"],
        std_error=cr["std_error"],
        conf_low=cr["conf_low"],
        conf_high=cr["conf_high"],
        method=method,
        unit=unit,
        denominator_unit=denominator_unit,
    )


def support_end(rollout: pd.DataFrame) -> pd.Series:
    """When each site's external support ended (missing if it is still running).

    Support is the site's implementation strategies (``kind == 'strategy'``);
    a site with no strategy rows is judged by its intervention rows. Support
    has ended only when every such row has an ``end``; it ended on the latest.
    """
    check_columns(rollout, ROLLOUT_COLUMNS, "rollout")
    r = rollout.assign(site_id=rollout["site_id"].astype(str), end=pd.to_datetime(rollout["end"]))
    is_strategy = r["kind"] == "strategy"
    has_strategy = is_strategy.groupby(r["site_id"]).transform("any").astype(bool)
    support = r.loc[is_strategy | ~has_strategy]
    still_open = support["end"].isna().groupby(support["site_id"]).sum()
    last = pd.to_datetime(support.groupby("site_id")["end"].max())
    return last.where(still_open.reindex(last.index).to_numpy() == 0)


def sustainability(
    panel: pd.DataFrame,
    rollout: pd.DataFrame,
    units: pd.DataFrame,
    by: Sequence[Grouping],
    end: dt.date,
    months: int,
    *,
    level: float,
    domain: str,
    outcome: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sites still delivering ``months`` or more after their support ended.

    Eligible: sites whose support ended at least ``months`` whole months
    before the data end. Sustained: an eligible site with a session in any
    month at least ``months`` after the month support ended. Period groups
    are the period in which support ended. Returns tidy rows and the per-site
    frame.
    """
    ends = support_end(rollout)
    s = units[["site_id", "district_id"]].copy()
    s["support_end"] = lookup(s["site_id"], ends)
    end_idx = month_index(pd.Timestamp(end))
    s["eligible"] = s["support_end"].notna() & ((end_idx - month_index(s["support_end"])) >= months)
    t = totals(panel)
    t = t.loc[t["sessions"].fillna(0) > 0, ["site_id", "period"]].assign(site_id=lambda f: f["site_id"].astype(str))
    t = t.assign(support_end=lookup(t["site_id"], ends))
    late = t.loc[t["support_end"].notna() & ((month_index(t["period"]) - month_index(t["support_end"])) >= months)]
    s["sustained"] = s["eligible"] & s["site_id"].isin(late["site_id"])
    eligible = s.loc[s["eligible"]]
    parts = []
    for grouping in by:
        if grouping == "site":
            continue
        if grouping == "overall":
            labels = pd.Series(ALL, index=eligible.index, dtype=object)
        elif grouping == "district":
            labels = eligible["district_id"].astype(object)
        else:
            labels = period_label(eligible["support_end"], grouping).astype(object)
        parts.append(eligible.assign(group_type=grouping, group=labels).dropna(subset=["group"]))
    if not parts or all(p.empty for p in parts):
        empty = pd.DataFrame({"group_type": ["overall"], "group": [ALL], "k": [0.0], "n": [0.0]})
        g = _with_strata_keys(empty) if "overall" in by else _with_strata_keys(empty.iloc[0:0])
    else:
        stack = pd.concat(parts, ignore_index=True)
        g = _with_strata_keys(
            stack.groupby(["group_type", "group"], sort=False)
            .agg(k=("sustained", "sum"), n=("eligible", "sum"))
            .reset_index()
        )
    g = g.assign(k=g["k"].astype(float), n=g["n"].astype(float))
    rows = _wilson_rows(g, "k", "n", domain=domain, outcome=outcome, measure="proportion", level=level, unit="sites")
    return rows, s


def outside_rollout_note(units: pd.DataFrame) -> list[str]:
    """A note when sessions were recorded at sites or in months outside the intervention's rollout."""
    n = int(units["sessions_outside_rollout"].sum())
    if not n:
        return []
    return [
        f"{n} site(s) recorded sessions outside the intervention's rollout (before their start, or at sites never "
        "rolled out); those sessions are not counted as adoption."
    ]
