"""The example programme: a synthetic scale-up of lay-worker problem-solving therapy, with its truth.

A district health system (8 districts x 6 primary-care clinics by default)
rolls out lay-worker-delivered problem-solving therapy (PST) for depression,
Friendship Bench / PM+ style, in staggered waves over a 36-month window;
two districts are never treated. Clinics screen with the PHQ-9, positives
start PST (planned 6 weekly sessions) or usual care, and are followed up.
Implementation strategies (ERIC names) support the rollout; a random subset
of clinics gets facilitation and, independently, audit and feedback, so
their effects on adoption, fidelity and reach can be recovered. After
external support ends some clinics keep delivering and some stop.

The generator is mechanistic and vectorised: a closed-form rate model gives
the expected count of every cascade stage per facility x month x stratum
(:mod:`knowdo.examples.model`), events are drawn from it
(:mod:`knowdo.examples.events`, :mod:`knowdo.examples.staff`), and the truth
is computed from the same rates, never from the draws
(:mod:`knowdo.examples.truth`). Every number it uses is an
:class:`~knowdo.examples.parameters.ExampleParameters` field documented
with its source. All data are synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from knowdo.config import Stratum
from knowdo.errors import ParameterError
from knowdo.examples.events import draw_contacts, draw_people, month_days
from knowdo.examples.model import RateModel, build_model, draw_structure
from knowdo.examples.parameters import (
    DIMENSIONS,
    STRATEGIES,
    TARGET_SCALES,
    TARGETS,
    ExampleParameters,
    add_months,
    parameter_names,
)
from knowdo.examples.staff import MONTH_PAD, draw_perceptions, draw_staff
from knowdo.examples.tables import (
    AGGREGATES,
    costs_frame,
    empty_frame,
    encounters_frame,
    measures_frame,
    month_periods,
    persons_frame,
    population_frame,
    provider_ids,
    providers_frame,
    rollout_frame,
    site_ids,
    sites_frame,
)
from knowdo.examples.truth import ExampleTruth, compute_cells, effect_by_event_time


@dataclass(frozen=True)
class ExampleProgramme:
    """The canonical tables of the example programme, its truth and its equity strata.

    ``tables`` holds ``sites, persons, providers, encounters, measures,
    rollout, population, costs`` and an empty ``aggregates`` frame.
    """

    tables: dict[str, pd.DataFrame]
    truth: ExampleTruth
    strata: tuple[Stratum, ...]


def generate_programme(
    params: ExampleParameters | None = None, *, seed: int = 0, **overrides: Any
) -> ExampleProgramme:
    """Generate the example programme.

    Parameters
    ----------
    params
        Parameters to start from (defaults: :class:`ExampleParameters`).
    seed
        Non-negative integer; the same seed gives identical tables and truth.
    **overrides
        Any :class:`ExampleParameters` field, e.g. ``persons=200_000``.

    Examples
    --------
    >>> programme = generate_programme(persons=2_000, seed=1)
    >>> sorted(programme.tables)[:3]
    ['aggregates', 'costs', 'encounters']
    >>> programme.truth.att("started_per_1000") > 0
    True
    """
    p = _parameters(params, overrides)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"generate_programme: seed must be a non-negative integer, saw {seed!r}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(5)]
    structure = draw_structure(p, streams[0])
    model = build_model(p, structure)
    days = month_days(p.start, p.months + MONTH_PAD + 12)
    last_day = int(days[p.months]) - 1
    staff = draw_staff(model, days, streams[1])
    people = draw_people(model, days, streams[2])
    contacts = draw_contacts(model, people, staff, days, streams[3])
    perceptions = draw_perceptions(staff, last_day, streams[4])

    district_ids, clinic_ids = site_ids(p.districts, p.clinics_per_district)
    periods = month_periods(p.start, p.months)
    staff_ids = provider_ids(staff, clinic_ids)
    n_people = len(people)
    tables = {
        "sites": sites_frame(model, district_ids, clinic_ids),
        "persons": persons_frame(people, clinic_ids),
        "providers": providers_frame(staff, staff_ids, clinic_ids, p.start, last_day),
        "encounters": encounters_frame(contacts, n_people, staff_ids, clinic_ids, p.start),
        "measures": measures_frame(contacts, perceptions, n_people, staff, staff_ids, clinic_ids, p.start, streams[4]),
        "rollout": rollout_frame(model, staff, clinic_ids, days),
        "population": population_frame(model, clinic_ids, periods),
        "costs": costs_frame(model, staff, contacts, clinic_ids, days, periods),
        "aggregates": empty_frame(AGGREGATES),
    }
    cells = compute_cells(model, clinic_ids, pd.DatetimeIndex(periods))
    truth = ExampleTruth(
        parameters=p,
        rollout=_truth_rollout(model, district_ids, clinic_ids),
        effect=effect_by_event_time(cells),
        strategy_effects=_strategy_effects(model),
        cells=cells,
    )
    return ExampleProgramme(tables=tables, truth=truth, strata=tuple(d.stratum() for d in DIMENSIONS))


def _parameters(params: ExampleParameters | None, overrides: dict[str, Any]) -> ExampleParameters:
    base = params if params is not None else ExampleParameters()
    if not isinstance(base, ExampleParameters):
        raise ParameterError(f"generate_programme: params must be ExampleParameters, saw {type(base).__name__}")
    unknown = sorted(set(overrides) - set(parameter_names()))
    if unknown:
        raise ParameterError(
            f"generate_programme: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(parameter_names())}"
        )
    return replace(base, **overrides) if overrides else base


def _truth_rollout(model: RateModel, district_ids: list[str], clinic_ids: list[str]) -> pd.DataFrame:
    p, s = model.params, model.structure
    treated = s.treated

    def month_start(month: np.ndarray) -> pd.Series:
        values = [pd.Timestamp(add_months(p.start, int(m))) if ok else pd.NaT for m, ok in zip(month, treated,
                                                                                             strict=True)]
        return pd.Series(values, dtype="datetime64[us]")

    stop = s.start + s.stop_event(p)
    delivery_end = (month_start(np.where(s.sustains, 0, stop)) - pd.Timedelta(days=1)).where(~s.sustains)
    return pd.DataFrame(
        {
            "site_id": pd.array(clinic_ids, dtype="str"),
            "district_id": pd.array([district_ids[d] for d in s.district], dtype="str"),
            "wave": pd.arrays.IntegerArray(s.wave.astype(np.int64), ~treated),
            "start": month_start(s.start),
            "support_end": month_start(s.start + p.support_months) - pd.Timedelta(days=1),
            "delivery_end": delivery_end,
            "sustains": s.sustains,
            "facilitation": s.facilitation,
            "audit_feedback": s.audit_feedback,
            "adoption": np.round(model.adoption, 4),
        }
    )


def _strategy_effects(model: RateModel) -> pd.DataFrame:
    p, s = model.params, model.structure
    n_treated = int(s.treated.sum())
    assigned = {
        "Conduct ongoing training": f"every treated clinic ({n_treated})",
        "Provide clinical supervision": f"every treated clinic ({n_treated})",
        "Facilitation": f"random subset: {int(s.facilitation.sum())} of {n_treated} treated clinics",
        "Audit and provide feedback": f"random subset: {int(s.audit_feedback.sum())} of {n_treated} treated clinics",
    }
    rows = [
        {
            "strategy": strategy,
            "target": target,
            "effect": p.effect_of(strategy, target),
            "scale": TARGET_SCALES[target][0],
            "definition": TARGET_SCALES[target][1],
            "assignment": assigned[strategy],
        }
        for strategy in STRATEGIES
        for target in TARGETS
    ]
    return pd.DataFrame(rows)
