"""What the scenario explorer and the study planner call in the core, in one place.

The scenario explorer calibrates the care-pathway model to a project's panel
once per load (the slow step: ABC-SMC) and keeps it in memory, then runs each
scenario a member picks or edits against the baseline on the same posterior
draws (:func:`knowdo.complexity.run_scenarios`). The calibration mirrors
:func:`knowdo.complexity.scenario_section` (same priors, series, step and
particles) without the Sobol and adoption parts the explorer does not show.
If :mod:`knowdo.complexity` grows a public "calibrate for a project" function,
:func:`calibrate` should call it instead.

The planner page calls the advisor and three power calculators of
:mod:`knowdo.designs.planner` with the values of its forms.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from knowdo.complexity.blocks import SPECS
from knowdo.complexity.calibration import Calibration
from knowdo.complexity.panel_data import PathwayData, PathwaySimulator
from knowdo.complexity.pathway import Change
from knowdo.complexity.results import CalibrationResult, ScenarioResult
from knowdo.complexity.scenarios import Scenario, baseline, default_scenarios, run_scenarios
from knowdo.complexity.section import DEFAULT_PRIORS, SECTION_DT, SECTION_GENERATIONS, SECTION_PARTICLES, SERIES
from knowdo.config import Project, Stratum
from knowdo.designs.planner import (
    Advice,
    Constraints,
    PowerResult,
    advise,
    plan_crt,
    plan_individual,
    plan_stepped_wedge,
)
from knowdo.designs.planner.advisor import constraints_from_mapping
from knowdo.errors import ParameterError

HELD_OUT = 6  # months left out of the calibration and used as a check (scenario_section's default)
OPS = ("set", "scale", "add")
POWER_DESIGNS = ("individual", "crt", "stepped-wedge")


# ---------------------------------------------------------------------------- scenarios
def scenario_dimension(project: Project) -> Stratum | None:
    """The equity dimension whose strata get their own stocks: socioeconomic and ordered first, as the report does."""
    ordered = [s for s in project.strata if s.ordered and len(s.levels) >= 3]
    ordered.sort(key=lambda s: s.category != "Socioeconomic status")
    if ordered:
        return ordered[0]
    return project.strata[0] if project.strata else None


def scenario_options(project: Project) -> list[Scenario]:
    """The baseline and the ready-made scenarios for this project's strata."""
    stratum = scenario_dimension(project)
    return default_scenarios(stratum.levels if stratum is not None else ("all",))


def parameter_choices() -> list[dict[str, Any]]:
    """Model parameters a member may edit in a custom scenario, with unit, range and source."""
    return [{"name": s.name, "unit": s.unit, "low": s.low, "high": s.high, "default": s.default,
             "per_stratum": s.kind == "stratum"} for s in SPECS.values()]


def custom_scenario(name: str, parameter: str, op: str, value: float, start: float = 0.0,
                    stratum: str | None = None, description: str = "") -> Scenario:
    """A one-change scenario from the explorer's form; the core checks the parameter and operation."""
    if op not in OPS:
        raise ParameterError(f"scenario change: op must be one of {', '.join(OPS)}; saw {op!r}")
    name = name.strip() or f"{op} {parameter} {value:g}"
    if len(name) > 100:
        raise ParameterError("the scenario name must be at most 100 characters long")
    change = Change(parameter, float(value), op, float(start), stratum or None)  # type: ignore[arg-type]
    return Scenario(name, (change,), description.strip()[:300] or f"{parameter}: {op} {value:g} from month {start:g}")


@dataclass(frozen=True)
class CalibratedModel:
    """A project's care-pathway model calibrated to its panel, ready for scenario runs."""

    simulator: PathwaySimulator
    calibration: CalibrationResult
    stratum: Stratum | None
    dimension: str


_CACHE: dict[tuple[str, int | None], CalibratedModel] = {}
_CACHE_LOCK = threading.Lock()


