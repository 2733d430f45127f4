"""The analysis panel written the straightforward pandas way.

This is what an analyst would write without knowdo, and it serves twice: as
the independent recomputation the panel tests compare against, and as the
peer in ``bench_panel.py``. It follows the episode rules documented in
``knowdo.store.panel`` but shares no code with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COUNTS = ["screened", "positive", "started", "adequate", "followed_up", "responded", "remitted", "effective",
          "sessions"]


def _month(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.to_period("M").dt.to_timestamp()


def episodes(tables: dict[str, pd.DataFrame], *, threshold: int = 10, adequate: int = 6, window_days: int = 90,
             response_fraction: float = 0.5, remission_below: int = 5, maintenance_months: int = 6) -> pd.DataFrame:
    enc = tables["encounters"]
    meas = tables["measures"]
    phq = meas[(meas["instrument"] == "PHQ-9") & meas["person_id"].notna()]
    phq = phq.merge(enc[["encounter_id", "type"]], on="encounter_id", how="left")
    phq = phq.assign(date=pd.to_datetime(phq["date"]), score=phq["total"].astype(float))
    screens = phq[phq["type"] == "screen"]
    pos = screens[screens["score"] >= threshold].sort_values(["person_id", "date", "encounter_id"])
    pos = pos.assign(episode_no=pos.groupby("person_id").cumcount() + 1)
    pos = pos.rename(columns={"date": "screen_date", "score": "baseline_phq9"})[
        ["person_id", "episode_no", "screen_date", "site_id", "baseline_phq9"]]
    anchors = pos[["person_id", "screen_date", "episode_no"]].sort_values("screen_date")

    def attach(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values("date")
        joined = pd.merge_asof(frame, anchors, left_on="date", right_on="screen_date", by="person_id",
                               direction="backward")
        return joined[joined["episode_no"].notna()]

    sessions = attach(enc.loc[enc["type"] == "session", ["person_id", "date"]].assign(
        date=lambda f: pd.to_datetime(f["date"])))
    dose = sessions.groupby(["person_id", "episode_no"]).agg(
        start_date=("date", "min"), last_session=("date", "max"), sessions=("date", "size")).reset_index()
    later = attach(phq.loc[phq["type"] != "screen", ["person_id", "date", "score"]])
    later = later.merge(dose, on=["person_id", "episode_no"])
    before = later["last_session"] + pd.DateOffset(months=maintenance_months)
    in_window = later[(later["date"] >= later["start_date"] + pd.Timedelta(days=28)) & (later["date"] < before)]
    late = later[later["date"] >= before]
    last = in_window.sort_values("date").groupby(["person_id", "episode_no"]).tail(1)
    follow = last[["person_id", "episode_no", "score", "date"]].rename(
        columns={"score": "followup_phq9", "date": "followup_date"})
    late_last = late.sort_values("date").groupby(["person_id", "episode_no"]).tail(1)
    late_follow = late_last[["person_id", "episode_no", "score"]].rename(columns={"score": "late_followup_phq9"})
    ep = pos.merge(dose, on=["person_id", "episode_no"], how="left")
    ep = ep.merge(follow, on=["person_id", "episode_no"], how="left")
    ep = ep.merge(late_follow, on=["person_id", "episode_no"], how="left")
    ep["sessions"] = ep["sessions"].fillna(0).astype(int)
    ep["started"] = (ep["start_date"] <= ep["screen_date"] + pd.Timedelta(days=window_days)).fillna(False)
    ep["adequate"] = ep["started"] & (ep["sessions"] >= adequate)
    has = ep["followup_phq9"].notna()
    ep["responded"] = has & (ep["followup_phq9"] <= (1 - response_fraction) * ep["baseline_phq9"])
    ep["remitted"] = has & (ep["followup_phq9"] < remission_below)
    ep["followed"] = has
    return ep


def panel(tables: dict[str, pd.DataFrame], dimensions: list[str], start: str, end: str,
          **rules: int | float) -> pd.DataFrame:
    """Site x month x (dimension, stratum) counts, totals under dimension 'all'."""
    persons = tables["persons"][["person_id", *dimensions]]
    ep = episodes(tables, **rules).merge(persons, on="person_id")  # type: ignore[arg-type]
    ep["period"] = _month(ep["screen_date"])
    ep = ep.assign(
        positive=1, started=ep["started"].astype(int), adequate=ep["adequate"].astype(int),
        followed_up=(ep["started"] & ep["followed"]).astype(int),
        responded=(ep["started"] & ep["responded"]).astype(int),
        remitted=(ep["started"] & ep["remitted"]).astype(int),
        effective=(ep["adequate"] & ep["responded"]).astype(int))
    enc = tables["encounters"].merge(persons, on="person_id")
    enc["period"] = _month(enc["date"])
    phq_enc = set(tables["measures"].loc[tables["measures"]["instrument"] == "PHQ-9", "encounter_id"].dropna())
    screens = enc[(enc["type"] == "screen") & enc["encounter_id"].isin(phq_enc)]
    screens = screens.drop_duplicates(["site_id", "period", "person_id"])
    sess = enc[enc["type"] == "session"].assign(fidelity=lambda f: f["fidelity"].astype(float))

    parts = []
    for dim in ["all", *dimensions]:
        keys = ["site_id", "period"] + ([] if dim == "all" else [dim])
        a = screens.groupby(keys).size().rename("screened")
        b = ep.groupby(keys)[["positive", "started", "adequate", "followed_up", "responded", "remitted",
                              "effective"]].sum()
        c = sess.groupby(keys).agg(sessions=("encounter_id", "size"), fidelity_sum=("fidelity", "sum"),
                                   fidelity_n=("fidelity", "count"))
        merged = pd.concat([a, b, c], axis=1).reset_index()
        merged["dimension"] = dim
        merged["stratum"] = "all" if dim == "all" else merged[dim]
        parts.append(merged[["site_id", "period", "dimension", "stratum", *COUNTS, "fidelity_sum", "fidelity_n"]])
    counts = pd.concat(parts, ignore_index=True)

    sites = tables["sites"]
    facilities = sites[sites["level"] == "facility"][["site_id", "parent_id"]].rename(
        columns={"parent_id": "district_id"})
    months = pd.date_range(pd.Timestamp(start).to_period("M").to_timestamp(), end, freq="MS")
    levels = [("all", "all")] + [(d, v) for d in dimensions for v in sorted(tables["persons"][d].dropna().unique())]
    grid = facilities.merge(pd.DataFrame({"period": months}), how="cross").merge(
        pd.DataFrame(levels, columns=["dimension", "stratum"]), how="cross")
    pop = tables["population"].assign(period=lambda f: _month(f["period"]))
    pop = pop.assign(need=pop["population"].astype(float) * pop["prevalence"].astype(float))
    pop = pop.groupby(["site_id", "period", "dimension", "stratum"])[["population", "need"]].sum().reset_index()
    out = grid.merge(pop, how="left").merge(counts, how="left")
    out[[*COUNTS, "fidelity_n"]] = out[[*COUNTS, "fidelity_n"]].fillna(0).astype(np.int64)
    out["fidelity_sum"] = out["fidelity_sum"].fillna(0.0)
    costs = tables["costs"].assign(period=lambda f: _month(f["period"]), amount=lambda f: f["amount"].astype(float))
    spend = costs.groupby(["site_id", "period"])["amount"].sum().rename("cost").reset_index().assign(dimension="all")
    out = out.merge(spend, how="left", on=["site_id", "period", "dimension"])
    out.loc[out["dimension"] == "all", "cost"] = out.loc[out["dimension"] == "all", "cost"].fillna(0.0)
    roll = tables["rollout"]
    starts = roll[roll["kind"] == "intervention"].assign(start=lambda f: pd.to_datetime(f["start"]))
    first = starts.groupby("site_id")["start"].min().dt.to_period("M").dt.to_timestamp().rename("first_treated")
    out = out.merge(first.reset_index(), how="left", on="site_id")
    out["treated"] = (out["period"] >= out["first_treated"]).astype(int)
    delta = (out["period"].dt.year - out["first_treated"].dt.year) * 12 + (
        out["period"].dt.month - out["first_treated"].dt.month)
    out["event_time"] = delta.astype("Int64")
    return out.sort_values(["site_id", "period", "dimension", "stratum"]).reset_index(drop=True)
