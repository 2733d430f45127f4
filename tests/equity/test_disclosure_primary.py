"""Primary small-cell suppression on published tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from knowdo.equity import suppress_table
from knowdo.errors import ParameterError


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "group": ["a", "b", "c", "d"],
        "numerator": [0, 3, 10, 40],
        "denominator": [50, 80, 11, 200],
        "estimate": [0.0, 3 / 80, 10 / 11, 0.2],
    })


def test_counts_below_threshold_and_their_rates_are_blanked() -> None:
    out = suppress_table(_table(), count_columns=["numerator", "denominator"], threshold=11,
                         dependent_columns=["estimate"])
    # zero is not disclosive (shown); 3 and 10 are in 1..10 (blanked with their rates); 40/200 shown
    assert out["suppressed"].tolist() == [False, True, True, False]
    assert np.isnan(out.loc[1, "estimate"]) and np.isnan(out.loc[2, "numerator"])
    assert out.loc[2, "denominator"] != out.loc[2, "denominator"]  # whole row's counts blanked
    assert out.loc[3, "estimate"] == pytest.approx(0.2)


def test_small_denominator_blanks_the_row() -> None:
    table = pd.DataFrame({"numerator": [0], "denominator": [5], "estimate": [0.0]})
    out = suppress_table(table, count_columns=["numerator", "denominator"], dependent_columns=["estimate"])
    assert bool(out.loc[0, "suppressed"]) and np.isnan(out.loc[0, "estimate"])


def test_rounding_and_input_unchanged() -> None:
    table = _table()
    copy = table.copy()
    out = suppress_table(table, count_columns=["numerator", "denominator"], threshold=5, rounding=5)
    pd.testing.assert_frame_equal(table, copy)
    assert out.loc[2, "numerator"] == 10 and out.loc[3, "denominator"] == 200
    assert out.loc[2, "denominator"] == 10  # 11 rounds to the nearest 5


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ParameterError, match="threshold"):
        suppress_table(_table(), count_columns=["numerator"], threshold=0)
    with pytest.raises(ParameterError, match="missing_column"):
        suppress_table(_table(), count_columns=["missing_column"])
