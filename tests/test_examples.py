"""The example programme: schema conformance, documented cascade ranges, equity gradients, and its truth.

Ranges asserted here are the ones documented in knowdo.examples.parameters
(frameworks.md §5.4, §5.5 and §7): probable depression 11-17%, response about
45% with PST-like care vs 19% in usual care, remission 30-40% in real-world
collaborative care, 2 (real-world) to 5 (trial) sessions among attenders and
trial follow-up 67-91%.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.errors import ParameterError
from knowdo.examples import (
    DIMENSIONS,
    OUTCOMES,
    ExampleParameters,
    ExampleProgramme,
    generate_programme,
    write_project,
)
from knowdo.schema import INSTRUMENTS, ITEM_COLUMNS, TABLES

STRATA = [d.name for d in DIMENSIONS]
START, END = dt.date(2023, 1, 1), dt.date(2025, 12, 31)


@pytest.fixture(scope="module")
def small() -> ExampleProgramme:
    return generate_programme(persons=20_000, seed=2)


@pytest.fixture(scope="module")
def large() -> ExampleProgramme:
    return generate_programme(persons=200_000, seed=4)


@pytest.fixture(scope="module")
def large_episodes(large: ExampleProgramme) -> pd.DataFrame:
    return episodes(large.tables)


def episodes(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per screened person with the panel's episode definitions, computed with pandas."""
    enc, meas = tables["encounters"], tables["measures"]
    phq = meas[meas["instrument"] == "PHQ-9"].merge(enc[["encounter_id", "type"]], on="encounter_id")
    screens = phq[phq["type"] == "screen"][["person_id", "site_id", "date", "total"]]
    sessions = enc[enc["type"] == "session"].groupby("person_id").agg(
        sessions=("date", "size"), first=("date", "min"), last=("date", "max"), arm=("intervention", "first")
    )
    ep = screens.join(sessions, on="person_id")
    ep["period"] = ep["date"].dt.to_period("M").dt.to_timestamp()
    ep["positive"] = ep["total"] >= 10
    ep["started"] = ep["positive"] & ((ep["first"] - ep["date"]).dt.days <= 90)
    ep["adequate"] = ep["started"] & (ep["sessions"] >= 6)
    later = phq[phq["type"] != "screen"][["person_id", "date", "total"]].join(sessions, on="person_id", how="inner")
    window = (later["date"] >= later["first"] + pd.Timedelta(days=28)) & (
        later["date"] < later["last"] + pd.DateOffset(months=6)
    )
    followup = later[window].sort_values("date").groupby("person_id")["total"].last()
    ep["followup"] = ep["person_id"].map(followup)
    ep["responded"] = ep["started"] & (ep["followup"] <= ep["total"] / 2)
    ep["remitted"] = ep["started"] & (ep["followup"] < 5)
    ep["effective"] = ep["adequate"] & ep["responded"]
    late = later[later["date"] >= later["last"] + pd.DateOffset(months=6)]
    ep["late_followup"] = ep["person_id"].isin(late["person_id"])
    return ep.merge(tables["persons"][["person_id", *STRATA]], on="person_id")


def rates_by(ep: pd.DataFrame, population: pd.DataFrame, column: str, dimension: str) -> pd.Series:
    """Sum of ``column`` per 1,000 adult-months by level of ``dimension``."""
    pop = population[population["dimension"] == dimension].groupby("stratum")["population"].sum()
    return 1000 * ep.groupby(dimension)[column].sum() / pop


# --- determinism -------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_different_seeds_differ() -> None:
    a = generate_programme(persons=3_000, seed=7)
    b = generate_programme(persons=3_000, seed=7)
    c = generate_programme(persons=3_000, seed=8)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    pd.testing.assert_frame_equal(a.truth.effect, b.truth.effect)
    assert a.truth.to_dict() == b.truth.to_dict()
    for name in ("persons", "encounters", "measures", "providers"):
        assert not a.tables[name].equals(c.tables[name]), name
    assert not a.truth.rollout.equals(c.truth.rollout)


def test_persons_scales_the_number_screened() -> None:
    for persons in (5_000, 40_000):
        n = len(generate_programme(persons=persons, seed=1).tables["persons"])
        assert abs(n - persons) < 5 * np.sqrt(persons) + 0.02 * persons


