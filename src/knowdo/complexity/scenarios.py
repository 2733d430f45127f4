"""Scale-up scenarios: sets of changes run from the calibrated posterior to a horizon, compared side by side.

A :class:`Scenario` is a name and a tuple of :class:`~knowdo.complexity.pathway.Change`
(set, scale or shift a model parameter from a month after the end of the
data, optionally for one equity stratum). Scenarios come from Python or from a
TOML file::

    [[scenario]]
    name = "Double lay-counsellor training"
    description = "Twice the lay posts per 1,000 adults where the programme runs"
    [[scenario.change]]
    parameter = "posts_per_1000_lay"
    op = "scale"          # set | scale | add
    value = 2.0
    start = 0             # months after the end of the data
    # stratum = "Q1"      # optional: only this equity stratum

Every scenario runs on the same posterior draws (paired), all in one array
call, so differences from the first scenario (the baseline) and their
intervals come from the same draws. Outputs over time: reach, contact and
effective coverage, waiting time, workforce, cost; over the horizon: budget
impact and cost per additional person effectively treated; by stratum: who
gains; and the WHO HEAT summary measures of inequality in effective coverage
(computed with :mod:`knowdo.equity.heat_measures`) with bands over draws.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from knowdo.complexity.calibration import CalibrationResult
from knowdo.complexity.panel_data import PathwaySimulator, shift_changes
from knowdo.complexity.pathway import Change
from knowdo.complexity.results import LEVEL, MEASURES, PathwayRun, ScenarioResult, band
from knowdo.config import Stratum
from knowdo.equity.heat_measures import MEASURE_CODES, Batch, compute_point_measures
from knowdo.errors import ConfigError, ParameterError

DEFAULT_HORIZON = 36  # months: a three-year plan, the usual span of a district scale-up plan (PRIME, frameworks 5.4)
DEFAULT_DRAWS = 100  # posterior draws per scenario; bands are 2.5-97.5 percentiles over them
EQUITY_EVERY = 3  # months between equity-measure evaluations (HEAT per draw is the costly step)


@dataclass(frozen=True)
class Scenario:
    """A named set of changes (empty for the baseline: the programme as it is)."""

    name: str
    changes: tuple[Change, ...] = ()
    description: str = ""


def baseline() -> Scenario:
    return Scenario("Current programme", (), "The programme continues as observed; rollout held at its last month")


def default_scenarios(strata: Sequence[str] = ("all",)) -> list[Scenario]:
    """The baseline and the Commission's example levers, with synthetic effect sizes stated in each description."""
    out = [
        baseline(),
        Scenario("Double lay-counsellor training", (Change("posts_per_1000_lay", 2.0, "scale"),),
                 "Twice the lay-counsellor posts per 1,000 adults where the programme runs"),
        Scenario("Screen at every visit", (Change("screening_uplift", 4.0, "scale"),),
                 "Programme screening from about 25% to every primary-care visit (x4 uplift)"),
        Scenario("SMS reminders", (Change("dropout_lay", 0.8, "scale"),),
                 "Lay-care dropout cut by 20% (synthetic effect size)"),
        Scenario("Scale out to every clinic", (Change("coverage_floor", 1.0, "set"),),
                 "The programme delivers everywhere from the end of the data"),
    ]
    poorest = next((s for s in ("Q1", "quintile 1", "poorest") if s in strata), None)
    if poorest is not None:
        out.append(Scenario("Poorest quintile first", (Change("priority", 4.0, "set", stratum=poorest),),
                            f"Stratum {poorest} served first when capacity binds (priority weight 4)"))
    if "rural" in strata:
        out.append(Scenario("Facilitation in rural areas",
                            (Change("screening_uplift", 1.2, "scale", stratum="rural"),
                             Change("offer", 1.3, "scale", stratum="rural")),
                            "Facilitation raises rural reach x1.2 and lay-care offers x1.3 "
                            "(example programme effects)"))
    return out


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Read scenarios from a TOML file (see the module docstring)."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: scenario file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_scenarios(raw, where=str(file))


def parse_scenarios(raw: Mapping[str, Any], where: str = "scenarios") -> list[Scenario]:
    items = raw.get("scenario")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: needs at least one [[scenario]] table")
    out = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(f"{where}: [[scenario]] number {i} needs a name")
        changes = []
        for j, ch in enumerate(item.get("change", []), start=1):
            label = f"{where}: scenario {item['name']!r}, change {j}"
            if not isinstance(ch, Mapping) or "parameter" not in ch or "value" not in ch:
                raise ConfigError(f"{label}: needs 'parameter' and 'value'")
            unknown = sorted(set(ch) - {"parameter", "value", "op", "start", "stratum"})
            if unknown:
                raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}; "
                                  "allowed: parameter, value, op, start, stratum")
            try:
                changes.append(Change(str(ch["parameter"]), float(ch["value"]), ch.get("op", "set"),
                                      float(ch.get("start", 0.0)), ch.get("stratum")))
            except (ParameterError, TypeError, ValueError) as exc:
                raise ConfigError(f"{label}: {exc}") from None
        out.append(Scenario(item["name"], tuple(changes), str(item.get("description", ""))))
    return out


