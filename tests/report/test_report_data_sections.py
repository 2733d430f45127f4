"""The report's "What changed since the last run" and "Data quality" sections.

Counts come from the tiny project (tests/tiny_project.py): correcting one person's birth year changes
one row of ``persons``, a count of people below the disclosure threshold of 11, so it must not be
printed; June's population rows (2 clinics x 3 cells = 6) are site-level rows and are shown.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pandas as pd

import tiny_project
from knowdo.config import load_project
from knowdo.ingest import read_and_validate
from knowdo.ingest.quality import data_quality
from knowdo.report import build_report
from knowdo.report.data_sections import (
    change_sentences,
    changes_results,
    changes_section,
    quality_results,
    quality_section,
)
from knowdo.store import Store


def _two_loads(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = tiny_project.tables()
    frames["population"] = frames["population"][frames["population"]["period"] != "2024-06-01"]
    directory = tiny_project.write(root, frames)
    project = load_project(directory)
    with Store.for_project(project) as store:
        store.load(read_and_validate(project), project)
    frames = tiny_project.tables()
    frames["persons"].loc[frames["persons"]["person_id"] == "P2", "birth_year"] = "1976"
    tiny_project.write(directory, frames)
    with Store.for_project(project) as store:
        store.load(read_and_validate(project), project)
        return store.change_log(), store.loads()


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_changes_are_reported_with_small_counts_of_people_suppressed(tmp_path: Path) -> None:
    log, loads = _two_loads(tmp_path / "p")
    project = load_project(tmp_path / "p")
    sentences = change_sentences(log, loads, threshold=11)
    assert "population: 6 rows added, new months 2024-06" in sentences
    assert "persons changed, by counts too small to publish" in sentences
    section = changes_section(log, loads, threshold=11)
    results = {"changes": changes_results(log, loads, threshold=11)}
    files = build_report(project, results, sections=[section], out_dir=tmp_path / "report")
    page = _text(files.html.read_text(encoding="utf-8"))
    assert "What changed since the last run" in page and "Load #2" in page
    rows = [_text(r).split() for r in re.findall(r"<tr>(.*?)</tr>", files.html.read_text(encoding="utf-8"), re.S)]
    [persons] = [r for r in rows if r and r[0] == "persons"]
    # added 0, corrected 1, removed 0, unchanged 5: the whole row is hidden, the 1 as "<11"
    assert persons[2] == "<11" and set(persons[1:5]) <= {"<11", "suppressed"}
    published = json.loads(files.json.read_text(encoding="utf-8"))["changes"]["tables"]
    by = {(r["table"], r["change"]): r for r in published}
    assert by[("persons", "corrected")]["n"] is None and by[("persons", "corrected")]["suppressed"]
    assert by[("population", "added")]["n"] == 6  # site-level rows: not a count of people


def test_a_repeated_pull_reads_no_change() -> None:
    log = pd.DataFrame({"load_id": [1, 2], "loaded_at": pd.to_datetime(["2024-07-01", "2024-07-02"]),
                        "table_name": ["sites", "sites"], "added": [3, 0], "removed": [0, 0], "corrected": [0, 0],
                        "unchanged": [0, 3], "new_periods": ["", ""], "new_sites": [3, 0]})
    loads = pd.DataFrame({"load_id": [1, 2], "loaded_at": log["loaded_at"], "same_files": [False, True],
                          "changed": [True, False]})
    assert change_sentences(log, loads, threshold=11).startswith("No change since the last run: load #2")
    assert "first load" in change_sentences(log[log["load_id"] == 1], loads.iloc[:1], threshold=11)


def test_quality_section_lists_findings_and_protects_small_values(tmp_path: Path) -> None:
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    agg = pd.concat([
        pd.DataFrame({"site_id": "A", "period": months, "indicator": "screened", "dimension": "all",
                      "stratum": "all", "value": [40] * 11 + [400]}),  # December: an extreme outlier
        pd.DataFrame({"site_id": "B", "period": months[:6], "indicator": "screened", "dimension": "all",
                      "stratum": "all", "value": [2, 2, 2, 2, 2, 9]}),  # half the months, and small values
    ])
    quality = data_quality(agg, start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31))
    section = quality_section(quality)
    project = load_project(tiny_project.write(tmp_path / "p"))
    files = build_report(project, {"data_quality": quality_results(quality)}, sections=[section],
                         out_dir=tmp_path / "report")
    page = _text(files.html.read_text(encoding="utf-8"))
    assert "Data quality" in page and "Timeliness" in page and "not assessed" in page
    assert "Facility series below the completeness target" in page and "Outlying monthly values" in page
    outliers = json.loads(files.json.read_text(encoding="utf-8"))["data_quality"]["outliers"]
    small = [o for o in outliers if o["site_id"] == "B"]
    big = [o for o in outliers if o["site_id"] == "A"]
    assert small and all(o["count"] is None for o in small)  # 9 people in a month: below 11, not published
    assert big and big[0]["count"] == 400 and big[0]["severity"] == "extreme"
    assert quality_section(None).intro_text.startswith("There were no monthly facility counts")
