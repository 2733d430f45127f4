"""The report's "Scale-up scenarios" section: calibrate the care-pathway model to a project's panel and ask "what if".

:func:`scenario_section` sums the panel over sites for one equity dimension,
calibrates the model to the monthly positive screens, treatment starts,
adequate and effective courses (ABC-SMC, last months held out), states
what the data cannot pin down, runs the scenarios from the posterior,
computes Sobol indices of the scenario outcomes, and fits the network
adoption model to the sites' rollout dates. The defaults keep it to a few
seconds on the example programme: half-month steps, 200 particles, 100
posterior draws per scenario, Sobol N = 256.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from knowdo.complexity.adoption import NetworkAdoption, fit_bass, make_network
from knowdo.complexity.calibration import Calibration, Prior
from knowdo.complexity.panel_data import PathwayData, PathwaySimulator
from knowdo.complexity.results import (
    AdoptionResult,
    CalibrationResult,
    ScenarioResult,
    SobolResult,
    rows,
    stock_flow_chart,
)
from knowdo.complexity.scenarios import DEFAULT_HORIZON, Scenario, default_scenarios, run_scenarios
from knowdo.complexity.sensitivity import sobol_indices
from knowdo.complexity.sweep import Sweep
from knowdo.config import Project, Stratum
from knowdo.equity.common import jsonable
from knowdo.errors import ParameterError

# Priors of the calibrated parameters: wide ranges around the sources in knowdo.complexity.blocks.
DEFAULT_PRIORS: dict[str, Prior] = {
    "detection": Prior(0.001, 0.05, "log"),
    "screening_uplift": Prior(0.001, 0.2, "log"),
    "ramp_months": Prior(1.0, 24.0, "log"),
    "acceptance_specialist": Prior(0.05, 1.0),
    "dropout_specialist": Prior(0.05, 5.0, "log"),
    "acceptance_lay": Prior(0.05, 1.0),
    "dropout_lay": Prior(0.05, 3.0, "log"),
    "burnout_lay": Prior(0.0, 3.0),
}
# Uncertain settings the panel says nothing about, added to the Sobol analysis (ranges from blocks.py sources).
SOBOL_EXTRA: dict[str, tuple[float, float]] = {
    "caseload_lay": (5.0, 20.0),
    "posts_per_1000_lay": (1.0, 5.0),
    "attrition_lay": (0.005, 0.04),
}
SERIES = ("positive", "started", "adequate", "effective")
SECTION_DT = 0.5  # months; half-month steps keep the section fast (the benchmark model uses 0.25)
SECTION_PARTICLES = 200  # ABC-SMC particles for the section's default run
SECTION_GENERATIONS = 3
SECTION_SOBOL_N = 256


@dataclass(frozen=True)
class ScenarioReport:
    """Everything the Scale-up scenarios section shows."""

    project: str
    dimension: str
    data: dict[str, Any]
    calibration: CalibrationResult
    scenarios: ScenarioResult
    sobol: SobolResult
    adoption: AdoptionResult
    adoption_fit: dict[str, float]
    observed_adoption: pd.DataFrame
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def sentences(self) -> list[str]:
        """Plain-language findings: fit, identifiability, scenario differences, who gains, sensitivity, adoption."""
        c = self.calibration
        out = []
        held = c.held_out
        if "coverage_held_out" in held:
            out.append(
                f"The model was calibrated to {self.data['months'] - int(held['months_held_out'])} months of "
                f"screening, treatment-start and outcome counts ({c.method.replace('_', ' ')}, "
                f"{c.simulations:,} simulations); of the {int(held['months_held_out'])} held-out months, "
                f"{100 * held['coverage_held_out']:.0f}% of observed counts fell inside the 95% predictive band.")
        out += list(c.statements)
        s = self.scenarios
        for r in rows(s.budget):
            if r.scenario == s.scenarios[0]:
                continue
            cost = ("" if not np.isfinite(r.cost_per_effective) else
                    f"; {r.cost_per_effective:,.0f} USD per additional person effectively treated "
                    f"({r.cost_per_effective_low:,.0f} to {r.cost_per_effective_high:,.0f})")
            out.append(f"{r.scenario}: {r.additional_effective:+,.0f} people effectively treated over "
                       f"{s.horizon} months ({r.additional_effective_low:+,.0f} to {r.additional_effective_high:+,.0f})"
                       f" compared with {s.scenarios[0].lower()}; budget impact {r.budget_impact:+,.0f} USD{cost}.")
        gains = s.gains[s.gains["scenario"] != s.scenarios[0]]
        if len(s.gains["stratum"].unique()) > 1 and len(gains):
            best = s.budget.iloc[1:].sort_values("additional_effective", ascending=False).iloc[0]["scenario"]
            g = gains[gains["scenario"] == best].sort_values("per_1000", ascending=False)
            out.append(f"Who gains under {best!r}: most in {self.dimension} {g.iloc[0]['stratum']} "
                       f"({g.iloc[0]['per_1000']:.1f} more per 1,000 adults), least in {g.iloc[-1]['stratum']} "
                       f"({g.iloc[-1]['per_1000']:.1f} per 1,000).")
        top = self.sobol.indices[self.sobol.indices["output"] == "effectively_treated"].nlargest(3, "ST")
        if len(top):
            parts = ", ".join(f"{r.parameter} (ST {r.ST:.2f})" for r in rows(top))
            out.append(f"Uncertainty in people effectively treated comes mostly from {parts}. {self.sobol.message}")
        f = self.adoption_fit
        if f:
            out.append(f"Site adoption fitted a Bass curve with external influence p = {f['external']:.3f} and peer "
                       f"influence q = {f['peer']:.3f} per month; the network model reproduces it with "
                       f"replication bands.")
        return out

    def summary(self) -> str:
        return "\n".join([f"Scale-up scenarios: {self.project} (strata: {self.dimension})",
                          *(f"  - {s}" for s in self.sentences()), *(f"  note: {n}" for n in self.notes)])

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "project": self.project, "dimension": self.dimension, "data": self.data,
            "calibration": self.calibration.to_dict(), "scenarios": self.scenarios.to_dict(),
            "sobol": self.sobol.to_dict(), "adoption": self.adoption.to_dict(), "adoption_fit": self.adoption_fit,
            "observed_adoption": self.observed_adoption.to_dict(orient="records"), "sentences": self.sentences(),
            "notes": list(self.notes), "settings": self.settings,
        })

    def charts(self) -> list[alt.TopLevelMixin]:
        s = self.scenarios
        out: list[alt.TopLevelMixin] = [
            stock_flow_chart(),
            self.calibration.plot().properties(title="Calibration: observed counts, fitted model, held-out months"),
            s.plot("effective_coverage"),
            s.plot("waiting_time"),
            s.plot("workforce_lay"),
        ]
        if len(s.gains["stratum"].unique()) > 1:
            out.append(s.plot_gains())
        if len(s.equity):
            out.append(s.plot_equity("D"))
        out.append(self.sobol.plot().properties(title="Sobol indices of scenario outcomes"))
        observed = alt.Chart(self.observed_adoption).mark_point(filled=True, color="black").encode(
            x="time:Q", y=alt.Y("share:Q", title="Share of sites delivering"))
        out.append((self.adoption.plot() + observed).properties(title="Site adoption: observed and network model"))
        return out


def _dimension(project: Project, panel: pd.DataFrame, dimension: str | None) -> tuple[str, Stratum | None]:
    present = set(panel["dimension"].astype(str)) - {"all"}
    if dimension is not None:
        if dimension != "all" and dimension not in present:
            raise ParameterError(f"scenario_section: dimension {dimension!r} not in the panel; "
                                 f"known: {sorted(present)}")
        return dimension, next((s for s in project.strata if s.name == dimension), None)
    ordered = [s for s in project.strata if s.ordered and len(s.levels) >= 3 and s.name in present]
    # socioeconomic position first: the Commission's equity question is usually about the poorest
    ordered.sort(key=lambda s: s.category != "Socioeconomic status")
    choice = ordered[0] if ordered else next((s for s in project.strata if s.name in present), None)
    return (choice.name, choice) if choice is not None else ("all", None)


def observed_adoption(sites: pd.DataFrame, periods: pd.DatetimeIndex) -> pd.DataFrame:
    """Share of sites that had started delivering by each month."""
    first = pd.to_datetime(sites["first_treated"])
    share = [(first <= p).mean() for p in periods]
    return pd.DataFrame({"time": np.arange(len(periods), dtype=float), "share": share})


def scenario_section(
    panel: pd.DataFrame,
    project: Project,
    *,
    dimension: str | None = None,
    scenarios: Sequence[Scenario] | None = None,
    horizon: int = DEFAULT_HORIZON,
    draws: int = 100,
    held_out: int = 6,
    particles: int = SECTION_PARTICLES,
    generations: int = SECTION_GENERATIONS,
    sobol_n: int = SECTION_SOBOL_N,
    seed: int = 0,
    sweep: Sweep | None = None,
) -> ScenarioReport:
    """Calibrate, run scenarios, Sobol and adoption for the report's Scale-up scenarios section.

    Parameters
    ----------
    panel
        The analysis panel (``knowdo.schema.PANEL_COLUMNS``).
    project
        The project (its strata give the HEAT flags of the equity dimension).
    dimension
        Equity dimension whose strata get their own stocks; default: the socioeconomic
        dimension when it is ordered (e.g. wealth quintile), else the first ordered
        dimension with three or more levels.
    scenarios
        Scenarios to compare; the first is the baseline. Default: :func:`default_scenarios`.
    """
    started = time.perf_counter()
    name, stratum = _dimension(project, panel, dimension)
    data = PathwayData.from_panel(panel, name)
    if data.months < held_out + 6:
        raise ParameterError(f"scenario_section: {data.months} months of data; need at least {held_out + 6} "
                             f"(held_out={held_out})")
    simulator = PathwaySimulator(data, series=SERIES, dt=SECTION_DT)
    calibration = Calibration(simulate=simulator, priors=DEFAULT_PRIORS, method="abc_smc", held_out=held_out,
                              particles=particles, generations=generations, seed=seed, sweep=sweep).fit(
        simulator.observed()).result_
    chosen = list(scenarios) if scenarios is not None else default_scenarios(data.strata)
    result = run_scenarios(simulator, calibration, chosen, horizon=horizon, draws=draws, stratum=stratum, seed=seed)
    sobol = _sobol(simulator, calibration, horizon, sobol_n, seed, sweep)
    observed = observed_adoption(data.sites, data.periods)
    adoption, fit = _adoption(data, observed, seed)
    notes = ("Scenario effects are modelled, not observed: they follow from the calibrated model and the stated "
             "scenario changes, and the bands carry parameter uncertainty only.",
             f"The model integrates in {SECTION_DT:g}-month steps after a 24-month usual-care warm-up.")
    return ScenarioReport(
        project=project.name, dimension=name,
        data={"months": data.months, "strata": list(data.strata), "population": data.population.tolist(),
              "prevalence": data.prevalence.tolist(), "first_period": str(data.periods[0].date())},
        calibration=calibration, scenarios=result, sobol=sobol, adoption=adoption, adoption_fit=fit,
        observed_adoption=observed, notes=notes,
        settings={"seed": seed, "horizon": horizon, "draws": draws, "held_out": held_out, "particles": particles,
                  "generations": generations, "sobol_n": sobol_n, "seconds": time.perf_counter() - started},
    )


@dataclass
class _HorizonOutcomes:
    """Sobol evaluator: parameters -> outcomes of the baseline over the horizon (picklable for Dask)."""

    simulator: PathwaySimulator
    fixed: dict[str, float]
    horizon: int

    def __call__(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sim = PathwaySimulator(self.simulator.data, {**self.simulator.fixed, **self.fixed}, self.simulator.series,
                               self.simulator.by_stratum, self.simulator.warmup, self.simulator.dt, self.horizon)
        run = sim.run(values)
        first = self.simulator.data.months
        window = slice(first, first + self.horizon)
        return {"effectively_treated": run.total("effective")[:, window].sum(axis=1),
                "mean_waiting_time": run.total("waiting_time")[:, window].mean(axis=1),
                "total_cost": run.total("cost")[:, window].sum(axis=1)}


def _sobol(simulator: PathwaySimulator, calibration: CalibrationResult, horizon: int, n: int, seed: int,
           sweep: Sweep | None) -> SobolResult:
    bounds: dict[str, tuple[float, float]] = {}
    for r in rows(calibration.estimates):
        lo, hi = float(r.conf_low), float(r.conf_high)
        if not hi > lo:
            lo, hi = float(r.prior_low), float(r.prior_high)
        bounds[str(r.parameter)] = (lo, hi)
    bounds.update(SOBOL_EXTRA)
    evaluate = _HorizonOutcomes(simulator, {}, horizon)
    return sobol_indices(evaluate, bounds, n=n, seed=seed, sweep=sweep)


def _adoption(data: PathwayData, observed: pd.DataFrame, seed: int) -> tuple[AdoptionResult, dict[str, float]]:
    sites = data.sites
    n = len(sites)
    if n < 3 or observed["share"].iloc[-1] == 0:
        empty = AdoptionResult(curve=pd.DataFrame(columns=["step", "time", "mean", "std_error", "conf_low",
                                                           "conf_high", "ever_mean"]),
                               agents=n, replications=0, network="none")
        return empty, {}
    fit = fit_bass(observed["time"].to_numpy(), observed["share"].to_numpy())
    groups = sites.groupby("district_id", sort=True).size().tolist()
    adjacency = make_network(n, kind="blocks", groups=groups, between=0.05, seed=seed)
    model = NetworkAdoption(external=fit["external"], peer=fit["peer"], discontinuation=0.0, seeds=0.0, substeps=4)
    result = model.run(adjacency, steps=len(observed) - 1, replications=200, seed=seed, network="district blocks")
    return result, fit
