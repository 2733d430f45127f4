"""Callaway & Sant'Anna recovers the example programme's known truth, and its CIs cover it.

The truth is ``ExampleTruth.att("started_per_1000", weights="cells",
through=...)``: the mean effect over treated clinic-months, each month
weighted equally, which is what the simple aggregation (cohort-size
weights) targets. The last three months are left out of both the data and the
truth because starts within 90 days of the screen are right-censored at the
window's end.

The coverage study (``@pytest.mark.slow``) runs over 200 seeds on a programme
of 24 districts x 6 clinics; its measured coverage is recorded in
docs/studies/did-coverage.md. The default tests use one seed.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.designs.did import did_on_panel
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.store import Store, build_panel, read_panel

CENSORED_MONTHS = 3  # 90-day start window (knowdo.config default) -> last 3 months incomplete
STUDY = {"districts": 24, "never_treated_districts": 6, "persons": 6000}
SEEDS = range(200)


def programme_panel(seed: int, **overrides: int) -> tuple[pd.DataFrame, object, dt.date]:
    """The example programme's analysis panel (through the store, as a user gets it), its truth and the cut-off."""
    programme = generate_programme(seed=seed, **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_project(programme, Path(tmp) / "example", fmt="parquet")
        project = load_project(directory)
        data = read_and_validate(project)
        with Store(Path(tmp) / "store.duckdb") as store:
            store.load(data, project)
            build_panel(store, project)
            panel = read_panel(store)
    last = pd.Timestamp(panel["period"].max())
    cutoff = (last - pd.DateOffset(months=CENSORED_MONTHS)).date()
    return panel[panel["period"] <= pd.Timestamp(cutoff)], programme.truth, cutoff


def coverage_row(seed: int, **overrides: int) -> dict[str, float]:
    panel, truth, cutoff = programme_panel(seed, **overrides)
    headline = panel[panel["dimension"] == "all"]
    eff = did_on_panel(headline, "started")
    target = truth.att("started_per_1000", weights="cells", through=cutoff)  # type: ignore[attr-defined]
    return {
        "seed": seed,
        "estimate": eff.estimate,
        "std_error": eff.std_error,
        "truth": target,
        "covered": float(eff.conf_low <= target <= eff.conf_high),
    }


@pytest.fixture(scope="module")
def example() -> tuple[pd.DataFrame, object, dt.date]:
    return programme_panel(1, persons=4000)


def test_recovers_truth_with_strata(example: tuple[pd.DataFrame, object, dt.date]) -> None:
    panel, truth, cutoff = example
    eff = did_on_panel(panel, "started", per=1000)
    target = truth.att("started_per_1000", weights="cells", through=cutoff)  # type: ignore[attr-defined]
    # Within 3 standard errors of the truth (a 0.3% two-sided miss rate per seed if the SE is right).
    assert abs(eff.estimate - target) < 3 * eff.std_error
    assert eff.estimate > 0 and eff.conf_low > 0  # the programme raises treatment starts
    strata = eff.strata
    assert strata is not None
    assert {"sex", "age_band", "wealth_quintile"} <= set(strata["dimension"])
    for row in strata.query("dimension == 'sex'").itertuples():
        stratum_truth = truth.att(  # type: ignore[attr-defined]
            "started_per_1000", dimension="sex", stratum=row.stratum, weights="cells", through=cutoff
        )
        assert abs(row.estimate - stratum_truth) < 3.5 * row.std_error


def test_bootstrap_on_panel_is_reproducible(example: tuple[pd.DataFrame, object, dt.date]) -> None:
    panel = example[0]
    headline = panel[panel["dimension"] == "all"]
    a = did_on_panel(headline, "started", bootstrap=True, n_boot=199, seed=5)
    b = did_on_panel(headline, "started", bootstrap=True, n_boot=199, seed=5)
    assert a.std_error == b.std_error and np.isfinite(a.std_error)
    assert a.path is not None and np.isfinite(a.path["band_low"]).any()


@pytest.mark.slow
def test_coverage_over_200_seeds() -> None:
    rows = pd.DataFrame([coverage_row(seed, **STUDY) for seed in SEEDS])
    coverage = rows["covered"].mean()
    error = rows["estimate"] - rows["truth"]
    print(f"coverage {coverage:.3f} over {len(rows)} seeds; mean error {error.mean():.4f}")
    # No bias: the mean error is within 3 of its standard errors.
    assert abs(error.mean()) < 3 * error.std() / np.sqrt(len(rows))
    # The analytic SE is right on average (RMS SE within 15% of the error's SD) ...
    assert np.sqrt((rows["std_error"] ** 2).mean()) == pytest.approx(error.std(), rel=0.15)
    # ... but noisy with ~12 clinics per cohort: measured coverage 0.905 (docs/studies/did-coverage.md),
    # below the 0.93-0.97 target. This bound guards against regressions, not the target.
    assert coverage >= 0.88


if __name__ == "__main__":  # run a slice of the study: python test_did_example.py FIRST LAST
    first, last = int(sys.argv[1]), int(sys.argv[2])
    for s in range(first, last):
        print(coverage_row(s, **STUDY), flush=True)