def calibrate(project: Project, panel: pd.DataFrame, *, load_id: int | None, seed: int = 0) -> CalibratedModel:
    """Calibrate once per project and load (cached in memory), as the report's scenario section does."""
    key = (str(project.root.resolve()), load_id)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
    if found is not None:
        return found
    stratum = scenario_dimension(project)
    present = set(panel["dimension"].astype(str))
    dimension = stratum.name if stratum is not None and stratum.name in present else "all"
    data = PathwayData.from_panel(panel, dimension)
    if data.months < HELD_OUT + 6:
        raise ParameterError(f"the scenario model needs at least {HELD_OUT + 6} months of data; "
                             f"this project has {data.months}")
    simulator = PathwaySimulator(data, series=SERIES, dt=SECTION_DT)
    calibration = Calibration(simulate=simulator, priors=DEFAULT_PRIORS, method="abc_smc", held_out=HELD_OUT,
                              particles=SECTION_PARTICLES, generations=SECTION_GENERATIONS, seed=seed).fit(
        simulator.observed()).result_
    model = CalibratedModel(simulator, calibration, stratum if dimension != "all" else None, dimension)
    with _CACHE_LOCK:
        _CACHE[key] = model
    return model


def run_scenario(model: CalibratedModel, scenario: Scenario, *, horizon: int, draws: int,
                 seed: int = 0) -> ScenarioResult:
    """Run ``scenario`` against the baseline on the same posterior draws."""
    if scenario.name == baseline().name:
        raise ParameterError("pick a scenario other than the current programme (it is the baseline)")
    return run_scenarios(model.simulator, model.calibration, [baseline(), scenario], horizon=horizon, draws=draws,
                         stratum=model.stratum, seed=seed)


# ---------------------------------------------------------------------------- planner
def planner_constraints(values: Mapping[str, Any]) -> Constraints:
    """Constraints from the advisor form (the same tables and keys as a constraints TOML file)."""
    tables: dict[str, dict[str, Any]] = {"study": {}, "units": {}, "data": {}, "intervention": {}}
    layout = {
        "study": ("name", "outcome", "baseline", "effect", "sd", "icc", "alpha", "target_power"),
        "units": ("unit_kind", "units", "size_per_period", "randomisable", "rollout", "waves"),
        "data": ("periods_before", "periods_after", "comparison", "comparison_units"),
        "intervention": ("policy", "eligibility_threshold"),
    }
    for table, names in layout.items():
        for name in names:
            if name in values and values[name] not in (None, ""):
                tables[table][name] = values[name]
    return constraints_from_mapping({k: v for k, v in tables.items() if v}, source="the advisor form")


def advise_plan(values: Mapping[str, Any]) -> Advice:
    return advise(planner_constraints(values))


def power(design: str, values: Mapping[str, Any]) -> PowerResult:
    """One power calculation; leave the size out and give ``power`` to solve for it."""
    v = {k: val for k, val in values.items() if val not in (None, "")}
    if design == "individual":
        return plan_individual(n_per_arm=v.get("n_per_arm"), p0=v.get("p0"), p1=v.get("p1"), delta=v.get("delta"),
                               sd=v.get("sd"), power=v.get("power"), alpha=v.get("alpha", 0.05))
    if design == "crt":
        if "icc" not in v:
            raise ParameterError("a cluster trial needs the ICC (intracluster correlation), e.g. 0.05")
        return plan_crt(icc=v["icc"], clusters_per_arm=v.get("clusters_per_arm"), cluster_size=v.get("cluster_size"),
                        p0=v.get("p0"), p1=v.get("p1"), delta=v.get("delta"), sd=v.get("sd"), power=v.get("power"),
                        alpha=v.get("alpha", 0.05))
    if design == "stepped-wedge":
        if "steps" not in v:
            raise ParameterError("a stepped-wedge trial needs the number of steps, e.g. 4")
        return plan_stepped_wedge(clusters=_int(v.get("clusters")), steps=int(v["steps"]),
                                  cluster_period_size=v.get("cluster_period_size"), p0=v.get("p0"), p1=v.get("p1"),
                                  delta=v.get("delta"), sigma=v.get("sd"), icc=v.get("icc"), power=v.get("power"),
                                  alpha=v.get("alpha", 0.05))
    raise ParameterError(f"design {design!r} is not offered here; use one of {', '.join(POWER_DESIGNS)}")


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
