"""MAIHDA recovers known intersectional effects and the variance partition from simulated people.

Simulation: 2 x 5 x 3 = 30 intersections, stratum effects u_j ~ N(0, 0.5^2),
individual noise e ~ N(0, 1), so the true VPC is 0.25 / (0.25 + 1) = 0.20
(Evans et al. 2018 define VPC this way). Tolerances allow for 30 strata
(the SE of a variance estimated from 30 groups is roughly 0.25 * sqrt(2/29) = 0.066).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from knowdo.equity import Maihda, maihda
from knowdo.errors import ParameterError

LEVELS = (("a1", "a2"), ("b1", "b2", "b3", "b4", "b5"), ("c1", "c2", "c3"))


def people(
    seed: int, *, main: tuple[float, float, float] = (0.0, 0.0, 0.0), sd_u: float = 0.5
) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    strata = [(a, b, c) for a in LEVELS[0] for b in LEVELS[1] for c in LEVELS[2]]
    u = rng.normal(0.0, sd_u, len(strata))
    sizes = rng.integers(4, 250, len(strata))
    frames, means = [], {}
    for (a, b, c), uj, n in zip(strata, u, sizes, strict=True):
        fixed = main[0] * (a == "a2") + main[1] * LEVELS[1].index(b) + main[2] * (c == "c3")
        means[f"{a} × {b} × {c}"] = 2.0 + fixed + uj
        frames.append(pd.DataFrame({"A": a, "B": b, "C": c, "y": 2.0 + fixed + uj + rng.normal(0.0, 1.0, n)}))
    return pd.concat(frames, ignore_index=True), pd.Series(means)


def test_recovers_vpc_and_stratum_means() -> None:
    data, truth = people(11)
    result = maihda(data, outcome="y", dimensions=["A", "B", "C"])
    assert result.vpc == pytest.approx(0.20, abs=0.08)
    est = result.strata.set_index("stratum")["predicted"]
    err = est - truth.loc[est.index]
    assert np.sqrt((err**2).mean()) < 0.2  # shrunken means within 0.2 of the true stratum means
    assert np.corrcoef(est, truth.loc[est.index])[0, 1] > 0.9
    inside = (result.strata["conf_low"] <= truth.loc[result.strata["stratum"]].to_numpy()) & (
        truth.loc[result.strata["stratum"]].to_numpy() <= result.strata["conf_high"])
    assert inside.mean() >= 0.8  # nominal 95%; a coarse check with 30 strata


def test_main_effects_explain_between_stratum_variance() -> None:
    # strong additive effects and small interactions: PCV near 1, fixed effects recovered
    data, _ = people(5, main=(1.0, 0.5, -0.8), sd_u=0.15)
    result = Maihda(outcome="y", dimensions=["A", "B", "C"]).fit(data).result_
    assert result.pcv > 0.8
    fixed = result.fixed_effects.set_index("term")["estimate"]
    assert fixed["A_a2"] == pytest.approx(1.0, abs=0.2)
    assert fixed["B_b5"] == pytest.approx(2.0, abs=0.3)  # 4 steps of 0.5
    assert fixed["C_c3"] == pytest.approx(-0.8, abs=0.2)


def test_small_intersections_are_not_published_raw() -> None:
    data, _ = people(3)
    counts = data.groupby(["A", "B", "C"]).size()
    result = maihda(data, outcome="y", dimensions=["A", "B", "C"], threshold=30)
    small = result.strata[result.strata["small"]]
    assert len(small) == int((counts < 30).sum()) > 0
    assert small["n"].isna().all() and small["observed"].isna().all()
    assert small["predicted"].notna().all()
    payload = result.to_dict()
    assert all(row["observed"] is None for row in payload["strata"] if row["small"])


def test_bad_input_is_named() -> None:
    data, _ = people(1)
    with pytest.raises(ParameterError, match="missing column"):
        maihda(data, outcome="nope", dimensions=["A"])
    with pytest.raises(ParameterError, match="at least 3 intersections"):
        maihda(data[data["A"] == "a1"].assign(B="b1"), outcome="y", dimensions=["A", "B"])
