"""WHO HEAT summary measures for a HEAT Plus table: the estimator and its result.

:class:`HeatMeasures` takes a HEAT Plus table (see :mod:`knowdo.equity.heat_table`;
from a CSV or built from the knowdo panel), computes every applicable measure
of the 21 (:mod:`knowdo.equity.heat_measures`) for each setting x date x source
x indicator x dimension, and attaches intervals (:mod:`knowdo.equity.heat_ci`):
analytic where HEAT has a formula, truncated-normal simulation otherwise.

:func:`heat_measures` is the one-call form. The result, :class:`HeatResult`,
holds the measures (tidy) and the subgroup table they came from, and draws the
HEAT equiplot.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from knowdo.equity.common import DEFAULT_LEVEL, check_level, check_option, check_positive_int, jsonable
from knowdo.equity.heat_ci import (
    DEFAULT_DRAWS,
    DEFAULT_SEED,
    log_interval,
    normal_interval,
    percentile_interval,
    truncated_normal_draws,
    truncation_bounds,
)
from knowdo.equity.heat_measures import (
    MEASURE_CODES,
    MEASURES,
    SIMULATED,
    Batch,
    Computed,
    RciCorrection,
    SiiModel,
    compute_point_measures,
    simulate_measures,
)
from knowdo.equity.heat_table import SET_KEYS, normalise_heat_table
from knowdo.errors import ParameterError

MEASURE_COLUMNS = (
    *SET_KEYS, "indicator_name", "measure", "measure_name", "estimate", "std_error", "se_of",
    "conf_low", "conf_high", "ci_method", "multiplier", "favourable", "ordered", "n_subgroups",
    "applicable", "note",
)  # fmt: skip
_DRAW_CELLS = 4_000_000  # simulate at most this many cells at once (~32 MB of float64)


def check_measures(measures: Iterable[str] | str) -> tuple[str, ...]:
    """Validate measure codes (case-insensitive) against the 21 HEAT measures."""
    items = (measures,) if isinstance(measures, str) else tuple(measures)
    out = []
    for item in items:
        code = str(item).upper()
        check_option("measures", code, MEASURE_CODES)
        if code not in out:
            out.append(code)
    if not out:
        raise ParameterError("'measures' is empty; name at least one of the 21 HEAT measures.")
    return tuple(c for c in MEASURE_CODES if c in out)


def build_batch(table: pd.DataFrame) -> tuple[Batch, pd.DataFrame]:
    """Pack a normalised HEAT table into a padded :class:`Batch`; return it and one key row per set."""
    frame = table.reset_index(drop=True)
    keys = list(SET_KEYS)
    set_id = frame.groupby(keys, sort=False).ngroup().to_numpy()
    sort_order = np.where(frame["ordered_dimension"].to_numpy() == 1, frame["subgroup_order"].to_numpy(), 0.0)
    idx = np.lexsort((np.arange(len(frame)), sort_order, set_id))
    frame = frame.iloc[idx].reset_index(drop=True)
    set_id = set_id[idx]
    pos = frame.groupby(set_id, sort=False).cumcount().to_numpy()
    g = int(set_id.max()) + 1 if len(frame) else 0
    j = int(pos.max()) + 1 if len(frame) else 0

    def grid(values: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
        out = np.full((g, j), fill, dtype=dtype)
        out[set_id, pos] = values
        return out

    est = grid(frame["estimate"].to_numpy(dtype=float), np.nan, float)
    rows = grid(np.ones(len(frame), dtype=bool), False, bool)
    present = np.isfinite(est)
    first = frame.groupby(set_id, sort=True).first()
    batch = Batch(
        est=est,
        se=grid(frame["se"].to_numpy(dtype=float), np.nan, float),
        pop=grid(frame["population"].to_numpy(dtype=float), np.nan, float),
        present=present,
        ref=grid(frame["reference_subgroup"].to_numpy(dtype=int) == 1, False, bool),
        ordered=first["ordered_dimension"].to_numpy(dtype=int) == 1,
        favourable=first["favourable_indicator"].to_numpy(dtype=int) == 1,
        scale=first["indicator_scale"].to_numpy(dtype=float),
        setting_average=pd.to_numeric(
            frame.groupby(set_id, sort=True)["setting_average"].first(), errors="coerce"
        ).to_numpy(dtype=float),
        missing_share=1.0 - present.sum(axis=1) / np.maximum(rows.sum(axis=1), 1),
    )
    sets = first[[*keys, "indicator_name"]].reset_index(drop=True)
    sets["n_subgroups"] = present.sum(axis=1)
    return batch, sets


@dataclass(frozen=True)
class HeatResult:
    """HEAT summary measures with their intervals, and the subgroup estimates they summarise.

    ``measures`` is tidy: one row per set x measure with ``estimate``,
    ``std_error`` (of the estimate, or of its logarithm for R and RII: see
    ``se_of``), ``conf_low``/``conf_high``, ``ci_method`` (analytic or
    simulation), the reporting ``multiplier`` (x100 for RCI, COV, IDIS, PAF;
    x1000 for MLD and TI), and ``applicable``/``note`` saying why a measure
    was not computed.
    """

    measures: pd.DataFrame
    subgroups: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)

    def tidy(self, *, applicable_only: bool = True) -> pd.DataFrame:
        """The measures table (applicable rows only by default)."""
        frame = self.measures
        if applicable_only:
            frame = frame[frame["applicable"]]
        return frame.reset_index(drop=True).copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def measure(self, code: str, **where: str) -> pd.DataFrame:
        """Rows of one measure, optionally filtered by key columns (``indicator_abbr=..., dimension=...``)."""
        frame = self.measures[self.measures["measure"] == code.upper()]
        for column, value in where.items():
            frame = frame[frame[column] == value]
        return frame.reset_index(drop=True)

    def summary(self) -> str:
        tidy = self.tidy()
        lines = [f"HEAT summary measures: {tidy[list(SET_KEYS)].drop_duplicates().shape[0]} indicator x dimension "
                 f"sets, {len(tidy)} applicable measures ({self.settings.get('level', DEFAULT_LEVEL):.0%} intervals; "
                 f"simulation draws {self.settings.get('draws')}, seed {self.settings.get('seed')}; "
                 f"SII/RII {self.settings.get('sii_model')} model)"]
        for key, part in tidy.groupby(["indicator_abbr", "dimension", "date"], sort=False):
            lines.append(f"  {key[0]} by {key[1]} ({key[2]}):")
            for rec in part.itertuples(index=False):
                lines.append(f"    {rec.measure:<6}{rec.estimate:>12.4g}  [{rec.conf_low:.4g}, {rec.conf_high:.4g}]"
                             f"  {rec.ci_method}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        not_applicable = self.measures[~self.measures["applicable"]]
        reasons = not_applicable.groupby(["measure", "note"]).size().reset_index(name="sets")
        return {
            "settings": jsonable(dict(self.settings)),
            "measures": jsonable(self.tidy()),
            "not_applicable": jsonable(reasons),
            "subgroups": jsonable(self.subgroups),
        }

    def plot(self) -> alt.FacetChart:
        """The HEAT equiplot: one line per indicator and period, a dot per subgroup, faceted by dimension."""
        return equiplot(self.subgroups)

    def plot_measures(self, codes: Iterable[str] = ("D", "R", "SII", "RII", "PAF")) -> alt.FacetChart:
        """Selected measures with their intervals, one panel per measure."""
        wanted = check_measures(codes)
        data = self.tidy()
        data = data[data["measure"].isin(wanted)].copy()
        data["label"] = data["indicator_abbr"] + " by " + data["dimension"] + " (" + data["date"].astype(str) + ")"
        base = alt.Chart(data).encode(y=alt.Y("label:N", title=None))
        rules = base.mark_rule().encode(x=alt.X("conf_low:Q", title="estimate"), x2="conf_high:Q")
        dots = base.mark_point(filled=True).encode(
            x="estimate:Q", tooltip=["label", "measure", "estimate", "conf_low", "conf_high", "ci_method"]
        )
        return (rules + dots).facet(column=alt.Column("measure:N", title=None)).resolve_scale(x="independent")


def equiplot(subgroups: pd.DataFrame, *, title: str = "") -> alt.FacetChart:
    """HEAT equiplot of a subgroup table (``indicator_abbr, date, dimension, subgroup, estimate``)."""
    data = subgroups[["indicator_abbr", "indicator_name", "date", "dimension", "subgroup", "subgroup_order",
                      "estimate"]].copy()
    data["line"] = data["indicator_abbr"] + " · " + data["date"].astype(str)
    data = data[np.isfinite(data["estimate"].astype(float))]
    base = alt.Chart(data).encode(y=alt.Y("line:N", title=None, sort=None))
    line = base.mark_rule(color="#999999").encode(x=alt.X("min(estimate):Q", title="estimate"), x2="max(estimate):Q")
    dots = base.mark_circle(size=90, opacity=0.9).encode(
        x="estimate:Q",
        color=alt.Color("subgroup:N", title="subgroup", sort=alt.SortField("subgroup_order")),
        tooltip=["indicator_name", "date", "dimension", "subgroup", alt.Tooltip("estimate:Q", format=".1f")],
    )
    chart = (line + dots).facet(row=alt.Row("dimension:N", title=None)).resolve_scale(color="independent")
    return chart.properties(title=title) if title else chart


class HeatMeasures:
    """Compute WHO HEAT summary measures with confidence intervals.

    Parameters
    ----------
    measures
        Codes of the measures wanted (default: all 21). Each is computed only
        where it applies (ordered/non-ordered, subgroup count, populations,
        reference subgroup).
    level
        Confidence level of every interval.
    draws
        Number of simulation draws for the simulation-CI measures.
    seed
        Seed of the simulation draws (same seed, same intervals).
    sii_model
        ``"logistic"`` (HEAT's default) or ``"linear"`` for SII and RII.
    rci_correction
        ``"none"``, ``"wagstaff"`` or ``"erreygers"`` for bounded indicators.
    force
        Compute even when more than 15% of subgroup estimates are missing.

    Examples
    --------
    >>> t = pd.DataFrame({"indicator_abbr": "cov", "dimension": "sex", "subgroup": ["f", "m"],
    ...     "estimate": [60.0, 50.0], "se": [2.0, 2.0], "population": [100, 100],
    ...     "favourable_indicator": 1, "ordered_dimension": 0, "indicator_scale": 100})
    >>> r = HeatMeasures(measures=["D", "R"]).fit(t).result_
    >>> r.measure("D")["estimate"].item()
    10.0
    """

    def __init__(
        self,
        *,
        measures: Iterable[str] = MEASURE_CODES,
        level: float = DEFAULT_LEVEL,
        draws: int = DEFAULT_DRAWS,
        seed: int = DEFAULT_SEED,
        sii_model: SiiModel = "logistic",
        rci_correction: RciCorrection = "none",
        force: bool = False,
    ) -> None:
        self.measures = measures
        self.level = level
        self.draws = draws
        self.seed = seed
        self.sii_model = sii_model
        self.rci_correction = rci_correction
        self.force = force

    def fit(self, data: pd.DataFrame) -> HeatMeasures:
        codes = check_measures(self.measures)
        level = check_level(self.level)
        draws = check_positive_int("draws", self.draws, minimum=2)
        check_option("sii_model", self.sii_model, ("logistic", "linear"))
        check_option("rci_correction", self.rci_correction, ("none", "wagstaff", "erreygers"))
        table = normalise_heat_table(data)
        if table.empty:
            raise ParameterError("the HEAT table has no rows.")
        batch, sets = build_batch(table)
        computed = compute_point_measures(
            batch, codes, sii_model=self.sii_model, rci_correction=self.rci_correction, force=self.force
        )
        rng = np.random.default_rng(self.seed)
        sims = _simulation_intervals(batch, computed, tuple(c for c in codes if c in SIMULATED), draws, level, rng)
        measures = _assemble(batch, sets, codes, computed, sims, level)
        settings = {"level": level, "draws": draws, "seed": self.seed, "sii_model": self.sii_model,
                    "rci_correction": self.rci_correction, "force": self.force}
        self.result_ = HeatResult(measures=measures, subgroups=table, settings=settings)
        return self


def heat_measures(data: pd.DataFrame, **settings: Any) -> HeatResult:
    """One call: ``HeatMeasures(**settings).fit(data).result_``."""
    return HeatMeasures(**settings).fit(data).result_


def _simulation_intervals(
    batch: Batch,
    computed: Mapping[str, Computed],
    codes: tuple[str, ...],
    draws: int,
    level: float,
    rng: np.random.Generator,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentile intervals for the simulation measures, drawing only for sets where one applies."""
    out = {c: (np.full(batch.size, np.nan), np.full(batch.size, np.nan)) for c in codes}
    if not codes:
        return out
    se_ok = np.all(~batch.present | (np.isfinite(batch.se) & (batch.se >= 0)), axis=1) & np.isfinite(batch.scale)
    wanted = np.zeros(batch.size, dtype=bool)
    for code in codes:
        wanted |= computed[code].reason == ""
    index = np.flatnonzero(wanted & se_ok)
    if not index.size:
        return out
    chunk = max(1, _DRAW_CELLS // (draws * batch.est.shape[1]))
    for start in range(0, index.size, chunk):
        part = index[start : start + chunk]
        sub = batch.take(part)
        lower, upper = truncation_bounds(sub.scale)
        mean = np.where(sub.present, sub.est, 0.0)
        sd = np.where(sub.present, sub.se, 0.0)
        y = truncated_normal_draws(mean, sd, lower[:, None], upper[:, None], draws, rng)
        values = simulate_measures(sub, codes, y)
        for code in codes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                low, high = percentile_interval(values[code], level)
            out[code][0][part] = low
            out[code][1][part] = high
    return out


def _assemble(
    batch: Batch,
    sets: pd.DataFrame,
    codes: tuple[str, ...],
    computed: Mapping[str, Computed],
    sims: Mapping[str, tuple[np.ndarray, np.ndarray]],
    level: float,
) -> pd.DataFrame:
    """One row per set x measure (set-major), built column by column from (G, C) arrays."""
    g, c = len(sets), len(codes)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("estimate", "std_error", "low", "high", "method", "note")}
    for code in codes:
        info = MEASURES[code]
        comp = computed[code]
        ok = comp.reason == ""
        if info.ci == "simulation":
            low, high = sims[code]
            kind = "simulation"
        elif info.log_scale:
            low, high = log_interval(comp.estimate, comp.std_error, level)
            kind = "analytic"
        else:
            low, high = normal_interval(comp.estimate, comp.std_error, level)
            kind = "analytic"
        cols["estimate"].append(comp.estimate)
        cols["std_error"].append(comp.std_error)
        cols["low"].append(np.where(ok, low, np.nan))
        cols["high"].append(np.where(ok, high, np.nan))
        cols["method"].append(np.where(ok & np.isfinite(low), kind, "none").astype(object))
        cols["note"].append(comp.reason)

    def flat(key: str) -> np.ndarray:
        return np.column_stack(cols[key]).ravel()

    rows = np.repeat(np.arange(g), c)
    out = {k: sets[k].to_numpy(dtype=object)[rows] for k in (*SET_KEYS, "indicator_name")}
    out["measure"] = np.tile(np.array(codes, dtype=object), g)
    out["measure_name"] = np.tile(np.array([MEASURES[k].name for k in codes], dtype=object), g)
    out["estimate"] = flat("estimate")
    out["std_error"] = flat("std_error")
    out["se_of"] = np.tile(np.array(["log(estimate)" if MEASURES[k].log_scale else "estimate" for k in codes],
                                    dtype=object), g)
    out["conf_low"] = flat("low")
    out["conf_high"] = flat("high")
    out["ci_method"] = flat("method")
    out["multiplier"] = np.tile(np.array([MEASURES[k].multiplier for k in codes]), g)
    out["favourable"] = batch.favourable[rows]
    out["ordered"] = batch.ordered[rows]
    out["n_subgroups"] = sets["n_subgroups"].to_numpy()[rows]
    note = flat("note")
    out["applicable"] = note == ""
    out["note"] = note
    return pd.DataFrame(out, columns=list(MEASURE_COLUMNS))
