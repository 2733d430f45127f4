"""Staff of the example programme: lay workers (trained, adopting, leaving), nurses and GPs.

Each treated clinic has a fixed number of lay-worker *posts*. The first
holders are trained just before the clinic starts; a holder who leaves is
replaced by a newly trained worker while the clinic keeps delivering
(ERIC "Conduct ongoing training"). A trained worker delivers PST with the
clinic's adoption probability (raised by facilitation). At a clinic that
stops after external support ends, the remaining workers leave three months
after the stop, once their clients have finished.

Sessions go to a lay worker in post and delivering at the clinic that month;
when none of the workers in post has adopted, one of them is pressed into
delivering, so a clinic never turns away a person it has offered PST.
Measured adoption (delivered at least one session inside the window)
therefore differs a little from the adoption probability: it is raised where
no adopter is in post, and lowered for adopters who leave, or are trained
near the window's end, before a client comes.

Nurses and GPs are always in post; they screen, follow people up and give
usual care.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knowdo.examples.model import RateModel, within_groups

HANDOVER_MONTHS = 3  # workers at a stopping clinic leave 3 months after the stop
MONTH_PAD = 8  # months simulated beyond the window so courses that run past its end get providers


@dataclass(frozen=True)
class Staff:
    """Every provider, lay workers first, then nurses, then GPs."""

    horizon: int  # months simulated (window + MONTH_PAD)
    clinic: np.ndarray  # (P,) facility index
    cadre: np.ndarray  # (P,) 0 lay worker, 1 nurse, 2 GP
    number: np.ndarray  # (P,) 1-based number within clinic and cadre
    first_month: np.ndarray  # (P,) first month in post (lay workers)
    leave_month: np.ndarray  # (P,) first month no longer in post (horizon if still in post)
    trained_day: np.ndarray  # (P,) day index of training, -1 for nurses and GPs
    left_day: np.ndarray  # (P,) day index of leaving, -1 if not before the horizon
    adopted: np.ndarray  # (P,) bool: chose to deliver PST
    deviation: np.ndarray  # (P,) own fidelity level around the clinic's expectation
    pool_offsets: np.ndarray  # (C * horizon + 1,) CSR offsets of the delivering pool
    pool: np.ndarray  # lay-worker indices delivering, by clinic x month
    nurse_offsets: np.ndarray  # (C + 1,) provider index range of each clinic's nurses
    gp_offsets: np.ndarray  # (C + 1,) provider index range of each clinic's GPs

    def pick_lay_worker(self, clinic: np.ndarray, month: np.ndarray, u: np.ndarray) -> np.ndarray:
        key = clinic.astype(np.int64) * self.horizon + month
        begin = self.pool_offsets[key]
        count = self.pool_offsets[key + 1] - begin
        if (count <= 0).any():
            raise RuntimeError("internal: a PST session fell in a month with no lay worker in post")
        return self.pool[begin + (u * count).astype(np.int64)]

    def pick(self, offsets: np.ndarray, clinic: np.ndarray, u: np.ndarray) -> np.ndarray:
        begin = offsets[clinic]
        return begin + (u * (offsets[clinic + 1] - begin)).astype(np.int64)


def draw_staff(model: RateModel, days: np.ndarray, rng: np.random.Generator) -> Staff:
    """Lay-worker posts and tenures, nurses and GPs; ``days[m]`` is the first day of month m."""
    p, s = model.params, model.structure
    horizon = p.months + MONTH_PAD
    n_clinics = p.clinics
    rates = model.rates()
    posts = _posts(model, rates, rng)
    stop = np.where(s.sustains, horizon, s.start + s.stop_event(p))

    clinic_l, first_l, leave_l = [], [], []
    post_clinic = np.repeat(np.arange(n_clinics), posts)
    begin = s.start[post_clinic].astype(np.int64)
    alive = np.ones(len(post_clinic), dtype=bool)
    while alive.any():
        tenure = rng.geometric(max(p.lay_worker_attrition, 1e-9), alive.sum())
        c, b = post_clinic[alive], begin[alive]
        leave = b + tenure
        stopping = ~s.sustains[c] & (leave >= stop[c])
        leave = np.minimum(np.where(stopping, stop[c] + HANDOVER_MONTHS, leave), horizon)
        clinic_l.append(c)
        first_l.append(b)
        leave_l.append(leave)
        nxt = alive.copy()
        nxt[alive] = ~stopping & (leave < np.minimum(stop[c], horizon))
        begin[alive] = leave
        alive = nxt
    clinic_lw = np.concatenate(clinic_l) if clinic_l else np.zeros(0, dtype=np.int64)
    first = np.concatenate(first_l) if first_l else np.zeros(0, dtype=np.int64)
    leave = np.concatenate(leave_l) if leave_l else np.zeros(0, dtype=np.int64)
    order = np.lexsort((first, clinic_lw))
    clinic_lw, first, leave = clinic_lw[order], first[order], leave[order]
    n_lw = len(clinic_lw)
    trained = np.maximum(days[first] - rng.integers(1, 15, n_lw), 0)
    left = np.where(leave < horizon, days[np.minimum(leave, horizon)] + rng.integers(0, 7, n_lw), -1)
    adopted = rng.random(n_lw) < model.adoption[clinic_lw]
    deviation = rng.normal(0, p.provider_fidelity_sd, n_lw)

    # Delivering pool by clinic x month: adopters in post, else everyone in post.
    span = leave - first
    worker = np.repeat(np.arange(n_lw), span)
    month = first[worker] + (np.arange(len(worker)) - np.repeat(np.cumsum(span) - span, span))
    key = clinic_lw[worker] * horizon + month
    has_adopter = np.bincount(key, weights=adopted[worker], minlength=n_clinics * horizon) > 0
    keep = adopted[worker] | ~has_adopter[key]
    key, worker = key[keep], worker[keep]
    order = np.argsort(key, kind="stable")
    pool = worker[order]
    pool_offsets = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=n_clinics * horizon))))

    nurses, gps = _screeners(model, rates)
    per_clinic = np.bincount(clinic_lw, minlength=n_clinics)
    clinic = np.concatenate([clinic_lw, np.repeat(np.arange(n_clinics), nurses), np.repeat(np.arange(n_clinics), gps)])
    cadre = np.concatenate([np.zeros(n_lw, np.int8), np.ones(nurses.sum(), np.int8), np.full(gps.sum(), 2, np.int8)])
    number = np.concatenate([within_groups(per_clinic), within_groups(nurses), within_groups(gps)]) + 1
    n_other = int(nurses.sum() + gps.sum())
    return Staff(
        horizon=horizon,
        clinic=clinic,
        cadre=cadre,
        number=number,
        first_month=np.concatenate([first, np.zeros(n_other, np.int64)]),
        leave_month=np.concatenate([leave, np.full(n_other, horizon)]),
        trained_day=np.concatenate([trained, np.full(n_other, -1)]),
        left_day=np.concatenate([left, np.full(n_other, -1)]),
        adopted=np.concatenate([adopted, np.zeros(n_other, bool)]),
        deviation=np.concatenate([deviation, np.zeros(n_other)]),
        pool_offsets=pool_offsets,
        pool=pool,
        nurse_offsets=n_lw + np.concatenate(([0], np.cumsum(nurses))),
        gp_offsets=n_lw + nurses.sum() + np.concatenate(([0], np.cumsum(gps))),
    )


def _posts(model: RateModel, rates: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Lay-worker posts per clinic: 3-5 at the default size, more when the expected caseload needs it."""
    p, s = model.params, model.structure
    offered = model.offer[:, :, None] * p.pst_acceptance * model.acceptance[None, None, :]
    starts = (rates["positive"] * offered * model.share[:, None, :]).sum(axis=2).max(axis=1) * model.adults
    mean_sessions = (1 - (1 - p.pst_dropout) ** p.planned_sessions) / max(p.pst_dropout, 1e-9)
    needed = np.ceil(starts * mean_sessions / p.lay_worker_caseload).astype(np.int64)
    posts = np.maximum(p.lay_workers_min, needed) + rng.integers(0, p.lay_workers_extra + 1, p.clinics)
    return np.where(s.treated, posts, 0)


