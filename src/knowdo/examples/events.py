"""People and their contacts: screens, sessions and follow-ups, drawn from the rate model.

Everything is vectorised over people or contacts; days are integers counted
from the window's first day. The draws follow the closed forms in
:meth:`knowdo.examples.model.RateModel.rates`, so the expected panel counts
equal the truth:

* people screened in a facility x month x joint-stratum cell: two Poisson
  streams, clinician-triggered (usual) screens and programme screens;
* screen PHQ-9 >= 10 with the stream's probability (attender prevalence,
  enriched for clinician-triggered screens);
* a positive person is offered PST (offer = adoption x intensity) and
  accepts, or else starts usual care with a GP, or starts nothing;
* sessions: 1 + sessions before dropout, capped at the plan (PST: 6 weekly
  sessions); a PHQ-9 at every session;
* response with a probability that rises with dose and, for PST, with the
  mean fidelity of the sessions received; every PHQ-9 from four weeks after
  the first session onwards agrees with the person's response and remission
  status, so the panel observes the same status whichever of them it uses;
* a follow-up PHQ-9 ~12 weeks after the first session (67-91%, rising with
  dose) and, for some, a late PHQ-9 >= 6 months after the last session.

Nothing after the window's last day is recorded (right-censoring); the truth
describes complete follow-up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from knowdo.examples.model import RateModel, level_codes, within_groups
from knowdo.examples.parameters import add_months
from knowdo.examples.staff import Staff

POSITIVE = 10  # PHQ-9 >= 10 (Kroenke 2001; frameworks.md §7)
FOLLOWUP_FROM_DAY = 28  # the panel's follow-up window opens 4 weeks after the first session
LATE_MIN_DAYS = 184  # >= 6 calendar months after the last session, whatever the months
SCREEN, SESSION, FOLLOW_UP = 0, 2, 4  # indices into schema.ENCOUNTER_TYPES
GP, NURSE, LAY_WORKER = 1, 2, 3  # indices into schema.PROVIDER_TYPES
PST, USUAL = 0, 1  # intervention codes
AGE_RANGES = ((18, 30), (30, 45), (45, 60), (60, 86))
# Relative endorsement of the nine PHQ-9 items (sleep and energy most, self-harm least); synthetic.
PHQ9_ITEM_WEIGHTS = (1.0, 1.0, 1.2, 1.3, 0.9, 0.9, 0.9, 0.6, 0.35)


def month_days(start: dt.date, count: int) -> np.ndarray:
    """Day index of the first day of months 0..count (count + 1 values)."""
    return np.array([(add_months(start, m) - start).days for m in range(count + 1)], dtype=np.int64)


@dataclass(frozen=True)
class People:
    """Everyone screened, in order of screening month, then clinic."""

    clinic: np.ndarray
    month: np.ndarray
    stratum: np.ndarray  # joint stratum index
    screen_day: np.ndarray
    baseline: np.ndarray  # PHQ-9 total at the screen
    birth_year: np.ndarray

    def __len__(self) -> int:
        return len(self.clinic)


@dataclass(frozen=True)
class Contacts:
    """Person encounters inside the window, sorted by day, person and kind; one PHQ-9 each."""

    person: np.ndarray
    clinic: np.ndarray
    day: np.ndarray
    kind: np.ndarray  # SCREEN, SESSION, FOLLOW_UP
    provider: np.ndarray  # staff index
    provider_type: np.ndarray  # GP, NURSE, LAY_WORKER
    intervention: np.ndarray  # PST, USUAL or -1
    session_number: np.ndarray  # 0 when not a session
    fidelity: np.ndarray  # NaN when not a PST session
    score: np.ndarray  # PHQ-9 total

    def __len__(self) -> int:
        return len(self.person)


def draw_people(model: RateModel, days: np.ndarray, rng: np.random.Generator) -> People:
    """Everyone screened: two Poisson streams per cell, their screen day, PHQ-9 and birth year."""
    p = model.params
    base = (model.adults[:, None] * model.share * model.visits)[:, None, :]  # (C, 1, G) visits per month
    usual = np.broadcast_to(base * model.usual_screen[None, None, :], (*model.intensity.shape, base.shape[2]))
    added = base * (model.intensity * model.reach_ratio)[:, :, None] * model.added_screen[None, None, :]
    # Cells in (month, clinic, stratum) order, so people are numbered by screening month.
    n_usual = rng.poisson(usual.transpose(1, 0, 2)).ravel()
    n_added = rng.poisson(added.transpose(1, 0, 2)).ravel()
    total = n_usual + n_added
    cell = np.repeat(np.arange(len(total)), total)
    programme = within_groups(total) >= n_usual[cell]
    n_months, n_clinics = model.intensity.shape[1], model.intensity.shape[0]
    month, clinic, stratum = np.unravel_index(cell, (n_months, n_clinics, model.share.shape[1]))
    del cell
    month = month.astype(np.int32)
    clinic = clinic.astype(np.int32)
    stratum = stratum.astype(np.int32)
    n = len(month)
    length = days[month + 1] - days[month]
    screen_day = (days[month] + (rng.random(n) * length).astype(np.int64)).astype(np.int32)
    p_positive = np.where(
        programme, model.positive_routine[clinic, stratum], model.positive_targeted[clinic, stratum]
    )
    positive = rng.random(n) < p_positive
    baseline = np.where(
        positive,
        POSITIVE + _truncated_geometric(rng, 0.88, 27 - POSITIVE, n),
        _truncated_geometric(rng, 0.8, POSITIVE - 1, n),
    ).astype(np.int8)
    age_band = level_codes()[stratum, 1]
    lo = np.array([a for a, _ in AGE_RANGES])[age_band]
    hi = np.array([b for _, b in AGE_RANGES])[age_band]
    age = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    year = (p.start.year * 12 + p.start.month - 1 + month) // 12
    return People(clinic, month, stratum, screen_day, baseline, (year - age).astype(np.int16))


def _truncated_geometric(rng: np.random.Generator, ratio: float, top: int, n: int) -> np.ndarray:
    """Integers 0..top with P(k) proportional to ratio**k."""
    weights = ratio ** np.arange(top + 1)
    return rng.choice(top + 1, size=n, p=weights / weights.sum()).astype(np.int64)


def _uniform_int(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One integer uniformly in [lo, hi] per element (hi >= lo)."""
    return lo + (rng.random(len(lo)) * (hi - lo + 1)).astype(np.int64)


