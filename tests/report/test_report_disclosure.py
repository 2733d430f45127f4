"""Complementary suppression in what the report publishes: no hidden small count can be worked out.

Each published table is rebuilt as the two-way table a reader sees (sites and
the programme total down the side, the strata of one equity dimension and the
all-people total across the top) and handed to
:func:`knowdo.equity.audit_recoverability`, which bounds every hidden cell by
linear programming over everything released. A hidden count from 1 to 10 must
keep a range holding at least two whole numbers. The true values come from
the outcome tables before suppression, so the check also confirms that the
tables audited really add up (otherwise the audit would prove nothing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowdo.config import load_project
from knowdo.equity import TOTAL, audit_recoverability
from knowdo.examples import generate_programme, write_project
from knowdo.outcomes import compute_outcomes
from knowdo.pipeline import load_project_data
from knowdo.report import build_report, outcome_sections, publishable_results, suppress_frame
from knowdo.report.publish import protect_outcomes, protected_counts
from knowdo.store import Store, build_panel, read_episodes, read_panel, read_perceptions, read_providers

THRESHOLD = 11  # the example programme's threshold (CMS/PCORnet minimum cell of 11, data-standards.md section 7)
PUBLISHED = ("cascade", "reaim", "proctor")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("example") / "programme"
    write_project(generate_programme(seed=3, persons=1_000), root, name="Example programme")
    project = load_project(root)
    load_project_data(project)
    with Store.for_project(project) as store:
        build_panel(store, project)
        panel, episodes, providers = read_panel(store), read_episodes(store), read_providers(store)
        sites, rollout, perceptions = store.table("sites"), store.table("rollout"), read_perceptions(store)
    outcomes = compute_outcomes(panel, episodes, providers, sites, rollout, perceptions, project)
    results = outcomes.results()
    sections = [s for s in outcome_sections(outcomes, project) if s.key in PUBLISHED]
    files = build_report(project, {k: results[k].to_dict() for k in PUBLISHED}, sections=sections)
    return {"project": project, "truth": {k: results[k].to_frame() for k in PUBLISHED},
            "json": json.loads(files.json.read_text(encoding="utf-8")), "outcomes": outcomes}


def two_way(rows: pd.DataFrame, value: str, dimension: str) -> pd.DataFrame:
    """Sites x strata of one dimension, with the programme row and the all-people column as margins."""
    part = rows[rows["group_type"].isin(["overall", "site"]) & rows["stratum_dimension"].isin(["all", dimension])]
    return pd.DataFrame({
        "place": np.where(part["group_type"] == "overall", TOTAL, part["group"].astype(str)),
        "stratum": np.where(part["stratum_dimension"] == "all", TOTAL, part["stratum"].astype(str)),
        value: pd.to_numeric(part[value], errors="coerce").to_numpy(dtype=float),
    })


def adds_up(table: pd.DataFrame, value: str) -> bool:
    inner = table[(table["place"] != TOTAL) & (table["stratum"] != TOTAL)]
    by_place = inner.groupby("place")[value].sum()
    by_stratum = inner.groupby("stratum")[value].sum()
    margins = table.set_index(["place", "stratum"])[value]
    checks = [np.isclose(margins.get((p, TOTAL), np.nan), v) for p, v in by_place.items()]
    checks += [np.isclose(margins.get((TOTAL, s), np.nan), v) for s, v in by_stratum.items()]
    checks.append(np.isclose(margins.get((TOTAL, TOTAL), np.nan), inner[value].sum()))
    whole = np.allclose(table[value], np.round(table[value]))
    return bool(all(checks)) and whole


def exposed_small(published: pd.DataFrame, true: pd.DataFrame, value: str) -> pd.DataFrame:
    audit = audit_recoverability(published, rows="place", columns="stratum", value=value)
    cells = audit.cells.merge(true.rename(columns={value: "true"}), on=["place", "stratum"])
    return cells[cells["determined"] & (cells["true"] > 0) & (cells["true"] < THRESHOLD)]


# The series audited: counts of people with small site x stratum cells in the example programme.
SERIES = (
    ("cascade", "started", "cumulative", "numerator", "sex"),
    ("cascade", "detected", "cumulative", "numerator", "wealth_quintile"),
    ("reaim", "reach", "participants", "numerator", "residence"),
    ("proctor", "penetration", "patients", "numerator", "disability"),
)


@pytest.mark.slow
@pytest.mark.parametrize(("result", "outcome", "measure", "value", "dimension"), SERIES)
def test_results_json_hides_no_recoverable_small_count(
    example: dict[str, Any], result: str, outcome: str, measure: str, value: str, dimension: str
) -> None:
    rows = pd.DataFrame(example["json"][result]["rows"])
    rows = rows[(rows["outcome"] == outcome) & (rows["measure"] == measure)]
    truth = example["truth"][result]
    truth = truth[(truth["outcome"] == outcome) & (truth["measure"] == measure)]
    true = two_way(truth, value, dimension)
    assert adds_up(true, value), "the audited table must add up, or the audit proves nothing"
    published = two_way(rows, value, dimension)
    small = (true[value] > 0) & (true[value] < THRESHOLD)
    assert small.any(), "the series should hold small cells, or there is nothing to protect"
    shown = published[value].notna()
    assert not (shown & small).any(), "a small count is published"
    assert exposed_small(published, true, value).empty


@pytest.mark.slow
def test_report_stratum_tables_hide_the_complement(example: dict[str, Any]) -> None:
    """The whole-period stratum rows: each dimension has no hidden stratum or at least two beside its total."""
    for result in PUBLISHED:
        rows = pd.DataFrame(example["json"][result]["rows"])
        overall = rows[(rows["group_type"] == "overall") & (rows["stratum_dimension"] != "all")]
        totals = rows[(rows["group_type"] == "overall") & (rows["stratum_dimension"] == "all")]
        shown_totals = set(totals.loc[totals["numerator"].notna(), "outcome"] + "/" + totals.loc[
            totals["numerator"].notna(), "measure"])
        for (outcome, measure, _), line in overall.groupby(["outcome", "measure", "stratum_dimension"]):
            if f"{outcome}/{measure}" not in shown_totals or not pd.api.types.is_numeric_dtype(line["numerator"]):
                continue
            whole = line["numerator"].dropna()
            if len(whole) and not np.allclose(whole, np.round(whole)):
                continue  # estimated need, not a count of people
            assert line["numerator"].isna().sum() != 1, (result, outcome, measure, line)


@pytest.mark.slow
def test_cuts_of_the_protected_outcomes_keep_every_blank(example: dict[str, Any]) -> None:
    """Tables cut from protect_outcomes and suppressed again hide at least what the whole table hides."""
    protected = protect_outcomes(example["outcomes"], threshold=THRESHOLD)
    whole = protected.cascade.to_frame()
    assert whole["suppressed"].any() and not whole["suppressed"].all()
    for section in outcome_sections(protected, example["project"]):
        for table in section.tables:
            frame = table if isinstance(table, pd.DataFrame) else table.frame
            if "numerator" not in frame.columns:
                continue
            again = suppress_frame(frame, threshold=THRESHOLD).frame
            values = pd.to_numeric(again["numerator"], errors="coerce")
            people = protected_counts(again, ["numerator"])["numerator"]  # counts of sites may be small
            assert not (people & (values > 0) & (values < THRESHOLD)).any(), table.caption
            if "suppressed" in frame.columns:
                assert (again["suppressed"].to_numpy() >= frame["suppressed"].fillna(False).to_numpy()).all()


# ---------------------------------------------------------------------------- property: publish-level tables
@st.composite
def tidy_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, int]:
    """A series at the programme and each site, split by one dimension's strata, adding up exactly."""
    sites = draw(st.integers(2, 5))
    strata = draw(st.integers(2, 3))
    cells = draw(st.lists(st.lists(st.integers(0, 30), min_size=strata, max_size=strata), min_size=sites,
                          max_size=sites))
    threshold = draw(st.sampled_from([5, 8, 11]))
    rows = []
    grid = np.array(cells, dtype=float)
    for i in range(-1, sites):
        place = ("overall", "all") if i < 0 else ("site", f"S{i}")
        line = grid.sum(axis=0) if i < 0 else grid[i]
        rows.append({"outcome": "reach", "measure": "participants", "group_type": place[0], "group": place[1],
                     "stratum_dimension": "all", "stratum": "all", "numerator": float(line.sum())})
        for j in range(strata):
            rows.append({"outcome": "reach", "measure": "participants", "group_type": place[0], "group": place[1],
                         "stratum_dimension": "sex", "stratum": f"s{j}", "numerator": float(line[j])})
    return pd.DataFrame(rows), threshold


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tidy_tables())
def test_publish_level_tables_leave_no_small_count_recoverable(case: tuple[pd.DataFrame, int]) -> None:
    frame, threshold = case
    published = suppress_frame(frame, threshold=threshold).frame
    as_json = pd.DataFrame(publishable_results({"reaim": {"rows": frame.to_dict("records")}}, threshold)["reaim"]
                           ["rows"])
    for shown in (published, as_json):
        values = pd.to_numeric(shown["numerator"], errors="coerce")
        assert not ((values > 0) & (values < threshold)).any()
        true = two_way(frame, "numerator", "sex")
        audit = audit_recoverability(two_way(shown, "numerator", "sex"), rows="place", columns="stratum",
                                     value="numerator")
        cells = audit.cells.merge(true.rename(columns={"numerator": "true"}), on=["place", "stratum"])
        exposed = cells[cells["determined"] & (cells["true"] > 0) & (cells["true"] < threshold)]
        assert exposed.empty, (frame, shown, exposed)


