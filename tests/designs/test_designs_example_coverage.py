"""Coverage of ITS, synthetic control and SDID intervals on the example programme over many seeds (slow).

Each seed generates the example programme, builds its panel through the
store, and runs each design, checking whether its 95% interval covers the
truth from the rate model (``truth.cells``). Results and the command are
recorded in docs/studies/designs-coverage.md.

Set-ups (reasons in the study):

* ``its``: the latest-starting clinic against its own pre-period;
* ``scm``: the latest-starting clinic against the never-treated clinics
  (treated and donor units at the same level), placebo SE;
* ``sdid``: staggered SDID over every adoption cohort against the
  never-treated clinics, bootstrap SE (200 replications);
* earlier set-ups kept for comparison: ``scm_district`` (a pooled district
  against single clinics), ``sdid_cohort`` (the largest cohort, placebo SE)
  and ``sdid_cohort_jackknife``.

    KNOWDO_COVERAGE_SEEDS=200 pytest tests/designs/test_designs_example_coverage.py -m slow -s

``KNOWDO_COVERAGE_FIRST_SEED`` shifts the seed range; ``KNOWDO_COVERAGE_OUT``
names a CSV receiving every seed's estimate, SE, interval and truth;
``KNOWDO_COVERAGE_CACHE`` names a folder where each seed's whole-population
panel, truth cells and rollout are kept as parquet, so the expensive part
(generating and loading the programme) runs once per seed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.designs.effect import Effect
from knowdo.designs.its import its
from knowdo.designs.sdid import sdid
from knowdo.designs.synth import synthetic_control
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.store import Store, build_panel, read_panel

pytestmark = pytest.mark.slow
SEEDS = int(os.environ.get("KNOWDO_COVERAGE_SEEDS", "200"))
FIRST_SEED = int(os.environ.get("KNOWDO_COVERAGE_FIRST_SEED", "0"))
CACHE = os.environ.get("KNOWDO_COVERAGE_CACHE")
OUTCOME = "screened_per_1000"
DESIGNS = ("its", "scm", "sdid", "scm_district", "sdid_cohort", "sdid_cohort_jackknife")

Row = tuple[float, float, float, float, float]  # estimate, SE, CI low, CI high, truth


def _generate(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    programme = generate_programme(seed=seed, persons=20_000)
    with tempfile.TemporaryDirectory() as folder:
        project = load_project(write_project(programme, folder))
        with Store.for_project(project) as store:
            store.load(read_and_validate(project), project)
            build_panel(store, project)
            panel = read_panel(store)
    cells = programme.truth.cells
    return (panel[panel["dimension"] == "all"], cells[(cells["outcome"] == OUTCOME) & (cells["dimension"] == "all")],
            programme.truth.rollout)


def _inputs(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Whole-population panel rows, truth cells and rollout of one seed, from the cache when there is one."""
    if not CACHE:
        return _generate(seed)
    files = [Path(CACHE) / f"{seed}.{part}.parquet" for part in ("panel", "cells", "rollout")]
    if not all(f.exists() for f in files):
        Path(CACHE).mkdir(parents=True, exist_ok=True)
        for frame, f in zip(_generate(seed), files, strict=True):
            frame.to_parquet(f)
    panel, cells, rollout = (pd.read_parquet(f) for f in files)
    return panel, cells, rollout


def _row(e: Effect, truth: float) -> Row:
    return (e.estimate, e.std_error, e.conf_low, e.conf_high, float(truth))


