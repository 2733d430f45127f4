"""Delphi consensus rules on hand-computed rounds, the RAND/UCLA disagreement index, and group ranking.

Rules: COMET Handbook (Williamson et al., Trials 2017;18(Suppl 3):280):
consensus in = at least 70% rate 7-9 and fewer than 15% rate 1-3 (out: the
mirror). RAND/UCLA (Fitch et al. 2001): DI = IPR / (2.35 + 1.5 |5 - IPR
centre|), P30 and P70; reference values from BMJ Open 2012;2:e001431
Table 1 (n = 15: P30 7.0, P70 8.0, IPR 1.0, IPR centre 7.5, asymmetry 2.5,
IPRAS 6.1, no disagreement). Percentiles: linear interpolation (type 7),
worked by hand in the comments.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from knowdo.codesign.priorities import ConsensusRules, DelphiVote, item_statistics, rank_items, summarise_delphi
from knowdo.errors import ParameterError

PEOPLE = [f"p{i}" for i in range(1, 11)]
ROUND1 = {
    "Q1": [9, 8, 8, 7, 7, 7, 7, 5, 4, 2],  # 70% high, 10% low -> consensus in
    "Q2": [9, 9, 8, 8, 7, 7, 7, 2, 2, 5],  # 70% high, 20% low -> no consensus (blocked)
    "Q3": [1, 1, 2, 3, 2, 1, 3, 2, 8, 5],  # 80% low, 10% high -> consensus out
}
ROUND2 = {"Q2": [9, 9, 8, 8, 7, 7, 7, 6, 2, 8]}  # 80% high, 10% low -> consensus in


def votes() -> pd.DataFrame:
    rows = []
    for round_no, ratings in ((1, ROUND1), (2, ROUND2)):
        for item, values in ratings.items():
            for person, value in zip(PEOPLE, values, strict=True):
                group = "researcher" if person in ("p1", "p2", "p3") else "community_partner"
                rows.append({"round": round_no, "item": item, "participant": person, "rating": value, "group": group})
    return pd.DataFrame(rows)


def test_percent_rule_on_hand_computed_rounds() -> None:
    result = summarise_delphi(votes())
    r1 = result.items.loc[result.items["round"] == 1].set_index("item")
    assert r1["status"].to_dict() == {"Q1": "consensus_in", "Q2": "no_consensus", "Q3": "consensus_out"}
    assert r1.loc["Q1", "share_high"] == pytest.approx(0.7) and r1.loc["Q2", "share_low"] == pytest.approx(0.2)
    # Q1 sorted 2 4 5 7 7 7 7 8 8 9: median 7; Q1 at h = 9 x .25 = 2.25 -> 5 + .25 x 2 = 5.5;
    # Q3 at h = 6.75 -> 7 + .75 x 1 = 7.75
    assert r1.loc["Q1", ["median", "q1", "q3"]].tolist() == pytest.approx([7.0, 5.5, 7.75])
    assert result.next_round_items(1) == ["Q2"]
    final = result.final().set_index("item")
    assert final.loc["Q2", "status"] == "consensus_in" and final.loc["Q2", "round"] == 2
    stab = result.stability().set_index("item")
    assert stab.loc["Q2", "share_high_change"] == pytest.approx(0.1)
    groups = result.groups.set_index(["round", "item", "group"])
    # Q2 round 1: researchers 9 9 8 -> all high; community partners 8 7 7 7 2 2 5 -> 4 of 7 high
    assert groups.loc[(1, "Q2", "researcher"), "share_high"] == pytest.approx(1.0)
    assert groups.loc[(1, "Q2", "community_partner"), "share_high"] == pytest.approx(4 / 7)


def test_exactly_15_percent_low_depends_on_the_stated_rule() -> None:
    ratings = [9] * 14 + [2] * 3 + [5] * 3  # 20 raters: 70% high, exactly 15% low
    frame = pd.DataFrame({"round": 1, "item": "X", "participant": [f"p{i}" for i in range(20)], "rating": ratings})
    assert summarise_delphi(frame).final().loc[0, "status"] == "no_consensus"  # COMET: fewer than 15%
    lenient = ConsensusRules(strict_against=False)
    assert summarise_delphi(frame, lenient).final().loc[0, "status"] == "consensus_in"  # at most 15%


def test_rand_ucla_reference_example_and_disagreement() -> None:
    stats = item_statistics([4, 5, 6, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 9, 9])
    assert (stats["median"], stats["p30"], stats["p70"], stats["ipr"]) == (7.0, 7.0, 8.0, 1.0)
    assert stats["asymmetry"] == pytest.approx(2.5) and stats["ipras"] == pytest.approx(6.1)
    assert stats["disagreement_index"] == pytest.approx(1.0 / 6.1)
    rules = ConsensusRules(rule="rand_ucla")
    # polarised panel of 9: sorted 1 1 2 2 3 8 8 9 9; P30 at h = 2.4 -> 2; P70 at h = 5.6 -> 8;
    # IPR 6, centre 5, IPRAS 2.35, DI 2.55 > 1 -> disagreement, so 'uncertain' although the median is 3
    reference = [4, 5, 6, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 9, 9]
    polarised = [1, 1, 2, 2, 3, 8, 8, 9, 9]
    frame = pd.DataFrame({"round": 1, "item": ["A"] * 15 + ["B"] * 9, "participant": [f"p{i}" for i in range(24)],
                          "rating": [*reference, *polarised]})
    items = summarise_delphi(frame, rules).items.set_index("item")
    assert items.loc["A", "status"] == "appropriate"
    assert items.loc["B", "median"] == 3 and items.loc["B", "disagreement_index"] == pytest.approx(6 / 2.35)
    assert items.loc["B", "status"] == "uncertain"


def test_feedback_is_anonymous_and_abstentions_are_counted() -> None:
    frame = pd.concat([votes(), pd.DataFrame([{"round": 1, "item": "Q1", "participant": "p11", "rating": None}])])
    result = summarise_delphi(frame)
    q1 = result.items.set_index(["round", "item"]).loc[(1, "Q1")]
    assert q1["n"] == 10 and q1["n_abstained"] == 1 and q1["share_high"] == pytest.approx(0.7)
    mine = result.feedback(1, participant="p10").set_index("item")
    assert mine.loc["Q1", "your_rating"] == 2 and mine.loc["Q2", "your_rating"] == 5
    assert "your_rating" not in result.feedback(1).columns
    assert mine.loc["Q1", "n_7"] == 4
    text = json.dumps(result.to_dict())
    assert "p10" not in text and "participant" not in text
    assert "Final status" in result.summary() and result.plot().to_dict()


def test_vote_objects_and_errors() -> None:
    objs = [DelphiVote(1, "Q", f"p{i}", 8) for i in range(5)]
    assert summarise_delphi(objs).final().loc[0, "status"] == "consensus_in"
    with pytest.raises(ParameterError, match="row 1, column 'rating'"):
        summarise_delphi(pd.DataFrame({"round": [1], "item": ["Q"], "participant": ["a"], "rating": [10]}))
    with pytest.raises(ParameterError, match="twice in round 1"):
        summarise_delphi(pd.DataFrame({"round": [1, 1], "item": ["Q", "Q"], "participant": ["a", "a"],
                                       "rating": [5, 6]}))
    with pytest.raises(ParameterError, match="column 'round'"):
        summarise_delphi(pd.DataFrame({"round": [0], "item": ["Q"], "participant": ["a"], "rating": [5]}))
    with pytest.raises(ParameterError, match="rule="):
        ConsensusRules(rule="vibes")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="smaller than agree_share"):
        ConsensusRules(agree_share=0.5, against_share=0.6)


def test_nominal_group_ranking_hand_computed() -> None:
    ranks = pd.DataFrame({
        "participant": ["p1"] * 3 + ["p2"] * 3 + ["p3"] * 3 + ["p4"] * 3,
        "item": ["A", "B", "C", "B", "A", "D", "A", "C", "B", "C", "B", "A"],
        "rank": [1, 2, 3] * 4,
    })
    borda = rank_items(ranks, items=["A", "B", "C", "D", "E"]).table.set_index("item")
    # top 3: rank 1 = 3 points. A 3+2+3+1 = 9, B 2+3+1+2 = 8, C 1+2+3 = 6, D 1, E 0
    assert borda["points"].to_dict() == {"A": 9, "B": 8, "C": 6, "D": 1, "E": 0}
    assert borda["position"].tolist() == [1, 2, 3, 4, 5]
    assert borda.loc["A", "n_first"] == 2
    # mean rank with unranked = 4: A (1+2+1+3)/4, C (3+4+2+1)/4, E 4
    assert borda.loc["A", "mean_rank"] == pytest.approx(1.75) and borda.loc["C", "mean_rank"] == pytest.approx(2.5)
    by_mean = rank_items(ranks, method="mean_rank").table
    assert by_mean["item"].tolist() == ["A", "B", "C", "D"]
    with pytest.raises(ParameterError, match="same rank to two items"):
        rank_items(pd.DataFrame({"participant": ["a", "a"], "item": ["X", "Y"], "rank": [1, 1]}))
