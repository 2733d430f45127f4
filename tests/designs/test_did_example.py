"""The staggered DiD estimators recover the example programme's known truth, and their CIs cover it.

Two estimators run on the same panels: the imputation estimator (Borusyak, Jaravel & Spiess 2024; the
report's headline) and Callaway & Sant'Anna.

The truth is ``ExampleTruth.att("started_per_1000", weights="cells",
through=...)``: the mean effect over treated clinic-months, each month
weighted equally, which is what the simple aggregation (cohort-size
weights) targets. The last three months are left out of both the data and the
truth because starts within 90 days of the screen are right-censored at the
window's end.

The coverage study (``@pytest.mark.slow``) runs over 200 seeds on a programme
of 24 districts x 6 clinics and scores three intervals on the same panels: the
imputation estimator's (``imputation_on_panel``), the small-sample t interval
that ``did_on_panel`` uses and R ``did``'s normal interval
(``small_sample="none"``). Its measured coverage is recorded in
docs/studies/did-coverage.md. The default tests use one seed.

Run a slice of the study by hand with ``python tests/designs/test_did_example.py
FIRST LAST [CACHE_DIR]``: with a cache folder each seed's headline panel and
truth are stored there on first use and read back afterwards, so the slow
part (generating and loading the programme) runs once per seed.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.designs.did import did_on_panel
from knowdo.designs.imputation import imputation_on_panel
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


def study_inputs(seed: int, cache: Path | None = None, **overrides: int) -> tuple[pd.DataFrame, float]:
    """The headline panel rows and the truth of one study seed (read from / written to ``cache`` if given)."""
    if cache is not None and (cache / f"seed_{seed}.json").exists():
        truth_value = json.loads((cache / f"seed_{seed}.json").read_text())["truth"]
        return pd.read_parquet(cache / f"seed_{seed}.parquet"), float(truth_value)
    panel, truth, cutoff = programme_panel(seed, **overrides)
    headline = panel[panel["dimension"] == "all"]
    target = float(truth.att("started_per_1000", weights="cells", through=cutoff))  # type: ignore[attr-defined]
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        headline.to_parquet(cache / f"seed_{seed}.parquet")
        (cache / f"seed_{seed}.json").write_text(json.dumps({"seed": seed, "truth": target}))
    return headline, target


def coverage_row(seed: int, cache: Path | None = None, **overrides: int) -> dict[str, float]:
    headline, target = study_inputs(seed, cache, **overrides)
    eff = did_on_panel(headline, "started")  # small-sample t interval (the did_on_panel default)
    normal = did_on_panel(headline, "started", small_sample="none")  # R did's interval
    imputed = imputation_on_panel(headline, "started")
    return {
        "estimate_imputation": imputed.estimate,
        "std_error_imputation": imputed.std_error,
        "covered_imputation": float(imputed.conf_low <= target <= imputed.conf_high),
        "pretrend_p_imputation": imputed.diagnostics["pretrend_p_value"],
        "seed": seed,
        "estimate": eff.estimate,
        "truth": target,
        "std_error": eff.std_error,
        "df": eff.diagnostics["small_sample_df"],
        "covered": float(eff.conf_low <= target <= eff.conf_high),
        "std_error_normal": normal.std_error,
        "covered_normal": float(normal.conf_low <= target <= normal.conf_high),
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


def test_imputation_recovers_truth_with_strata(example: tuple[pd.DataFrame, object, dt.date]) -> None:
    panel, truth, cutoff = example
    eff = imputation_on_panel(panel, "started", per=1000)
    target = truth.att("started_per_1000", weights="cells", through=cutoff)  # type: ignore[attr-defined]
    assert abs(eff.estimate - target) < 3 * eff.std_error
    assert eff.conf_low > 0
    assert eff.path is not None
    leads = eff.path[eff.path["source"] == "pre-trend test lead"]
    assert list(leads["time"]) == [-3.0, -2.0, -1.0]  # the three tested leads, then the imputed effects
    assert (eff.path.loc[eff.path["source"] == "imputed effect", "time"] >= 0).all()
    strata = eff.strata
    assert strata is not None and strata["estimate"].notna().all()
    for row in strata.query("dimension == 'wealth_quintile'").itertuples():
        stratum_truth = truth.att(  # type: ignore[attr-defined]
            "started_per_1000", dimension="wealth_quintile", stratum=row.stratum, weights="cells", through=cutoff
        )
        assert abs(row.estimate - stratum_truth) < 3.5 * row.std_error


def test_bootstrap_on_panel_is_reproducible(example: tuple[pd.DataFrame, object, dt.date]) -> None:
    panel = example[0]
    headline = panel[panel["dimension"] == "all"]
    a = did_on_panel(headline, "started", bootstrap=True, n_boot=199, seed=5)
    b = did_on_panel(headline, "started", bootstrap=True, n_boot=199, seed=5)
    assert a.std_error == b.std_error and np.isfinite(a.std_error)
    assert a.path is not None and np.isfinite(a.path["band_low"]).any()


def summarise(rows: pd.DataFrame) -> dict[str, float]:
    """The study's figures: coverage of both intervals, bias, SE calibration, degrees of freedom."""
    error = rows["estimate"] - rows["truth"]
    error_imputation = rows["estimate_imputation"] - rows["truth"]
    n = len(rows)
    return {
        "seeds": n,
        "coverage_imputation": rows["covered_imputation"].mean(),
        "mean_error_imputation": error_imputation.mean(),
        "mean_error_imputation_se": error_imputation.std() / np.sqrt(n),
        "sd_error_imputation": error_imputation.std(),
        "rms_se_imputation": float(np.sqrt((rows["std_error_imputation"] ** 2).mean())),
        "pretrend_rejections_imputation": (rows["pretrend_p_imputation"] < 0.05).mean(),
        "coverage_t": rows["covered"].mean(),
        "coverage_normal": rows["covered_normal"].mean(),
        "mean_error": error.mean(),
        "mean_error_se": error.std() / np.sqrt(n),
        "sd_error": error.std(),
        "rms_se_t": float(np.sqrt((rows["std_error"] ** 2).mean())),
        "rms_se_normal": float(np.sqrt((rows["std_error_normal"] ** 2).mean())),
        "df_median": rows["df"].median(),
        "df_min": rows["df"].min(),
        "df_max": rows["df"].max(),
    }


