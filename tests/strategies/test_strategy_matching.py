"""Strategy matching against a hand-made workbook laid out like the CFIR-ERIC matching tool.

Reference: Waltz et al., Implement Sci 2019;14:42, Table 5 (telephone
lifestyle coaching case example). Its per-barrier percentages for seven
barriers are used as the workbook's cells; the paper's cumulative percents
are 248 (Identify and prepare champions), 205 (Assess for readiness ...) and
164 (Conduct local consensus discussions), which the sums of the rounded
cells reproduce exactly for these three rows. Level 1 = 50% or more,
Level 2 = 20% to under 50% (same paper).
"""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.strategies.assessment import assess_barriers
from knowdo.strategies.matching import (
    EXPERT_OPINION_NOTE,
    PUBLISHED_LEVEL_TOTALS,
    match_strategies,
    read_matching_workbook,
    workbook_from_frame,
)
from knowdo.strategies.vocabularies import load_vocabulary

BARRIERS = [
    "Structural Characteristics: the organisation's infrastructure gets in the way",
    "Networks & Communications",
    "Compatibility",
    "Organizational Incentives & Rewards",
    "Planning",
    "Formally Appointed Internal Implementation Leaders",
    "Key Stakeholders",
    "Cost",  # not in Table 5; invented values so the workbook has a barrier the team did not pick
]
TABLE5 = {  # percent per barrier, in BARRIERS order (last column invented)
    "Identify and prepare champions": [27, 17, 21, 25, 31, 64, 63, 5],
    "Assess for readiness and identify barriers and facilitators": [36, 13, 34, 13, 42, 29, 38, 10],
    "Conduct local consensus discussions": [14, 22, 41, 8, 23, 14, 42, 0],
    "Develop a formal implementation blueprint": [18, 13, 3, 8, 73, 46, 8, 2],
    "Alter incentive/allowance structures": [18, 0, 10, 71, 12, 7, 17, 30],
    "Access new funding": [5, 4, 3, 38, 8, 7, 4, 60],
}
SEVEN = ["structural_characteristics", "networks_communications", "compatibility",
         "organizational_incentives_rewards", "planning", "internal_implementation_leaders", "key_stakeholders"]


def official_layout(path: Path, *, transposed: bool = False) -> Path:
    """An instructions sheet, then a matrix sheet: title rows, a cluster column, strategies down, barriers across."""
    book = openpyxl.Workbook()
    book.active.title = "Instructions"
    book.active["A1"] = "Select your high-priority CFIR barriers in the Tool sheet."
    sheet = book.create_sheet("Barrier x Strategy")
    sheet.append(["CFIR-ERIC Implementation Strategy Matching Tool"])
    sheet.append([])
    if not transposed:
        sheet.append(["ERIC cluster", "ERIC strategy", *BARRIERS])
        for name, values in TABLE5.items():
            sheet.append(["(cluster)", name, *[v / 100 for v in values]])
            for cell in sheet[sheet.max_row][2:]:
                cell.number_format = "0%"
    else:
        sheet.append(["CFIR barrier", *TABLE5])
        for j, barrier in enumerate(BARRIERS):
            sheet.append([barrier, *[f"{values[j]}%" for values in TABLE5.values()]])
    book.save(path)
    return path


def test_reads_the_matrix_whatever_surrounds_it(tmp_path: Path) -> None:
    book = read_matching_workbook(official_layout(tmp_path / "tool.xlsx"))
    assert book.sheet == "Barrier x Strategy" and book.orientation == "strategies_in_rows"
    assert len(book.endorsements) == len(TABLE5) * len(BARRIERS)
    e = book.endorsements.set_index(["barrier", "strategy"])["percent"]
    assert e[("planning", "Develop a formal implementation blueprint")] == pytest.approx(73.0)
    counts = book.level_counts().set_index("barrier")
    # planning column: 31 42 23 73 12 8 -> Level 1: 73; Level 2: 31, 42, 23
    assert counts.loc["planning", "level1"] == 1 and counts.loc["planning", "level2"] == 3


def test_cumulative_percent_and_levels_reproduce_table5(tmp_path: Path) -> None:
    book = read_matching_workbook(official_layout(tmp_path / "tool.xlsx"))
    match = match_strategies(SEVEN, workbook=book, framework="cfir1")
    table = match.table.set_index("strategy")
    assert table.loc["Identify and prepare champions", "cumulative_percent"] == pytest.approx(248)
    assert table.loc["Assess for readiness and identify barriers and facilitators", "cumulative_percent"] == \
        pytest.approx(205)
    assert table.loc["Conduct local consensus discussions", "cumulative_percent"] == pytest.approx(164)
    # champions: 64 and 63 are Level 1; 27, 21, 25, 31 Level 2; 17 neither
    assert table.loc["Identify and prepare champions", ["n_level1", "n_level2"]].tolist() == [2, 4]
    assert match.table["strategy"].iloc[0] == "Identify and prepare champions"
    assert table.loc["Use mass media", "cumulative_percent"] == 0 and not table.loc["Use mass media", "endorsed"]
    assert len(match.table) == 73
    assert match.note == EXPERT_OPINION_NOTE and "not evidence of effectiveness" in match.summary()


