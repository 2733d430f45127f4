"""Per-cell sufficient statistics give the same rates and means as stacking every participant.

The reference is written plainly here: one copy of the participants per
grouping and stratum, then a pandas groupby (sum, count, mean, sample sd) and
the Wilson / t formulas. Random participant frames cover missing values,
missing dates and districts, several equity dimensions and groups of size 0-2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from knowdo.outcomes.episodes import (
    cell_mean_rows,
    cell_rate_rows,
    mean_rows,
    participant_cells,
    rate_rows,
    rollup_cells,
    stack_participants,
)
from knowdo.outcomes.groups import GROUPINGS, KEYS

DIMS = ["sex", "age_band"]
RATE, MEAN = "responded", "change"


def _participants(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.Timestamp("2023-11-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    frame = pd.DataFrame(
        {
            "site_id": rng.choice([f"s{i}" for i in range(7)], n),
            "district_id": rng.choice(np.array(["d1", "d2", None], dtype=object), n, p=[0.5, 0.4, 0.1]),
            "period": pd.Series(dates).where(rng.random(n) > 0.05),
            "sex": rng.choice(np.array(["female", "male", None], dtype=object), n),
            "age_band": pd.Series(rng.integers(1, 4, n), dtype="Int64").where(rng.random(n) > 0.2),
            RATE: np.where(rng.random(n) < 0.3, np.nan, (rng.random(n) < 0.6).astype(float)),
            MEAN: np.where(rng.random(n) < 0.25, np.nan, rng.integers(-20, 10, n).astype(float) + rng.random(n)),
        }
    )
    return frame


def _reference(frame: pd.DataFrame, col: str, level: float) -> pd.DataFrame:
    """Stack participants once per grouping and stratum and group them directly."""
    parts = []
    for grouping in GROUPINGS:
        if grouping == "overall":
            labels = pd.Series("all", index=frame.index, dtype=object)
        elif grouping == "site":
            labels = frame["site_id"].astype(object)
        elif grouping == "district":
            labels = frame["district_id"].astype(object)
        else:
            fmt = {"month": "%Y-%m", "year": "%Y"}.get(grouping)
            d = pd.to_datetime(frame["period"])
            labels = (
                d.dt.strftime(fmt)
                if fmt
                else d.dt.year.astype("Int64").astype(str) + "-Q" + d.dt.quarter.astype("Int64").astype(str)
            ).where(d.notna())
        for dim in ["all", *DIMS]:
            strat = pd.Series("all", index=frame.index) if dim == "all" else frame[dim].astype(str)
            ok = labels.notna() & (frame[dim].notna() if dim != "all" else True)
            parts.append(
                pd.DataFrame(
                    {
                        "group_type": grouping,
                        "group": labels[ok].astype(str),
                        "stratum_dimension": dim,
                        "stratum": strat[ok],
                        "v": frame.loc[ok, col],
                    }
                )
            )
    stack = pd.concat(parts, ignore_index=True)
    g = stack.groupby(KEYS)["v"].agg(["sum", "count", "mean", "std"]).reset_index()
    n = g["count"].to_numpy(float)
    t = np.where(n >= 2, stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)), np.nan)
    g["se"] = np.where(n >= 2, g["std"] / np.sqrt(n), np.nan)
    g["low"], g["high"] = g["mean"] - t * g["se"], g["mean"] + t * g["se"]
    return g.sort_values(KEYS).reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("col", [RATE, MEAN])
def test_rollup_equals_stacked_groupby(seed: int, col: str) -> None:
    frame = _participants(seed, 400)
    ref = _reference(frame, col, 0.9)
    cells = participant_cells(frame, DIMS, [col])
    got = rollup_cells(cells, GROUPINGS, col, 0.9)
    got = got.assign(**{k: got[k].astype(str) for k in KEYS}).sort_values(KEYS).reset_index(drop=True)
    assert got[KEYS].equals(ref[KEYS])
    for mine, theirs in [
        ("numerator", "sum"),
        ("denominator", "count"),
        ("estimate", "mean"),
        ("sd", "std"),
        ("std_error", "se"),
        ("conf_low", "low"),
        ("conf_high", "high"),
    ]:
        np.testing.assert_allclose(got[mine].to_numpy(float), ref[theirs].to_numpy(float), rtol=1e-10, atol=1e-12)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS).reset_index(drop=True)


@pytest.mark.parametrize("seed", [3, 4])
def test_cell_rows_equal_stacked_rows(seed: int) -> None:
    frame = _participants(seed, 300)
    stack = stack_participants(frame, GROUPINGS, DIMS)
    cells = participant_cells(frame, DIMS, [RATE, MEAN])
    pd.testing.assert_frame_equal(
        _sorted(cell_rate_rows(cells, GROUPINGS, RATE, domain="d", outcome="o", level=0.95)),
        _sorted(rate_rows(stack, RATE, domain="d", outcome="o", level=0.95)),
        check_exact=False,
        rtol=1e-10,
    )
    kwargs = {"domain": "d", "outcome": "o", "measure": "mean", "level": 0.95, "unit": "score", "scale": 6.0}
    pd.testing.assert_frame_equal(
        _sorted(cell_mean_rows(cells, GROUPINGS, MEAN, **kwargs)),  # type: ignore[arg-type]
        _sorted(mean_rows(stack, MEAN, **kwargs)),  # type: ignore[arg-type]
        check_exact=False,
        rtol=1e-10,
    )


def test_constant_values_give_sd_near_zero() -> None:
    # With a common offset of 1e8 a raw sum of squares (n * 1e16) cancels to noise of order 1e0 or worse;
    # pooled deviations from cell means keep the sd at rounding level (here about 1e-7, 1e-15 of the value).
    frame = _participants(5, 200).assign(change=1e8 + 0.1)
    got = rollup_cells(participant_cells(frame, DIMS, [MEAN]), ["overall", "site"], MEAN, 0.95)
    assert (got.loc[got["denominator"] >= 2, "sd"] < 1e-5).all()
