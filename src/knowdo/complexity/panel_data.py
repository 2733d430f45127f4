"""From the analysis panel to the care-pathway model: strata, populations, rollout coverage, observed series.

The panel (``knowdo.schema.PANEL_COLUMNS``) is site x month x (dimension,
stratum). The model is one population split into the strata of one equity
dimension, so :class:`PathwayData` sums the panel over sites:

* ``population`` and ``need`` per stratum (need / population is the prevalence);
* ``coverage``: the share of each stratum's adults living at sites delivering
  the programme that month (the panel's ``treated``), the model's rollout input;
* ``observed``: monthly ``positive, started, adequate, effective, sessions``
  per stratum, which calibration compares with the model's flows;
* ``profiles``: crude stratum ratios of detection, programme screening,
  acceptance and dropout, estimated directly from the counts (each stratum's
  rate over the population rate), so calibration only has to find the
  population-level rates.

:class:`PathwaySimulator` turns calibrated values into model runs and returns
the observed series, in the shape :mod:`knowdo.complexity.calibration` wants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from knowdo.complexity.blocks import SPECS
from knowdo.complexity.pathway import CarePathway, Change, ParamValue, Record
from knowdo.complexity.results import PathwayRun
from knowdo.equity.common import check_frame
from knowdo.errors import ParameterError

SERIES = ("positive", "started", "adequate", "effective", "sessions")
RATIO_BOUNDS = (0.2, 5.0)  # crude stratum ratios are clipped here: small strata give noisy ratios


@dataclass(frozen=True)
class PathwayData:
    """The panel summed over sites, for one equity dimension."""

    dimension: str
    strata: tuple[str, ...]
    periods: pd.DatetimeIndex
    population: np.ndarray  # (S,)
    need: np.ndarray  # (S,)
    coverage: np.ndarray  # (M, S)
    observed: dict[str, np.ndarray]  # series -> (M, S)
    cost: np.ndarray  # (M,) programme cost from the 'all' rows
    profiles: dict[str, np.ndarray] = field(default_factory=dict)  # parameter -> (S,) ratio to the population rate
    sites: pd.DataFrame = field(default_factory=pd.DataFrame)  # site_id, district_id, first_treated

    @property
    def months(self) -> int:
        return len(self.periods)

    @property
    def prevalence(self) -> np.ndarray:
        return self.need / self.population

    def total(self, series: str) -> np.ndarray:
        return self.observed[series].sum(axis=1)

    @classmethod
    def from_panel(cls, panel: pd.DataFrame, dimension: str = "all") -> PathwayData:
        """Sum ``panel`` over sites for ``dimension`` (``'all'`` for no strata)."""
        need_cols = ("site_id", "district_id", "period", "dimension", "stratum", "population", "need", "treated",
                     "first_treated", "cost", *SERIES)
        check_frame(panel, need_cols, "panel")
        if dimension != "all" and dimension not in set(panel["dimension"]):
            known = sorted(set(panel["dimension"]) - {"all"})
            raise ParameterError(f"PathwayData.from_panel: no dimension {dimension!r} in the panel; known: {known}")
        rows = panel[panel["dimension"] == dimension]
        if rows.empty:
            raise ParameterError("PathwayData.from_panel: the panel has no rows")
        periods = pd.DatetimeIndex(sorted(pd.to_datetime(rows["period"]).unique()))
        strata = tuple(pd.unique(rows["stratum"].astype(str)))
        frame = rows.assign(period=pd.to_datetime(rows["period"]), stratum=rows["stratum"].astype(str))
        frame = frame.assign(covered=frame["population"] * (frame["treated"].astype(float) > 0))
        sums = frame.groupby(["period", "stratum"], sort=False)[["population", "need", "covered", *SERIES]].sum()
        full = sums.reindex(pd.MultiIndex.from_product([periods, list(strata)]), fill_value=0.0)

        def grid(column: str) -> np.ndarray:
            return full[column].to_numpy(dtype=float).reshape(len(periods), len(strata))

        pop_t = grid("population")
        if np.any(pop_t.max(axis=0) <= 0):
            raise ParameterError("PathwayData.from_panel: a stratum has no population; check the population table")
        population = pop_t.mean(axis=0)
        need = grid("need").mean(axis=0)
        coverage = np.clip(grid("covered") / np.maximum(pop_t, 1e-12), 0, 1)
        observed = {s: grid(s) for s in SERIES}
        all_rows = panel[panel["dimension"] == "all"].assign(period=lambda f: pd.to_datetime(f["period"]))
        cost = all_rows.groupby("period")["cost"].sum().reindex(periods, fill_value=0.0).to_numpy(dtype=float)
        sites = (panel[panel["dimension"] == "all"].groupby("site_id", sort=True)
                 .agg(district_id=("district_id", "first"), first_treated=("first_treated", "first"))
                 .reset_index())
        data = cls(dimension=dimension, strata=strata, periods=periods, population=population, need=need,
                   coverage=coverage, observed=observed, cost=cost, sites=sites)
        return data.with_profiles(frame)

    def with_profiles(self, rows: pd.DataFrame) -> PathwayData:
        """Crude stratum ratios from the counts (see the module docstring)."""
        if len(self.strata) == 1:
            return self
        treated = rows["treated"].astype(float) > 0
        by = rows.groupby([treated.rename("t"), "stratum"])[["need", *SERIES]].sum()

        def rate(num: str, den: str, t: bool | None) -> pd.Series:
            part = by.groupby(level="stratum").sum() if t is None else by.xs(t, level="t")
            return (part[num] / part[den].where(part[den] > 0)).reindex(list(self.strata))

        def ratio(values: pd.Series, weights: np.ndarray) -> np.ndarray:
            v = values.to_numpy(dtype=float)
            ok = np.isfinite(v) & (v > 0)
            if not ok.any():
                return np.ones(len(v))
            mean = np.sum(v[ok] * weights[ok]) / np.sum(weights[ok])
            return np.clip(np.where(ok, v / mean, 1.0), *RATIO_BOUNDS)

        profiles: dict[str, np.ndarray] = {}
        levels = set(by.index.get_level_values("t"))
        base = rate("positive", "need", False) if False in levels else rate("positive", "need", None)
        profiles["detection"] = ratio(base, self.need)
        if True in levels and False in levels:
            lift = (rate("positive", "need", True) - rate("positive", "need", False)).clip(lower=0)
            profiles["screening_uplift"] = ratio(lift, self.need)
        profiles["acceptance_ratio"] = ratio(rate("started", "positive", None), self.need)
        complete = rate("adequate", "started", None).clip(1e-3, 1 - 1e-3)
        profiles["dropout_ratio"] = ratio((1 - complete) / complete, self.need)
        return PathwayData(self.dimension, self.strata, self.periods, self.population, self.need, self.coverage,
                           self.observed, self.cost, profiles, self.sites)


@dataclass
class PathwaySimulator:
    """Calibrated values -> model runs -> observed series ``{name: (B, months)}`` (or ``name:stratum``).

    ``fixed`` holds every parameter not calibrated; a calibrated parameter with
    a stratum profile in ``data.profiles`` is the population-level value and is
    multiplied by the profile. ``changes``/``scenario_index`` pass scenario
    edits; ``horizon`` adds months after the data.
    """

    data: PathwayData
    fixed: dict[str, ParamValue] = field(default_factory=dict)
    series: tuple[str, ...] = ("positive", "started", "adequate")
    by_stratum: bool = False
    warmup: int = 24  # months of usual care before the data, so stocks start near equilibrium (MTL practice)
    dt: float = 0.25  # months; Euler step of the published benchmark model
    horizon: int = 0

    def model(self) -> CarePathway:
        return CarePathway(strata=self.data.strata, population=self.data.population, dt=self.dt,
                           warmup=self.warmup)

    def parameters(self, values: Mapping[str, np.ndarray]) -> dict[str, Any]:
        p: dict[str, Any] = {"prevalence": np.broadcast_to(self.data.prevalence, (1, len(self.data.strata)))}
        for name, profile in self.data.profiles.items():
            if name not in values and name not in self.fixed:
                p[name] = profile[None, :] * SPECS[name].default
        p.update(self.fixed)
        for name, value in values.items():
            v = np.asarray(value, dtype=float).reshape(-1)
            shape = self.data.profiles.get(name)
            p[name] = v[:, None] * shape[None, :] if shape is not None else v
        return p

    def run(self, values: Mapping[str, np.ndarray], *, changes: Sequence[Any] = (),
            scenario_index: np.ndarray | None = None, runs: int | None = None,
            record: Record = "all") -> PathwayRun:
        return self.model().run(self.parameters(values), months=self.data.months + self.horizon,
                                coverage=self.data.coverage, changes=changes, scenario_index=scenario_index,
                                runs=runs, record=record)

    def __call__(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        run = self.run(values)
        out: dict[str, np.ndarray] = {}
        for name in self.series:
            if self.by_stratum:
                x = run.series(name)
                for j, stratum in enumerate(self.data.strata):
                    out[f"{name}:{stratum}"] = x[:, :, j]
            else:
                out[name] = run.total(name)
        return out

    def observed(self) -> dict[str, np.ndarray]:
        """The data's series in the simulator's output layout."""
        out: dict[str, np.ndarray] = {}
        for name in self.series:
            if self.by_stratum:
                for j, stratum in enumerate(self.data.strata):
                    out[f"{name}:{stratum}"] = self.data.observed[name][:, j]
            else:
                out[name] = self.data.total(name)
        return out


def shift_changes(changes: Sequence[Change], months: int) -> tuple[Change, ...]:
    """Changes whose ``start`` counts from the end of the data rather than the start of the run."""
    return tuple(Change(c.parameter, c.value, c.op, c.start + months, c.stratum) for c in changes)
