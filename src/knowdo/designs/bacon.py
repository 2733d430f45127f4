"""Goodman-Bacon decomposition: which 2x2 comparisons a two-way fixed-effects DiD averages.

Goodman-Bacon (2021, J. Econometrics 225(2), Theorem 1) shows that with a
balanced panel and no covariates the TWFE coefficient is a weighted average
of every 2x2 DiD between treatment-timing groups: treated vs never treated,
earlier vs later treated (before the later group starts), later vs earlier
treated (after the earlier group started, the "forbidden" comparison that
biases TWFE when effects grow over time) and, when some units are treated
throughout, treated vs always treated. The weights depend on group sizes and
on how close to the middle of the window each group starts; they sum to one.
A large weight on later-vs-earlier comparisons is the warning sign.

Written here because no maintained Python implementation exists (R has
``bacondecomp``); it is a few closed-form group means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from knowdo.designs._frames import require_columns, require_frame, require_numeric
from knowdo.errors import ParameterError

TYPES = (
    "treated vs never treated",
    "treated vs always treated",
    "earlier vs later treated",
    "later vs earlier treated",
)


@dataclass(frozen=True)
class BaconResult:
    """The 2x2 comparisons (``treated, control, type, estimate, weight``) and the TWFE coefficient they add up to."""

    comparisons: pd.DataFrame
    twfe: float

    def weights_by_type(self) -> dict[str, float]:
        sums = self.comparisons.groupby("type")["weight"].sum()
        return {t: float(sums.get(t, 0.0)) for t in TYPES}

    def by_type(self) -> pd.DataFrame:
        """Weight and weighted-mean estimate of each comparison type."""
        c = self.comparisons.assign(product=self.comparisons["estimate"] * self.comparisons["weight"])
        g = c.groupby("type", sort=False)[["weight", "product"]].sum()
        g["estimate"] = g["product"] / g["weight"]
        return g.drop(columns=["product"]).reindex(list(TYPES)).dropna(how="all").reset_index()

    def tidy(self) -> pd.DataFrame:
        return self.comparisons.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = [f"Goodman-Bacon decomposition of the TWFE coefficient {self.twfe:.4g}"]
        for row in self.by_type().itertuples():
            lines.append(f"  {row.type}: weight {row.weight:.3f}, mean 2x2 estimate {row.estimate:.4g}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        records = []
        for rec in self.comparisons.to_dict(orient="records"):
            records.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()})
        return {"twfe": self.twfe, "weights_by_type": self.weights_by_type(), "comparisons": records}

    def plot(self) -> alt.Chart:
        """Each 2x2 estimate against its weight, coloured by comparison type (Goodman-Bacon's figure)."""
        rule = alt.Chart(pd.DataFrame({"y": [self.twfe]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
        dots = (
            alt.Chart(self.comparisons)
            .mark_point(filled=True, size=60)
            .encode(
                x=alt.X("weight:Q", title="weight"),
                y=alt.Y("estimate:Q", title="2x2 DiD estimate"),
                color=alt.Color("type:N", title="comparison"),
                tooltip=["treated", "control", "type", "estimate", "weight"],
            )
        )
        return (dots + rule).properties(title="Goodman-Bacon decomposition of TWFE")


def _balanced(data: pd.DataFrame, outcome: str, unit: str, time: str, cohort: str) -> tuple[np.ndarray, ...]:
    frame = require_frame(data, "bacon_decomposition")
    require_columns(frame, [outcome, unit, time, cohort], "bacon_decomposition")
    require_numeric(frame, [outcome, time, cohort], "bacon_decomposition")
    u_codes, u_values = pd.factorize(frame[unit], sort=True)
    times = np.sort(pd.unique(frame[time].to_numpy(dtype=float)))
    t_codes = np.searchsorted(times, frame[time].to_numpy(dtype=float))
    n, n_t = len(u_values), len(times)
    y = np.full((n, n_t), np.nan)
    y[u_codes, t_codes] = frame[outcome].to_numpy(dtype=float)
    counts = np.bincount(u_codes.astype(np.int64) * n_t + t_codes, minlength=n * n_t)
    if counts.max() > 1 or not np.isfinite(y).all():
        raise ParameterError(
            "bacon_decomposition: the decomposition needs a balanced panel with one finite outcome per unit and "
            f"period ({n} units x {n_t} periods expected, {int((counts == 1).sum())} complete cells found); "
            "drop incomplete units first."
        )
    first = np.unique(u_codes, return_index=True)[1]
    g = frame[cohort].to_numpy(dtype=float)[first]
    g = np.where(np.isfinite(g) & (g > 0) & (g <= times[-1]), g, np.inf)
    g = np.where(g <= times[0], -np.inf, g)  # treated in every period
    return y, times, g


def bacon_decomposition(data: pd.DataFrame, outcome: str, unit: str, time: str, cohort: str) -> BaconResult:
    """Decompose the TWFE DiD coefficient into 2x2 comparisons (balanced panel, no covariates).

    ``cohort`` is the first treated period (0, NaN or inf for never treated;
    a value at or before the first period means treated throughout).

    Examples
    --------
    >>> df = pd.DataFrame({"id": np.repeat([1, 2, 3], 4), "t": np.tile([1, 2, 3, 4], 3),
    ...                    "g": np.repeat([2, 4, 0], 4), "y": [0, 1, 1, 1, 0, 0, 0, 2, 0, 0, 0, 0.0]})
    >>> res = bacon_decomposition(df, "y", "id", "t", "g")
    >>> round(sum(res.comparisons["weight"]), 10)
    1.0
    """
    y, times, g = _balanced(data, outcome, unit, time, cohort)
    _n, _n_t = y.shape
    d = (times[None, :] >= g[:, None]).astype(float)
    d_tilde = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    v_d = float(np.mean(d_tilde**2))
    if v_d <= 0:
        raise ParameterError(
            "bacon_decomposition: treatment does not vary within units over time; there is no DiD to decompose."
        )
    y_tilde = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    twfe = float(np.mean(y_tilde * d_tilde) / v_d)

    timing = np.unique(g[np.isfinite(g)])
    share = {k: float(np.mean(g == k)) for k in timing}
    dbar = {k: float(np.mean(times >= k)) for k in timing}
    means = {k: y[g == k].mean(axis=0) for k in timing}

    def seg(k: float, mask: np.ndarray) -> float:
        return float(means[k][mask].mean())

    rows: list[dict[str, Any]] = []
    for label, value in (("never treated", np.inf), ("always treated", -np.inf)):
        if not (g == value).any():
            continue
        n_c = float(np.mean(g == value))
        path_c = y[g == value].mean(axis=0)
        for k in timing:
            pre, post = times < k, times >= k
            est = (seg(k, post) - seg(k, pre)) - (path_c[post].mean() - path_c[pre].mean())
            n_kc = share[k] / (share[k] + n_c)
            w = (share[k] + n_c) ** 2 * n_kc * (1 - n_kc) * dbar[k] * (1 - dbar[k]) / v_d
            rows.append({"treated": k, "control": label, "type": f"treated vs {label}", "estimate": est, "weight": w})
    for i, k in enumerate(timing):
        for l_ in timing[i + 1 :]:
            n_kl = share[k] / (share[k] + share[l_])
            pre, mid, post = times < k, (times >= k) & (times < l_), times >= l_
            early = (seg(k, mid) - seg(k, pre)) - (seg(l_, mid) - seg(l_, pre))
            w_early = ((share[k] + share[l_]) * (1 - dbar[l_])) ** 2 * n_kl * (1 - n_kl)
            w_early *= (dbar[k] - dbar[l_]) / (1 - dbar[l_]) * (1 - dbar[k]) / (1 - dbar[l_]) / v_d
            late = (seg(l_, post) - seg(l_, mid)) - (seg(k, post) - seg(k, mid))
            w_late = ((share[k] + share[l_]) * dbar[k]) ** 2 * n_kl * (1 - n_kl)
            w_late *= dbar[l_] / dbar[k] * (dbar[k] - dbar[l_]) / dbar[k] / v_d
            rows.append({"treated": k, "control": str(l_), "type": TYPES[2], "estimate": early, "weight": w_early})
            rows.append({"treated": l_, "control": str(k), "type": TYPES[3], "estimate": late, "weight": w_late})
    comparisons = pd.DataFrame(rows, columns=["treated", "control", "type", "estimate", "weight"])
    comparisons["control"] = comparisons["control"].map(
        lambda c: c if c in ("never treated", "always treated") else f"{float(c):g}"
    )
    return BaconResult(comparisons=comparisons, twfe=twfe)