def test_cfir2_barriers_go_through_the_crosswalk(tmp_path: Path) -> None:
    book = read_matching_workbook(official_layout(tmp_path / "tool.xlsx"))
    # Relational Connections and Communications both map to Networks & Communications: counted once
    match = match_strategies(["Relational Connections", "Communications", "Critical Incidents", "Innovation Cost"],
                             workbook=book)
    assert sorted(set(match.cfir1_barriers["cfir1"])) == ["cost", "networks_communications"]
    assert match.unmatched == ("Critical Incidents",)
    funding = match.table.set_index("strategy").loc["Access new funding"]
    assert funding["cumulative_percent"] == pytest.approx(4 + 60)
    assert funding["n_level1"] == 1


def test_transposed_sheet_and_percent_strings(tmp_path: Path) -> None:
    book = read_matching_workbook(official_layout(tmp_path / "t.xlsx", transposed=True))
    assert book.orientation == "strategies_in_columns"
    match = match_strategies(SEVEN, workbook=book, framework="cfir1")
    assert match.table.set_index("strategy").loc["Identify and prepare champions", "cumulative_percent"] == \
        pytest.approx(248)


def test_csv_export_and_long_table_agree(tmp_path: Path) -> None:
    rows = [[None, "ERIC strategy", *BARRIERS]] + [[None, k, *v] for k, v in TABLE5.items()]
    pd.DataFrame(rows).to_csv(tmp_path / "tool.csv", header=False, index=False)
    from_csv = read_matching_workbook(tmp_path / "tool.csv")
    long = pd.DataFrame([(b, s, v[j]) for s, v in TABLE5.items() for j, b in enumerate(BARRIERS)],
                        columns=["barrier", "strategy", "percent"])
    long["barrier"] = long["barrier"].str.split(":").str[0]
    from_frame = workbook_from_frame(long)
    a = match_strategies(SEVEN, workbook=from_csv, framework="cfir1").table
    b = match_strategies(SEVEN, workbook=from_frame, framework="cfir1").table
    pd.testing.assert_frame_equal(a, b)


def test_without_a_workbook_strategies_are_listed_by_cluster() -> None:
    match = match_strategies(["Available Resources"])
    assert match.mode == "by_cluster"
    assert match.table["cumulative_percent"].isna().all()
    assert match.table.groupby("cluster").size().tolist() == [10, 4, 4, 17, 11, 5, 5, 9, 8]
    assert "No CFIR-ERIC matching workbook" in match.note
    payload = json.loads(json.dumps(match.to_dict()))
    assert payload["mode"] == "by_cluster" and len(payload["strategies"]) == 73


def test_barriers_from_an_assessment(tmp_path: Path) -> None:
    ratings = pd.DataFrame({"member": ["a", "b"], "group": ["researcher", "implementer"],
                            "construct": ["Innovation Cost", "Innovation Cost"], "valence": [-2, -1]})
    match = match_strategies(assess_barriers(ratings), workbook=read_matching_workbook(
        official_layout(tmp_path / "tool.xlsx")))
    assert match.barriers == ("innovation_cost",)
    assert match.top(1)["strategy"].tolist() == ["Access new funding"]


def test_workbook_errors_say_what_was_found(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        read_matching_workbook(tmp_path / "missing.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["nothing", "here"])
    book.save(tmp_path / "empty.xlsx")
    with pytest.raises(ParameterError, match="no sheet has at least"):
        read_matching_workbook(tmp_path / "empty.xlsx")
    path = official_layout(tmp_path / "bad.xlsx")
    book = openpyxl.load_workbook(path)
    book["Barrier x Strategy"]["C4"] = "lots"
    book.save(path)
    with pytest.raises(ParameterError, match="'lots', not a percentage"):
        read_matching_workbook(path)
    tool = read_matching_workbook(official_layout(tmp_path / "tool.xlsx"))
    with pytest.raises(ParameterError, match="no column for barrier"):
        match_strategies(["Peer Pressure"], workbook=tool, framework="cfir1")
    with pytest.raises(ParameterError, match="level2 < level1"):
        match_strategies(["Cost"], framework="cfir1", level1=20, level2=50)


def test_levels_are_checked_against_the_published_table2() -> None:
    """Waltz et al. 2019, Table 2: Cost has 1 Level 1 and 9 Level 2 strategies; Adaptability 1 and 10.

    The hand-made percentages sit on the thresholds (50 is Level 1, 49.9 and 20 are Level 2, 19.9 is
    neither), so a reader that used > instead of >= or 50 for 49 would not reproduce Cost's (1, 9).
    """
    names = [s.name for s in load_vocabulary().strategies][:12]
    cost = [50.0, 49.9, 20.0, 25, 30, 35, 40, 45, 21, 22, 19.9, 0]  # 1 Level 1, 9 Level 2
    adaptability = [60.0, 20.0, 19.9, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # 1 and 1: not the published (1, 10)
    long = pd.DataFrame([{"barrier": b, "strategy": n, "percent": p}
                         for b, values in (("Cost", cost), ("Adaptability", adaptability))
                         for n, p in zip(names, values, strict=True)])
    check = workbook_from_frame(long).published_check().set_index("barrier")
    assert check.loc["cost", ["level1", "level2"]].tolist() == [1, 9] and check.loc["cost", "matches"]
    assert not check.loc["adaptability", "matches"]
    assert PUBLISHED_LEVEL_TOTALS == (33, 332)  # 33 Level 1 and 332 Level 2 pairs of 2,847 (cfirguide.org summary)
