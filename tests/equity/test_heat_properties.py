"""Properties every HEAT measure must have, and analytic standard errors checked against simulation.

Properties (issue 4): equal subgroups give D = 0, R = 1 and zero dispersion;
relative measures do not change when every estimate is rescaled; favourable
and adverse indicators flip the sign of D (ordered dimensions) and of PAR.
The analytic SEs are compared with the spread of the same estimate over
normal draws of the subgroup estimates (tolerance 10% of the SE with 4,000
draws: the Monte Carlo error of an SD is about 1/sqrt(2*4000) = 1.1%, and
the delta method is first order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowdo.equity import heat_measures

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZERO_WHEN_EQUAL = ("D", "ACI", "RCI", "SII", "BGV", "BGSD", "COV", "IDISU", "IDISW", "MDBU", "MDBW", "MDMU", "MDMW",
                   "MDRU", "MDRW", "MLD", "TI", "PAR", "PAF")
ONE_WHEN_EQUAL = ("R", "RII")
RELATIVE = ("R", "RCI", "RII", "COV", "IDISU", "IDISW", "MLD", "TI", "PAF")


def table(estimates: list[float], pops: list[float], *, ordered: bool, favourable: bool = True,
          dimension: str = "dim", scale: float = 100.0, reference: int | None = 0) -> pd.DataFrame:
    j = len(estimates)
    return pd.DataFrame({
        "indicator_abbr": "ind", "dimension": dimension, "subgroup": [f"g{i}" for i in range(j)],
        "estimate": estimates, "se": [max(0.01, 0.05 * e) for e in estimates], "population": pops,
        "favourable_indicator": int(favourable), "ordered_dimension": int(ordered),
        "subgroup_order": list(range(1, j + 1)) if ordered else [0] * j,
        "reference_subgroup": [int(i == reference) for i in range(j)], "indicator_scale": scale,
    })


sizes = st.integers(min_value=3, max_value=6)


@PROPERTY_SETTINGS
@given(j=sizes, level=st.floats(1.0, 99.0), data=st.data())
def test_equal_subgroups_mean_no_inequality(j: int, level: float, data: st.DataObject) -> None:
    pops = data.draw(st.lists(st.floats(10.0, 1e5), min_size=j, max_size=j))
    both = pd.concat([table([level] * j, pops, ordered=True, dimension="ordered"),
                      table([level] * j, pops, ordered=False, dimension="plain")], ignore_index=True)
    result = heat_measures(both, draws=20).tidy()
    values = result.set_index(["dimension", "measure"])["estimate"]
    assert set(result["measure"]) == set(ZERO_WHEN_EQUAL) | set(ONE_WHEN_EQUAL)
    for (_dimension, code), v in values.items():
        expected = 1.0 if code in ONE_WHEN_EQUAL else 0.0
        assert v == pytest.approx(expected, abs=1e-7), code


@PROPERTY_SETTINGS
@given(j=sizes, factor=st.floats(0.01, 100.0), data=st.data())
def test_relative_measures_do_not_change_with_rescaling(j: int, factor: float, data: st.DataObject) -> None:
    ests = data.draw(st.lists(st.floats(1.0, 90.0), min_size=j, max_size=j))
    pops = data.draw(st.lists(st.floats(10.0, 1e4), min_size=j, max_size=j))
    parts = []
    for ordered in (True, False):
        for k, f in ((0, 1.0), (1, factor)):
            t = table([e * f for e in ests], pops, ordered=ordered, dimension=f"{ordered}-{k}", scale=1e9)
            parts.append(t)
    result = heat_measures(pd.concat(parts, ignore_index=True), measures=RELATIVE, sii_model="linear",
                           draws=20).tidy()
    values = result.set_index(["dimension", "measure"])["estimate"]
    for ordered in (True, False):
        base = values.xs(f"{ordered}-0", level="dimension")
        scaled = values.xs(f"{ordered}-1", level="dimension")
        for code in base.index:
            assert scaled[code] == pytest.approx(base[code], rel=1e-7, abs=1e-9), code


@PROPERTY_SETTINGS
@given(j=sizes, data=st.data())
def test_favourable_and_adverse_flip_signs(j: int, data: st.DataObject) -> None:
    ests = data.draw(st.lists(st.floats(1.0, 90.0), min_size=j, max_size=j, unique=True))
    pops = data.draw(st.lists(st.floats(10.0, 1e4), min_size=j, max_size=j))
    # favourable and adverse are separate indicators (flags are constant within an indicator)
    both = pd.concat([table(ests, pops, ordered=True, favourable=True, dimension="fav", reference=None),
                      table(ests, pops, ordered=True, favourable=False, dimension="adv", reference=None).assign(
                          indicator_abbr="ind_adverse")], ignore_index=True)
    v = heat_measures(both, measures=["D", "R", "ACI", "SII", "PAR"]).tidy().set_index(["dimension", "measure"])[
        "estimate"]
    assert v["adv", "D"] == pytest.approx(-v["fav", "D"])
    assert v["adv", "R"] == pytest.approx(1.0 / v["fav", "R"])
    # the gradient measures do not flip; their reading does
    assert v["adv", "ACI"] == pytest.approx(v["fav", "ACI"])
    assert v["adv", "SII"] == pytest.approx(v["fav", "SII"])
    # PAR is truncated at zero on the side HEAT sets: >= 0 for favourable, <= 0 for adverse
    assert v["fav", "PAR"] >= 0.0 >= v["adv", "PAR"]


def _draw_sets(y: np.ndarray, se: np.ndarray, pop: np.ndarray, draws: int, *, ordered: bool) -> pd.DataFrame:
    rng = np.random.default_rng(2024)
    sims = rng.normal(y, se, size=(draws, len(y)))
    j = len(y)
    return pd.DataFrame({
        "indicator_abbr": "sim", "dimension": "d", "date": np.repeat(np.arange(draws), j).astype(str),
        "subgroup": np.tile([f"g{i}" for i in range(j)], draws), "estimate": sims.ravel(),
        "se": np.tile(se, draws), "population": np.tile(pop, draws), "favourable_indicator": 1,
        "ordered_dimension": int(ordered), "subgroup_order": np.tile(np.arange(1, j + 1), draws) if ordered else 0,
        "indicator_scale": 1e9,
    })


@pytest.mark.parametrize(("code", "ordered"), [("D", False), ("R", False), ("BGV", False), ("MLD", False),
                                               ("TI", False)])
def test_analytic_se_matches_simulation(code: str, ordered: bool) -> None:
    y = np.array([30.0, 42.0, 55.0, 61.0])
    se = np.array([1.5, 2.0, 1.0, 2.5])
    pop = np.array([300.0, 200.0, 350.0, 150.0])
    point = heat_measures(table(list(y), list(pop), ordered=ordered, reference=None).assign(se=se), measures=[code])
    analytic = float(point.measure(code)["std_error"].iloc[0])
    sims = heat_measures(_draw_sets(y, se, pop, 4000, ordered=ordered), measures=[code]).measure(code)["estimate"]
    spread = np.std(np.log(sims) if code == "R" else sims, ddof=1)
    assert spread == pytest.approx(analytic, rel=0.10)


def test_paf_walter_se_matches_binomial_sampling() -> None:
    # Walter's variance treats the pseudo 2x2 table as multinomial; sample counts that way and recompute PAF.
    pop = np.array([2000.0, 3000.0, 1500.0, 2500.0])
    p = np.array([0.3, 0.4, 0.5, 0.6])
    t = table(list(100 * p), list(pop), ordered=True, reference=None)
    analytic = float(heat_measures(t, measures=["PAF"]).measure("PAF")["std_error"].iloc[0])
    n, mu = pop.sum(), (pop * p).sum() / pop.sum()
    c, d = p[3] * pop[3], pop[3] * (1 - p[3])
    a = mu * n - c
    cells = np.array([c, d, a, n - a - c - d]) / n
    draws = np.random.default_rng(7).multinomial(int(n), cells, size=20000)
    paf = 100 * ((draws[:, 0] / (draws[:, 0] + draws[:, 1])) / ((draws[:, 0] + draws[:, 2]) / n) - 1)
    assert np.std(paf) == pytest.approx(analytic, rel=0.05)


def test_simulation_intervals_are_seeded_and_vectorised() -> None:
    t = table([20.0, 30.0, 50.0, 45.0], [100.0, 200.0, 100.0, 50.0], ordered=False, reference=None)
    a = heat_measures(t, measures=["BGSD", "MDMW"], draws=500, seed=1).tidy()
    b = heat_measures(t, measures=["BGSD", "MDMW"], draws=500, seed=1).tidy()
    c = heat_measures(t, measures=["BGSD", "MDMW"], draws=500, seed=2).tidy()
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["conf_low"], c["conf_low"])
    assert (a["ci_method"] == "simulation").all()
    assert (a["conf_low"] < a["estimate"]).all() and (a["estimate"] < a["conf_high"]).all()


def test_simulation_draws_respect_the_percentage_range() -> None:
    from knowdo.equity.heat_ci import truncated_normal_draws

    rng = np.random.default_rng(0)
    mean = np.array([[1.0, 99.0, 50.0, 0.0]])
    sd = np.array([[5.0, 5.0, 5.0, 3.0]])
    draws = truncated_normal_draws(mean, sd, 0.0, 100.0, 20000, rng)
    assert draws.shape == (1, 20000, 4)
    assert draws.min() >= 0.0 and draws.max() <= 100.0
    # a truncated normal at 50 +/- 5 inside [0, 100] is untouched: mean 50, sd 5
    assert draws[0, :, 2].mean() == pytest.approx(50.0, abs=0.15)
    assert draws[0, :, 2].std() == pytest.approx(5.0, rel=0.03)
    # half-normal at 0: mean sd*sqrt(2/pi) = 3 * 0.7979 = 2.394
    assert draws[0, :, 3].mean() == pytest.approx(3 * np.sqrt(2 / np.pi), rel=0.03)