def _screeners(model: RateModel, rates: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Nurses (at least 2) and GPs (at least 1) per clinic, more where screening volume needs them."""
    p = model.params
    screens = (rates["screened"] * model.share[:, None, :]).sum(axis=2).max(axis=1) * model.adults
    nurses = np.maximum(2, np.ceil(screens * p.nurse_screen_share / p.screens_per_nurse)).astype(np.int64)
    gps = np.maximum(1, np.ceil(nurses / 2)).astype(np.int64)
    return nurses, gps


@dataclass(frozen=True)
class Perceptions:
    """AIM, IAM and FIM from lay workers at training and about six months later."""

    provider: np.ndarray
    day: np.ndarray
    instrument: np.ndarray  # 0 AIM, 1 IAM, 2 FIM
    items: np.ndarray  # (n, 4) 1-5


def draw_perceptions(staff: Staff, last_day: int, rng: np.random.Generator) -> Perceptions:
    """Weiner et al. 2017 scales (frameworks.md §2.3): 4 items on 1-5, scored as the item mean.

    Adopters rate the intervention higher, and their ratings rise by the
    second survey while non-adopters' fall: the scales act as leading
    indicators of adoption. Values are synthetic.
    """
    lw = np.flatnonzero((staff.cadre == 0) & (staff.trained_day <= last_day))
    level = 3.4 + 0.5 * staff.adopted[lw] + rng.normal(0, 0.35, len(lw))
    second = staff.trained_day[lw] + 182 + rng.integers(0, 15, len(lw))
    still = (second <= last_day) & ((staff.left_day[lw] < 0) | (second < staff.left_day[lw]))
    provider = np.concatenate([lw, lw[still]])
    day = np.concatenate([staff.trained_day[lw], second[still]])
    mean = np.concatenate([level, level[still] + np.where(staff.adopted[lw[still]], 0.2, -0.3)])
    shift = np.array([0.1, 0.0, -0.2])  # acceptability > appropriateness > feasibility
    provider, day = np.repeat(provider, 3), np.repeat(day, 3)
    instrument = np.tile(np.arange(3, dtype=np.int8), len(mean))
    centre = np.repeat(mean, 3) + shift[instrument]
    items = np.clip(np.rint(centre[:, None] + rng.normal(0, 0.5, (len(centre), 4))), 1, 5).astype(np.int8)
    return Perceptions(provider=provider, day=day, instrument=instrument, items=items)


def in_post(staff: Staff, months: int) -> np.ndarray:
    """(C, months) lay workers in post in each clinic-month."""
    n_clinics = len(staff.nurse_offsets) - 1
    out = np.zeros((n_clinics, months + 1), dtype=np.int64)
    lw = staff.cadre == 0
    first = np.minimum(staff.first_month[lw], months)
    leave = np.minimum(staff.leave_month[lw], months)
    np.add.at(out, (staff.clinic[lw], first), 1)
    np.add.at(out, (staff.clinic[lw], leave), -1)
    return np.cumsum(out, axis=1)[:, :months]


def trainings(staff: Staff, month_of_day: np.ndarray, months: int) -> np.ndarray:
    """(C, months) lay workers trained in each clinic-month."""
    n_clinics = len(staff.nurse_offsets) - 1
    lw = (staff.cadre == 0) & (staff.trained_day >= 0)
    month = month_of_day[staff.trained_day[lw]]
    inside = month < months
    out = np.zeros((n_clinics, months), dtype=np.int64)
    np.add.at(out, (staff.clinic[lw][inside], month[inside]), 1)
    return out
