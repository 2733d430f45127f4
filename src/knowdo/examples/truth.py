"""The known truth of the example programme, computed from the rate model, not from the draws.

Outcomes are the panel's counts per 1,000 adults per month, attributed to the
month of the screen (as in the panel):

``screened_per_1000``, ``positive_per_1000``, ``started_per_1000``,
``adequate_per_1000`` (at least the planned 6 sessions) and
``effective_per_1000`` (adequate and responded).

For a facility-month cell the **effect** is E[outcome | the clinic's actual
programme state] - E[outcome | same cell without the programme]. The
counterfactual is the clinic's own usual-care rate, which does not change
over calendar time, so parallel trends hold exactly in expectation.
Effects describe complete follow-up: the data are right-censored at the
window's end, so outcomes that need sessions or follow-up (adequate,
effective) are incomplete for screens in the last ~3 months; pass
``through`` to :meth:`ExampleTruth.att` to leave them out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.examples.model import RateModel, level_codes
from knowdo.examples.parameters import DIMENSIONS, ExampleParameters

OUTCOMES = (
    "screened_per_1000",
    "positive_per_1000",
    "started_per_1000",
    "adequate_per_1000",
    "effective_per_1000",
)
Weights = Literal["population", "cells"]
CENSORED_MONTHS = 3  # the 90-day start window (knowdo.config.OutcomeDefinitions.start_window_days) in months


def strata_labels() -> list[tuple[str, str]]:
    """('all', 'all') and every (dimension, level), in the generator's order."""
    return [("all", "all")] + [(d.name, level) for d in DIMENSIONS for level in d.levels]


def membership() -> np.ndarray:
    """(joint strata x labels) 0/1 matrix: joint stratum g belongs to label s."""
    codes = level_codes()
    columns = [np.ones(len(codes))]
    for j, dim in enumerate(DIMENSIONS):
        columns.extend((codes[:, j] == k).astype(float) for k in range(len(dim.levels)))
    return np.stack(columns, axis=1)


