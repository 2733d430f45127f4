"""Turn the generator's integer arrays into the canonical tables of :mod:`knowdo.schema`.

Strings are made only here, column by column, through Arrow (pandas' ``str``
dtype), so that millions of rows cost seconds and little memory. Dates are
``datetime64[us]`` (NaT when empty); optional integers use pandas' nullable
integer dtypes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from knowdo.examples.events import SESSION, Contacts, People, phq9_items
from knowdo.examples.model import FOREVER, RateModel, level_codes
from knowdo.examples.parameters import DIMENSIONS, INTERVENTION, STRATEGIES, add_months
from knowdo.examples.staff import Perceptions, Staff, in_post, trainings
from knowdo.examples.truth import membership, strata_labels
from knowdo.schema import ENCOUNTER_TYPES, ITEM_COLUMNS, PROVIDER_TYPES, TABLES, Table

INTERVENTIONS = ("PST", "usual care")
CADRE_TYPES = ("lay_worker", "nurse", "gp")
CADRE_CODES = ("LW", "N", "GP")
PERCEPTION_INSTRUMENTS = ("AIM", "IAM", "FIM")
CURRENCY = "USD"
# Strategies costed per clinic-month while active: cost item and the ExampleParameters field with its amount.
STRATEGY_COSTS = {
    "Provide clinical supervision": ("supervision", "supervision_cost"),
    "Facilitation": ("facilitation", "facilitation_cost"),
    "Audit and provide feedback": ("audit and feedback", "audit_feedback_cost"),
}


def text(values: pa.Array | Sequence[str | None]) -> pd.api.extensions.ExtensionArray:
    """pandas ``str`` values (over Arrow ``large_string`` data, without a copy when given one)."""
    return pd.array(values, dtype="str")


def labels(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Arrow strings ``names[code]``, null where code < 0."""
    codes = np.asarray(codes)
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    dictionary = pa.array(list(names), pa.large_string())
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.large_string())