# --- schema conformance --------------------------------------------------------


def test_every_table_has_exactly_the_schema_columns(small: ExampleProgramme) -> None:
    assert set(small.tables) == set(TABLES)
    for name, table in TABLES.items():
        frame = small.tables[name]
        expected = list(table.column_names) + (STRATA if name == "persons" else [])
        assert list(frame.columns) == expected, name
    assert small.tables["aggregates"].empty


def test_values_keys_foreign_keys_and_dates_follow_the_schema(small: ExampleProgramme) -> None:
    tables = small.tables
    window_start, window_end = pd.Timestamp(START), pd.Timestamp(END)
    for name, table in TABLES.items():
        frame = tables[name]
        if frame.empty:
            continue
        assert not frame.duplicated(list(table.key)).any(), f"{name}: duplicate key"
        for col in table.columns:
            values = frame[col.name]
            if col.required:
                assert values.notna().all(), f"{name}.{col.name} has missing values"
            present = values.dropna()
            if col.allowed is not None:
                assert set(present.unique()) <= set(col.allowed), f"{name}.{col.name}"
            if col.minimum is not None:
                assert (present >= col.minimum).all(), f"{name}.{col.name} below minimum"
            if col.maximum is not None:
                assert (present <= col.maximum).all(), f"{name}.{col.name} above maximum"
            if col.type == "date":
                assert pd.api.types.is_datetime64_any_dtype(values), f"{name}.{col.name} is not a date column"
            if col.type == "string" and len(present):
                assert all(isinstance(v, str) for v in present.head(50)), f"{name}.{col.name} is not text"
        for fk in table.foreign_keys:
            target = set(tables[fk.table][fk.target])
            assert set(frame[fk.column].dropna()) <= target, f"{name}.{fk.column} -> {fk.table}.{fk.target}"
        for col in table.date_columns_in_window:
            present = frame[col].dropna()
            assert ((present >= window_start) & (present <= window_end)).all(), f"{name}.{col} outside window"
    rollout = tables["rollout"]
    assert (rollout["end"].dropna() <= window_end).all()
    ended = rollout["end"].notna()
    assert (rollout.loc[ended, "start"] <= rollout.loc[ended, "end"]).all()
    providers = tables["providers"]
    assert ((providers["left_date"].dropna() >= window_start) & (providers["left_date"].dropna() <= window_end)).all()


def test_sites_persons_and_strata(small: ExampleProgramme) -> None:
    sites = small.tables["sites"]
    districts, clinics = sites[sites["level"] == "district"], sites[sites["level"] == "facility"]
    assert len(districts) == 8 and len(clinics) == 48
    assert districts["parent_id"].isna().all() and set(clinics["parent_id"]) == set(districts["site_id"])
    assert 0.2 <= (clinics["urbanicity"] == "urban").mean() <= 0.6
    assert clinics["site_id"].str.fullmatch(r"D\d\d-C\d\d").all()
    persons = small.tables["persons"]
    for dim in DIMENSIONS:
        assert set(persons[dim.name]) == set(dim.levels), dim.name
    assert [s.name for s in small.strata] == STRATA
    # residence mostly follows the clinic's urbanicity
    home = persons["home_site_id"].map(clinics.set_index("site_id")["urbanicity"])
    assert (persons["residence"] == home).mean() > 0.8


def test_instrument_items_and_totals(small: ExampleProgramme) -> None:
    meas = small.tables["measures"]
    for name, inst in INSTRUMENTS.items():
        rows = meas[meas["instrument"] == name]
        if rows.empty:
            continue
        items = rows[list(ITEM_COLUMNS[: inst.n_items])].astype(float)
        assert items.notna().all().all() and rows[list(ITEM_COLUMNS[inst.n_items :])].isna().all().all()
        assert ((items >= inst.item_min) & (items <= inst.item_max)).all().all(), name
        total = items.sum(axis=1) if inst.scoring == "sum" else items.mean(axis=1)
        np.testing.assert_allclose(rows["total"].to_numpy(), total.to_numpy())
    assert set(meas["instrument"]) == {"PHQ-9", "AIM", "IAM", "FIM"}
    phq = meas[meas["instrument"] == "PHQ-9"]
    assert phq["person_id"].notna().all() and phq["encounter_id"].notna().all() and phq["provider_id"].isna().all()
    perc = meas[meas["instrument"] != "PHQ-9"]
    assert perc["provider_id"].notna().all() and perc["person_id"].isna().all()
    trained = small.tables["providers"].set_index("provider_id")["trained_date"]
    assert trained[perc["provider_id"]].notna().all()  # only trained lay workers rate the intervention
    # a second AIM/IAM/FIM survey about six months after training for workers still in post
    gap = (perc["date"].to_numpy() - trained[perc["provider_id"]].to_numpy()) / np.timedelta64(1, "D")
    assert (gap == 0).any() and ((gap >= 182) & (gap < 200)).any()


