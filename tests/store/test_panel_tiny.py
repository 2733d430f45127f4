"""The panel on the tiny project, against figures worked out by hand (see tests/tiny_project.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

import tiny_project
from knowdo.config import load_project
from knowdo.ingest import read_and_validate
from knowdo.schema import PANEL_COLUMN_NAMES
from knowdo.store import Store, build_panel, read_episodes, read_panel


def _panel(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    project = load_project(directory)
    with Store.for_project(project) as store:
        store.load(read_and_validate(project), project)
        source = build_panel(store, project)
        return read_panel(store), read_episodes(store), source


def _row(panel: pd.DataFrame, site: str, month: str, dimension: str = "all", stratum: str = "all") -> pd.Series:
    hit = panel[(panel.site_id == site) & (panel.period == pd.Timestamp(month))
                & (panel.dimension == dimension) & (panel.stratum == stratum)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_panel_grid_and_columns(tiny_dir: Path) -> None:
    panel, _, source = _panel(tiny_dir)
    assert source == "persons"
    assert tuple(panel.columns) == PANEL_COLUMN_NAMES
    # 2 facilities x 6 months x (all + female + male)
    assert len(panel) == 2 * 6 * 3
    assert not panel.duplicated(["site_id", "period", "dimension", "stratum"]).any()


def test_clinic_one_january_by_hand(tiny_dir: Path) -> None:
    panel, _, _ = _panel(tiny_dir)
    jan = _row(panel, "D1-C1", "2024-01-01")
    # screened P1, P2, P6; positive P1 (15), P2 (12); both started within 90 days;
    # adequate only P1 (6 sessions); both followed up; responded/remitted only P1 (4 <= 7.5, 4 < 5)
    expected = {"screened": 3, "positive": 2, "started": 2, "adequate": 1, "followed_up": 2, "responded": 1,
                "remitted": 1, "effective": 1}
    assert {k: int(jan[k]) for k in expected} == expected
    # January sessions: P1 on 15, 22, 29 (fidelity 0.8 each) + P2 on 25 (0.5) = 4 sessions, fidelity sum 2.9
    assert int(jan["sessions"]) == 4
    assert jan["fidelity_sum"] == pytest.approx(2.9)
    assert jan["cost"] == pytest.approx(620.5)  # training 500 + stipends 120.5
    assert jan["population"] == 1000 and jan["need"] == pytest.approx(150.0)  # 1000 x 0.15
    assert int(jan["treated"]) == 1 and int(jan["event_time"]) == 0


def test_strata_rows_by_hand(tiny_dir: Path) -> None:
    panel, _, _ = _panel(tiny_dir)
    female = _row(panel, "D1-C1", "2024-01-01", "sex", "female")
    male = _row(panel, "D1-C1", "2024-01-01", "sex", "male")
    assert (int(female.screened), int(female.positive), int(female.adequate)) == (2, 1, 1)  # P1, P6
    assert (int(male.screened), int(male.positive), int(male.adequate)) == (1, 1, 0)  # P2
    assert female["need"] == pytest.approx(520 * 0.18)
    assert pd.isna(female["cost"])  # costs are site totals, shown on 'all' rows only


def test_untreated_clinic_by_hand(tiny_dir: Path) -> None:
    panel, episodes, _ = _panel(tiny_dir)
    feb = _row(panel, "D1-C2", "2024-02-01")
    # P5 positive in February but first session on 06-20: more than 90 days later, so not started
    assert (int(feb.screened), int(feb.positive), int(feb.started)) == (1, 1, 0)
    assert int(feb.treated) == 0 and pd.isna(feb.event_time)
    june = _row(panel, "D1-C2", "2024-06-01")
    assert int(june.sessions) == 1
    p2 = episodes.set_index("person_id").loc["P2"]
    assert p2.sessions == 2 and not p2.adequate and p2.followup_phq9 == 8 and not p2.responded


def test_cascade_nesting_holds_everywhere(tiny_dir: Path) -> None:
    panel, _, _ = _panel(tiny_dir)
    chain = ["screened", "positive", "started", "adequate", "effective"]
    for upper, lower in itertools.pairwise(chain):
        assert (panel[upper] >= panel[lower]).all()


def test_panel_from_aggregates_matches_person_level(tiny_dir: Path, tmp_path: Path) -> None:
    person_panel, _, _ = _panel(tiny_dir)
    counts = ["screened", "positive", "started", "adequate", "responded", "remitted", "effective", "sessions"]
    long = person_panel.melt(id_vars=["site_id", "period", "dimension", "stratum"], value_vars=counts,
                             var_name="indicator", value_name="value")
    long = long[long.value > 0].assign(period=lambda f: f.period.dt.strftime("%Y-%m-%d"))
    frames = tiny_project.tables()
    for name in ("persons", "encounters", "measures", "providers"):
        del frames[name]
    frames["aggregates"] = long.astype(str)
    aggregate_dir = tiny_project.write(tmp_path / "aggregate", frames)
    panel, _, source = _panel(aggregate_dir)
    assert source == "aggregates"
    merged = panel.merge(person_panel, on=["site_id", "period", "dimension", "stratum"], suffixes=("", "_p"))
    assert len(merged) == len(person_panel)
    for column in [*counts, "population", "need", "cost", "treated"]:
        pd.testing.assert_series_equal(merged[column], merged[f"{column}_p"], check_names=False,
                                       check_dtype=False)
