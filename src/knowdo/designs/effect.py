"""The one result shape every design returns: :class:`Effect`.

Reports and the web workspace render any ``Effect`` the same way, so every
estimator (interrupted time series, staggered DiD, synthetic control, RD,
stepped-wedge, trial emulation, transportability) fills the same fields:
the estimand in words, the estimate with its standard error and interval,
the method and its settings, per-stratum estimates (equity), an event-time
or period path where the design has one, diagnostics, and the assumptions a
reader must judge. Design-specific tables (ATT(g,t), donor weights, placebo
runs, bandwidths) go in ``details``.

``tidy()`` is the single source of estimates, with the columns
``term, estimate, std_error, statistic, p_value, conf_low, conf_high``.
Changing inference returns a new ``Effect`` (``dataclasses.replace``); an
``Effect`` is never mutated.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from scipy import stats

TIDY_COLUMNS = ("term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high")
STRATA_COLUMNS = ("dimension", "stratum", "estimate", "std_error", "conf_low", "conf_high", "p_value", "n")
PATH_COLUMNS = ("time", "estimate", "std_error", "conf_low", "conf_high")


def normal_interval(estimate: float, std_error: float, level: float = 0.95) -> tuple[float, float]:
    """Wald interval estimate +/- z * SE."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    return estimate - z * std_error, estimate + z * std_error


def normal_p_value(estimate: float, std_error: float) -> float:
    if not std_error or not math.isfinite(std_error) or std_error <= 0:
        return math.nan
    return float(2 * stats.norm.sf(abs(estimate / std_error)))