@pytest.mark.slow
def test_coverage_over_200_seeds() -> None:
    rows = pd.DataFrame([coverage_row(seed, **STUDY) for seed in SEEDS])
    figures = summarise(rows)
    print(figures)
    # No bias: the mean error is within 3 of its standard errors.
    assert abs(figures["mean_error"]) < 3 * figures["mean_error_se"]
    # The corrected SE is right on average (RMS SE within 15% of the error's SD).
    assert figures["rms_se_t"] == pytest.approx(figures["sd_error"], rel=0.15)
    # R did's normal interval never covers more often than the wider t interval on the same fits.
    assert figures["coverage_normal"] <= figures["coverage_t"]
    # Measured 0.920 for the t interval (0.905 normal), below the 0.93-0.97 target: the misses are
    # one-sided (the SE is small when the estimate overshoots), which a df correction cannot fix; see
    # docs/studies/did-coverage.md. This bound guards against regressions, not the target.
    assert figures["coverage_t"] >= 0.90
    # The report's headline estimator meets the target (measured 0.945), unbiased, with a calibrated SE.
    assert 0.93 <= figures["coverage_imputation"] <= 0.97
    assert abs(figures["mean_error_imputation"]) < 3 * figures["mean_error_imputation_se"]
    assert figures["rms_se_imputation"] == pytest.approx(figures["sd_error_imputation"], rel=0.15)


if __name__ == "__main__":  # python tests/designs/test_did_example.py FIRST LAST [CACHE_DIR]
    first, last = int(sys.argv[1]), int(sys.argv[2])
    cache_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    study_rows = []
    for s in range(first, last):
        study_rows.append(coverage_row(s, cache_dir, **STUDY))
        print(json.dumps(study_rows[-1]), flush=True)
    print(json.dumps({k: float(v) for k, v in summarise(pd.DataFrame(study_rows)).items()}))
