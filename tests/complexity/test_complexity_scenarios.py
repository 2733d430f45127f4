"""Scenarios: TOML parsing, paired differences, budget impact, who gains and HEAT measures over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.complexity.calibration import calibrate
from knowdo.complexity.panel_data import PathwayData, PathwaySimulator
from knowdo.complexity.pathway import Change
from knowdo.complexity.scenarios import Scenario, baseline, default_scenarios, load_scenarios, run_scenarios
from knowdo.config import Stratum
from knowdo.errors import ConfigError

STRATA = ("Q1", "Q2", "Q3")
WEALTH = Stratum("wealth", "Socioeconomic status", True, STRATA, "Q3")


@pytest.fixture(scope="module")
def setup() -> tuple[PathwaySimulator, object]:
    months = 24
    coverage = np.clip((np.arange(months) - 4) / 8, 0, 1)[:, None] * np.array([0.5, 0.8, 1.0])
    data = PathwayData(dimension="wealth", strata=STRATA, periods=pd.date_range("2024-01-01", periods=months,
                                                                                freq="MS"),
                       population=np.array([40_000.0, 30_000.0, 30_000.0]), need=np.array([7_000.0, 4_000.0, 3_000.0]),
                       coverage=coverage, observed={}, cost=np.zeros(months))
    # scarce lay capacity, so training more counsellors and priority rules matter
    sim = PathwaySimulator(data, fixed={"posts_per_1000_lay": 0.1, "screening_uplift": 0.05}, dt=0.5, warmup=6,
                           series=("started",))
    truth = sim({"detection": np.array([0.01])})
    cal = calibrate(sim, {"started": truth["started"][0]}, {"detection": (0.005, 0.02)},
                    method="abc_rejection", simulations=400, accept=0.1, seed=1)
    return sim, cal


def test_paired_differences_budget_and_who_gains(setup) -> None:
    sim, cal = setup
    scen = [baseline(), Scenario("Double lay training", (Change("posts_per_1000_lay", 2.0, "scale"),)),
            Scenario("Poorest first", (Change("priority", 4.0, "set", stratum="Q1"),))]
    result = run_scenarios(sim, cal, scen, horizon=24, draws=20, stratum=WEALTH, seed=3)
    comp = result.comparison.set_index(["scenario", "outcome"])
    base = comp.loc[("Current programme", "effectively_treated")]
    assert base["difference"] == 0 and base["difference_low"] == 0 and base["difference_high"] == 0
    more = result.budget.set_index("scenario").loc["Double lay training"]
    assert more["additional_effective_low"] > 0 and more["budget_impact"] > 0
    assert more["cost_per_effective"] == pytest.approx(more["budget_impact"] / more["additional_effective"])
    gains = result.gains.set_index(["scenario", "stratum"])
    # priority moves treatment toward Q1 and away from the others when capacity binds
    assert gains.loc[("Poorest first", "Q1"), "mean"] > 0 > gains.loc[("Poorest first", "Q3"), "mean"]
    eq = result.equity
    assert {"D", "R", "SII", "RII", "ACI", "RCI", "PAR", "PAF"} <= set(eq["measure"])
    assert (eq["conf_low"] <= eq["mean"] + 1e-9).all() and (eq["mean"] <= eq["conf_high"] + 1e-9).all()
    traj = result.trajectories
    assert set(traj["stratum"]) == {"all", *STRATA} and traj["month"].max() == 24 + 24 - 1
    assert "budget impact" in result.summary() and result.to_dict()["horizon"] == 24
    for chart in (result.plot(), result.plot_gains(), result.plot_equity()):
        assert chart.to_dict()


def test_scenarios_from_toml(tmp_path: Path) -> None:
    file = tmp_path / "plans.toml"
    file.write_text('''
[[scenario]]
name = "Double lay-counsellor training"
description = "Twice the posts"
[[scenario.change]]
parameter = "posts_per_1000_lay"
op = "scale"
value = 2.0
start = 6

[[scenario]]
name = "Poorest first"
[[scenario.change]]
parameter = "priority"
value = 4
stratum = "Q1"
''', encoding="utf-8")
    got = load_scenarios(file)
    assert [s.name for s in got] == ["Double lay-counsellor training", "Poorest first"]
    assert got[0].changes[0] == Change("posts_per_1000_lay", 2.0, "scale", 6.0)
    assert got[1].changes[0].stratum == "Q1" and got[1].changes[0].op == "set"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\n[[scenario.change]]\nparameter = "detecton"\nvalue = 1\n',
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scenario 'x', change 1: .*unknown parameter 'detecton'"):
        load_scenarios(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_scenarios(tmp_path / "missing.toml")
    names = [s.name for s in default_scenarios(("Q1", "Q2"))]
    assert names[0] == "Current programme" and "Poorest quintile first" in names
