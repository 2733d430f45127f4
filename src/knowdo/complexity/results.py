"""Result objects of the complexity lens: frozen dataclasses with ``summary``, ``to_frame``, ``to_dict`` and ``plot``.

* :class:`PathwayRun`: trajectories of one batch of care-pathway runs;
* :class:`AdoptionResult`: an adoption curve with replication uncertainty;
* :class:`CalibrationResult`: estimates, fit with held-out months, identifiability;
* :class:`ScenarioResult`: scenario trajectories, differences, budget impact, equity;
* :class:`SobolResult`: Sobol indices with intervals and a sample-size check.

:func:`stock_flow_chart` draws the model's stock-flow diagram.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from knowdo.complexity.blocks import CADRES, DIAGRAM_FLOWS, DIAGRAM_LOOPS, DIAGRAM_STOCKS
from knowdo.equity.common import jsonable

LEVEL = 0.95  # reporting convention for intervals across knowdo (WHO HEAT, StaRI)
ROLLING = 12  # months: coverage is a 12-month measure, as in the WMH cascade (frameworks.md section 5.1)

MEASURES: dict[str, tuple[str, bool]] = {
    "reach": ("Treatment starts per month", True),
    "contact_coverage": ("Contact coverage: starts in the past 12 months / need (%)", True),
    "effective_coverage": ("Effective coverage: effective treatments in the past 12 months / need (%)", True),
    "waiting_time": ("Expected wait to start treatment (months)", False),
    "waiting_list": ("People waiting", False),
    "need": ("People with untreated or current need", False),
    "effective": ("People effectively treated per month", True),
    "workforce_specialist": ("Specialist workforce (FTE)", True),
    "workforce_lay": ("Lay-counsellor workforce (FTE)", True),
    "cost": ("Cost per month (USD)", False),
}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records of a frame (NaN -> None, numpy -> Python)."""
    out: list[dict[str, Any]] = jsonable(frame.to_dict(orient="records"))
    return out


def rows(frame: pd.DataFrame) -> Iterator[Any]:
    """``frame.itertuples()`` with loosely typed rows (attributes are the columns)."""
    return frame.itertuples(index=False)


