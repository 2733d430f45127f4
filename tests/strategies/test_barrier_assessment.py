"""Barrier assessment: hand-computed aggregates, group views kept side by side, priorities, input errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.strategies.assessment import Rating, assess_barriers, ratings_frame


def ratings() -> pd.DataFrame:
    # Available Resources: researchers -2, -2; implementers -1, -2; community partners +1, 0
    # Local Attitudes:     researchers +1, +1; implementers 0, +1; community partners -2, -1
    return pd.DataFrame({
        "member": list("abcdefabcdef"),
        "group": ["researcher"] * 2 + ["implementer"] * 2 + ["community_partner"] * 2
        + ["researcher"] * 2 + ["implementer"] * 2 + ["community_partner"] * 2,
        "construct": ["Available Resources"] * 6 + ["Local Attitudes"] * 6,
        "valence": [-2, -2, -1, -2, 1, 0, 1, 1, 0, 1, -2, -1],
        "importance": [5, 4, 5, 5, 2, 3, 3, 3, 2, 2, 5, 5],
        "evidence": ["no private room for sessions", "", "", "", "", ""] + [""] * 6,
    })


def test_aggregates_match_hand_computation() -> None:
    result = assess_barriers(ratings())
    res = result.constructs.set_index("construct").loc["available_resources"]
    # valences -2 -2 -1 -2 1 0: mean -1, median -1.5, sorted -2 -2 -2 -1 0 1
    assert res["valence_mean"] == pytest.approx(-1.0)
    assert res["valence_median"] == pytest.approx(-1.5)
    assert res["share_barrier"] == pytest.approx(4 / 6)
    assert res["share_facilitator"] == pytest.approx(1 / 6)
    assert res["importance_mean"] == pytest.approx(24 / 6)
    # priority = strength (1 / 2) x scaled importance ((4 - 1) / 4)
    assert res["priority"] == pytest.approx(0.5 * 0.75)
    groups = result.groups.set_index(["construct", "group"])["valence_mean"]
    assert groups[("available_resources", "researcher")] == pytest.approx(-2.0)
    assert groups[("available_resources", "community_partner")] == pytest.approx(0.5)
    # gap 2.5 >= 2 and signs differ
    assert res["groups_disagree"] and res["sign_conflict"]
    assert res["barrier_for"] == "implementer, researcher"


def test_a_barrier_seen_by_one_group_is_not_averaged_away() -> None:
    result = assess_barriers(ratings())
    overall = result.priorities()["construct"].tolist()
    assert overall == ["available_resources"]  # Local Attitudes averages to 0
    any_group = result.priorities(rule="any_group")
    assert any_group["construct"].tolist() == ["available_resources", "local_attitudes"]
    attitudes = any_group.set_index("construct").loc["local_attitudes"]
    assert attitudes["barrier_for"] == "community_partner"
    # scored by the community partners: strength 1.5 / 2 x importance (5 - 1) / 4
    assert attitudes["score"] == pytest.approx(0.75)
    wide = result.side_by_side()
    assert set(wide.columns) >= {"researcher", "implementer", "community_partner"}
    assert "Barriers for some groups only" in result.summary()


def test_evidence_text_and_serialisation() -> None:
    result = assess_barriers(ratings())
    ev = result.evidence("Available Resources")
    assert ev["evidence"].tolist() == ["no private room for sessions"]
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["priorities"][0]["construct"] == "available_resources"
    assert result.plot().to_dict()["layer"]


def test_rating_objects_and_sites() -> None:
    items = [Rating("a", "researcher", "Financing", -2, site="D01-C01"),
             Rating("a", "researcher", "Financing", 1, site="D01-C02")]
    result = assess_barriers(items)
    assert sorted(result.constructs["site"]) == ["D01-C01", "D01-C02"]
    assert result.barrier_ids(site="D01-C01") == ["financing"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"valence": 3}, "row 1, column 'valence'"),
        ({"importance": 9}, "row 1, column 'importance'"),
        ({"construct": "Leadership Vibes"}, "row 1, column 'construct'"),
        ({"construct": "Inner Setting"}, "is a domain"),
        ({"group": ""}, "row 1, column 'group'"),
    ],
)
def test_bad_ratings_name_the_row_and_column(change: dict[str, object], message: str) -> None:
    frame = ratings().head(2).copy()
    for column, value in change.items():
        frame.loc[0, column] = value
    with pytest.raises(ParameterError, match=message):
        ratings_frame(frame)


def test_duplicate_ratings_are_refused() -> None:
    frame = pd.concat([ratings().head(1), ratings().head(1)])
    with pytest.raises(ParameterError, match="more than once"):
        assess_barriers(frame)
