"""TWFE and Sun & Abraham event studies (pyfixest) on mpdta.

Sources (shared reference README, section 1c, computed with pyfixest, not a publication):

* TWFE ``lemp ~ D | countyreal + year``, clustered by county: -0.03655 (SE 0.01327).
* Sun-Abraham saturated event study: event-time aggregates e=0 -0.01993, e=1 -0.05096,
  e=2 -0.13726, e=3 -0.10081; its post-period cohort x time coefficients equal the
  Callaway & Sant'Anna never-treated ATT(g,t) exactly (checked here against our CS to 1e-10).

Tolerances: 5e-6 on numbers printed to 4-5 significant digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.did import did
from knowdo.designs.twfe import SunAbraham, TwfeEventStudy, sun_abraham, twfe_event_study
from knowdo.errors import ParameterError

COLUMNS = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}


@pytest.fixture(scope="module")
def mpdta(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "mpdta.csv")


def test_twfe_static_coefficient(mpdta: pd.DataFrame) -> None:
    eff = twfe_event_study(mpdta, **COLUMNS)
    assert eff.estimate == pytest.approx(-0.03655, abs=5e-6)
    assert eff.std_error == pytest.approx(0.01327, abs=5e-6)
    weights = {k: v for k, v in eff.diagnostics.items() if k.startswith("bacon_weight_")}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert eff.diagnostics["bacon_weight_later_vs_earlier_treated"] > 0


def test_twfe_event_study_path_and_pretrend(mpdta: pd.DataFrame) -> None:
    eff = TwfeEventStudy(**COLUMNS).fit(mpdta).result_
    path = eff.path.set_index("time")
    assert list(path.index) == [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert path.loc[-1.0, "estimate"] == 0.0 and np.isnan(path.loc[-1.0, "std_error"])
    assert eff.diagnostics["pretrend_df"] == 3
    assert 0 < eff.diagnostics["pretrend_p_value"] < 1


def test_sun_abraham_event_times(mpdta: pd.DataFrame) -> None:
    eff = sun_abraham(mpdta, **COLUMNS)
    path = eff.path.set_index("time")["estimate"]
    expected = {0.0: -0.01993, 1.0: -0.05096, 2.0: -0.13726, 3.0: -0.10081}
    for e, value in expected.items():
        assert path[e] == pytest.approx(value, abs=5e-6)
    assert eff.diagnostics["pretrend_df"] == 3


def test_sun_abraham_cells_equal_callaway_santanna(mpdta: pd.DataFrame) -> None:
    cells = SunAbraham(**COLUMNS).fit(mpdta).result_.details["cohort_event"]
    post = cells[cells["event_time"] >= 0].assign(time=lambda d: d["group"] + d["event_time"])
    cs = did(mpdta, **COLUMNS).details["att_gt"]
    merged = post.merge(cs, on=["group", "time"])
    assert len(merged) == len(post) == 7  # 2004: 4 post periods, 2006: 2, 2007: 1
    np.testing.assert_allclose(merged["estimate"], merged["att"], atol=1e-10)
    # Headline: post cells weighted by observations = CS simple aggregation with never-treated controls.
    assert sun_abraham(mpdta, **COLUMNS).estimate == pytest.approx(did(mpdta, **COLUMNS).estimate, abs=1e-10)


def test_event_studies_take_strata_and_report_errors(mpdta: pd.DataFrame) -> None:
    df = mpdta.assign(size=np.where(mpdta["lpop"] > mpdta["lpop"].median(), "large", "small"))
    eff = TwfeEventStudy(**COLUMNS).fit(df, strata=["size"]).result_
    assert eff.strata is not None and list(eff.strata["stratum"]) == ["large", "small"]
    assert np.isfinite(eff.strata["estimate"]).all()
    with pytest.raises(ParameterError, match="'emp' not found"):
        sun_abraham(mpdta, **{**COLUMNS, "outcome": "emp"})


def test_sun_abraham_without_never_treated_uses_last_cohort(mpdta: pd.DataFrame) -> None:
    eff = sun_abraham(mpdta[mpdta["first.treat"] > 0], **COLUMNS)
    assert "last-treated cohort (2007)" in eff.method
    assert eff.path["time"].max() == 2.0  # 2004 cohort observed through 2006 only
