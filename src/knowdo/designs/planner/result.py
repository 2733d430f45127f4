"""The one result shape every planner function returns: :class:`PowerResult`.

A plan is a small set of numbers (power, sample size, minimum detectable
effect) plus what they rest on: the design, its parameters, the method, the
assumptions a reader must judge and the published sources. Reports, the CLI
and the advisor render any ``PowerResult`` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from scipy import stats

from knowdo.designs.effect import _jsonable

FRAME_COLUMNS = ("quantity", "value")


@dataclass(frozen=True)
class PowerResult:
    """Power, size and minimum detectable effect of one planned study.

    Attributes
    ----------
    design
        Short design name (``"stepped-wedge"``, ``"parallel-crt"`` ...).
    method
        How the numbers were computed, in words.
    power
        Power at the planned size and effect (two-sided unless stated).
    alpha
        Significance level.
    effect
        Planned effect on the analysis scale (``None`` when solving for it).
    std_error
        Standard error of the effect estimate at the planned size, when the
        method gives one; :meth:`plot` draws the power curve from it.
    parameters
        Every input, as given.
    solved_for
        ``"power"``, ``"sample_size"``, ``"clusters"`` or ``"mde"``.
    n
        Individuals (or observations) in the whole study.
    clusters
        Clusters (or units) in the whole study.
    mde
        Minimum detectable effect at ``target_power`` (or 0.8).
    monte_carlo_se
        Monte Carlo standard error of a simulated power.
    type1_error
        Rejection rate under no effect (simulation only).
    details
        Design-specific scalars and small tables (design effects, variances).
    assumptions
        What the numbers assume, for the reader to judge.
    sources
        Methods sources (author, journal, year).
    """

    design: str
    method: str
    power: float
    alpha: float
    effect: float | None
    parameters: Mapping[str, Any]
    std_error: float | None = None
    solved_for: str = "power"
    n: float | None = None
    clusters: int | None = None
    mde: float | None = None
    target_power: float | None = None
    monte_carlo_se: float | None = None
    type1_error: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    # ------------------------------------------------------------------ views
    def to_frame(self) -> pd.DataFrame:
        """One row per headline quantity (``quantity, value``)."""
        rows: list[tuple[str, Any]] = [
            ("power", self.power),
            ("alpha", self.alpha),
            ("effect", self.effect),
            ("std_error", self.std_error),
            ("n", self.n),
            ("clusters", self.clusters),
            ("mde", self.mde),
            ("target_power", self.target_power),
            ("monte_carlo_se", self.monte_carlo_se),
            ("type1_error", self.type1_error),
        ]
        for name, value in self.details.items():
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                rows.append((name, value))
        kept = [(k, float(v)) for k, v in rows if v is not None]
        return pd.DataFrame(kept, columns=list(FRAME_COLUMNS))

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()

    def summary(self) -> str:
        lines = [f"{self.design}: {self.method}"]
        power = f"  power {self.power:.4f} at alpha {self.alpha:g}"
        if self.monte_carlo_se is not None:
            power += f" (Monte Carlo SE {self.monte_carlo_se:.4f})"
        lines.append(power)
        if self.type1_error is not None:
            lines.append(f"  type-I error {self.type1_error:.4f}")
        if self.effect is not None:
            lines.append(f"  effect {self.effect:.4g}" + (f" (SE {self.std_error:.4g})" if self.std_error else ""))
        if self.clusters is not None:
            lines.append(f"  clusters {self.clusters}")
        if self.n is not None:
            lines.append(f"  individuals/observations {self.n:,.0f}")
        if self.mde is not None:
            target = self.target_power if self.target_power is not None else 0.8
            lines.append(f"  minimum detectable effect {self.mde:.4g} at power {target:g}")
        if self.solved_for != "power":
            lines.append(f"  solved for: {self.solved_for}")
        if self.assumptions:
            lines.append("  assumptions to judge:")
            lines += [f"    - {a}" for a in self.assumptions]
        if self.sources:
            lines.append("  sources: " + "; ".join(self.sources))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "method": self.method,
            "power": _jsonable(self.power),
            "alpha": self.alpha,
            "effect": _jsonable(self.effect),
            "std_error": _jsonable(self.std_error),
            "solved_for": self.solved_for,
            "n": _jsonable(self.n),
            "clusters": self.clusters,
            "mde": _jsonable(self.mde),
            "target_power": _jsonable(self.target_power),
            "monte_carlo_se": _jsonable(self.monte_carlo_se),
            "type1_error": _jsonable(self.type1_error),
            "parameters": _jsonable(dict(self.parameters)),
            "details": _jsonable(dict(self.details)),
            "assumptions": list(self.assumptions),
            "sources": list(self.sources),
        }

    def plot(self) -> alt.LayerChart | alt.Chart | alt.FacetChart:
        """Power against effect size (normal approximation from ``std_error``), the plan marked."""
        if self.std_error is None or not math.isfinite(self.std_error) or self.std_error <= 0:
            low = self.power - 1.96 * (self.monte_carlo_se or 0.0)
            high = self.power + 1.96 * (self.monte_carlo_se or 0.0)
            table = pd.DataFrame([{"design": self.design, "power": self.power, "low": low, "high": high}])
            base = alt.Chart(table).encode(y=alt.Y("design:N", title=None))
            bar = base.mark_rule().encode(x=alt.X("low:Q", title="power", scale=alt.Scale(domain=[0, 1])), x2="high:Q")
            return (bar + base.mark_point(filled=True).encode(x="power:Q")).properties(title=self.design)
        reference = max(abs(self.effect or 0.0), abs(self.mde or 0.0), 4.0 * self.std_error)
        grid = np.linspace(0.0, 1.5 * reference, 61)
        z = stats.norm.isf(self.alpha / 2)
        power = stats.norm.cdf(grid / self.std_error - z) + stats.norm.cdf(-grid / self.std_error - z)
        table = pd.DataFrame({"effect": grid, "power": power})
        line = alt.Chart(table).mark_line().encode(
            x=alt.X("effect:Q", title="effect (analysis scale)"),
            y=alt.Y("power:Q", title="power", scale=alt.Scale(domain=[0, 1])),
            tooltip=["effect", "power"],
        )
        layers: list[alt.Chart] = [line]
        if self.effect is not None:
            mark = pd.DataFrame([{"effect": abs(self.effect), "power": self.power}])
            layers.append(alt.Chart(mark).mark_point(filled=True, size=80).encode(x="effect:Q", y="power:Q"))
        rule = alt.Chart(pd.DataFrame({"y": [self.target_power or 0.8]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
        layers.append(rule)
        return alt.layer(*layers).properties(title=f"{self.design}: power by effect size")
