"""Does the effect differ between equity strata? Side-by-side estimates, a heterogeneity test, multiplicity control.

Every design returns a :class:`knowdo.designs.effect.Effect`, whose ``strata``
table holds one estimate per (dimension, stratum). For each dimension this
module tests whether the stratum effects differ more than chance allows with
Cochran's Q (inverse-variance weights; Q ~ chi-square with K - 1 degrees of
freedom; I^2 = max(0, (Q - df) / Q), Higgins & Thompson 2002), and adjusts the
per-stratum p-values across all strata of the effect by Holm (family-wise
error) and Benjamini-Hochberg (false discovery rate) with statsmodels'
``multipletests``.

Any object with the fields of ``Effect`` works (see :class:`EffectLike`), so
this core module does not depend on the designs package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import altair as alt
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from knowdo.equity.common import check_frame, jsonable
from knowdo.errors import ParameterError


class EffectLike(Protocol):
    """The part of :class:`knowdo.designs.effect.Effect` this module reads."""

    @property
    def design(self) -> str: ...

    @property
    def estimand(self) -> str: ...

    @property
    def estimate(self) -> float: ...

    @property
    def std_error(self) -> float: ...

    @property
    def conf_low(self) -> float: ...

    @property
    def conf_high(self) -> float: ...

    @property
    def level(self) -> float: ...

    @property
    def p_value(self) -> float: ...

    @property
    def strata(self) -> pd.DataFrame | None: ...


SIDE_COLUMNS = (
    "dimension", "stratum", "estimate", "std_error", "conf_low", "conf_high", "p_value", "p_holm", "p_bh", "n",
)  # fmt: skip
TEST_COLUMNS = ("dimension", "strata", "q", "df", "p_value", "i_squared", "pooled", "pooled_se")


def cochran_q(estimate: np.ndarray, std_error: np.ndarray) -> tuple[float, int, float, float, float, float]:
    """Cochran's Q for estimates with known SEs: (Q, df, p, I^2, inverse-variance pooled estimate, its SE).

    Examples
    --------
    >>> q, df, p, i2, pooled, se = cochran_q(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    >>> q, df, pooled  # pooled = 2; Q = (1-2)^2 + (3-2)^2
    (2.0, 1, 2.0)
    """
    ok = np.isfinite(estimate) & np.isfinite(std_error) & (std_error > 0)
    y, s = estimate[ok], std_error[ok]
    k = int(ok.sum())
    if k < 2:
        return float("nan"), max(k - 1, 0), float("nan"), float("nan"), float("nan"), float("nan")
    w = 1.0 / s**2
    pooled = float((w * y).sum() / w.sum())
    q = float((w * (y - pooled) ** 2).sum())
    df = k - 1
    p = float(stats.chi2.sf(q, df))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return q, df, p, i2, pooled, float(np.sqrt(1.0 / w.sum()))


@dataclass(frozen=True)
class HeterogeneityResult:
    """Stratum effects side by side with adjusted p-values, and one heterogeneity test per dimension."""

    design: str
    estimand: str
    overall: Mapping[str, float]
    strata: pd.DataFrame
    tests: pd.DataFrame
    level: float

    def tidy(self) -> pd.DataFrame:
        return self.strata.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = [f"{self.design}: {self.estimand} by stratum (overall {self.overall['estimate']:.4g}, "
                 f"{self.level:.0%} CI [{self.overall['conf_low']:.4g}, {self.overall['conf_high']:.4g}])"]
        for rec in self.strata.itertuples(index=False):
            lines.append(f"  {rec.dimension}={rec.stratum}: {rec.estimate:.4g} "
                         f"[{rec.conf_low:.4g}, {rec.conf_high:.4g}]"
                         f"  p={rec.p_value:.3g}, Holm {rec.p_holm:.3g}, BH {rec.p_bh:.3g}")
        for rec in self.tests.itertuples(index=False):
            lines.append(f"  heterogeneity across {rec.dimension}: Q={rec.q:.3g} on {rec.df} df, p={rec.p_value:.3g}, "
                         f"I2={rec.i_squared:.0%}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"design": self.design, "estimand": self.estimand, "level": self.level,
                "overall": jsonable(dict(self.overall)), "strata": jsonable(self.strata),
                "tests": jsonable(self.tests)}

    def plot(self) -> alt.LayerChart:
        """Forest plot: the overall effect as a dashed line, each stratum with its interval."""
        data = self.strata.assign(label=self.strata["dimension"] + ": " + self.strata["stratum"])
        base = alt.Chart(data).encode(y=alt.Y("label:N", sort=None, title=None))
        rules = base.mark_rule().encode(x=alt.X("conf_low:Q", title=self.estimand), x2="conf_high:Q")
        dots = base.mark_point(filled=True).encode(
            x="estimate:Q", color=alt.Color("dimension:N", title=None),
            tooltip=["label", "estimate", "conf_low", "conf_high", "p_holm", "p_bh"])
        line = pd.DataFrame({"x": [self.overall["estimate"]]})
        overall = alt.Chart(line).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
        return (rules + dots + overall).properties(title=f"{self.design}: {self.estimand} by stratum")


def heterogeneity(effect: EffectLike) -> HeterogeneityResult:
    """Per-stratum effects of ``effect`` side by side, Cochran's Q per dimension, Holm and BH p-values.

    Raises :class:`ParameterError` when the effect has no per-stratum estimates.
    """
    strata = getattr(effect, "strata", None)
    if strata is None or not isinstance(strata, pd.DataFrame) or strata.empty:
        raise ParameterError(
            f"heterogeneity: the {getattr(effect, 'design', 'given')} effect has no per-stratum estimates; "
            "fit the design with strata to compare them."
        )
    check_frame(strata, ("dimension", "stratum", "estimate", "std_error"), "effect.strata")
    level = float(getattr(effect, "level", 0.95))
    z = float(stats.norm.ppf(0.5 + level / 2))
    table = strata.copy()
    table["dimension"] = table["dimension"].astype(str)
    table["stratum"] = table["stratum"].astype(str)
    est = table["estimate"].astype(float)
    se = table["std_error"].astype(float)
    for column, default in (("conf_low", est - z * se), ("conf_high", est + z * se)):
        if column not in table.columns:
            table[column] = default
        else:
            table[column] = table[column].astype(float).fillna(default)
    p = pd.Series(2 * stats.norm.sf(np.abs(est / se)), index=table.index)
    table["p_value"] = table["p_value"].astype(float).fillna(p) if "p_value" in table.columns else p
    if "n" not in table.columns:
        table["n"] = np.nan
    table["p_holm"] = np.nan
    table["p_bh"] = np.nan
    ok = np.isfinite(table["p_value"].to_numpy(dtype=float))
    if ok.any():
        pv = table.loc[ok, "p_value"].to_numpy(dtype=float)
        table.loc[ok, "p_holm"] = multipletests(pv, method="holm")[1]
        table.loc[ok, "p_bh"] = multipletests(pv, method="fdr_bh")[1]
    tests = []
    for dimension, part in table.groupby("dimension", sort=False):
        q, df, pq, i2, pooled, pooled_se = cochran_q(
            part["estimate"].to_numpy(dtype=float), part["std_error"].to_numpy(dtype=float)
        )
        tests.append({"dimension": dimension, "strata": len(part), "q": q, "df": df, "p_value": pq,
                      "i_squared": i2, "pooled": pooled, "pooled_se": pooled_se})
    overall = {"estimate": float(effect.estimate), "std_error": float(effect.std_error),
               "conf_low": float(effect.conf_low), "conf_high": float(effect.conf_high),
               "p_value": float(effect.p_value)}
    return HeterogeneityResult(
        design=str(effect.design),
        estimand=str(effect.estimand),
        overall=overall,
        strata=table[list(SIDE_COLUMNS)].reset_index(drop=True),
        tests=pd.DataFrame(tests, columns=list(TEST_COLUMNS)),
        level=level,
    )