def _jsonable(value: Any) -> Any:
    """Convert numpy/pandas values to plain JSON types (NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [_jsonable(v) for v in list(value)]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if value is pd.NaT or value is None:
        return None
    if isinstance(value, (str, int, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Effect:
    """An estimated effect and everything needed to read it honestly.

    Examples
    --------
    >>> e = Effect.from_estimate(design="did", estimand="ATT", estimate=-0.04, std_error=0.012, method="CS DR")
    >>> round(e.conf_low, 4), round(e.conf_high, 4)
    (-0.0635, -0.0165)
    """

    design: str
    estimand: str
    estimate: float
    std_error: float
    conf_low: float
    conf_high: float
    method: str
    level: float = 0.95
    p_value: float = math.nan
    settings: Mapping[str, Any] = field(default_factory=dict)
    n_obs: int | None = None
    n_units: int | None = None
    strata: pd.DataFrame | None = None
    path: pd.DataFrame | None = None
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()
    details: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    term: str = "effect"

    @classmethod
    def from_estimate(
        cls,
        *,
        design: str,
        estimand: str,
        estimate: float,
        std_error: float,
        method: str,
        level: float = 0.95,
        **fields: Any,
    ) -> Effect:
        """Build an Effect with a normal (Wald) interval and p-value."""
        low, high = normal_interval(estimate, std_error, level)
        return cls(
            design=design,
            estimand=estimand,
            estimate=float(estimate),
            std_error=float(std_error),
            conf_low=low,
            conf_high=high,
            method=method,
            level=level,
            p_value=normal_p_value(estimate, std_error),
            **fields,
        )

    # ------------------------------------------------------------------ views
    def tidy(self) -> pd.DataFrame:
        """One row for the headline effect, then one per path point and stratum."""
        statistic = self.estimate / self.std_error if self.std_error else math.nan
        rows = [
            {
                "term": self.term,
                "estimate": self.estimate,
                "std_error": self.std_error,
                "statistic": statistic,
                "p_value": self.p_value,
                "conf_low": self.conf_low,
                "conf_high": self.conf_high,
            }
        ]
        if self.path is not None:
            for rec in self.path.to_dict(orient="records"):
                se = rec.get("std_error", math.nan)
                rows.append(
                    {
                        "term": f"time[{rec['time']}]",
                        "estimate": rec["estimate"],
                        "std_error": se,
                        "statistic": rec["estimate"] / se if se else math.nan,
                        "p_value": rec.get("p_value", normal_p_value(rec["estimate"], se)),
                        "conf_low": rec.get("conf_low", math.nan),
                        "conf_high": rec.get("conf_high", math.nan),
                    }
                )
        if self.strata is not None:
            for rec in self.strata.to_dict(orient="records"):
                se = rec.get("std_error", math.nan)
                rows.append(
                    {
                        "term": f"{rec['dimension']}[{rec['stratum']}]",
                        "estimate": rec["estimate"],
                        "std_error": se,
                        "statistic": rec["estimate"] / se if se else math.nan,
                        "p_value": rec.get("p_value", normal_p_value(rec["estimate"], se)),
                        "conf_low": rec.get("conf_low", math.nan),
                        "conf_high": rec.get("conf_high", math.nan),
                    }
                )
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        pct = round(self.level * 100)
        lines = [
            f"{self.design}: {self.estimand}",
            f"  estimate {self.estimate:.4g} (SE {self.std_error:.4g}), {pct}% CI [{self.conf_low:.4g}, "
            f"{self.conf_high:.4g}], p = {self.p_value:.3g}",
            f"  method: {self.method}",
        ]
        if self.n_obs is not None or self.n_units is not None:
            lines.append(f"  observations: {self.n_obs}, units: {self.n_units}")
        for name, value in self.diagnostics.items():
            if isinstance(value, (int, float, str, bool)):
                lines.append(f"  {name}: {value}")
        if self.assumptions:
            lines.append("  assumptions to judge:")
            lines += [f"    - {a}" for a in self.assumptions]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "estimand": self.estimand,
            "estimate": _jsonable(self.estimate),
            "se": _jsonable(self.std_error),
            "ci_low": _jsonable(self.conf_low),
            "ci_high": _jsonable(self.conf_high),
            "level": self.level,
            "p_value": _jsonable(self.p_value),
            "method": self.method,
            "settings": _jsonable(dict(self.settings)),
            "n_obs": self.n_obs,
            "n_units": self.n_units,
            "strata": _jsonable(self.strata) if self.strata is not None else None,
            "path": _jsonable(self.path) if self.path is not None else None,
            "diagnostics": _jsonable(dict(self.diagnostics)),
            "assumptions": list(self.assumptions),
            "details": {k: _jsonable(v) for k, v in self.details.items()},
        }

    def plot(self) -> alt.LayerChart | alt.Chart:
        """Event-time / period path with its band when there is one, else strata, else the headline."""
        if self.path is not None and len(self.path):
            data = self.path.copy()
            base = alt.Chart(data).encode(x=alt.X("time:Q", title="time (event time or period)"))
            band = base.mark_area(opacity=0.25).encode(y=alt.Y("conf_low:Q", title="effect"), y2="conf_high:Q")
            line = base.mark_line(point=True).encode(
                y="estimate:Q", tooltip=["time", "estimate", "conf_low", "conf_high"]
            )
            zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
            return (band + line + zero).properties(title=self._title())
        table = self.strata if self.strata is not None and len(self.strata) else None
        if table is None:
            table = pd.DataFrame(
                [{"dimension": "all", "stratum": "all", "estimate": self.estimate,
                  "conf_low": self.conf_low, "conf_high": self.conf_high}]
            )
        table = table.assign(label=table["dimension"].astype(str) + ": " + table["stratum"].astype(str))
        base = alt.Chart(table).encode(y=alt.Y("label:N", title=None, sort=None))
        bars = base.mark_rule().encode(x=alt.X("conf_low:Q", title="effect"), x2="conf_high:Q")
        dots = base.mark_point(filled=True).encode(x="estimate:Q", color="dimension:N",
                                                   tooltip=["label", "estimate", "conf_low", "conf_high"])
        return (bars + dots).properties(title=self._title())

    def _title(self) -> alt.TitleParams:
        # The estimand is a sentence; wrapped as a subtitle it stays readable at chart width.
        return alt.TitleParams(text=self.design, subtitle=textwrap.wrap(self.estimand, 80), anchor="start")