def run_scenarios(
    simulator: PathwaySimulator,
    calibration: CalibrationResult,
    scenarios: Sequence[Scenario],
    *,
    horizon: int = DEFAULT_HORIZON,
    draws: int = DEFAULT_DRAWS,
    stratum: Stratum | None = None,
    seed: int = 0,
) -> ScenarioResult:
    """Run every scenario from ``draws`` posterior draws to ``horizon`` months after the data and compare them.

    The first scenario is the baseline for differences. ``stratum`` (the
    equity dimension's definition) sets the HEAT flags (ordered, reference).
    """
    scen = list(scenarios)
    if not scen:
        raise ParameterError("run_scenarios: give at least one scenario (the first is the baseline)")
    names = [s.name for s in scen]
    if len(set(names)) != len(names):
        raise ParameterError(f"run_scenarios: scenario names must be distinct; saw {names}")
    if not isinstance(horizon, int) or horizon < 1 or not isinstance(draws, int) or draws < 2:
        raise ParameterError(f"run_scenarios: horizon >= 1 and draws >= 2 whole numbers; saw {horizon!r}, {draws!r}")
    for s in scen:
        for c in s.changes:
            if c.stratum is not None and c.stratum not in simulator.data.strata:
                raise ParameterError(f"scenario {s.name!r}: stratum {c.stratum!r} is not one of "
                                     f"{list(simulator.data.strata)}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(calibration.draws), size=draws, replace=len(calibration.draws) < draws)
    posterior = calibration.draws[pick]  # (draws, P), shared by every scenario
    k = len(scen)
    values = {name: np.tile(posterior[:, j], k) for j, name in enumerate(calibration.parameters)}
    sim = PathwaySimulator(simulator.data, simulator.fixed, simulator.series, simulator.by_stratum,
                           simulator.warmup, simulator.dt, horizon)
    months = simulator.data.months
    index = np.repeat(np.arange(k), draws)
    run = sim.run(values, changes=[list(shift_changes(s.changes, months)) for s in scen], scenario_index=index)
    return summarise(run, names, [s.description for s in scen], draws, months, horizon, simulator, stratum,
                     {"seed": seed, "dt": simulator.dt, "warmup": simulator.warmup})


def _by_scenario(x: np.ndarray, k: int, draws: int) -> np.ndarray:
    return x.reshape(k, draws, *x.shape[1:])


def summarise(run: PathwayRun, names: list[str], descriptions: list[str], draws: int, first: int, horizon: int,
              simulator: PathwaySimulator, stratum: Stratum | None, settings: dict[str, Any]) -> ScenarioResult:
    k = len(names)
    strata = simulator.data.strata
    periods = pd.date_range(simulator.data.periods[0], periods=first + horizon, freq="MS")
    rows = []
    for measure in MEASURES:
        x = _by_scenario(run.total(measure), k, draws)  # (k, draws, months)
        mean, lo, hi = band(x, axis=1)
        for j, name in enumerate(names):
            rows.append(pd.DataFrame({"scenario": name, "month": np.arange(first + horizon), "period": periods,
                                      "measure": measure, "stratum": "all", "mean": mean[j], "conf_low": lo[j],
                                      "conf_high": hi[j]}))
    if len(strata) > 1:
        x = _by_scenario(run.series("effective_coverage"), k, draws)  # (k, draws, months, S)
        mean, lo, hi = band(x, axis=1)
        for j, name in enumerate(names):
            for s, label in enumerate(strata):
                rows.append(pd.DataFrame({"scenario": name, "month": np.arange(first + horizon), "period": periods,
                                          "measure": "effective_coverage", "stratum": label, "mean": mean[j, :, s],
                                          "conf_low": lo[j, :, s], "conf_high": hi[j, :, s]}))
    trajectories = pd.concat(rows, ignore_index=True)

    horizon_slice = slice(first, first + horizon)
    outcomes = {
        "effectively_treated": _by_scenario(run.total("effective")[:, horizon_slice].sum(axis=1), k, draws),
        "treatment_starts": _by_scenario(run.total("reach")[:, horizon_slice].sum(axis=1), k, draws),
        "mean_waiting_time": _by_scenario(run.total("waiting_time")[:, horizon_slice].mean(axis=1), k, draws),
        "final_effective_coverage": _by_scenario(run.total("effective_coverage")[:, -1], k, draws),
        "final_lay_workforce": _by_scenario(run.total("workforce_lay")[:, -1], k, draws),
        "total_cost": _by_scenario(run.total("cost")[:, horizon_slice].sum(axis=1), k, draws),
    }
    comp = []
    for outcome, x in outcomes.items():
        for j, name in enumerate(names):
            v, vl, vh = band(x[j])
            dm, dl, dh = band(x[j] - x[0])
            comp.append({"scenario": name, "outcome": outcome, "value": v, "value_low": vl, "value_high": vh,
                         "difference": dm, "difference_low": dl, "difference_high": dh})
    comparison = pd.DataFrame(comp)

    budget_rows = []
    eff, cost = outcomes["effectively_treated"], outcomes["total_cost"]
    for j, name in enumerate(names):
        extra = eff[j] - eff[0]
        spend = cost[j] - cost[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(extra > 1e-9, spend / extra, np.nan)
        finite = ratio[np.isfinite(ratio)]
        ok = j > 0 and len(finite) >= 0.9 * draws  # a ratio is only meaningful when the scenario adds people
        tail = (1 - LEVEL) / 2 * 100
        c_lo, c_hi = (float(x) for x in np.percentile(finite, [tail, 100 - tail])) if ok else (np.nan, np.nan)
        em, el, eh = band(extra)
        bm, bl, bh = band(spend)
        budget_rows.append({
            "scenario": name, "budget_impact": bm, "budget_impact_low": bl, "budget_impact_high": bh,
            "additional_effective": em, "additional_effective_low": el, "additional_effective_high": eh,
            "cost_per_effective": float(bm / em) if ok and em > 0 else np.nan,
            "cost_per_effective_low": c_lo, "cost_per_effective_high": c_hi,
        })
    budget = pd.DataFrame(budget_rows)

    per_stratum = _by_scenario(run.series("effective")[:, horizon_slice].sum(axis=1), k, draws)  # (k, draws, S)
    gain_rows = []
    for j, name in enumerate(names):
        m, lo, hi = band(per_stratum[j] - per_stratum[0], axis=0)
        for s, label in enumerate(strata):
            gain_rows.append({"scenario": name, "stratum": label, "mean": m[s], "conf_low": lo[s], "conf_high": hi[s],
                              "per_1000": 1000 * m[s] / simulator.data.population[s]})
    gains = pd.DataFrame(gain_rows)
    equity = _equity(run, names, draws, first, horizon, simulator, stratum) if len(strata) > 1 else _empty_equity()
    return ScenarioResult(scenarios=tuple(names), descriptions=tuple(descriptions), draws=draws, horizon=horizon,
                          first_month=first, dimension=simulator.data.dimension, trajectories=trajectories,
                          comparison=comparison, budget=budget, gains=gains, equity=equity, settings=settings)


def _empty_equity() -> pd.DataFrame:
    return pd.DataFrame(columns=["scenario", "month", "measure", "mean", "conf_low", "conf_high"])


def _equity(run: PathwayRun, names: list[str], draws: int, first: int, horizon: int, simulator: PathwaySimulator,
            stratum: Stratum | None) -> pd.DataFrame:
    """HEAT measures of effective coverage across strata, per scenario x draw x month, with bands over draws."""
    k = len(names)
    strata = simulator.data.strata
    months = np.arange(first - 1, first + horizon, EQUITY_EVERY)
    months = months[months >= 0]
    cov = run.series("effective_coverage")[:, months]  # (B, T, S) percent
    b, t, s = cov.shape
    est = cov.reshape(b * t, s)
    pop = np.broadcast_to(simulator.data.population, (b * t, s)).astype(float)
    levels = list(stratum.levels) if stratum is not None else list(strata)
    order = [levels.index(x) if x in levels else len(levels) + i for i, x in enumerate(strata)]
    idx = np.argsort(order, kind="stable")  # HEAT orders subgroups from least to most advantaged
    est, pop = est[:, idx], pop[:, idx]
    ref_label = stratum.reference if stratum is not None else None
    ref = np.broadcast_to(np.array([strata[i] == ref_label for i in idx]), (b * t, s))
    ordered = bool(stratum.ordered) if stratum is not None else False
    total = run.total("effective_coverage")[:, months].reshape(b * t)
    batch = Batch(est=est, se=np.zeros_like(est), pop=pop, present=np.isfinite(est), ref=ref.copy(),
                  ordered=np.full(b * t, ordered), favourable=np.ones(b * t, dtype=bool),
                  scale=np.full(b * t, 100.0), setting_average=total, missing_share=np.zeros(b * t))
    measures = compute_point_measures(batch, MEASURE_CODES)
    rows = []
    for code, computed in measures.items():
        values = computed.estimate.reshape(k, draws, t)
        if not np.isfinite(values).any():
            continue
        mean, lo, hi = band(values, axis=1)
        for j, name in enumerate(names):
            rows.append(pd.DataFrame({"scenario": name, "month": months, "measure": code, "mean": mean[j],
                                      "conf_low": lo[j], "conf_high": hi[j]}))
    return pd.concat(rows, ignore_index=True) if rows else _empty_equity()
