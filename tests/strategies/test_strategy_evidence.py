"""What the data say about strategies: recovery of the example programme's true strategy effects.

The example generator (knowdo.examples) sets true effects of four ERIC
strategies on adoption (odds ratio), fidelity (difference) and reach (rate
ratio of programme screening above usual care); facilitation and audit and
feedback go to random halves of the treated clinics, training and
supervision to all of them. The default test uses the generator's default
seed and size and checks that every estimable effect's 95% interval holds
the truth, and that what cannot be separated from the intervention itself
(ongoing training on fidelity) is reported as not estimable. The slow test
repeats this over 100 seeds; its coverage figures are recorded in
docs/studies/strategy-evidence.md.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.examples import generate_programme
from knowdo.strategies.evidence import StrategyAssociations, configurational_table, strategy_evidence


@pytest.fixture(scope="module")
def programme():  # type: ignore[no-untyped-def]
    return generate_programme(seed=0, persons=20_000)


@pytest.fixture(scope="module")
def result(programme):  # type: ignore[no-untyped-def]
    return strategy_evidence(programme.tables)


def with_truth(result, programme) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    truth = programme.truth.strategy_effects.set_index(["strategy", "target"])["effect"]
    e = result.estimates.copy()
    e["truth"] = [truth.get((s, o), np.nan) for s, o in zip(e["strategy"], e["outcome"], strict=True)]
    return e


def test_true_strategy_effects_lie_within_the_intervals(result, programme) -> None:  # type: ignore[no-untyped-def]
    e = with_truth(result, programme)
    estimable = e.loc[e["estimable"]]
    expected = {("adoption", "Facilitation"), ("adoption", "Audit and provide feedback"),
                ("fidelity", "Facilitation"), ("fidelity", "Audit and provide feedback"),
                ("fidelity", "Provide clinical supervision"), ("reach", "Facilitation"),
                ("reach", "Audit and provide feedback")}
    assert set(zip(estimable["outcome"], estimable["strategy"], strict=True)) == expected
    for r in estimable.itertuples():
        assert r.conf_low <= r.truth <= r.conf_high, (r.outcome, r.strategy, r.estimate, r.conf_low, r.conf_high)
    # the intervals are informative, not just wide: facilitation's reach and adoption effects exclude no effect
    fac = e.set_index(["outcome", "strategy"])
    assert fac.loc[("reach", "Facilitation"), "conf_low"] > 1
    assert fac.loc[("fidelity", "Audit and provide feedback"), "conf_low"] > 0


def test_what_cannot_be_separated_is_said_not_estimated(result) -> None:  # type: ignore[no-untyped-def]
    e = result.estimates.set_index(["outcome", "strategy"])
    training = e.loc[("fidelity", "Conduct ongoing training")]
    assert not training["estimable"] and np.isnan(training["estimate"])
    assert "no before/after contrast" in training["note"] or "no contrast" in training["note"]
    assert not e.loc[("adoption", "Provide clinical supervision"), "estimable"]
    assert "Caveat" in result.summary() and "not estimable" in result.summary()


def test_result_views(result) -> None:  # type: ignore[no-untyped-def]
    tidy = result.tidy()
    assert {"outcome", "strategy", "estimate", "conf_low", "conf_high", "scale", "df"} <= set(tidy.columns)
    assert set(tidy.loc[tidy["outcome"] == "reach", "scale"]) == {"rate ratio"}
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["kind"] == "strategy_evidence" and payload["caveats"]
    assert result.plot().to_dict()["hconcat"]
    assert result.estimate("facilitation", "reach")["estimate"] > 1
    # every treated site has a row in the truth-table input; all strategies are listed as conditions
    assert len(result.sites) == 36
    assert set(result.configurations["outcome"]) == {"adoption", "fidelity", "reach"}


def test_inputs_are_not_modified(programme) -> None:  # type: ignore[no-untyped-def]
    tables = {k: programme.tables[k].copy() for k in ("rollout", "encounters", "providers")}
    strategy_evidence(tables, outcomes=["fidelity", "adoption"])
    for k, frame in tables.items():
        pd.testing.assert_frame_equal(frame, programme.tables[k])


def test_combinations_and_options(programme) -> None:  # type: ignore[no-untyped-def]
    r = strategy_evidence(programme.tables, outcomes=["reach"], combinations=True, time_effects="event", vcov="CR1")
    pair = r.estimates.loc[r.estimates["term"] == "combination"]
    assert "Audit and provide feedback + Facilitation" in set(pair["strategy"])
    # the truth has no interaction on the log scale: the pair's ratio interval holds 1
    row = pair.set_index("strategy").loc["Audit and provide feedback + Facilitation"]
    assert row["estimable"] and row["conf_low"] <= 1 <= row["conf_high"]
    with pytest.raises(ParameterError, match="time_effects"):
        StrategyAssociations(time_effects="weekly").fit(programme.tables)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="'rollout'"):
        strategy_evidence({"encounters": programme.tables["encounters"]})
    no_strategies = programme.tables["rollout"].loc[lambda d: d["kind"] == "intervention"]
    with pytest.raises(ParameterError, match="no 'strategy' rows"):
        strategy_evidence({**programme.tables, "rollout": no_strategies})


def test_configurational_table_hand_computed() -> None:
    sites = pd.DataFrame({
        "A": [True, True, True, False, False, False],
        "B": [True, False, True, True, False, False],
        "reach": [9.0, 8.0, 7.0, 3.0, 2.0, 1.0],
    })
    t = configurational_table(sites, ["A", "B"], ["reach"]).set_index("condition")
    # median 5: high = first three sites, all with A
    assert t.loc["A", ["n_with", "n_high_with", "n_high"]].tolist() == [3, 3, 3]
    assert t.loc["A", "consistency"] == 1.0 and t.loc["A", "coverage"] == 1.0 and t.loc["A", "in_all_high"]
    # B: 3 sites, 2 high -> consistency 2/3; coverage 2/3
    assert t.loc["B", "consistency"] == pytest.approx(2 / 3) and t.loc["B", "coverage"] == pytest.approx(2 / 3)
    assert t.loc["A + B", "n_with"] == 2 and t.loc["A + B", "consistency"] == 1.0


@pytest.mark.slow
def test_interval_coverage_over_100_example_seeds() -> None:
    rows = []
    for seed in range(100):
        prog = generate_programme(seed=seed, persons=20_000)
        e = with_truth(strategy_evidence(prog.tables), prog)
        e = e.loc[e["estimable"]]
        rows.append(e.assign(cover=(e["conf_low"] <= e["truth"]) & (e["truth"] <= e["conf_high"])))
    cover = pd.concat(rows).groupby(["outcome", "strategy"])["cover"].mean()
    print(cover.to_string())
    # 95% intervals; with 100 seeds a coverage below 0.88 is more than 3 binomial SEs short
    assert (cover >= 0.88).all(), cover