def test_encounters_are_coherent(small: ExampleProgramme) -> None:
    enc, providers = small.tables["encounters"], small.tables["providers"]
    sessions = enc[enc["type"] == "session"]
    assert sessions["session_number"].notna().all() and enc.loc[enc["type"] != "session", "session_number"].isna().all()
    pst = sessions[sessions["intervention"] == "PST"]
    assert (pst["provider_type"] == "lay_worker").all() and pst["fidelity"].between(0, 1).all()
    assert sessions.loc[sessions["intervention"] == "usual care", "fidelity"].isna().all()
    cadre = providers.set_index("provider_id")["cadre"]
    assert (enc["provider_type"] == enc["provider_id"].map(cadre)).all()
    site = providers.set_index("provider_id")["site_id"]
    assert (enc["site_id"] == enc["provider_id"].map(site)).all()
    # lay workers deliver only while in post, after training, and only after their clinic's start
    worker = providers.set_index("provider_id")
    assert (pst["date"] > pst["provider_id"].map(worker["trained_date"])).all()
    left = pst["provider_id"].map(worker["left_date"])
    assert (left.isna() | (pst["date"] < left)).all()
    start = pst["site_id"].map(small.truth.rollout.set_index("site_id")["start"])
    assert (pst["date"] >= start).all()
    # session numbers count 1, 2, ... per person
    numbers = sessions.sort_values(["person_id", "date"]).groupby("person_id")["session_number"]
    assert (numbers.cumcount() + 1 == sessions.sort_values(["person_id", "date"])["session_number"]).all()


def test_population_bounds_the_people_screened(small: ExampleProgramme) -> None:
    ep = episodes(small.tables)
    pop = small.tables["population"].set_index(["site_id", "period", "dimension", "stratum"])["population"]
    for dim in ["all", *STRATA]:
        stratum = ep[dim] if dim != "all" else pd.Series("all", index=ep.index)
        counts = ep.groupby([ep["site_id"], ep["period"], stratum]).size()
        keys = [(s, p, dim, v) for s, p, v in counts.index]
        assert (pop.loc[keys].to_numpy() >= counts.to_numpy()).all(), dim
    totals = small.tables["population"].pivot_table(
        index=["site_id", "period"], columns="dimension", values="population", aggfunc="sum"
    )
    for dim in STRATA:  # strata of each dimension add up to the total
        assert (totals[dim] == totals["all"]).all()


# --- the cascade against documented ranges ---------------------------------------


