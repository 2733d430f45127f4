"""Cluster RCT and stepped-wedge analysis on data simulated from the Hussey & Hughes model.

Checks: recovery of a known effect (LMM, GEE, cluster summaries), our
Mancl-DeRouen sandwich equal to statsmodels' ``bias_reduced`` GEE covariance
(to 1e-10), Kauermann-Carroll lying between the uncorrected and the
Mancl-DeRouen SE, cluster-summary analyses equal to the textbook computations.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from knowdo.designs.cluster_trials import ClusterTrial, cluster_rct, gee_sandwich, stepped_wedge
from knowdo.errors import ParameterError


def hussey_hughes(clusters: int = 12, periods: int = 5, m: int = 15, theta: float = 0.5, tau: float = 0.4,
                  gamma: float = 0.0, binary: bool = False, seed: int = 0) -> pd.DataFrame:
    """Y_ijk = mu + beta_j + theta X_ij + a_i (+ c_ij) + e_ijk, clusters crossing over in equal groups."""
    rng = np.random.default_rng(seed)
    steps = periods - 1
    rows = []
    for i in range(clusters):
        a = rng.normal(0, tau)
        cross = 1 + i % steps
        for j in range(periods):
            x = int(j >= cross)
            c = rng.normal(0, gamma) if gamma else 0.0
            lin = -0.5 + 0.1 * j + theta * x + a + c
            y = (rng.random(m) < 1 / (1 + np.exp(-lin))).astype(float) if binary else lin + rng.normal(0, 1, m)
            rows += [(f"k{i:02d}", j, x, v, int(rng.random() < 0.5)) for v in y]
    return pd.DataFrame(rows, columns=["clinic", "month", "treated", "y", "female"])


SW = {"outcome": "y", "cluster": "clinic", "period": "month", "treatment": "treated"}


def test_lmm_recovers_effect() -> None:
    effect = stepped_wedge(hussey_hughes(clusters=16, seed=1), **SW)
    assert effect.design == "stepped-wedge"
    assert effect.estimate == pytest.approx(0.5, abs=3 * effect.std_error)
    assert effect.diagnostics["icc"] == pytest.approx(0.16 / 1.16, abs=0.1)
    assert effect.diagnostics["degrees_of_freedom"] == 14
    # t(14) interval is wider than the normal one
    assert effect.conf_high - effect.conf_low > 2 * 1.96 * effect.std_error


def test_lmm_cluster_period_effect() -> None:
    df = hussey_hughes(clusters=16, gamma=0.5, seed=2)
    plain = stepped_wedge(df, **SW)
    nested = stepped_wedge(df, **SW, correlation="nested-exchangeable")
    assert nested.diagnostics["cluster_period_variance"] == pytest.approx(0.25, abs=0.15)
    assert nested.std_error > plain.std_error  # ignoring the cluster-period effect overstates precision
    assert nested.estimate == pytest.approx(0.5, abs=3 * nested.std_error)


def test_gee_mancl_derouen_equals_statsmodels_bias_reduced() -> None:
    df = hussey_hughes(binary=True, seed=3)
    df = df.assign(c=df["clinic"], p=df["month"].astype(str)).sort_values("c", kind="stable")
    model = smf.gee("y ~ treated + C(p)", groups="c", data=df, family=sm.families.Binomial(),
                    cov_struct=sm.cov_struct.Exchangeable())
    ours = gee_sandwich(model.fit(), "mancl-derouen")
    theirs = model.fit(cov_type="bias_reduced").cov_params().to_numpy()
    assert np.abs(ours - theirs).max() < 1e-10
    robust = model.fit(cov_type="robust").cov_params().to_numpy()
    assert np.abs(gee_sandwich(model.fit(), "none") - robust).max() < 1e-10


def test_gee_binary_kauermann_carroll() -> None:
    df = hussey_hughes(clusters=20, m=30, binary=True, tau=0.2, seed=4)
    kc = stepped_wedge(df, **SW, method="gee", family="binomial")
    md = stepped_wedge(df, **SW, method="gee", family="binomial", small_sample="mancl-derouen")
    assert kc.term == "log_odds_ratio"
    assert kc.diagnostics["robust_se_uncorrected"] < kc.std_error < md.std_error
    assert kc.estimate == pytest.approx(0.5, abs=3 * kc.std_error)  # small tau: marginal ~ conditional
    assert kc.diagnostics["odds_ratio"] == pytest.approx(np.exp(kc.estimate))


def test_cluster_summary_parallel_trial_is_a_t_test_of_cluster_means() -> None:
    rng = np.random.default_rng(5)
    rows = [(f"k{i}", int(i < 5), v) for i in range(10) for v in rng.normal(0.8 * (i < 5) + rng.normal(0, .3), 1, 20)]
    df = pd.DataFrame(rows, columns=["clinic", "treated", "y"])
    effect = cluster_rct(df, outcome="y", cluster="clinic", treatment="treated", method="cluster-summary")
    means = df.groupby("clinic").agg(y=("y", "mean"), t=("treated", "first"))
    test = stats.ttest_ind(means.y[means.t == 1], means.y[means.t == 0])
    assert effect.design == "cluster-rct"
    assert effect.estimate == pytest.approx(means.y[means.t == 1].mean() - means.y[means.t == 0].mean())
    assert effect.p_value == pytest.approx(test.pvalue, rel=1e-10)
    assert effect.diagnostics["degrees_of_freedom"] == 8


def test_cluster_summary_stepped_wedge_uses_cluster_period_means() -> None:
    df = hussey_hughes(clusters=8, seed=6)
    effect = stepped_wedge(df, **SW, method="cluster-summary")
    cells = df.groupby(["clinic", "month"]).agg(y=("y", "mean"), d=("treated", "first")).reset_index()
    ols = smf.ols("y ~ d + C(month) + C(clinic)", data=cells).fit()
    assert effect.estimate == pytest.approx(ols.params["d"], rel=1e-10)
    assert effect.std_error == pytest.approx(ols.bse["d"], rel=1e-10)


def test_strata_by_column() -> None:
    effect = stepped_wedge(hussey_hughes(seed=7), **SW, strata=["female"])
    assert list(effect.strata["stratum"]) == ["0", "1"]
    assert effect.strata["n"].sum() == 12 * 5 * 15


@pytest.mark.parametrize(
    ("settings", "message", "rows"),
    [
        ({"method": "gee", "correlation": "decay"}, "correlation='decay' needs method='lmm' and a period column",
         None),
        ({"method": "gee", "df": "kenward-roger"}, "df='kenward-roger' is defined for the mixed model only", None),
        ({"correlation": "ar1"}, "correlation='ar1' is not accepted; use one of 'exchangeable', "
         "'nested-exchangeable', 'decay'", None),
        ({"method": "anova"}, "method='anova' is not accepted; use one of 'lmm', 'gee', 'cluster-summary'", None),
        ({"method": "cluster-summary", "covariates": ["female"]}, "does not adjust for covariates", None),
        ({}, "at least 4 are needed", 3),
        ({"family": "binomial"}, "column 'y' must be coded 0/1", None),
    ],
)
def test_user_errors(settings: dict[str, object], message: str, rows: int | None) -> None:
    df = hussey_hughes(seed=8)
    if rows is not None:
        df = df[df["clinic"].isin(sorted(df["clinic"].unique())[:rows])]
    with pytest.raises(ParameterError, match=re.escape(message)):
        ClusterTrial(**{**SW, **settings}).fit(df)  # type: ignore[arg-type]


def test_small_sample_corrections_reduce_to_hc2_and_hc3_with_singleton_clusters() -> None:
    """With one observation per cluster and a linear model, Kauermann-Carroll is HC2 and Mancl-DeRouen HC3
    (MacKinnon & White 1985), which statsmodels OLS computes independently."""
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"x": rng.normal(size=60), "g": np.arange(60)})
    df["y"] = 1 + 0.5 * df.x + rng.normal(size=60) * (1 + df.x.abs())
    gee = smf.gee("y ~ x", groups="g", data=df, family=sm.families.Gaussian(),
                  cov_struct=sm.cov_struct.Independence()).fit()
    ols = smf.ols("y ~ x", data=df)
    for correction, hc in (("none", "HC0"), ("kauermann-carroll", "HC2"), ("mancl-derouen", "HC3")):
        expected = ols.fit(cov_type=hc).cov_params().to_numpy()
        assert np.abs(gee_sandwich(gee, correction) - expected).max() < 1e-10, correction
