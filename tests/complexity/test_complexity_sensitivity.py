"""Sobol indices against the Ishigami function's analytic values, and the sample-size check.

Reference (Ishigami & Homma 1990; a = 7, b = 0.1): S1 = (0.3139, 0.4424, 0),
ST = (0.5576, 0.4424, 0.2437). Tolerance: within the reported interval plus 0.02.
"""

from __future__ import annotations

import numpy as np
import pytest

from knowdo.complexity.sensitivity import sobol_indices
from knowdo.errors import ParameterError

S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}
BOUNDS = {k: (-np.pi, np.pi) for k in ("x1", "x2", "x3")}


def ishigami(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    x1, x2, x3 = p["x1"], p["x2"], p["x3"]
    return {"y": np.sin(x1) + 7 * np.sin(x2) ** 2 + 0.1 * x3**4 * np.sin(x1)}


def test_ishigami_indices_and_a_sufficient_sample() -> None:
    result = sobol_indices(ishigami, BOUNDS, n=2048, seed=1)
    table = result.indices.set_index("parameter")
    for name in S1:
        assert abs(table.loc[name, "S1"] - S1[name]) <= table.loc[name, "S1_conf"] + 0.02
        assert abs(table.loc[name, "ST"] - ST[name]) <= table.loc[name, "ST_conf"] + 0.02
    assert result.enough and "was enough" in result.message
    assert result.evaluations == 2048 * 5 and result.to_dict()["base_samples"] == 2048


def test_a_small_sample_is_reported_as_too_small() -> None:
    result = sobol_indices(ishigami, BOUNDS, n=32, seed=1)
    assert not result.enough and "rerun with n = 64" in result.message


def test_sensitivity_errors() -> None:
    with pytest.raises(ParameterError, match="at least two parameters"):
        sobol_indices(ishigami, {"x1": (0, 1)})
    with pytest.raises(ParameterError, match="low < high"):
        sobol_indices(ishigami, {"x1": (1, 0), "x2": (0, 1)})