def test_cascade_rates_fall_in_documented_ranges(large: ExampleProgramme, large_episodes: pd.DataFrame) -> None:
    tables = large.tables
    pop = tables["population"]
    everyone = pop[pop["dimension"] == "all"]
    prevalence = (everyone["population"] * everyone["prevalence"]).sum() / everyone["population"].sum()
    assert 0.11 <= prevalence <= 0.17
    assert everyone.groupby("site_id")["prevalence"].first().between(0.10, 0.18).all()
    women = pop[(pop["dimension"] == "sex")].groupby("stratum")["prevalence"].mean()
    assert women["female"] > women["male"]

    ep = large_episodes.copy()
    ep["post"] = ep["date"] >= ep["site_id"].map(large.truth.rollout.set_index("site_id")["start"])
    positive_share = ep.groupby("post")["positive"].mean()
    assert 0.25 <= positive_share[False] <= 0.5  # clinician-triggered screens before the programme
    assert 0.12 <= positive_share[True] <= 0.3  # routine screening of attenders (~17% prevalence, §5.4)
    start_rate = ep[ep["positive"]].groupby("post")["started"].mean()
    assert start_rate[True] > start_rate[False] + 0.1

    started = ep[ep["started"] & (ep["period"] <= pd.Timestamp("2025-07-01"))]  # follow-up not yet censored
    mean_sessions = started.groupby("arm")["sessions"].mean()
    assert 2.0 <= mean_sessions["PST"] <= 5.0
    assert mean_sessions["usual care"] < mean_sessions["PST"]
    assert (started.loc[started["arm"] == "PST", "sessions"] <= 6).all()
    assert 0.1 <= started.loc[started["arm"] == "PST", "adequate"].mean() <= 0.35

    followed = started[started["followup"].notna()]
    assert 0.67 <= len(followed) / len(started) <= 0.91
    response = followed.groupby("arm")["responded"].mean()
    remission = followed.groupby("arm")["remitted"].mean()
    assert 0.35 <= response["PST"] <= 0.55  # CoCM 45% (§7)
    assert 0.12 <= response["usual care"] <= 0.26  # usual care 19% (§7)
    assert 0.25 <= remission["PST"] <= 0.45  # real-world CoCM 30-40% (§7)
    # RE-AIM individual maintenance: some have a PHQ-9 >= 6 months after their last session
    assert 0.05 <= started["late_followup"].mean() <= 0.4


def test_reach_is_lower_in_disadvantaged_strata(large: ExampleProgramme, large_episodes: pd.DataFrame) -> None:
    ep = large_episodes
    pop = large.tables["population"]
    screened = {dim: rates_by(ep.assign(one=1), pop, "one", dim) for dim in ("residence", "wealth_quintile")}
    assert screened["residence"]["rural"] < 0.8 * screened["residence"]["urban"]
    assert screened["wealth_quintile"]["Q1"] < 0.8 * screened["wealth_quintile"]["Q5"]
    # starts per adult in need are lower for minority-language and disabled adults
    need = pop.assign(need=pop["population"] * pop["prevalence"]).groupby(["dimension", "stratum"])["need"].sum()
    for dim, low, high in (("language", "minority", "majority"), ("disability", "yes", "no")):
        per_need = ep.groupby(dim)["started"].sum() / need[dim]
        assert per_need[low] < per_need[high], dim


def test_maintenance_some_clinics_stop_and_some_continue(large: ExampleProgramme) -> None:
    roll = large.truth.rollout
    enc = large.tables["encounters"]
    pst = enc[(enc["type"] == "session") & (enc["intervention"] == "PST")]
    first_session = pst.groupby("person_id").agg(site=("site_id", "first"), date=("date", "min"))
    stopped = roll[roll["delivery_end"].notna() & (roll["delivery_end"] < pd.Timestamp(END))]
    sustained = roll[roll["sustains"] & (roll["support_end"] < pd.Timestamp("2025-10-01"))]
    assert len(stopped) > 0 and len(sustained) > 0
    for _, clinic in stopped.iterrows():  # no new PST courses more than a month after a clinic stops
        late = first_session[(first_session["site"] == clinic["site_id"])
                             & (first_session["date"] > clinic["delivery_end"] + pd.Timedelta(days=31))]
        assert late.empty, clinic["site_id"]
    after = first_session[first_session["site"].isin(sustained["site_id"])]
    after = after[after["date"] > after["site"].map(sustained.set_index("site_id")["support_end"])]
    assert after["site"].nunique() == len(sustained)


# --- truth ----------------------------------------------------------------------


def test_truth_tables_have_the_documented_shape(small: ExampleProgramme) -> None:
    truth = small.truth
    assert list(truth.effect.columns) == ["outcome", "dimension", "stratum", "event_time", "effect"]
    assert set(truth.effect["outcome"]) == set(OUTCOMES)
    labels = {("all", "all")} | {(d.name, level) for d in DIMENSIONS for level in d.levels}
    assert set(zip(truth.effect["dimension"], truth.effect["stratum"], strict=True)) == labels
    max_e = int(truth.cells["event_time"].max())
    assert set(truth.effect["event_time"]) == set(range(max_e + 1))
    roll = truth.rollout
    assert {"site_id", "district_id", "wave", "start", "support_end"} <= set(roll.columns)
    assert roll["start"].isna().sum() == 12 and roll.groupby("district_id")["wave"].nunique().max() <= 1
    assert (roll["start"].dropna().dt.day == 1).all()
    assert set(truth.strategy_effects["target"]) == {"adoption", "fidelity", "reach"}
    assert {"strategy", "target", "effect", "scale"} <= set(truth.strategy_effects.columns)
    json.dumps(truth.to_dict())  # serialisable