def numbered(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, e.g. P000123."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.large_string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), digits, pa.scalar("", pa.large_string()))


def id_width(n: int) -> int:
    return max(6, len(str(n)))


def dates(start: dt.date, days: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    out = (np.datetime64(start, "D") + np.asarray(days, dtype=np.int64)).astype("datetime64[us]")
    if missing is not None:
        out[missing] = np.datetime64("NaT")
    return out


def nullable(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """Nullable Int64 values, missing where ``missing``."""
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), np.asarray(missing, dtype=bool))


def site_ids(districts: int, clinics_per_district: int) -> tuple[list[str], list[str]]:
    wd, wc = max(2, len(str(districts))), max(2, len(str(clinics_per_district)))
    district_ids = [f"D{d + 1:0{wd}d}" for d in range(districts)]
    clinic_ids = [f"{district_ids[d]}-C{k + 1:0{wc}d}" for d in range(districts) for k in range(clinics_per_district)]
    return district_ids, clinic_ids


def sites_frame(model: RateModel, district_ids: list[str], clinic_ids: list[str]) -> pd.DataFrame:
    s = model.structure
    adults = np.rint(model.adults).astype(np.int64)
    per_district = np.bincount(s.district, weights=adults, minlength=len(district_ids)).astype(np.int64)
    n_d, per = len(district_ids), len(clinic_ids) // len(district_ids)
    return pd.DataFrame(
        {
            "site_id": text(district_ids + clinic_ids),
            "name": text([f"District {d + 1}" for d in range(n_d)]
                         + [f"District {d + 1} clinic {i % per + 1}" for i, d in enumerate(s.district.tolist())]),
            "parent_id": text([None] * n_d + [district_ids[d] for d in s.district]),
            "level": text(["district"] * n_d + ["facility"] * len(clinic_ids)),
            "urbanicity": text(labels(np.concatenate([np.full(n_d, -1), np.where(s.urban, 0, 1)]), ("urban", "rural"))),
            "catchment_population": np.concatenate([per_district, adults]),
        }
    )


def population_frame(model: RateModel, clinic_ids: list[str], periods: np.ndarray) -> pd.DataFrame:
    """Adults and prevalence of PHQ-9 >= 10 per facility x month x stratum (constant over months)."""
    member = membership()
    n_c, n_t, n_s = len(clinic_ids), len(periods), member.shape[1]
    total = np.rint(model.adults).astype(np.int64)
    share = model.share @ member  # (C, S)
    prevalence = (model.share * model.prevalence) @ member / share
    counts = np.zeros((n_c, n_s), dtype=np.int64)
    counts[:, 0] = total
    col = 1
    for dim in DIMENSIONS:
        k = len(dim.levels)
        counts[:, col : col + k] = _largest_remainder(total, share[:, col : col + k])
        col += k
    labels_ = strata_labels()
    c_idx = np.repeat(np.arange(n_c), n_t * n_s)
    t_idx = np.tile(np.repeat(np.arange(n_t), n_s), n_c)
    s_idx = np.tile(np.arange(n_s), n_c * n_t)
    return pd.DataFrame(
        {
            "site_id": text(labels(c_idx, clinic_ids)),
            "period": periods[t_idx],
            "dimension": text(labels(s_idx, [d for d, _ in labels_])),
            "stratum": text(labels(s_idx, [s for _, s in labels_])),
            "population": counts[c_idx, s_idx],
            "prevalence": np.round(prevalence[c_idx, s_idx], 4),
        }
    )


def _largest_remainder(total: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Integers proportional to ``shares`` (rows sum to 1) that add up to ``total`` in every row."""
    exact = total[:, None] * shares / shares.sum(axis=1, keepdims=True)
    out = np.floor(exact).astype(np.int64)
    short = total - out.sum(axis=1)
    order = np.argsort(-(exact - out), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(shares.shape[1])[None, :], axis=1)
    return out + (rank < short[:, None])


def rollout_frame(model: RateModel, staff: Staff, clinic_ids: list[str], days: np.ndarray) -> pd.DataFrame:
    """Intervention start and end of support per treated facility, and each strategy's active period."""
    p, s = model.params, model.structure
    last_day = int(days[p.months]) - 1
    rows: list[tuple[str, str, str, int, int]] = []  # site, kind, name, start day, end day (-1 = ongoing)
    first_trained = np.full(p.clinics, -1, dtype=np.int64)
    lw = staff.cadre == 0
    for c in np.flatnonzero(s.treated):
        trained = staff.trained_day[lw & (staff.clinic == c)]
        first_trained[c] = trained.min() if len(trained) else days[s.start[c]]

    def end_day(month: int) -> int:
        return int(days[month]) - 1 if month <= p.months else -1

    for c in np.flatnonzero(s.treated):
        start = int(s.start[c])
        rows.append((clinic_ids[c], "intervention", INTERVENTION, int(days[start]), end_day(start + p.support_months)))
    for strategy in STRATEGIES:
        begin, end = s.strategy_window(p, strategy)
        for c in np.flatnonzero(end > begin):
            first = int(s.start[c] + begin[c])
            if first >= p.months:
                continue
            day = int(first_trained[c]) if strategy == "Conduct ongoing training" else int(days[first])
            last = int(s.start[c] + end[c]) if end[c] < FOREVER else p.months + 1
            rows.append((clinic_ids[c], "strategy", strategy, day, end_day(last)))
    frame = pd.DataFrame(rows, columns=["site_id", "kind", "name", "start", "end"])
    frame = frame.sort_values(["site_id", "kind", "start", "name"], kind="stable").reset_index(drop=True)
    end = frame["end"].to_numpy()
    missing_end = (end < 0) | (end > last_day)
    return pd.DataFrame(
        {
            "site_id": text(frame["site_id"].tolist()),
            "kind": text(frame["kind"].tolist()),
            "name": text(frame["name"].tolist()),
            "start": dates(p.start, frame["start"].to_numpy()),
            "end": dates(p.start, np.where(missing_end, 0, end), missing_end),
        }
    )


def provider_ids(staff: Staff, clinic_ids: list[str]) -> pa.Array:
    width = max(2, len(str(int(staff.number.max())))) if len(staff.number) else 2
    return pc.binary_join_element_wise(
        labels(staff.clinic, clinic_ids),
        labels(staff.cadre, [f"-{code}" for code in CADRE_CODES]),
        pc.utf8_lpad(pc.cast(pa.array(staff.number.astype(np.int64)), pa.large_string()), width, "0"),
        pa.scalar("", pa.large_string()),
    )


def providers_frame(staff: Staff, ids: pa.Array, clinic_ids: list[str], start: dt.date, last_day: int) -> pd.DataFrame:
    """Providers with any time in post inside the window (lay workers trained by its last day)."""
    keep = np.flatnonzero((staff.cadre != 0) | (staff.trained_day <= last_day))
    trained, left = staff.trained_day[keep], staff.left_day[keep]
    no_left = (left < 0) | (left > last_day)
    return pd.DataFrame(
        {
            "provider_id": text(ids.take(pa.array(keep))),
            "site_id": text(labels(staff.clinic[keep], clinic_ids)),
            "cadre": text(labels(staff.cadre[keep], CADRE_TYPES)),
            "trained_date": dates(start, np.maximum(trained, 0), trained < 0),
            "left_date": dates(start, np.maximum(left, 0), no_left),
        }
    )


def persons_frame(people: People, clinic_ids: list[str]) -> pd.DataFrame:
    n = len(people)
    codes = level_codes()[people.stratum]
    frame = pd.DataFrame(
        {
            "person_id": text(numbered("P", np.arange(1, n + 1), id_width(n))),
            "home_site_id": text(labels(people.clinic, clinic_ids)),
            "birth_year": people.birth_year.astype(np.int64),
        }
    )
    for j, dim in enumerate(DIMENSIONS):
        frame[dim.name] = text(labels(codes[:, j], dim.levels))
    return frame


def encounters_frame(
    contacts: Contacts, n_people: int, provider_id: pa.Array, clinic_ids: list[str], start: dt.date
) -> pd.DataFrame:
    n = len(contacts)
    provider = provider_id.take(pa.array(contacts.provider))
    return pd.DataFrame(
        {
            "encounter_id": text(numbered("E", np.arange(1, n + 1), id_width(n))),
            "person_id": text(numbered("P", contacts.person + 1, id_width(n_people))),
            "site_id": text(labels(contacts.clinic, clinic_ids)),
            "date": dates(start, contacts.day),
            "type": text(labels(contacts.kind, ENCOUNTER_TYPES)),
            "provider_type": text(labels(contacts.provider_type, PROVIDER_TYPES)),
            "provider_id": text(provider),
            "intervention": text(labels(contacts.intervention, INTERVENTIONS)),
            "session_number": nullable(contacts.session_number, contacts.session_number == 0),
            "fidelity": contacts.fidelity,
        }
    )


def measures_frame(
    contacts: Contacts,
    perceptions: Perceptions,
    n_people: int,
    staff: Staff,
    provider_id: pa.Array,
    clinic_ids: list[str],
    start: dt.date,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """A PHQ-9 at every person encounter, then the lay workers' AIM/IAM/FIM."""
    n_phq, n_perc = len(contacts), len(perceptions.day)
    n = n_phq + n_perc
    none_phq = pa.nulls(n_phq, pa.large_string())
    none_perc = pa.nulls(n_perc, pa.large_string())
    items = np.zeros((len(ITEM_COLUMNS), n), dtype=np.int8)  # one contiguous row per item column
    missing = np.ones((len(ITEM_COLUMNS), n), dtype=bool)
    items[:9, :n_phq] = phq9_items(contacts.score, rng).T
    missing[:9, :n_phq] = False
    order = np.argsort(perceptions.day, kind="stable")
    missing[:4, n_phq:] = False
    items[:4, n_phq:] = perceptions.items[order].T
    frame = pd.DataFrame(
        {
            "measure_id": text(numbered("M", np.arange(1, n + 1), id_width(n))),
            "person_id": text(pa.concat_arrays([numbered("P", contacts.person + 1, id_width(n_people)), none_perc])),
            "provider_id": text(pa.concat_arrays([none_phq, provider_id.take(pa.array(perceptions.provider[order]))])),
            "site_id": text(labels(np.concatenate([contacts.clinic, staff.clinic[perceptions.provider[order]]]),
                                   clinic_ids)),
            "encounter_id": text(pa.concat_arrays([numbered("E", np.arange(1, n_phq + 1), id_width(n_phq)),
                                                   none_perc])),
            "date": dates(start, np.concatenate([contacts.day, perceptions.day[order]])),
            "instrument": text(labels(np.concatenate([np.zeros(n_phq, np.int8), perceptions.instrument[order] + 1]),
                                      ("PHQ-9", *PERCEPTION_INSTRUMENTS))),
            "total": np.concatenate([contacts.score.astype(np.float64), perceptions.items[order].mean(axis=1)]),
        }
    )
    for k, name in enumerate(ITEM_COLUMNS):
        frame[name] = pd.arrays.IntegerArray(items[k], missing[k])
    return frame


def costs_frame(
    model: RateModel, staff: Staff, contacts: Contacts, clinic_ids: list[str], days: np.ndarray, periods: np.ndarray
) -> pd.DataFrame:
    """Implementation (training, supervision, facilitation, audit and feedback) and delivery costs, USD."""
    p, s = model.params, model.structure
    n_c, n_t = p.clinics, p.months
    month_of_day = np.searchsorted(days, np.arange(int(days[-1])), side="right") - 1
    items: list[tuple[str, str, np.ndarray]] = [
        ("training", "implementation", trainings(staff, month_of_day, n_t) * p.training_cost),
    ]
    e = model.event_time
    for strategy, (item, field) in STRATEGY_COSTS.items():
        begin, end = s.strategy_window(p, strategy)
        active = (e >= 0) & (e >= begin[:, None]) & (e < end[:, None])
        items.append((item, "implementation", active * float(getattr(p, field))))
    items.append(("lay worker stipends", "delivery", in_post(staff, n_t) * p.stipend))
    pst = (contacts.kind == SESSION) & (contacts.intervention == 0)
    sessions = np.zeros((n_c, n_t))
    np.add.at(sessions, (contacts.clinic[pst], month_of_day[contacts.day[pst]]), 1)
    items.append(("session materials", "delivery", sessions * p.session_cost))
    frames = []
    for item, category, amount in items:
        c, t = np.nonzero(amount > 0)
        frames.append(pd.DataFrame({"c": c, "t": t, "item": item, "category": category, "amount": amount[c, t]}))
    long = pd.concat(frames, ignore_index=True).sort_values(["c", "t"], kind="stable")
    return pd.DataFrame(
        {
            "site_id": text(labels(long["c"].to_numpy(), clinic_ids)),
            "period": periods[long["t"].to_numpy()],
            "item": text(long["item"].tolist()),
            "category": text(long["category"].tolist()),
            "amount": np.round(long["amount"].to_numpy(dtype=float), 2),
            "currency": text([CURRENCY] * len(long)),
        }
    )


def empty_frame(table: Table) -> pd.DataFrame:
    dtypes = {"string": "str", "integer": "Int64", "float": "float64", "date": "datetime64[us]"}
    return pd.DataFrame({c.name: pd.Series([], dtype=dtypes[c.type]) for c in table.columns})


def month_periods(start: dt.date, months: int) -> np.ndarray:
    return np.array([add_months(start, m) for m in range(months)], dtype="datetime64[D]").astype("datetime64[us]")


AGGREGATES = TABLES["aggregates"]
