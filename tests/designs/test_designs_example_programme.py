"""The non-DiD designs on the example programme's panel, each estimate beside the generator's truth.

The panel is built the way a user's is (generate -> write project -> load the
store -> build the panel). Outcome: people screened per 1,000 adults per month.
Truth comes from ``truth.cells`` (expected minus untreated rate of each
facility-month, from the rate model, never from the draws), averaged the way
each design's estimand averages:

* ITS on one treated clinic against its own pre-period: the mean effect over
  the clinic's post-start months (estimand ``average``);
* synthetic control for the same clinic against the never-treated clinics
  (treated and donor units at the same level, as placebo inference needs):
  the same mean effect;
* staggered SDID over every adoption cohort against the never-treated
  clinics, bootstrap SE (placebo SEs need more controls than the 36 treated
  clinics): the unweighted mean over all treated clinic-months.

Why these set-ups: docs/studies/designs-coverage.md ("The example programme").

Each estimate must lie within 3 standard errors of the truth.
"""

from __future__ import annotations

import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.designs.its import its
from knowdo.designs.sdid import sdid
from knowdo.designs.synth import synthetic_control
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.store import Store, build_panel, read_panel

OUTCOME = "screened_per_1000"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    programme = generate_programme(seed=11, persons=20_000)
    folder = write_project(programme, tmp_path_factory.mktemp("example"))
    project = load_project(folder)
    with Store.for_project(project) as store:
        store.load(read_and_validate(project), project)
        build_panel(store, project)
        panel = read_panel(store)
    panel = panel[panel["population"] > 0].assign(rate=lambda d: d["screened"] / d["population"] * 1000)
    cells = programme.truth.cells
    return panel, cells[cells["outcome"] == OUTCOME], programme.truth.rollout


@pytest.fixture(scope="module")
def whole(example: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The whole-population rows of panel and truth (dimension == 'all')."""
    panel, cells, rollout = example
    return panel[panel["dimension"] == "all"], cells[cells["dimension"] == "all"], rollout


def _report(design: str, estimate: float, se: float, truth: float) -> None:
    # shown with -rA / -s: the estimate beside the truth
    print(f"{design}: estimate {estimate:.3f} (SE {se:.3f}) vs truth {truth:.3f}")


def test_its_on_a_treated_clinic(whole: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    rows, cells, rollout = whole
    starts = rollout.dropna(subset=["start"]).sort_values(["start", "site_id"])
    site, start = starts.iloc[-1][["site_id", "start"]]  # the latest starter: the longest pre-period
    series = rows[rows["site_id"] == site]
    effect = its(series, outcome="rate", start=start, estimand="average")
    truth = cells[(cells["site_id"] == site) & (cells["period"] >= start)]["effect"].mean()
    _report(f"ITS {site}", effect.estimate, effect.std_error, truth)
    assert effect.n_obs == 36
    assert abs(effect.estimate - truth) < 3 * effect.std_error
    assert effect.conf_low > 0  # the programme's added screening is detected


def test_synthetic_control_on_a_treated_clinic(whole: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    rows, cells, rollout = whole
    never = rollout.loc[rollout["start"].isna(), "site_id"].tolist()
    starts = rollout.dropna(subset=["start"]).sort_values(["start", "site_id"])
    site, start = starts.iloc[-1][["site_id", "start"]]  # the latest starter: the longest pre-period
    effect = synthetic_control(rows[rows["site_id"].isin([site, *never])], unit="site_id", time="period",
                               outcome="rate", treated_unit=site, treatment_time=start)
    truth = cells[(cells["site_id"] == site) & (cells["period"] >= start)]["effect"].mean()
    _report(f"SCM {site}", effect.estimate, effect.std_error, truth)
    assert len(never) >= 6 and effect.diagnostics["n_donors"] == effect.diagnostics["n_placebos"] == len(never)
    assert effect.details["weights"]["weight"].sum() == pytest.approx(1.0)
    assert abs(effect.estimate - truth) < 3 * effect.std_error


def test_staggered_sdid_over_all_cohorts(whole: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    rows, cells, rollout = whole
    treated = rollout.dropna(subset=["start"])
    effect = sdid(rows, outcome="rate", se="bootstrap", replications=200, seed=1)
    started = cells.merge(treated[["site_id", "start"]], on="site_id")
    truth = started.loc[started["period"] >= started["start"], "effect"].mean()
    _report("SDID all cohorts", effect.estimate, effect.std_error, truth)
    assert effect.diagnostics["n_treated"] == len(treated)
    assert effect.diagnostics["n_cohorts"] == treated["start"].nunique()
    assert effect.diagnostics["treated_unit_periods"] == int((started["period"] >= started["start"]).sum())
    assert abs(effect.estimate - truth) < 3 * effect.std_error


def test_sdid_equity_strata_on_the_panel(example: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    """Per-stratum staggered SDID from the panel's (dimension, stratum) rows, beside the stratum truth."""
    panel, cells, rollout = example
    treated = rollout.dropna(subset=["start"])
    residence = panel[panel["dimension"].isin(["all", "residence"])]
    effect = sdid(residence, outcome="rate", se="bootstrap", replications=200, seed=2)
    assert effect.strata is not None
    strata = effect.strata.set_index("stratum")
    started = cells.merge(treated[["site_id", "start"]], on="site_id")
    started = started[(started["period"] >= started["start"]) & (started["dimension"] == "residence")]
    for stratum in ("urban", "rural"):
        truth = started.loc[started["stratum"] == stratum, "effect"].mean()
        estimate, se = (float(v) for v in strata.loc[stratum, ["estimate", "std_error"]].to_numpy(dtype=float))
        _report(f"SDID residence={stratum}", estimate, se, truth)
        assert abs(estimate - truth) < 3 * se
