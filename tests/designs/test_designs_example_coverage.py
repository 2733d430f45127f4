"""Coverage of ITS, synthetic control and SDID intervals on the example programme over many seeds (slow).

Each seed generates the example programme, builds its panel through the
store, and runs the three designs exactly as in
test_designs_example_programme.py (one clinic, one district, one cohort),
checking whether each 95% interval covers the truth from the rate model.
Results and the command are recorded in docs/studies/designs-coverage.md.

    KNOWDO_COVERAGE_SEEDS=200 pytest tests/designs/test_designs_example_coverage.py -m slow -s

``KNOWDO_COVERAGE_FIRST_SEED`` shifts the seed range (to split the study
across processes) and ``KNOWDO_COVERAGE_OUT`` names a CSV to which every
seed's estimate, interval and truth are written, so split runs can be pooled.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.designs.its import its
from knowdo.designs.sdid import sdid
from knowdo.designs.synth import synthetic_control
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.store import Store, build_panel, read_panel

pytestmark = pytest.mark.slow
SEEDS = int(os.environ.get("KNOWDO_COVERAGE_SEEDS", "200"))
FIRST_SEED = int(os.environ.get("KNOWDO_COVERAGE_FIRST_SEED", "0"))
OUTCOME = "screened_per_1000"


def _one_seed(seed: int) -> dict[str, tuple[float, float, float, float]]:
    programme = generate_programme(seed=seed, persons=20_000)
    with tempfile.TemporaryDirectory() as folder:
        project = load_project(write_project(programme, folder))
        with Store.for_project(project) as store:
            store.load(read_and_validate(project), project)
            build_panel(store, project)
            panel = read_panel(store)
    rows = panel[(panel["dimension"] == "all") & (panel["population"] > 0)].copy()
    rows["rate"] = rows["screened"] / rows["population"] * 1000
    cells = programme.truth.cells
    cells = cells[(cells["outcome"] == OUTCOME) & (cells["dimension"] == "all")]
    rollout = programme.truth.rollout
    never = rollout.loc[rollout["start"].isna(), "site_id"].tolist()
    out: dict[str, tuple[float, float, float, float]] = {}

    starts = rollout.dropna(subset=["start"]).sort_values(["start", "site_id"])
    site, start = starts.iloc[-1][["site_id", "start"]]
    e = its(rows[rows["site_id"] == site], outcome="rate", start=start, estimand="average")
    truth = cells[(cells["site_id"] == site) & (cells["period"] >= start)]["effect"].mean()
    out["its"] = (e.estimate, e.conf_low, e.conf_high, truth)

    district = rollout.dropna(subset=["start"]).groupby("district_id")["start"].min().idxmax()
    start = rollout.loc[rollout["district_id"] == district, "start"].min()
    pooled = rows[rows["district_id"] == district].groupby("period")[["screened", "population"]].sum()
    treated = pd.DataFrame({"unit": district, "period": pooled.index,
                            "rate": (pooled["screened"] / pooled["population"] * 1000).to_numpy()})
    donors = rows[rows["site_id"].isin(never)].rename(columns={"site_id": "unit"})[["unit", "period", "rate"]]
    e = synthetic_control(pd.concat([treated, donors], ignore_index=True), unit="unit", time="period",
                          outcome="rate", treated_unit=district, treatment_time=start, leave_one_out=False)
    post = cells[cells["site_id"].str.startswith(district) & (cells["period"] >= start)]
    by_month = post.assign(w=post["effect"] * post["population"]).groupby("period")[["w", "population"]].sum()
    out["scm"] = (e.estimate, e.conf_low, e.conf_high, float((by_month["w"] / by_month["population"]).mean()))

    start = rollout.dropna(subset=["start"]).groupby("start")["site_id"].count().idxmax()
    cohort = rollout.loc[rollout["start"] == start, "site_id"]
    e = sdid(rows[rows["site_id"].isin(cohort) | rows["site_id"].isin(never)], outcome="rate", replications=100,
             seed=seed)
    truth = cells[cells["site_id"].isin(cohort) & (cells["period"] >= start)]["effect"].mean()
    out["sdid"] = (e.estimate, e.conf_low, e.conf_high, truth)
    if len(cohort) >= 2:
        e = sdid(rows[rows["site_id"].isin(cohort) | rows["site_id"].isin(never)], outcome="rate", se="jackknife")
        out["sdid_jackknife"] = (e.estimate, e.conf_low, e.conf_high, truth)
    return out


def test_example_programme_coverage() -> None:
    seeds = range(FIRST_SEED, FIRST_SEED + SEEDS)
    results = [_one_seed(seed) for seed in seeds]
    if os.environ.get("KNOWDO_COVERAGE_OUT"):
        pd.DataFrame(
            [{"seed": seed, "design": d, "estimate": v[0], "conf_low": v[1], "conf_high": v[2], "truth": v[3]}
             for seed, r in zip(seeds, results, strict=True) for d, v in r.items()]
        ).to_csv(os.environ["KNOWDO_COVERAGE_OUT"], index=False)
    rates = {}
    for design in ("its", "scm", "sdid", "sdid_jackknife"):
        arr = np.array([r[design] for r in results if design in r])
        hits = (arr[:, 1] <= arr[:, 3]) & (arr[:, 3] <= arr[:, 2])
        rates[design] = float(hits.mean())
        print(f"\n[example coverage] {design}: {hits.mean():.3f} over {len(arr)} seeds; mean bias "
              f"{np.mean(arr[:, 0] - arr[:, 3]):+.3f}; mean truth {arr[:, 3].mean():.3f}; mean CI width "
              f"{np.mean(arr[:, 2] - arr[:, 1]):.3f}")
    # Measured over 200 seeds (docs/studies/designs-coverage.md): ITS and SCM intervals are conservative
    # here, SDID's placebo interval somewhat liberal (cohorts are large relative to the 12 controls).
    assert rates["its"] >= 0.93 and rates["scm"] >= 0.93
    assert rates["sdid"] >= 0.85