def _one_seed(seed: int) -> dict[str, Row]:
    panel, cells, rollout = _inputs(seed)
    rows = panel[panel["population"] > 0].copy()
    rows["rate"] = rows["screened"] / rows["population"] * 1000
    never = rollout.loc[rollout["start"].isna(), "site_id"].tolist()
    treated = rollout.dropna(subset=["start"])
    out: dict[str, Row] = {}

    # the latest starter has the longest pre-period (ties by site id)
    site, start = treated.sort_values(["start", "site_id"]).iloc[-1][["site_id", "start"]]
    clinic_truth = cells[(cells["site_id"] == site) & (cells["period"] >= start)]["effect"].mean()
    e = its(rows[rows["site_id"] == site], outcome="rate", start=start, estimand="average")
    out["its"] = _row(e, clinic_truth)
    e = synthetic_control(rows[rows["site_id"].isin([site, *never])], unit="site_id", time="period",
                          outcome="rate", treated_unit=site, treatment_time=start, leave_one_out=False)
    out["scm"] = _row(e, clinic_truth)

    started = cells.merge(treated[["site_id", "start"]], on="site_id")
    e = sdid(rows, outcome="rate", se="bootstrap", replications=200, seed=seed)
    assert e.diagnostics["n_treated"] == len(treated) and e.diagnostics["n_control"] == len(never)
    out["sdid"] = _row(e, started.loc[started["period"] >= started["start"], "effect"].mean())

    district = treated.groupby("district_id")["start"].min().idxmax()
    start = rollout.loc[rollout["district_id"] == district, "start"].min()
    pooled = rows[rows["district_id"] == district].groupby("period")[["screened", "population"]].sum()
    pooled_unit = pd.DataFrame({"unit": district, "period": pooled.index,
                                "rate": (pooled["screened"] / pooled["population"] * 1000).to_numpy()})
    donors = rows[rows["site_id"].isin(never)].rename(columns={"site_id": "unit"})[["unit", "period", "rate"]]
    e = synthetic_control(pd.concat([pooled_unit, donors], ignore_index=True), unit="unit", time="period",
                          outcome="rate", treated_unit=district, treatment_time=start, leave_one_out=False)
    post = cells[cells["site_id"].str.startswith(str(district)) & (cells["period"] >= start)]
    by_month = post.assign(w=post["effect"] * post["population"]).groupby("period")[["w", "population"]].sum()
    out["scm_district"] = _row(e, float((by_month["w"] / by_month["population"]).mean()))

    start = treated.groupby("start")["site_id"].count().idxmax()
    cohort = rollout.loc[rollout["start"] == start, "site_id"]
    subset = rows[rows["site_id"].isin(cohort) | rows["site_id"].isin(never)]
    truth = cells[cells["site_id"].isin(cohort) & (cells["period"] >= start)]["effect"].mean()
    out["sdid_cohort"] = _row(sdid(subset, outcome="rate", replications=100, seed=seed), truth)
    if len(cohort) >= 2:
        out["sdid_cohort_jackknife"] = _row(sdid(subset, outcome="rate", se="jackknife"), truth)
    return out


def test_example_programme_coverage() -> None:
    seeds = range(FIRST_SEED, FIRST_SEED + SEEDS)
    results = [_one_seed(seed) for seed in seeds]
    if os.environ.get("KNOWDO_COVERAGE_OUT"):
        pd.DataFrame(
            [{"seed": seed, "design": d, "estimate": v[0], "std_error": v[1], "conf_low": v[2], "conf_high": v[3],
              "truth": v[4]} for seed, r in zip(seeds, results, strict=True) for d, v in r.items()]
        ).to_csv(os.environ["KNOWDO_COVERAGE_OUT"], index=False)
    rates, bias_z = {}, {}
    for design in DESIGNS:
        arr = np.array([r[design] for r in results if design in r])
        errors = arr[:, 0] - arr[:, 4]
        hits = (arr[:, 2] <= arr[:, 4]) & (arr[:, 4] <= arr[:, 3])
        rates[design] = float(hits.mean())
        bias_z[design] = float(errors.mean() / (errors.std(ddof=1) / np.sqrt(len(errors))))
        print(f"\n[example coverage] {design}: {hits.mean():.3f} over {len(arr)} seeds; mean bias "
              f"{errors.mean():+.3f}; SD of errors {errors.std(ddof=1):.3f}; mean SE {arr[:, 1].mean():.3f}; "
              f"mean truth {arr[:, 4].mean():.3f}")
    # Measured over seeds 0-199 (docs/studies/designs-coverage.md); the 93-97% is NOT met:
    # * every point estimate is unbiased within Monte Carlo error;
    # * SDID over all cohorts with bootstrap SEs over-covers (1.000): the bootstrap also counts the spread of
    #   clinic effects, which the generator's truth (the ATT of these clinics) does not vary by;
    # * SCM on one clinic under-covers (0.795): the programme raises the clinic's screening counts and with them
    #   its noise, which the placebo SE, measured on untreated donors, misses;
    # * ITS and the district SCM over-cover, the one-cohort placebo SDID under-covers a little.
    assert all(abs(z) < 3 for z in bias_z.values()), bias_z
    assert rates["sdid"] >= 0.93 and rates["its"] >= 0.93 and rates["scm_district"] >= 0.93
    assert rates["scm"] >= 0.7 and rates["sdid_cohort"] >= 0.85