def draw_contacts(
    model: RateModel, people: People, staff: Staff, days: np.ndarray, rng: np.random.Generator
) -> Contacts:
    """Treatment courses of positive people, and every contact with its PHQ-9, censored at the window end."""
    p = model.params
    last_day = int(days[p.months]) - 1

    # Who starts what.
    pos = np.flatnonzero(people.baseline >= POSITIVE)
    c, t, g = people.clinic[pos], people.month[pos], people.stratum[pos]
    offer = model.offer[c, t]
    p_pst = offer * p.pst_acceptance * model.acceptance[g]
    p_usual = (1 - offer) * p.usual_care_start
    u = rng.random(len(pos))
    arm = np.where(u < p_pst, PST, np.where(u < p_pst + p_usual, USUAL, -1))
    started = arm >= 0
    who, arm, c, t, g = pos[started], arm[started], c[started], t[started], g[started]
    pst = arm == PST
    n = len(who)
    del pos, offer, p_pst, p_usual, u, started

    # Dose: sessions before dropout, capped at the plan.
    expected_fidelity = model.fidelity[c, t]
    hazard = np.where(
        pst,
        model.pst_hazard(expected_fidelity, model.hazard_ratio[g]),
        model.usual_hazard(model.hazard_ratio[g]),
    )
    cap = np.where(pst, p.planned_sessions, p.usual_care_max_sessions)
    sessions = np.minimum(rng.geometric(np.maximum(hazard, 1e-9)), cap).astype(np.int64)
    delay = np.where(pst, np.where(rng.random(n) < 0.5, 0, rng.integers(1, 15, n)), rng.integers(0, 29, n))
    start_day = people.screen_day[who].astype(np.int64) + delay

    # Session days: weekly PST, GP contacts every 2-4 weeks.
    owner = np.repeat(np.arange(n), sessions)
    number = within_groups(sessions) + 1
    gap = np.where(pst[owner], 7 + rng.integers(0, 3, len(owner)), 14 + rng.integers(0, 15, len(owner)))
    gap[number == 1] = 0
    cum = np.cumsum(gap)
    session_day = start_day[owner] + cum - np.repeat(cum[np.cumsum(sessions) - sessions], sessions)
    last_session = session_day[np.cumsum(sessions) - 1]

    # Providers and fidelity of PST sessions (the person keeps her lay worker while she stays in post).
    provider = np.full(len(owner), -1, dtype=np.int64)
    fidelity = np.full(len(owner), np.nan)
    is_pst = pst[owner]
    s_pst = np.flatnonzero(is_pst)
    s_month = month_of(days, session_day[s_pst])
    s_owner = owner[s_pst]
    first_session = number[s_pst] == 1
    own = np.full(n, -1, dtype=np.int64)
    own[s_owner[first_session]] = staff.pick_lay_worker(
        c[s_owner[first_session]], s_month[first_session], rng.random(int(first_session.sum()))
    )
    chosen = own[s_owner]
    moved = staff.leave_month[chosen] <= s_month
    if moved.any():
        chosen[moved] = staff.pick_lay_worker(c[s_owner[moved]], s_month[moved], rng.random(int(moved.sum())))
    provider[s_pst] = chosen
    raw = expected_fidelity[s_owner] + staff.deviation[chosen] + rng.normal(0, p.session_fidelity_sd, len(s_pst))
    fidelity[s_pst] = np.round(np.clip(raw, 0.0, 1.0), 2)
    s_usual = np.flatnonzero(~is_pst)
    provider[s_usual] = staff.pick(staff.gp_offsets, c[owner[s_usual]], rng.random(len(s_usual)))
    mean_fidelity = np.bincount(s_owner, weights=fidelity[s_pst], minlength=n) / sessions
    del s_month, s_owner, first_session, own, chosen, moved, raw, s_pst, s_usual

    # Response and the PHQ-9 range every later score respects.
    base = people.baseline[who].astype(np.int64)
    p_respond = np.where(pst, model.pst_response(sessions, mean_fidelity), model.usual_response(sessions))
    responded = rng.random(n) < p_respond
    remitted = responded & (rng.random(n) < p.remission_given_response)
    half = base // 2
    worse = ~responded & (rng.random(n) < p.deterioration_share) & (base + 5 <= 27)
    lo = np.where(remitted, 0, np.where(responded, 5, np.where(worse, base + 5, half + 1)))
    hi = np.where(remitted, 4, np.where(responded, half, np.where(worse, np.minimum(27, base + 8),
                                                                  np.minimum(27, base + 3))))
    outcome = _uniform_int(rng, lo, hi)

    d = session_day - start_day[owner]
    early = np.rint(base[owner] + (outcome[owner] - base[owner]) * d / FOLLOWUP_FROM_DAY)
    early = np.clip(early + rng.integers(-1, 2, len(owner)), 0, 27)
    settled = np.clip(outcome[owner] + rng.integers(-1, 2, len(owner)), lo[owner], hi[owner])
    session_score = np.where(d < FOLLOWUP_FROM_DAY, early, settled)

    followed = rng.random(n) < model.followup(sessions)
    f_idx = np.flatnonzero(followed)
    f_day = np.maximum(
        start_day[f_idx] + 7 * p.followup_weeks + rng.integers(-7, 15, len(f_idx)),
        last_session[f_idx] + rng.integers(7, 15, len(f_idx)),
    )
    f_score = np.clip(outcome[f_idx] + rng.integers(-1, 2, len(f_idx)), lo[f_idx], hi[f_idx])
    l_idx = f_idx[rng.random(len(f_idx)) < p.late_followup_share]
    l_day = last_session[l_idx] + LATE_MIN_DAYS + rng.integers(0, 61, len(l_idx))
    still = np.where(
        responded[l_idx],
        rng.random(len(l_idx)) < p.late_maintained,
        rng.random(len(l_idx)) < p.late_recovered,
    )
    l_lo = np.where(still, 0, half[l_idx] + 1)
    l_hi = np.where(still, half[l_idx], np.minimum(27, base[l_idx] + 3))
    l_score = _uniform_int(rng, l_lo, l_hi)
    follow = np.concatenate([f_idx, l_idx])

    # Screens: by a nurse or a GP at the clinic.
    n_people = len(people)
    by_nurse = rng.random(n_people) < p.nurse_screen_share
    screener = np.where(
        by_nurse,
        staff.pick(staff.nurse_offsets, people.clinic, rng.random(n_people)),
        staff.pick(staff.gp_offsets, people.clinic, rng.random(n_people)),
    )
    follower = staff.pick(staff.nurse_offsets, c[follow], rng.random(len(follow)))

    n_sessions, n_follow = len(owner), len(follow)
    parts = {
        "person": (np.arange(n_people), who[owner], who[follow]),
        "clinic": (people.clinic, c[owner], c[follow]),
        "day": (people.screen_day, session_day, np.concatenate([f_day, l_day])),
        "kind": (np.full(n_people, SCREEN), np.full(n_sessions, SESSION), np.full(n_follow, FOLLOW_UP)),
        "provider": (screener, provider, follower),
        "provider_type": (np.where(by_nurse, NURSE, GP), np.where(is_pst, LAY_WORKER, GP), np.full(n_follow, NURSE)),
        "intervention": (np.full(n_people, -1), arm[owner], arm[follow]),
        "session_number": (np.zeros(n_people), number, np.zeros(n_follow)),
        "fidelity": (np.full(n_people, np.nan), fidelity, np.full(n_follow, np.nan)),
        "score": (people.baseline, session_score, np.concatenate([f_score, l_score])),
    }
    dtypes = {
        "person": np.int64, "clinic": np.int32, "day": np.int64, "kind": np.int8, "provider": np.int64,
        "provider_type": np.int8, "intervention": np.int8, "session_number": np.int16, "fidelity": np.float64,
        "score": np.int8,
    }
    columns = {name: np.concatenate([np.asarray(a).astype(dtypes[name]) for a in arrays])
               for name, arrays in parts.items()}
    del parts
    inside = columns["day"] <= last_day
    rank = (columns["kind"] // 2).astype(np.int64)  # screen < session < follow-up on the same day
    key = (columns["day"] << 34) | (columns["person"] << 3) | rank
    order = np.flatnonzero(inside)[np.argsort(key[inside], kind="stable")]
    del key, inside, rank
    return Contacts(**{name: values[order] for name, values in columns.items()})


def month_of(days: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Month index of each day index, given the first days of months in ``days``."""
    return np.searchsorted(days, day, side="right") - 1


def phq9_items(totals: np.ndarray, rng: np.random.Generator, pool_size: int = 4096) -> np.ndarray:
    """Nine PHQ-9 item scores (0-3) summing to each total.

    Each total's items are a random allocation of its points to the 27
    item-points (9 items x 3), weighted by how often each item is endorsed;
    a pool of allocations per total is drawn once and sampled from.
    """
    weights = np.repeat(np.array(PHQ9_ITEM_WEIGHTS), 3)
    keys = np.log(rng.random((28, pool_size, 27))) / weights
    order = np.argsort(-keys, axis=2)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(27)[None, None, :], axis=2)
    chosen = ranks < np.arange(28)[:, None, None]
    pool = chosen.reshape(28, pool_size, 9, 3).sum(axis=3).astype(np.int8)
    pick = rng.integers(0, pool_size, len(totals))
    return pool[totals.astype(np.int64), pick]