def test_truth_effect_grows_with_time_and_is_smaller_in_disadvantaged_strata(small: ExampleProgramme) -> None:
    eff = small.truth.effect
    started = eff[eff["outcome"] == "started_per_1000"].set_index(["dimension", "stratum", "event_time"])["effect"]
    started = started.sort_index()
    overall = started.loc[("all", "all")]
    assert overall.loc[0] > 0 and overall.loc[0] < overall.loc[3] < overall.loc[8]
    for dim, low, high in (("residence", "rural", "urban"), ("wealth_quintile", "Q1", "Q5"),
                           ("language", "minority", "majority")):
        assert small.truth.att(dimension=dim, stratum=low) < 0.8 * small.truth.att(dimension=dim, stratum=high)
        assert (started.loc[(dim, low)].loc[2:12] < started.loc[(dim, high)].loc[2:12]).all()
    for outcome in OUTCOMES:
        assert small.truth.att(outcome) > 0


def test_truth_att_options(small: ExampleProgramme) -> None:
    truth = small.truth
    full = truth.att("effective_per_1000")
    early = truth.att("effective_per_1000", through=dt.date(2024, 6, 1))
    assert full != early and truth.att("started_per_1000", weights="cells") > 0
    with pytest.raises(ParameterError, match="outcome must be one of"):
        truth.att("recovered")
    with pytest.raises(ParameterError, match="no treated cells"):
        truth.att(through=dt.date(2023, 2, 1))


def test_data_agree_with_the_truth(large: ExampleProgramme, large_episodes: pd.DataFrame) -> None:
    truth, ep = large.truth, large_episodes
    pop = large.tables["population"]
    everyone = pop[pop["dimension"] == "all"].set_index(["site_id", "period"])["population"]
    counts = ep.groupby(["site_id", "period"])[["started", "effective"]].sum()
    panel = everyone.to_frame().join(counts).fillna(0).reset_index()
    roll = truth.rollout.set_index("site_id")
    panel["start"] = panel["site_id"].map(roll["start"])
    treated_post = panel[panel["period"] >= panel["start"]]
    never = panel[panel["start"].isna() & (panel["period"] >= pd.Timestamp("2023-07-01"))]

    def per_1000(frame: pd.DataFrame, column: str) -> float:
        return float(1000 * frame[column].sum() / frame["population"].sum())

    naive = per_1000(treated_post, "started") - per_1000(never, "started")
    att = truth.att("started_per_1000")
    assert np.sign(naive) == np.sign(att) and abs(naive - att) < 0.25 * att

    # observed totals match the expected counts of the rate model (through month 31: follow-up complete)
    cells = truth.cells[(truth.cells["dimension"] == "all") & (truth.cells["period"] <= pd.Timestamp("2025-07-01"))]
    for name in ("started", "effective"):
        rows = cells[cells["outcome"] == f"{name}_per_1000"]
        expected = float((rows["expected"] * rows["population"]).sum() / 1000)
        observed = float(ep.loc[ep["period"] <= pd.Timestamp("2025-07-01"), name].sum())
        assert abs(observed - expected) < 4 * np.sqrt(expected) + 0.02 * expected, name