@dataclass(frozen=True)
class ExampleTruth:
    """What the example data were generated from.

    Attributes
    ----------
    parameters
        The :class:`ExampleParameters` used.
    rollout
        One row per facility: ``site_id, district_id, wave, start, support_end,
        delivery_end, sustains, facilitation, audit_feedback, adoption``
        (``start`` is NaT and ``wave`` missing for never-treated clinics).
    effect
        ``outcome, dimension, stratum, event_time, effect``: the
        population-weighted mean effect over the facilities observed at that
        event time inside the window, per 1,000 adults per month.
    strategy_effects
        ``strategy, target, effect, scale, definition, assignment``.
    cells
        Facility x month x (dimension, stratum) x outcome: ``population``
        (expected adults), ``event_time`` (missing before the start or when
        never treated), ``expected`` (given the actual programme state),
        ``untreated`` and ``effect`` per 1,000 adults.
    """

    parameters: ExampleParameters
    rollout: pd.DataFrame
    effect: pd.DataFrame
    strategy_effects: pd.DataFrame
    cells: pd.DataFrame

    def att(
        self,
        outcome: str = "started_per_1000",
        *,
        dimension: str = "all",
        stratum: str = "all",
        through: dt.date | None = None,
        weights: Weights = "population",
    ) -> float:
        """Average effect over the treated facility-months inside the window (the ATT a DiD targets).

        Parameters
        ----------
        outcome
            One of :data:`OUTCOMES`.
        dimension, stratum
            The equity stratum; ``'all'``, ``'all'`` for everyone.
        through
            Last month to include (e.g. to drop right-censored months).
        weights
            ``'population'`` weights cells by adults; ``'cells'`` weights each facility-month equally.

        Examples
        --------
        >>> from knowdo.examples import generate_programme
        >>> truth = generate_programme(persons=2_000).truth
        >>> truth.att("started_per_1000") > 0
        True
        """
        if outcome not in OUTCOMES:
            raise ParameterError(f"att: outcome must be one of {', '.join(OUTCOMES)}; saw {outcome!r}")
        if weights not in ("population", "cells"):
            raise ParameterError(f"att: weights must be 'population' or 'cells'; saw {weights!r}")
        c = self.cells
        rows = (c["outcome"] == outcome) & (c["dimension"] == dimension) & (c["stratum"] == stratum)
        rows &= c["event_time"].notna()
        if through is not None:
            rows &= c["period"] <= pd.Timestamp(through)
        if not rows.any():
            raise ParameterError(f"att: no treated cells for {dimension}={stratum!r} through {through}")
        w = c.loc[rows, "population"] if weights == "population" else pd.Series(1.0, index=c.index[rows])
        return float((c.loc[rows, "effect"] * w).sum() / w.sum())

    def estimation_cutoff(self) -> dt.date:
        """Last month a panel estimator should use: treatment starts within the 90-day window after a
        screen are cut off by the end of the data, so the final ``CENSORED_MONTHS`` months are dropped."""
        end = pd.Timestamp(self.parameters.end).to_period("M") - CENSORED_MONTHS
        return end.to_timestamp().date()

    def did_targets(self, outcome: str = "started_per_1000") -> pd.DataFrame:
        """The ATT a site x month DiD estimates, per stratum: each treated facility-month weighted
        equally, through :meth:`estimation_cutoff`."""
        cutoff = self.estimation_cutoff()
        labels = self.cells.loc[self.cells["outcome"] == outcome, ["dimension", "stratum"]].drop_duplicates()
        rows = [
            {"outcome": outcome, "dimension": d, "stratum": st, "through": cutoff.isoformat(),
             "att": self.att(outcome, dimension=d, stratum=st, through=cutoff, weights="cells")}
            for d, st in labels.itertuples(index=False)
        ]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: parameters, rollout, effects by stratum and event time, strategy effects, ATTs."""
        return {
            "did_targets": _records(self.did_targets()),
            "description": "Known truth of the synthetic example programme (expected values from its rate model).",
            "parameters": self.parameters.to_dict(),
            "att": {name: self.att(name) for name in OUTCOMES},
            "rollout": _records(self.rollout),
            "strategy_effects": _records(self.strategy_effects),
            "effect": _records(self.effect),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            key = str(key)
            if isinstance(value, pd.Timestamp):
                value = value.date().isoformat()
            elif value is None or (not isinstance(value, str) and pd.isna(value)):
                value = None
            elif isinstance(value, np.generic):
                value = value.item()
            clean[key] = value
        out.append(clean)
    return out


def compute_cells(model: RateModel, site_ids: list[str], periods: pd.DatetimeIndex) -> pd.DataFrame:
    """Expected outcomes per 1,000 adults for every facility x month x stratum label x outcome."""
    weight = model.adults[:, None] * model.share  # (C, G) adults
    member = membership()  # (G, S)
    population = weight @ member  # (C, S)
    actual, untreated = model.rates(treated=True), model.rates(treated=False)
    labels = strata_labels()
    n_c, n_t, n_s, n_o = len(site_ids), len(periods), len(labels), len(OUTCOMES)
    c_idx, t_idx, s_idx = (np.tile(a.ravel(), n_o) for a in np.indices((n_c, n_t, n_s)))
    expected, base = [], []
    for name in ("screened", "positive", "started", "adequate", "effective"):
        expected.append(np.einsum("ctg,cg,gs->cts", actual[name], weight, member) / population[:, None, :])
        base.append(np.einsum("ctg,cg,gs->cts", untreated[name], weight, member) / population[:, None, :])
    e = np.where(model.event_time >= 0, model.event_time, -1)[c_idx, t_idx]
    cells = pd.DataFrame(
        {
            "outcome": pd.array(np.repeat(OUTCOMES, n_c * n_t * n_s), dtype="str"),
            "site_id": pd.array(np.asarray(site_ids, dtype=object)[c_idx], dtype="str"),
            "period": periods[t_idx],
            "dimension": pd.array(np.asarray([d for d, _ in labels], dtype=object)[s_idx], dtype="str"),
            "stratum": pd.array(np.asarray([s for _, s in labels], dtype=object)[s_idx], dtype="str"),
            "event_time": pd.arrays.IntegerArray(np.maximum(e, 0).astype(np.int64), e < 0),
            "population": population[c_idx, s_idx],
            "expected": 1000 * np.concatenate([a.ravel() for a in expected]),
            "untreated": 1000 * np.concatenate([a.ravel() for a in base]),
        }
    )
    cells["effect"] = cells["expected"] - cells["untreated"]
    return cells


def effect_by_event_time(cells: pd.DataFrame) -> pd.DataFrame:
    """Population-weighted mean effect over facilities observed at each event time."""
    treated = cells[cells["event_time"].notna()].copy()
    treated["weighted"] = treated["effect"] * treated["population"]
    keys = ["outcome", "dimension", "stratum", "event_time"]
    grouped = treated.groupby(keys, sort=False)[["weighted", "population"]].sum().reset_index()
    grouped["effect"] = grouped["weighted"] / grouped["population"]
    grouped = grouped.sort_values(keys, kind="stable", key=_label_order)
    return grouped[[*keys, "effect"]].reset_index(drop=True)


def _label_order(column: pd.Series) -> pd.Series:
    if column.name == "outcome":
        return column.map({o: i for i, o in enumerate(OUTCOMES)})
    if column.name == "dimension":
        return column.map({d: i for i, d in enumerate(["all", *(d.name for d in DIMENSIONS)])})
    if column.name == "stratum":
        return column.map({s: i for i, (_, s) in enumerate(strata_labels())})
    return column