def test_dependent_values_go_with_their_count() -> None:
    """A rate computed from a count hidden as a complement is hidden with it (hand-made: 7 + 44 = 51)."""
    frame = pd.DataFrame([
        {"outcome": "reach", "measure": "proportion", "stratum_dimension": d, "stratum": s, "numerator": n,
         "denominator": m, "estimate": n / m, "conf_low": n / m - 0.01, "conf_high": n / m + 0.01}
        for d, s, n, m in (("all", "all", 51, 300), ("sex", "male", 7, 100), ("sex", "female", 44, 200))
    ])
    out = suppress_frame(frame, threshold=11).frame.set_index("stratum")
    assert out.loc["male", "suppressed"] and out.loc["female", "suppressed"] and not out.loc["all", "suppressed"]
    for column in ("numerator", "denominator", "estimate", "conf_low", "conf_high"):
        assert np.isnan(out.loc["female", column])
    assert out.loc["all", "numerator"] == 51


def test_frames_without_margins_are_left_alone() -> None:
    frame = pd.DataFrame({"label": ["a", "b"], "numerator": [5.0, 40.0], "denominator": [50.0, 80.0]})
    out = suppress_frame(frame, threshold=11).frame
    assert out["suppressed"].tolist() == [True, False]


def test_large_cases_path_is_not_used_on_tiny_tables(tmp_path: Path) -> None:
    """Suppressing an already protected table again changes nothing (idempotent)."""
    frame = pd.DataFrame([
        {"outcome": "reach", "measure": "participants", "stratum_dimension": d, "stratum": s, "numerator": n}
        for d, s, n in (("all", "all", 60), ("sex", "male", 3), ("sex", "female", 27), ("sex", "other", 30))
    ])
    once = suppress_frame(frame, threshold=11).frame
    twice = suppress_frame(once, threshold=11).frame
    assert once["suppressed"].tolist() == twice["suppressed"].tolist() == [False, True, True, False]
