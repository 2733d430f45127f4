"""The absorbed fixed-effects fits equal statsmodels' dummy-variable fits; CR2 matches its definition.

Tolerances: coefficients and CR1 errors to 1e-7 relative (the alternating
projections stop at a change of 1e-11); CR2 against a direct computation
with the full dummy design to 1e-7.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from knowdo.errors import KnowdoError
from knowdo.strategies._fixed_effects import cluster_covariance, demean, fit_absorbed, spanned


def panel(seed: int = 0, sites: int = 12, months: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"site": np.repeat(np.arange(sites), months), "month": np.tile(np.arange(months), sites)})
    d = d.sample(frac=0.9, random_state=seed).reset_index(drop=True)  # unbalanced
    d["x1"] = ((d["month"] >= rng.integers(2, 8, sites)[d["site"]]) & (d["site"] % 2 == 0)).astype(float)
    d["x2"] = (rng.random(len(d)) < 0.3).astype(float)
    d["w"] = rng.integers(1, 20, len(d)).astype(float)
    site_effect = rng.normal(0, 0.5, sites)[d["site"]]
    month_effect = np.linspace(0, 0.4, months)[d["month"]]
    d["y"] = 1 + 0.3 * d["x1"] - 0.2 * d["x2"] + site_effect + month_effect + rng.normal(0, 0.3, len(d))
    mu = np.exp(1.5 + 0.25 * d["x1"] + 0.1 * d["x2"] + 0.3 * site_effect + month_effect)
    d["count"] = rng.poisson(mu) - rng.poisson(1.0, len(d))  # excess counts: some negative
    return d


def dummies(d: pd.DataFrame) -> np.ndarray:
    site = pd.get_dummies(d["site"], dtype=float).to_numpy()
    month = pd.get_dummies(d["month"], dtype=float).to_numpy()[:, 1:]
    return np.column_stack([d[["x1", "x2"]].to_numpy(), site, month])


def test_weighted_least_squares_equals_statsmodels() -> None:
    d = panel()
    fit = fit_absorbed(d["y"], d[["x1", "x2"]], [d["site"], d["month"]], d["site"], weights=d["w"], vcov="CR1")
    ref = sm.WLS(d["y"], dummies(d), weights=d["w"]).fit(cov_type="cluster", cov_kwds={"groups": d["site"]})
    np.testing.assert_allclose(fit.coef, ref.params[:2], rtol=1e-7)
    np.testing.assert_allclose(fit.std_error, ref.bse[:2], rtol=1e-7)
    assert list(fit.df) == [11, 11]


def test_poisson_with_negative_outcomes_equals_statsmodels_glm() -> None:
    d = panel(1)
    assert (d["count"] < 0).any()
    fit = fit_absorbed(d["count"], d[["x1", "x2"]], [d["site"], d["month"]], d["site"], family="poisson",
                       vcov="CR1")
    ref = sm.GLM(d["count"].to_numpy(float), dummies(d), family=sm.families.Poisson()).fit(
        cov_type="cluster", cov_kwds={"groups": d["site"]})
    np.testing.assert_allclose(fit.coef, ref.params[:2], rtol=1e-7)
    np.testing.assert_allclose(fit.std_error, ref.bse[:2], rtol=1e-6)


def test_cr2_equals_the_full_dummy_design_computation() -> None:
    # Direct CR2 on the full dummy design (no absorption): A_g is the Moore-Penrose inverse square root of
    # I - H_gg, singular along each cluster's own site dummy (Pustejovsky & Tipton 2018, JBES 36:672).
    d = panel(2)
    fit = fit_absorbed(d["y"], d[["x1", "x2"]], [d["site"], d["month"]], d["site"], weights=d["w"], vcov="CR2")
    root = np.sqrt(d["w"].to_numpy())
    x = dummies(d) * root[:, None]
    y = d["y"].to_numpy() * root
    bread = np.linalg.pinv(x.T @ x)
    beta = bread @ x.T @ y
    resid = y - x @ beta
    meat = np.zeros_like(bread)
    annihilator = np.eye(len(y)) - x @ bread @ x.T
    g_cols: list[np.ndarray] = []
    for g in d["site"].unique():
        rows = np.flatnonzero(d["site"].to_numpy() == g)
        vals, vecs = np.linalg.eigh(np.eye(len(rows)) - x[rows] @ bread @ x[rows].T)
        inv_root = np.where(vals > 1e-10, 1 / np.sqrt(np.clip(vals, 1e-10, None)), 0.0)
        a_g = vecs @ np.diag(inv_root) @ vecs.T
        u = x[rows].T @ (a_g @ resid[rows])
        meat += np.outer(u, u)
        g_cols.append(annihilator[:, rows] @ a_g @ x[rows] @ bread[:, :2])
    np.testing.assert_allclose(fit.coef, beta[:2], rtol=1e-7)
    np.testing.assert_allclose(fit.std_error, np.sqrt(np.diag(bread @ meat @ bread))[:2], rtol=1e-6)
    # Bell-McCaffrey degrees of freedom (Imbens & Kolesar 2016): (sum lambda)^2 / sum lambda^2 of G'G
    for j in range(2):
        big_g = np.column_stack([c[:, j] for c in g_cols])
        lam = np.linalg.eigvalsh(big_g.T @ big_g)
        assert fit.df[j] == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-6)
    assert (fit.df < 11).all()


def test_cr2_logit_style_call_without_fixed_effects() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((200, 1))
    w = np.full(200, 0.25)
    cov, dfs = cluster_covariance(x, w, rng.normal(size=200), [], np.repeat(np.arange(20), 10))
    assert cov.shape == (1, 1) and cov[0, 0] > 0 and 1 < dfs[0] <= 19


def test_separated_groups_are_dropped_for_poisson() -> None:
    d = panel(4)
    d.loc[d["month"] == 0, "count"] = 0  # month 0's fixed effect would run to minus infinity
    fit = fit_absorbed(d["count"], d[["x1", "x2"]], [d["site"], d["month"]], d["site"], family="poisson")
    assert fit.n_dropped == int((d["month"] == 0).sum())
    kept = d.loc[d["month"] != 0]
    again = fit_absorbed(kept["count"], kept[["x1", "x2"]], [kept["site"], kept["month"]], kept["site"],
                         family="poisson")
    np.testing.assert_allclose(fit.coef, again.coef, rtol=1e-8)


def test_spanned_flags_what_the_fixed_effects_absorb() -> None:
    d = panel()
    always = np.ones(len(d))
    site_level = (d["site"] < 6).astype(float).to_numpy()
    flags = spanned(np.column_stack([always, d["x1"], site_level, 2 * d["x1"]]), [d["site"].to_numpy()])
    assert flags == [True, False, True, True]
    assert spanned(np.column_stack([site_level]), []) == [False]


def test_demean_one_way_is_the_group_mean_removal() -> None:
    d = panel()
    out = demean(d[["y"]].to_numpy(), [d["site"].to_numpy()], np.ones(len(d)))[:, 0]
    expected = d["y"] - d.groupby("site")["y"].transform("mean")
    np.testing.assert_allclose(out, expected, atol=1e-12)
    with pytest.raises(KnowdoError, match="positive total"):
        fit_absorbed(-d["y"].abs(), d[["x1"]], [d["site"]], d["site"], family="poisson")
