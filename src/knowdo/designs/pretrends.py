"""Pre-trend diagnostics for event studies: the joint Wald test of the pre-period coefficients.

Every event study in knowdo (Callaway & Sant'Anna, TWFE, Sun & Abraham)
reports whether its pre-treatment coefficients are jointly zero, the check a
reader makes before trusting parallel trends: ``W = b' V^-1 b`` is
chi-square with as many degrees of freedom as coefficients under the null
(R ``did`` reports the same statistic for its ATT(g,t) pre-test). A small
p-value is evidence against parallel trends; a large one is not proof of them
(Roth 2022, AER: Insights 4(3), on low power and pre-testing), which is why the
result is a diagnostic, not a gate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

# A covariance matrix with reciprocal condition number below machine epsilon is
# treated as singular and the test is not reported (R did's rule).
RCOND_MIN = float(np.finfo(float).eps)


@dataclass(frozen=True)
class PretrendTest:
    """Joint Wald test that the pre-period coefficients are zero."""

    statistic: float
    df: int
    p_value: float
    terms: tuple[str, ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {
            "statistic": clean(self.statistic),
            "df": self.df,
            "p_value": clean(self.p_value),
            "terms": list(self.terms),
            "note": self.note,
        }

    def diagnostics(self, prefix: str = "pretrend") -> dict[str, Any]:
        """Flat entries for an Effect's ``diagnostics``."""
        out: dict[str, Any] = {
            f"{prefix}_wald": self.statistic,
            f"{prefix}_df": self.df,
            f"{prefix}_p_value": self.p_value,
        }
        if self.note:
            out[f"{prefix}_note"] = self.note
        return out

    def summary(self) -> str:
        if not math.isfinite(self.statistic):
            return f"pre-trend test not available: {self.note}"
        return f"pre-trend Wald chi2({self.df}) = {self.statistic:.3f}, p = {self.p_value:.4g}"


def wald_pretrend(estimates: Sequence[float] | np.ndarray, vcov: np.ndarray, terms: Sequence[str]) -> PretrendTest:
    """Wald test of ``estimates == 0`` given their covariance matrix.

    Examples
    --------
    >>> t = wald_pretrend([0.1, -0.1], np.diag([0.01, 0.01]), ["e=-2", "e=-1"])
    >>> round(t.statistic, 6), t.df
    (2.0, 2)
    """
    b = np.asarray(estimates, dtype=float)
    v = np.asarray(vcov, dtype=float)
    names = tuple(str(t) for t in terms)
    keep = np.isfinite(b) & np.isfinite(np.diag(v)) & (np.diag(v) > 0)
    b, v, names = b[keep], v[np.ix_(keep, keep)], tuple(n for n, k in zip(names, keep, strict=True) if k)
    if len(b) == 0:
        return PretrendTest(math.nan, 0, math.nan, (), note="no pre-treatment coefficients to test")
    if 1.0 / np.linalg.cond(v, 1) <= RCOND_MIN:
        return PretrendTest(math.nan, len(b), math.nan, names, note="pre-period covariance matrix is singular")
    stat = float(b @ np.linalg.solve(v, b))
    return PretrendTest(stat, len(b), float(stats.chi2.sf(stat, len(b))), names)
