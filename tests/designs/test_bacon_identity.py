"""Goodman-Bacon (2021, Theorem 1): the 2x2 weights sum to one and reproduce the TWFE coefficient.

The TWFE coefficient is computed independently by pyfixest (``y ~ D | unit + time``);
the identity must hold to 1e-8 (it is exact algebra on a balanced panel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from knowdo.designs.bacon import TYPES, bacon_decomposition
from knowdo.errors import ParameterError


def twfe(df: pd.DataFrame, y: str, unit: str, time: str, cohort: str) -> float:
    g = df[cohort].to_numpy(dtype=float)
    d = df.assign(_D=((g > 0) & (df[time].to_numpy() >= g)).astype(float))
    return float(pf.feols(f"{y} ~ _D | {unit} + {time}", data=d).coef()["_D"])


def test_identity_on_mpdta(shared_dir: Path) -> None:
    df = pd.read_csv(shared_dir / "reference" / "mpdta.csv")
    res = bacon_decomposition(df, "lemp", "countyreal", "year", "first.treat")
    c = res.comparisons
    assert c["weight"].sum() == pytest.approx(1.0, abs=1e-8)
    reference = twfe(df, "lemp", "countyreal", "year", "first.treat")
    assert (c["weight"] * c["estimate"]).sum() == pytest.approx(reference, abs=1e-8)
    assert res.twfe == pytest.approx(reference, abs=1e-8)
    # 3 cohorts: 3 vs never + 3 pairs x 2 directions.
    assert len(c) == 9 and set(c["type"]) == {TYPES[0], TYPES[2], TYPES[3]}
    # Cohort 2004 vs never treated is the plain 2x2 DiD of means.
    wide = df.pivot(index="countyreal", columns="year", values="lemp")
    g = df.groupby("countyreal")["first.treat"].first()
    change = wide[[2004, 2005, 2006, 2007]].mean(axis=1) - wide[2003]
    manual = change[g == 2004].mean() - change[g == 0].mean()
    row = c[(c["treated"] == 2004) & (c["control"] == "never treated")]
    assert row["estimate"].iloc[0] == pytest.approx(manual, abs=1e-12)


def test_identity_with_always_treated_and_dynamic_effects() -> None:
    rng = np.random.default_rng(4)
    n, periods = 240, 8
    g = np.repeat(rng.choice([1, 3, 5, 7, 0], n), periods)  # 1 = treated from the first period
    t = np.tile(np.arange(1, periods + 1), n)
    y = rng.normal(size=n * periods) + 0.3 * t + ((g > 0) & (t >= g)) * (1 + 0.5 * (t - g))
    df = pd.DataFrame({"id": np.repeat(np.arange(n), periods), "t": t, "g": g, "y": y})
    res = bacon_decomposition(df, "y", "id", "t", "g")
    weights = res.weights_by_type()
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-8)
    assert weights["treated vs always treated"] > 0 and weights["later vs earlier treated"] > 0
    assert (res.comparisons["weight"] * res.comparisons["estimate"]).sum() == pytest.approx(
        twfe(df, "y", "id", "t", "g"), abs=1e-8
    )
    # Growing effects make the later-vs-earlier comparisons understate the effect (the TWFE bias).
    by_type = res.by_type().set_index("type")["estimate"]
    assert by_type["later vs earlier treated"] < by_type["treated vs never treated"]
    assert "Goodman-Bacon" in res.summary()
    assert res.to_dict()["weights_by_type"] == weights
    res.plot().to_dict()


def test_unbalanced_panel_is_refused(shared_dir: Path) -> None:
    df = pd.read_csv(shared_dir / "reference" / "mpdta.csv").drop(index=[5])
    with pytest.raises(ParameterError, match="balanced panel"):
        bacon_decomposition(df, "lemp", "countyreal", "year", "first.treat")
