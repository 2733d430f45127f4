"""The non-DiD designs on the example programme's panel, each estimate beside the generator's truth.

The panel is built the way a user's is (generate -> write project -> load the
store -> build the panel). Outcome: people screened per 1,000 adults per month.
Truth comes from ``truth.cells`` (expected minus untreated rate of each
facility-month, from the rate model, never from the draws), averaged the way
each design's estimand averages:

* ITS on one treated clinic against its own pre-period: the mean effect over
  the clinic's post-start months (estimand ``average``);
* synthetic control for one treated district (its clinics' pooled rate)
  against never-treated clinics: the population-weighted district effect
  averaged over the months from the district's first start;
* SDID for one adoption cohort (clinics starting the same month) against
  never-treated clinics: the unweighted mean over the cohort's post
  clinic-months.

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


def test_synthetic_control_on_a_treated_district(whole: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    rows, cells, rollout = whole
    never = rollout.loc[rollout["start"].isna(), "site_id"].tolist()
    district = rollout.dropna(subset=["start"]).groupby("district_id")["start"].min().idxmax()  # latest district
    start = rollout.loc[rollout["district_id"] == district, "start"].min()
    pooled = rows[rows["district_id"] == district].groupby("period")[["screened", "population"]].sum()
    treated = pd.DataFrame({"unit": district, "period": pooled.index,
                            "rate": (pooled["screened"] / pooled["population"] * 1000).to_numpy()})
    donors = rows[rows["site_id"].isin(never)].rename(columns={"site_id": "unit"})[["unit", "period", "rate"]]
    effect = synthetic_control(pd.concat([treated, donors], ignore_index=True), unit="unit", time="period",
                               outcome="rate", treated_unit=district, treatment_time=start)
    post = cells[cells["site_id"].str.startswith(district) & (cells["period"] >= start)]
    by_month = post.assign(w=post["effect"] * post["population"]).groupby("period")[["w", "population"]].sum()
    truth = float((by_month["w"] / by_month["population"]).mean())
    _report(f"SCM {district}", effect.estimate, effect.std_error, truth)
    assert len(never) >= 6 and effect.diagnostics["n_donors"] == len(never)
    assert abs(effect.estimate - truth) < 3 * effect.std_error
    assert effect.p_value == pytest.approx(1 / (len(never) + 1))  # largest post/pre RMSPE ratio of all


def test_sdid_on_one_adoption_cohort(whole: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    rows, cells, rollout = whole
    never = rollout.loc[rollout["start"].isna(), "site_id"]
    sizes = rollout.dropna(subset=["start"]).groupby("start")["site_id"].count()
    start = sizes.idxmax()  # the largest cohort
    cohort = rollout.loc[rollout["start"] == start, "site_id"]
    panel = rows[rows["site_id"].isin(cohort) | rows["site_id"].isin(never)]
    effect = sdid(panel, outcome="rate", replications=100, seed=1)
    truth = cells[cells["site_id"].isin(cohort) & (cells["period"] >= start)]["effect"].mean()
    _report(f"SDID cohort {start:%Y-%m}", effect.estimate, effect.std_error, truth)
    assert effect.diagnostics["n_treated"] == len(cohort)
    assert abs(effect.estimate - truth) < 3 * effect.std_error


def test_sdid_equity_strata_on_the_panel(example: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    """Per-stratum SDID from the panel's (dimension, stratum) rows, beside the stratum truth."""
    panel, cells, rollout = example
    never = rollout.loc[rollout["start"].isna(), "site_id"]
    start = rollout.dropna(subset=["start"]).groupby("start")["site_id"].count().idxmax()
    cohort = rollout.loc[rollout["start"] == start, "site_id"]
    keep = panel["site_id"].isin(cohort) | panel["site_id"].isin(never)
    residence = panel[keep & panel["dimension"].isin(["all", "residence"])]
    effect = sdid(residence, outcome="rate", replications=100, seed=2)
    strata = effect.strata.set_index("stratum")
    for stratum in ("urban", "rural"):
        truth = cells[(cells["dimension"] == "residence") & (cells["stratum"] == stratum)
                      & cells["site_id"].isin(cohort) & (cells["period"] >= start)]["effect"].mean()
        row = strata.loc[stratum]
        _report(f"SDID residence={stratum}", row["estimate"], row["std_error"], truth)
        assert abs(row["estimate"] - truth) < 3 * row["std_error"]