def test_strategy_effects_are_visible_in_the_data() -> None:
    # 160 clinics, so that clinic-level strategy assignment has the power to show its effects
    programme = generate_programme(persons=100_000, districts=16, clinics_per_district=10, seed=6)
    truth, tables = programme.truth, programme.tables
    effects = truth.strategy_effects.set_index(["strategy", "target"])["effect"]
    roll = truth.rollout.set_index("site_id")
    assert set(roll.loc[roll["start"].notna(), "facilitation"]) == {True, False}
    enc = tables["encounters"]
    pst = enc[(enc["type"] == "session") & (enc["intervention"] == "PST")]

    # adoption: trained lay workers who delivered at least one session, with and without facilitation
    workers = tables["providers"][tables["providers"]["cadre"] == "lay_worker"].copy()
    workers["delivered"] = workers["provider_id"].isin(pst["provider_id"])
    share = workers.groupby(workers["site_id"].map(roll["facilitation"]))["delivered"].mean()
    log_or = np.log(share[True] / (1 - share[True])) - np.log(share[False] / (1 - share[False]))
    assert abs(log_or - np.log(effects[("Facilitation", "adoption")])) < 0.5

    # fidelity: audit and feedback raises session fidelity while active (months 3-17 after the start)
    start = pst["site_id"].map(roll["start"])
    months = (pst["date"].dt.year - start.dt.year) * 12 + pst["date"].dt.month - start.dt.month
    window = pst[(months >= 4) & (months <= 16)]
    fidelity = window.groupby(window["site_id"].map(roll["audit_feedback"]))["fidelity"].mean()
    true_gap = effects[("Audit and provide feedback", "fidelity")]
    assert abs((fidelity[True] - fidelity[False]) - true_gap) < 0.03


# --- writing a project ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_project_is_readable_by_load_project(small: ExampleProgramme, tmp_path: Path, fmt: str) -> None:
    directory = write_project(small, tmp_path / "example", fmt=fmt, name="Test programme")  # type: ignore[arg-type]
    project = load_project(directory)
    assert project.name == "Test programme" and (project.start, project.end) == (START, END)
    assert project.disclosure_threshold == 11 and project.outcomes.adequate_sessions == 6
    assert [s.name for s in project.strata] == STRATA
    by_name = {s.name: s for s in project.strata}
    assert by_name["wealth_quintile"].ordered and by_name["wealth_quintile"].reference == "Q5"
    assert by_name["age_band"].ordered and by_name["age_band"].category == "Age"
    assert by_name["language"].reference == "majority" and by_name["disability"].reference == "no"
    assert by_name["sex"].category == "Gender/sex" and not by_name["sex"].ordered
    written = {s.table for s in project.sources}
    assert written == set(TABLES) - {"aggregates"}
    assert all(s.path.exists() for s in project.sources)
    truth = json.loads((directory / "truth.json").read_text())
    assert truth["att"]["started_per_1000"] == pytest.approx(small.truth.att("started_per_1000"))
    if fmt == "csv":
        enc = pd.read_csv(directory / "data" / "encounters.csv", dtype=str, keep_default_na=False)
        assert len(enc) == len(small.tables["encounters"])
        assert enc["date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
        assert (enc.loc[enc["type"] == "screen", "session_number"] == "").all()
        header = (directory / "data" / "sites.csv").read_text().splitlines()[0]
        assert header == "site_id,name,parent_id,level,urbanicity,catchment_population"
    else:
        back = pd.read_parquet(directory / "data" / "measures.parquet")
        assert len(back) == len(small.tables["measures"])


def test_bad_arguments_raise_parameter_errors(small: ExampleProgramme, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown parameter"):
        generate_programme(persons=100, clinics=3)
    with pytest.raises(ParameterError, match="seed"):
        generate_programme(persons=100, seed=-1)
    with pytest.raises(ParameterError, match="never_treated_districts"):
        generate_programme(persons=100, never_treated_districts=8)
    with pytest.raises(ParameterError, match="unknown dimension or level"):
        ExampleParameters(visit_ratio=(("sex", "other", 1.0),))
    with pytest.raises(ParameterError, match="fmt"):
        write_project(small, tmp_path, fmt="xlsx")  # type: ignore[arg-type]


def test_other_sizes_still_satisfy_the_window_and_keys() -> None:
    programme = generate_programme(
        persons=4_000, districts=3, clinics_per_district=4, months=24, wave_months=(3, 9),
        never_treated_districts=1, start=dt.date(2021, 7, 1), seed=3,
    )
    end = pd.Timestamp(dt.date(2023, 6, 30))
    assert programme.truth.parameters.end == end.date()
    for name, table in TABLES.items():
        frame = programme.tables[name]
        assert not frame.duplicated(list(table.key)).any()
        for col in table.date_columns_in_window:
            present = frame[col].dropna()
            assert ((present >= pd.Timestamp(2021, 7, 1)) & (present <= end)).all(), (name, col)
    assert programme.tables["sites"]["level"].value_counts()["facility"] == 12