def band(values: np.ndarray, axis: int = 0, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and equal-tailed percentile interval along ``axis``."""
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail], axis=axis)
    return np.nanmean(values, axis=axis), lo, hi


def _rolling(flow: np.ndarray, window: int) -> np.ndarray:
    """Sum over the past ``window`` months along axis 1 (fewer at the start)."""
    c = np.cumsum(flow, axis=1)
    out = c.copy()
    out[:, window:] = c[:, window:] - c[:, :-window]
    return out


@dataclass(frozen=True)
class PathwayRun:
    """Monthly trajectories of a batch of care-pathway runs.

    ``stocks`` hold month-start values for months ``0..months`` (``(B, months + 1, ...)``);
    ``flows`` hold monthly totals for months ``0..months - 1``. People stocks and flows
    are per stratum, with a cadre axis (specialist, lay) where it applies.
    """

    strata: tuple[str, ...]
    population: tuple[float, ...]
    dt: float
    months: int
    stocks: dict[str, np.ndarray]
    flows: dict[str, np.ndarray]

    @property
    def runs(self) -> int:
        return int(self.stocks["well"].shape[0])

    def people(self) -> np.ndarray:
        """Everyone in every people stock, ``(B, months + 1, S)``: constant when stocks are conserved."""
        s = self.stocks
        return s["well"] + s["untreated"] + s["waiting"].sum(axis=2) + s["treatment"].sum(axis=2) + s["recovered"]

    def series(self, name: str) -> np.ndarray:
        """A monthly measure ``(B, months, S)``, or ``(B, months)`` for workforce and cost.

        Observables matching the analysis panel: ``positive`` (detected), ``started``,
        ``adequate`` (completed courses), ``effective`` (completed and recovered),
        ``sessions``; and the measures in :data:`MEASURES`.
        """
        f, s = self.flows, self.stocks
        end = slice(1, None)
        if name in ("positive", "detected"):
            return f["detected"]
        if name in ("started", "reach"):
            return f["starts"].sum(axis=2)
        if name == "adequate":
            return f["completed"].sum(axis=2)
        if name == "effective":
            return f["recoveries"].sum(axis=2)
        if name == "sessions":
            return f["sessions"].sum(axis=2)
        if name == "waiting_time":
            return f["wait"]
        if name == "waiting_list":
            return s["waiting"][:, end].sum(axis=2)
        if name == "need":
            return s["untreated"][:, end] + s["waiting"][:, end].sum(axis=2) + s["treatment"][:, end].sum(axis=2)
        if name in ("contact_coverage", "effective_coverage"):
            flow = f["starts"] if name == "contact_coverage" else f["recoveries"]
            need = self.series("need")
            window = min(ROLLING, self.months)
            months_seen = np.minimum(np.arange(1, self.months + 1), window)[None, :, None]
            # scale partial windows to 12 months so the measure does not jump when the window fills
            return 100 * _rolling(flow.sum(axis=2), window) * (ROLLING / months_seen) / np.maximum(need, 1e-12)
        if name in ("workforce_specialist", "workforce_lay"):
            return s["workforce"][:, end, CADRES.index(name.split("_")[1])]
        if name == "cost":
            return f["cost"]
        known = ", ".join(["positive", "started", "adequate", "sessions", *MEASURES])
        raise KeyError(f"unknown series {name!r}; known: {known}")

    def total(self, name: str) -> np.ndarray:
        """A series summed over strata (when it has them): ``(B, months)``. Rates are population-weighted."""
        x = self.series(name)
        if x.ndim == 2:
            return x
        if name in ("contact_coverage", "effective_coverage"):
            flow = self.flows["starts" if name == "contact_coverage" else "recoveries"].sum(axis=(2, 3))
            window = min(ROLLING, self.months)
            seen = np.minimum(np.arange(1, self.months + 1), window)[None, :]
            return 100 * _rolling(flow, window) * (ROLLING / seen) / np.maximum(self.total("need"), 1e-12)
        if name == "waiting_time":
            starts = self.flows["starts"].sum(axis=(2, 3))
            return self.total("waiting_list") / np.maximum(starts, 1e-3)
        return x.sum(axis=2)

    def to_frame(self, measures: tuple[str, ...] = tuple(MEASURES), max_runs: int = 50) -> pd.DataFrame:
        """Tidy rows ``run, month, stratum, measure, value`` for the first ``max_runs`` runs."""
        rows = []
        runs = min(self.runs, max_runs)
        for name in measures:
            x = self.series(name)[:runs]
            if x.ndim == 2:
                x = x[:, :, None]
                labels: tuple[str, ...] = ("all",)
            else:
                labels = self.strata
            r, m, k = np.indices(x.shape)
            rows.append(pd.DataFrame({"run": r.ravel(), "month": m.ravel(),
                                      "stratum": np.asarray(labels, dtype=object)[k.ravel()],
                                      "measure": name, "value": x.ravel()}))
        return pd.concat(rows, ignore_index=True)

    def summary(self) -> str:
        lines = [f"Care pathway: {self.runs} run(s) x {self.months} months, strata {', '.join(self.strata)}"]
        for name in ("reach", "effective_coverage", "waiting_time", "workforce_specialist", "workforce_lay", "cost"):
            mean, lo, hi = band(self.total(name)[:, -1])
            lines.append(f"  {MEASURES[name][0]} at month {self.months}: {mean:,.2f} ({lo:,.2f} to {hi:,.2f})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strata": list(self.strata),
            "population": list(self.population),
            "dt": self.dt,
            "months": self.months,
            "runs": self.runs,
            "final": {name: float(np.mean(self.total(name)[:, -1])) for name in MEASURES},
        }

    def plot(self, measure: str = "waiting_time") -> alt.Chart:
        mean, lo, hi = band(self.total(measure), axis=0)
        data = pd.DataFrame({"month": np.arange(self.months), "mean": mean, "low": lo, "high": hi})
        base = alt.Chart(data).encode(x=alt.X("month:Q", title="Month"))
        return (base.mark_area(opacity=0.25).encode(y="low:Q", y2="high:Q")
                + base.mark_line().encode(y=alt.Y("mean:Q", title=MEASURES.get(measure, (measure,))[0])))


@dataclass(frozen=True)
class AdoptionResult:
    """Adoption over time on a network, across replications.

    ``curve`` has ``step, time, mean, std_error, conf_low, conf_high`` (share of
    agents currently adopting; the interval is the replication percentile band)
    and ``ever_mean`` (share who have ever adopted). ``paths`` holds each
    replication's share adopting, ``(steps + 1, replications)``: with one parameter
    draw per replication, it is what calibration compares with data.
    """

    curve: pd.DataFrame
    agents: int
    replications: int
    network: str
    settings: dict[str, Any] = field(default_factory=dict)
    final: np.ndarray = field(default_factory=lambda: np.zeros(0))
    paths: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def to_frame(self) -> pd.DataFrame:
        return self.curve.copy()

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()

    def summary(self) -> str:
        last = self.curve.iloc[-1]
        return (f"Adoption on a {self.network} network: {self.agents:,} agents x {self.replications} replications; "
                f"at t = {last['time']:g}: {100 * last['mean']:.1f}% adopting "
                f"({100 * last['conf_low']:.1f}-{100 * last['conf_high']:.1f}%, SE {100 * last['std_error']:.2f} pts)")

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"agents": self.agents, "replications": self.replications, "network": self.network,
                         "settings": self.settings, "curve": records(self.curve)})

    def plot(self) -> alt.LayerChart:
        base = alt.Chart(self.curve).encode(x=alt.X("time:Q", title="Month"))
        return (base.mark_area(opacity=0.25).encode(y=alt.Y("conf_low:Q", title="Share adopting"), y2="conf_high:Q")
                + base.mark_line().encode(y="mean:Q"))


@dataclass(frozen=True)
class CalibrationResult:
    """A calibrated model: estimates with intervals, fit with held-out months, identifiability in words.

    ``estimates`` has ``parameter, prior_low, prior_high, estimate, conf_low,
    conf_high, width_ratio, identified``; ``width_ratio`` is the interval width
    over the prior's central 95% width. ``fit`` has ``series, stratum, month,
    observed, fitted, fit_low, fit_high, held_out``. ``draws`` is the posterior
    sample ``(n, parameters)`` (for least squares, a normal approximation).
    """

    method: str
    parameters: tuple[str, ...]
    estimates: pd.DataFrame
    fit: pd.DataFrame
    draws: np.ndarray
    held_out: dict[str, float]
    statements: tuple[str, ...]
    simulations: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def point(self) -> dict[str, float]:
        """The point estimate of every calibrated parameter."""
        return {str(r.parameter): float(r.estimate) for r in rows(self.estimates)}

    def tidy(self) -> pd.DataFrame:
        return self.estimates.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = [f"Calibration ({self.method}, {self.simulations:,} simulations, {self.seconds:.2f} s)"]
        for r in rows(self.estimates):
            lines.append(f"  {r.parameter}: {r.estimate:.4g} ({r.conf_low:.4g} to {r.conf_high:.4g}) "
                         f"prior {r.prior_low:g}-{r.prior_high:g}; {r.identified}")
        if self.held_out:
            lines.append("  held-out months: " + ", ".join(f"{k} {v:.3g}" for k, v in self.held_out.items()))
        lines += [f"  - {s}" for s in self.statements]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "method": self.method, "parameters": list(self.parameters), "estimates": records(self.estimates),
            "fit": records(self.fit), "held_out": self.held_out, "statements": list(self.statements),
            "simulations": self.simulations, "seconds": self.seconds, "settings": self.settings,
            "diagnostics": self.diagnostics,
        })

    def plot(self) -> alt.FacetChart:
        data = self.fit.assign(part=np.where(self.fit["held_out"], "held out", "fitted"))
        base = alt.Chart(data).encode(x=alt.X("month:Q", title="Month"))
        band_ = base.mark_area(opacity=0.25).encode(y=alt.Y("fit_low:Q", title="Count per month"), y2="fit_high:Q")
        line = base.mark_line().encode(y="fitted:Q")
        points = base.mark_point(filled=True, size=18).encode(
            y="observed:Q", color=alt.Color("part:N", title="Observed month"))
        return (band_ + line + points).facet(row=alt.Row("series:N", title=None)).resolve_scale(y="independent")


@dataclass(frozen=True)
class ScenarioResult:
    """Scenarios run from a calibrated posterior, compared with the first (the baseline).

    * ``trajectories``: ``scenario, month, measure, stratum, mean, conf_low, conf_high``;
    * ``comparison``: per scenario and outcome over the horizon, the value and its
      difference from the baseline with intervals (draws are paired across scenarios);
    * ``budget``: budget impact, additional people effectively treated and cost per
      additional person effectively treated;
    * ``gains``: additional people effectively treated by stratum (who gains);
    * ``equity``: HEAT summary measures of effective coverage across strata over time.
    """

    scenarios: tuple[str, ...]
    descriptions: tuple[str, ...]
    draws: int
    horizon: int
    first_month: int
    dimension: str
    trajectories: pd.DataFrame
    comparison: pd.DataFrame
    budget: pd.DataFrame
    gains: pd.DataFrame
    equity: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        return self.comparison.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.trajectories.copy()

    def summary(self) -> str:
        lines = [f"Scenarios over {self.horizon} months from {self.draws} posterior draws "
                 f"(difference from {self.scenarios[0]!r}, {int(LEVEL * 100)}% intervals)"]
        for r in rows(self.budget):
            lines.append(
                f"  {r.scenario}: +{r.additional_effective:,.0f} effectively treated "
                f"({r.additional_effective_low:,.0f} to {r.additional_effective_high:,.0f}); budget impact "
                f"{r.budget_impact:,.0f} USD; cost per additional person effectively treated "
                f"{_money(r.cost_per_effective)} ({_money(r.cost_per_effective_low)} to "
                f"{_money(r.cost_per_effective_high)})"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "scenarios": list(self.scenarios), "descriptions": list(self.descriptions), "draws": self.draws,
            "horizon": self.horizon, "first_month": self.first_month, "dimension": self.dimension,
            "comparison": records(self.comparison), "budget": records(self.budget), "gains": records(self.gains),
            "equity": records(self.equity), "trajectories": records(self.trajectories), "settings": self.settings,
        })

    def plot(self, measure: str = "effective_coverage") -> alt.LayerChart:
        data = self.trajectories[(self.trajectories["measure"] == measure) & (self.trajectories["stratum"] == "all")]
        base = alt.Chart(data).encode(x=alt.X("month:Q", title="Month"),
                                      color=alt.Color("scenario:N", sort=list(self.scenarios), title="Scenario"))
        title = MEASURES.get(measure, (measure,))[0]
        return (base.mark_area(opacity=0.15).encode(y=alt.Y("conf_low:Q", title=title), y2="conf_high:Q")
                + base.mark_line().encode(y="mean:Q")).properties(title=title)

    def plot_gains(self) -> alt.Chart:
        data = self.gains[self.gains["scenario"] != self.scenarios[0]]
        base = alt.Chart(data).encode(y=alt.Y("stratum:N", title=self.dimension, sort=None),
                                      color=alt.Color("scenario:N", title="Scenario"),
                                      yOffset="scenario:N")
        return (base.mark_bar().encode(x=alt.X("mean:Q", title="Additional people effectively treated"))
                + base.mark_rule().encode(x="conf_low:Q", x2="conf_high:Q")).properties(title="Who gains")

    def plot_equity(self, measure: str = "D") -> alt.Chart:
        data = self.equity[self.equity["measure"] == measure]
        base = alt.Chart(data).encode(x=alt.X("month:Q", title="Month"), color=alt.Color("scenario:N"))
        return (base.mark_area(opacity=0.15).encode(y=alt.Y("conf_low:Q", title=f"HEAT {measure}"), y2="conf_high:Q")
                + base.mark_line().encode(y="mean:Q")).properties(title=f"Inequality in effective coverage ({measure})")


def _money(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.0f} USD"


@dataclass(frozen=True)
class SobolResult:
    """Sobol first-order (S1) and total-order (ST) indices with bootstrap intervals and a sample-size check.

    ``indices``: ``output, parameter, S1, S1_conf, ST, ST_conf`` (``*_conf`` is
    the half-width of the interval). ``convergence``: ``output, parameter,
    ST_half, ST_full, change``; ``enough`` says whether the sample was large enough.
    """

    indices: pd.DataFrame
    convergence: pd.DataFrame
    base_samples: int
    evaluations: int
    enough: bool
    message: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        return self.indices.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        lines = [f"Sobol indices (N = {self.base_samples}, {self.evaluations:,} model runs, {self.seconds:.2f} s)"]
        for output, group in self.indices.groupby("output", sort=False):
            top = group.sort_values("ST", ascending=False).head(4)
            parts = [f"{r.parameter} ST {r.ST:.2f} ± {r.ST_conf:.2f}" for r in rows(top)]
            lines.append(f"  {output}: " + "; ".join(parts))
        lines.append(f"  {self.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"indices": records(self.indices), "convergence": records(self.convergence),
                         "base_samples": self.base_samples, "evaluations": self.evaluations,
                         "enough": self.enough, "message": self.message, "seconds": self.seconds,
                         "settings": self.settings})

    def plot(self) -> alt.FacetChart:
        data = self.indices.melt(id_vars=["output", "parameter"], value_vars=["S1", "ST"], var_name="index",
                                 value_name="value")
        conf = self.indices.melt(id_vars=["output", "parameter"], value_vars=["S1_conf", "ST_conf"],
                                 var_name="index", value_name="conf")
        data["conf"] = conf["conf"].to_numpy()
        data["low"] = data["value"] - data["conf"]
        data["high"] = data["value"] + data["conf"]
        base = alt.Chart(data).encode(y=alt.Y("parameter:N", sort="-x", title=None), yOffset="index:N",
                                      color=alt.Color("index:N", title="Index"))
        return (base.mark_bar().encode(x=alt.X("value:Q", title="Sobol index"))
                + base.mark_rule().encode(x="low:Q", x2="high:Q")).facet(column=alt.Column("output:N", title=None))


def stock_flow_chart() -> alt.LayerChart:
    """The care-pathway model's stock-flow diagram: stocks as boxes, flows as arrows, loops listed."""
    stocks = pd.DataFrame([{"name": s.name, "label": s.label, "x": s.x, "y": s.y, "group": s.group}
                           for s in DIAGRAM_STOCKS])
    where = {s.name: (s.x, s.y) for s in DIAGRAM_STOCKS}
    rows = []
    for f in DIAGRAM_FLOWS:
        (x0, y0), (x1, y1) = where[f.source], where[f.target]
        back = x1 < x0 or (x1 == x0 and y1 < y0)
        bend = -0.25 if back else 0.0
        rows.append({"flow": f.label, "x": x0, "y": y0 + bend, "x2": x1, "y2": y1 + bend, "loop": f.loop,
                     "mx": (x0 + x1) / 2, "my": (y0 + y1) / 2 + bend + 0.1})
    flows = pd.DataFrame(rows)
    loops = pd.DataFrame({"text": DIAGRAM_LOOPS, "x": 0.0, "y": -1.8 - 0.28 * np.arange(len(DIAGRAM_LOOPS))})
    scale_x = alt.Scale(domain=[-0.6, 4.6])
    scale_y = alt.Scale(domain=[-3.6, 3.2])
    arrows = alt.Chart(flows).mark_rule(strokeWidth=1.5, opacity=0.6).encode(
        x=alt.X("x:Q", scale=scale_x, axis=None), y=alt.Y("y:Q", scale=scale_y, axis=None), x2="x2:Q", y2="y2:Q",
        tooltip=["flow:N", "loop:N"])
    heads = alt.Chart(flows).mark_point(shape="triangle", filled=True, size=60).encode(
        x=alt.X("x2:Q", scale=scale_x), y=alt.Y("y2:Q", scale=scale_y), tooltip=["flow:N"])
    labels = alt.Chart(flows).mark_text(fontSize=8, color="#555").encode(
        x=alt.X("mx:Q", scale=scale_x), y=alt.Y("my:Q", scale=scale_y), text="flow:N")
    boxes = alt.Chart(stocks).mark_square(size=2600, opacity=0.85).encode(
        x=alt.X("x:Q", scale=scale_x), y=alt.Y("y:Q", scale=scale_y),
        color=alt.Color("group:N", title="Stock", scale=alt.Scale(range=["#9ecae1", "#fdd0a2"])))
    names = alt.Chart(stocks).mark_text(fontSize=9, fontWeight="bold").encode(
        x=alt.X("x:Q", scale=scale_x), y=alt.Y("y:Q", scale=scale_y), text="label:N")
    loop_text = alt.Chart(loops).mark_text(align="left", fontSize=9).encode(
        x=alt.X("x:Q", scale=scale_x), y=alt.Y("y:Q", scale=scale_y), text="text:N")
    return (arrows + heads + labels + boxes + names + loop_text).properties(
        width=640, height=420, title="Care-pathway model: stocks, flows and feedback loops")
