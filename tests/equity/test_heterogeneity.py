"""Effect heterogeneity across strata: Cochran's Q and Holm / Benjamini-Hochberg adjustment, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from knowdo.designs.effect import Effect
from knowdo.equity import cochran_q, heterogeneity
from knowdo.errors import ParameterError


def effect(strata: pd.DataFrame | None) -> Effect:
    return Effect.from_estimate(design="did", estimand="ATT", estimate=2.0, std_error=0.5, method="test", strata=strata)


def test_cochran_q_by_hand() -> None:
    # estimates 1 and 3 with SE 1: pooled = 2; Q = (1-2)^2 + (3-2)^2 = 2 on 1 df; p = P(chi2_1 > 2) = 0.1573
    q, df, p, i2, pooled, se = cochran_q(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    assert (q, df, pooled) == (2.0, 1, 2.0)
    assert p == pytest.approx(0.157299, rel=1e-5)
    assert i2 == pytest.approx(0.5)  # (2 - 1) / 2
    assert se == pytest.approx(np.sqrt(0.5))


def test_side_by_side_with_holm_and_bh() -> None:
    strata = pd.DataFrame({
        "dimension": ["sex", "sex", "wealth"], "stratum": ["female", "male", "Q1"],
        "estimate": [1.0, 3.0, 2.5], "std_error": [1.0, 1.0, 0.8], "p_value": [0.01, 0.04, 0.03], "n": [500, 400, 300],
    })
    result = heterogeneity(effect(strata))
    table = result.strata.set_index("stratum")
    # Holm: sorted p 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert table["p_holm"].to_dict() == pytest.approx({"female": 0.03, "Q1": 0.06, "male": 0.06})
    # BH: 0.01*3/1 = 0.03, 0.03*3/2 = 0.045, 0.04*3/3 = 0.04 -> running min from the top: 0.03, 0.04, 0.04
    assert table["p_bh"].to_dict() == pytest.approx({"female": 0.03, "Q1": 0.04, "male": 0.04})
    tests = result.tests.set_index("dimension")
    assert tests.loc["sex", "q"] == pytest.approx(2.0)
    assert tests.loc["sex", "p_value"] == pytest.approx(stats.chi2.sf(2.0, 1))
    assert np.isnan(tests.loc["wealth", "q"])  # one stratum: nothing to compare
    assert "Holm" in result.summary()
    assert result.to_dict()["overall"]["estimate"] == 2.0
    result.plot().to_dict()


def test_missing_p_values_and_intervals_are_derived() -> None:
    strata = pd.DataFrame({"dimension": ["sex", "sex"], "stratum": ["f", "m"], "estimate": [1.96, 0.0],
                           "std_error": [1.0, 1.0]})
    table = heterogeneity(effect(strata)).strata
    assert table.loc[0, "p_value"] == pytest.approx(0.05, abs=1e-4)
    assert table.loc[0, "conf_low"] == pytest.approx(0.0, abs=1e-3)


def test_effect_without_strata_is_a_named_error() -> None:
    with pytest.raises(ParameterError, match="no per-stratum estimates"):
        heterogeneity(effect(None))
