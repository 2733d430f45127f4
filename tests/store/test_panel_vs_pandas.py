"""The SQL panel equals an independent pandas recomputation (benchmarks/pandas_panel.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from knowdo.config import Project, load_project
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.store import Store, build_panel, read_panel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import pandas_panel

COMPARED = [*pandas_panel.COUNTS, "fidelity_n", "fidelity_sum", "population", "need", "cost", "treated",
            "event_time", "district_id"]


def _both(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    project: Project = load_project(directory)
    data = read_and_validate(project)
    with Store.for_project(project) as store:
        store.load(data, project)
        build_panel(store, project)
        sql = read_panel(store)
        tables = {name: store.table(name) for name in store.row_counts()}
    o = project.outcomes
    reference = pandas_panel.panel(
        tables, [s.name for s in project.strata], str(project.start), str(project.end),
        threshold=o.positive_threshold, adequate=o.adequate_sessions, window_days=o.start_window_days,
        response_fraction=o.response_fraction, remission_below=o.remission_below,
        maintenance_months=o.maintenance_months)
    return sql, reference


def assert_panels_equal(sql: pd.DataFrame, reference: pd.DataFrame) -> None:
    key = ["site_id", "period", "dimension", "stratum"]
    merged = sql.merge(reference, on=key, how="outer", suffixes=("", "_ref"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", key].head()
    for column in COMPARED:
        left, right = merged[column], merged[f"{column}_ref"]
        if column in {"need", "fidelity_sum", "cost"}:
            pd.testing.assert_series_equal(left.astype(float), right.astype(float), check_names=False, atol=1e-6)
        else:
            pd.testing.assert_series_equal(left.astype("string"), right.astype("string"), check_names=False)


def test_tiny_project_panel_equals_pandas(tiny_dir: Path) -> None:
    assert_panels_equal(*_both(tiny_dir))


def test_example_programme_panel_equals_pandas(tmp_path: Path) -> None:
    programme = generate_programme(seed=3, persons=4000)
    directory = write_project(programme, tmp_path / "example")
    sql, reference = _both(directory)
    assert sql["positive"].sum() > 100 and sql["started"].sum() > 50
    assert_panels_equal(sql, reference)
