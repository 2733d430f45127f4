"""The knowdo analysis panel as input to a staggered-adoption estimator.

The panel holds counts per site and month with a denominator (adults in the
catchment) and the month a site started (``first_treated``). Staggered DiD
estimators want a numeric period, a numeric first-treated period in the same
units (0 when never treated) and a rate. Both panel adapters
(:func:`knowdo.designs.did.did_on_panel` and
:func:`knowdo.designs.imputation.imputation_on_panel`) build that frame here, so
they analyse exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from knowdo.designs._frames import require_columns, require_frame
from knowdo.errors import ParameterError

# Internal column names; prefixed so they cannot collide with panel columns.
MONTH, COHORT, RATE = "_did_month", "_did_cohort", "_did_rate"


@dataclass(frozen=True)
class RateFrame:
    """The panel with ``MONTH``, ``COHORT`` and ``RATE`` columns added, and how the rate was built."""

    data: pd.DataFrame
    outcome: str
    per: float
    denominator: str
    unit: str

    @property
    def per_text(self) -> str:
        return f"{self.per:,.0f}" if float(self.per).is_integer() else f"{self.per:g}"

    @property
    def outcome_label(self) -> str:
        return f"{self.outcome}_per_{self.per_text.replace(',', '')}"

    def describe(self, settings: dict[str, Any], estimand: str) -> tuple[dict[str, Any], str]:
        """Settings and estimand text naming the panel columns instead of the internal ones."""
        out = {
            **settings,
            "outcome": self.outcome_label,
            "unit": self.unit,
            "time": "month index",
            "cohort": "first_treated month index",
            "denominator": self.denominator,
            "per": self.per,
        }
        return out, f"{estimand}; outcome: {self.outcome} per {self.per_text} {self.denominator} per month"


def month_number(values: pd.Series) -> np.ndarray:
    """Months since year 0 (January = 0) for dates; NaN for missing."""
    dates = pd.to_datetime(values)
    return (dates.dt.year * 12 + dates.dt.month - 1).to_numpy(dtype=float)


def rate_frame(
    panel: pd.DataFrame, outcome: str, per: float, denominator: str, unit: str, design: str, settings: dict[str, Any]
) -> RateFrame:
    """Validate the panel and add a month index, a cohort month index (0 = never) and the rate."""
    frame = require_frame(panel, design)
    require_columns(frame, [unit, "period", "first_treated", outcome, denominator], design)
    if not isinstance(per, (int, float)) or not per > 0:
        raise ParameterError(f"{design}: per={per!r} must be a positive number, e.g. 1000.")
    for name in ("outcome", "unit", "time", "cohort"):
        if name in settings:
            raise ParameterError(f"{design}: the panel adapter sets {name!r} itself; do not pass it.")
    month = month_number(frame["period"])
    start = month_number(frame["first_treated"])
    origin = np.nanmin(np.concatenate([month, start])) - 1
    denom = pd.to_numeric(frame[denominator], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = pd.to_numeric(frame[outcome], errors="coerce").to_numpy(dtype=float) / denom * per
    rate[~(denom > 0)] = np.nan
    work = frame.assign(**{MONTH: month - origin, COHORT: np.nan_to_num(start - origin, nan=0.0), RATE: rate})
    return RateFrame(work, outcome, float(per), denominator, unit)
