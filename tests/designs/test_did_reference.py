"""Callaway & Sant'Anna against R ``did`` on mpdta (Callaway & Sant'Anna 2021 data).

Sources and tolerances:

* ``mpdta_R_did_ref_attgt_analytic.csv`` / ``mpdta_R_did_ref_aggte_analytic.csv``
  (shared reference folder): R ``did`` 2.5.x, ``bstrap=FALSE``, machine precision.
  Every ATT(g,t), every aggregation component and overall value, estimate and
  analytic SE, must agree to ``ATOL = 1e-6`` (we observe ~1e-15).
* ``did`` README (bootstrap, ``biters=1000``, seed unknown): ATT(g,t) SEs and
  aggregate SEs. Bootstrap SEs are seed dependent; we draw 20,000 times so our
  own Monte Carlo error is small and allow +-10% for theirs.
* ``did`` README pre-test p-value 0.16812 (rounded to 5 digits by R).
* ``did-basics`` vignette: ``balance_e=1`` dynamic aggregation -0.0288, e=0 -0.0066, e=1 -0.0510.
* DR and IPW with ``~lpop`` (not in the R reference files): values reproduced
  with csdid 0.4.3, which matches R ``did`` on the four reference scenarios to 4e-16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.did import CallawaySantAnna

ATOL = 1e-6
BOOT_RTOL = 0.10
COLUMNS = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
SCENARIOS = {
    "mpdta_nev_dr": {"control_group": "nevertreated", "est_method": "dr"},
    "mpdta_nyt_dr": {"control_group": "notyettreated", "est_method": "dr"},
    "mpdta_nev_reg_cov": {"control_group": "nevertreated", "est_method": "reg", "covariates": ["lpop"]},
    "mpdta_nev_ipw": {"control_group": "nevertreated", "est_method": "ipw"},
}
KEYS = {"group": "group", "dynamic": "event_time", "calendar": "time"}


@pytest.fixture(scope="module")
def mpdta(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "mpdta.csv")


@pytest.fixture(scope="module")
def ref_attgt(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "mpdta_R_did_ref_attgt_analytic.csv")


@pytest.fixture(scope="module")
def ref_aggte(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "mpdta_R_did_ref_aggte_analytic.csv")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_att_gt_matches_r(scenario: str, mpdta: pd.DataFrame, ref_attgt: pd.DataFrame) -> None:
    table = CallawaySantAnna(**COLUMNS, **SCENARIOS[scenario]).fit(mpdta).result_.details["att_gt"]
    ref = ref_attgt[ref_attgt["scenario"] == scenario]
    merged = ref.merge(table, left_on=["group", "t"], right_on=["group", "time"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == 12
    np.testing.assert_allclose(merged["att_y"], merged["att_x"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(merged["se_y"], merged["se_x"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_aggregations_match_r(scenario: str, mpdta: pd.DataFrame, ref_aggte: pd.DataFrame) -> None:
    result = CallawaySantAnna(**COLUMNS, **SCENARIOS[scenario]).fit(mpdta).result_
    ref = ref_aggte[ref_aggte["scenario"] == scenario]
    for kind in ("simple", "group", "dynamic", "calendar"):
        table = result.details[kind]
        rows = ref[ref["type"] == kind]
        overall = table[table["term"] == "overall"].iloc[0]
        assert overall["estimate"] == pytest.approx(rows["overall_att"].iloc[0], abs=ATOL)
        assert overall["std_error"] == pytest.approx(rows["overall_se"].iloc[0], abs=ATOL)
        if kind == "simple":
            continue
        comp = table[table["term"] != "overall"].sort_values(KEYS[kind])
        rows = rows.sort_values("egt")
        np.testing.assert_array_equal(comp[KEYS[kind]].to_numpy(), rows["egt"].to_numpy(dtype=float))
        np.testing.assert_allclose(comp["estimate"], rows["att_egt"], rtol=0, atol=ATOL)
        np.testing.assert_allclose(comp["std_error"], rows["se_egt"], rtol=0, atol=ATOL)
    simple = ref[ref["type"] == "simple"]
    assert result.estimate == pytest.approx(simple["overall_att"].iloc[0], abs=ATOL)
    assert result.std_error == pytest.approx(simple["overall_se"].iloc[0], abs=ATOL)


def test_aggregate_method_matches_r_dynamic(mpdta: pd.DataFrame, ref_aggte: pd.DataFrame) -> None:
    est = CallawaySantAnna(**COLUMNS).fit(mpdta)
    dyn = est.aggregate("dynamic")
    ref = ref_aggte[(ref_aggte["scenario"] == "mpdta_nev_dr") & (ref_aggte["type"] == "dynamic")].sort_values("egt")
    assert dyn.estimate == pytest.approx(ref["overall_att"].iloc[0], abs=ATOL)
    np.testing.assert_allclose(dyn.path["estimate"], ref["att_egt"], atol=ATOL)
    np.testing.assert_allclose(dyn.path["std_error"], ref["se_egt"], atol=ATOL)


def test_pretest_p_value_matches_did_readme(mpdta: pd.DataFrame) -> None:
    result = CallawaySantAnna(**COLUMNS, est_method="reg").fit(mpdta).result_
    assert result.diagnostics["pretrend_df"] == 5  # pre-treatment cells of cohorts 2006 and 2007
    assert result.diagnostics["pretrend_p_value"] == pytest.approx(0.16812, abs=5e-6)  # did README


@pytest.mark.parametrize(
    ("method", "att", "se"),
    [
        # csdid 0.4.3, att_gt(xformla="~lpop", est_method=...), nevertreated, analytic.
        ("dr", [-0.0145296683, -0.0764218817, -0.1404483368, -0.1069038981, -0.0004721461, -0.0062025246,
                0.0009605737, -0.0412938656, 0.0267277962, -0.0045765708, -0.0284474872, -0.028781361],
         [0.0221291572, 0.0286713142, 0.0353781547, 0.032886493, 0.022223437, 0.0184957019, 0.0194001954,
          0.0197211441, 0.0140656608, 0.0157177631, 0.0181808812, 0.016238953]),
        ("ipw", [-0.0145484312, -0.0764498608, -0.1404646027, -0.1069325571, -0.0008685603, -0.0063972403,
                 0.0012080452, -0.0413082317, 0.0265561036, -0.0046609049, -0.0283403038, -0.0288947666],
         [0.0221145331, 0.0286488625, 0.0353710018, 0.0328891517, 0.0221528434, 0.0184573285, 0.0194879291,
          0.0197213982, 0.0140441585, 0.0156691642, 0.0181893091, 0.0162464094]),
    ],
)
def test_covariate_dr_and_ipw_match_peer(method: str, att: list[float], se: list[float], mpdta: pd.DataFrame) -> None:
    table = CallawaySantAnna(**COLUMNS, est_method=method, covariates=["lpop"]).fit(mpdta).result_.details["att_gt"]
    np.testing.assert_allclose(table["att"], att, atol=1e-9)
    np.testing.assert_allclose(table["se"], se, atol=1e-9)


def test_bootstrap_ses_near_did_readme(mpdta: pd.DataFrame) -> None:
    # did README: att_gt(lemp ~ 1, est_method = "reg"), multiplier bootstrap, biters = 1000.
    readme_att_gt = [0.0241, 0.0313, 0.0380, 0.0337, 0.0223, 0.0196, 0.0188, 0.0202, 0.0154, 0.0168, 0.0190, 0.0182]
    est = CallawaySantAnna(**COLUMNS, est_method="reg", bootstrap=True, n_boot=20_000, seed=11).fit(mpdta)
    np.testing.assert_allclose(est.result_.details["att_gt"]["se"], readme_att_gt, rtol=BOOT_RTOL)
    dyn, grp = est.aggregate("dynamic"), est.aggregate("group")
    assert dyn.estimate == pytest.approx(-0.0772, abs=5e-5)
    assert dyn.std_error == pytest.approx(0.0196, rel=BOOT_RTOL)
    assert grp.estimate == pytest.approx(-0.031, abs=5e-4)
    assert grp.std_error == pytest.approx(0.0123, rel=BOOT_RTOL)
    groups = grp.details["group"].query("term != 'overall'")
    np.testing.assert_allclose(groups["std_error"], [0.0277, 0.0172, 0.0177], rtol=BOOT_RTOL)
    # A uniform band is wider than the pointwise interval wherever both exist.
    att = est.result_.details["att_gt"]
    assert ((att["band_high"] - att["band_low"]) > (att["conf_high"] - att["conf_low"])).all()
    assert 1.96 < est.result_.diagnostics["uniform_crit_att_gt"] < 3.5


def test_balance_e_matches_vignette(mpdta: pd.DataFrame) -> None:
    eff = CallawaySantAnna(**COLUMNS).fit(mpdta).aggregate("dynamic", balance_e=1)
    assert eff.estimate == pytest.approx(-0.0288, abs=5e-5)  # did-basics vignette
    post = eff.path.set_index("time")["estimate"]
    assert post[0.0] == pytest.approx(-0.0066, abs=5e-5)
    assert post[1.0] == pytest.approx(-0.0510, abs=5e-5)
    assert eff.std_error == pytest.approx(0.0135, rel=0.15)  # vignette's bootstrap SE; ours is analytic
