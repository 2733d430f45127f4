"""The programme's structure and its rate model: the expected value of every cascade count.

Two layers of randomness, kept apart:

* the **structure**, drawn once per seed: clinics, their urbanicity, size,
  need and contact levels, the staggered rollout, which clinics get
  facilitation and audit-and-feedback, and which keep delivering after
  external support ends;
* the **events**, drawn given the structure (see :mod:`knowdo.examples.events`):
  people screened, treated and followed up, lay workers hired and leaving.

Given the structure, the expected count of every cascade stage in every
facility x month x joint-stratum cell has a closed form (:meth:`RateModel.rates`).
The truth (:mod:`knowdo.examples.truth`) is computed from it, and the event
draws are built so that their expectations equal it.

Joint strata: every combination of the levels in
:data:`~knowdo.examples.parameters.DIMENSIONS` (2 x 4 x 2 x 5 x 2 x 2 = 320);
index ``g`` enumerates them in C order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from knowdo.examples.parameters import DIMENSIONS, STRATEGIES, ExampleParameters, StratumFactors

SHAPE = tuple(len(d.levels) for d in DIMENSIONS)
N_STRATA = int(np.prod(SHAPE))
NEVER = -1  # start month of a never-treated clinic
FOREVER = 10**6  # an event time no window reaches


def level_codes() -> np.ndarray:
    """(joint strata x dimensions) level codes of every joint stratum."""
    return np.stack(np.unravel_index(np.arange(N_STRATA), SHAPE), axis=1).astype(np.int8)


def stratum_factor(spec: StratumFactors) -> np.ndarray:
    """Multiplicative factor of every joint stratum from ``(dimension, level, factor)`` triples."""
    codes = level_codes()
    out = np.ones(N_STRATA)
    for j, dim in enumerate(DIMENSIONS):
        per_level = np.ones(len(dim.levels))
        for name, level, factor in spec:
            if name == dim.name:
                per_level[dim.levels.index(level)] *= factor
        out *= per_level[codes[:, j]]
    return out


def within_groups(counts: np.ndarray) -> np.ndarray:
    """0-based position of each element within its group, for groups of ``counts`` consecutive elements."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def logit(p: np.ndarray | float) -> np.ndarray:
    return np.log(np.asarray(p) / (1 - np.asarray(p)))


def expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@dataclass(frozen=True)
class Structure:
    """Clinic-level draws (one entry per facility, district-major order)."""

    district: np.ndarray  # 0-based district of each clinic
    urban: np.ndarray  # bool
    size: np.ndarray  # relative catchment size (sums to 1)
    prevalence_shift: np.ndarray  # logit-scale clinic effect on prevalence
    visit_factor: np.ndarray  # multiplicative clinic effect on visits
    minority_share: np.ndarray  # share of minority-language adults
    wave: np.ndarray  # 1-based wave, 0 for never treated
    start: np.ndarray  # month index of the clinic's start, NEVER if never treated
    facilitation: np.ndarray  # bool
    audit_feedback: np.ndarray  # bool
    sustains: np.ndarray  # bool: keeps delivering after external support ends
    stop_lag: np.ndarray  # months after support end when a non-sustaining clinic stops

    @property
    def treated(self) -> np.ndarray:
        return self.start != NEVER

    def stop_event(self, p: ExampleParameters) -> np.ndarray:
        """Event month when delivery stops (FOREVER for sustaining clinics)."""
        return np.where(self.sustains, FOREVER, p.support_months + self.stop_lag)

    def strategy_window(self, p: ExampleParameters, strategy: str) -> tuple[np.ndarray, np.ndarray]:
        """Event months [from, to) in which each clinic has ``strategy``; empty (0, 0) when it has not."""
        n = len(self.start)
        begin, end = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        if strategy == "Conduct ongoing training":  # replacements trained while the clinic delivers
            end = self.stop_event(p)
        elif strategy == "Provide clinical supervision":  # taken over by sustaining clinics
            end = np.where(self.sustains, FOREVER, p.support_months)
        elif strategy == "Facilitation":
            end = np.where(self.facilitation, p.facilitation_months, 0)
        elif strategy == "Audit and provide feedback":
            begin = np.where(self.audit_feedback, p.audit_feedback_delay, 0)
            end = np.where(self.audit_feedback, p.support_months, 0)
        end = np.where(self.treated, end, 0)
        return begin, np.maximum(begin, end)


def draw_structure(p: ExampleParameters, rng: np.random.Generator) -> Structure:
    c = p.clinics
    district = np.repeat(np.arange(p.districts), p.clinics_per_district)
    urban = rng.random(c) < p.urban_share
    size = np.exp(rng.normal(0, p.catchment_spread, c)) * np.where(urban, p.urban_size_ratio, 1.0)
    size /= size.sum()
    shift = np.clip(rng.normal(0, p.prevalence_clinic_sd, c), -2 * p.prevalence_clinic_sd, 2 * p.prevalence_clinic_sd)
    visit = np.exp(np.clip(rng.normal(0, p.visits_clinic_sd, c), -2 * p.visits_clinic_sd, 2 * p.visits_clinic_sd))
    concentration = 12.0
    minority_d = rng.beta(p.minority_share * concentration, (1 - p.minority_share) * concentration, p.districts)

    # Staggered rollout: districts in random order, split as evenly as possible over the waves.
    order = rng.permutation(p.districts)
    treated_districts = order[: p.districts - p.never_treated_districts]
    wave_d = np.zeros(p.districts, dtype=np.int64)
    for w, chunk in enumerate(np.array_split(treated_districts, len(p.wave_months)), start=1):
        wave_d[chunk] = w
    wave = wave_d[district]
    wave_month = np.array((NEVER, *p.wave_months))[wave]
    lag = rng.integers(0, p.clinic_lag_max + 1, c)
    start = np.where(wave > 0, np.minimum(wave_month + lag, p.months - 1), NEVER)
    treated = wave > 0
    return Structure(
        district=district,
        urban=urban,
        size=size,
        prevalence_shift=shift,
        visit_factor=visit,
        minority_share=minority_d[district],
        wave=wave,
        start=start,
        facilitation=treated & (rng.random(c) < p.facilitation_share),
        audit_feedback=treated & (rng.random(c) < p.audit_feedback_share),
        sustains=treated & (rng.random(c) < p.sustain_probability),
        stop_lag=rng.integers(0, p.stop_lag_max + 1, c),
    )


@dataclass(frozen=True)
class RateModel:
    """Expected rates per adult per month, by facility (c), month (t) and joint stratum (g)."""

    params: ExampleParameters
    structure: Structure
    share: np.ndarray  # (C, G) composition of each catchment
    adults: np.ndarray  # (C,) adults in each catchment
    prevalence: np.ndarray  # (C, G)
    visits: np.ndarray  # (C, G) primary-care visits per adult per month
    usual_screen: np.ndarray  # (G,) share of visits screened without the programme
    added_screen: np.ndarray  # (G,) extra share screened at full programme intensity
    positive_targeted: np.ndarray  # (C, G) P(PHQ-9 >= 10) among clinician-triggered screens
    positive_routine: np.ndarray  # (C, G) P(PHQ-9 >= 10) among programme screens
    acceptance: np.ndarray  # (G,) P(accept PST | offered)
    hazard_ratio: np.ndarray  # (G,) session dropout hazard ratio
    event_time: np.ndarray  # (C, T) months since the clinic's start, -1 before it or never
    intensity: np.ndarray  # (C, T) programme intensity 0-1 (ramp, maintenance)
    reach_ratio: np.ndarray  # (C, T) product of active strategies' reach effects
    fidelity: np.ndarray  # (C, T) expected PST session fidelity of episodes screened that month
    adoption: np.ndarray  # (C,) P(trained lay worker delivers)

    @property
    def offer(self) -> np.ndarray:
        """(C, T) probability that a positive person is offered PST."""
        return self.adoption[:, None] * self.intensity

    def pst_hazard(self, fidelity: np.ndarray, hazard_ratio: np.ndarray) -> np.ndarray:
        p = self.params
        h = p.pst_dropout * hazard_ratio * np.exp(-p.fidelity_dropout_slope * (fidelity - p.reference_fidelity))
        return np.clip(h, 0.0, 0.95)

    def usual_hazard(self, hazard_ratio: np.ndarray) -> np.ndarray:
        return np.clip(self.params.usual_care_dropout * hazard_ratio, 0.0, 0.95)

    def pst_response(self, sessions: np.ndarray, fidelity: np.ndarray) -> np.ndarray:
        """P(response) after ``sessions`` PST sessions delivered at mean ``fidelity``."""
        p = self.params
        dose = (np.minimum(sessions, p.planned_sessions) - 1) / (p.planned_sessions - 1)
        r = p.pst_response_one_session + (p.pst_response_full_course - p.pst_response_one_session) * dose
        return np.clip(r + p.fidelity_response_slope * (fidelity - p.reference_fidelity), 0.0, 1.0)

    def usual_response(self, sessions: np.ndarray) -> np.ndarray:
        p = self.params
        dose = (np.minimum(sessions, p.planned_sessions) - 1) / (p.planned_sessions - 1)
        return p.usual_care_response + p.usual_care_dose_response * dose

    def followup(self, sessions: np.ndarray) -> np.ndarray:
        """P(follow-up PHQ-9 at ~12 weeks) after ``sessions`` sessions."""
        p = self.params
        dose = (np.minimum(sessions, p.planned_sessions) - 1) / (p.planned_sessions - 1)
        return p.followup_one_session + (p.followup_full_course - p.followup_one_session) * dose

    def rates(self, *, treated: bool = True) -> dict[str, np.ndarray]:
        """Expected people per adult per month, (C, T, G), for each panel count.

        ``treated=False`` gives the counterfactual without the programme (the
        untreated clinic's own rates). Counts are attributed to the month of
        the screen, as in the panel. Adequate means at least
        ``planned_sessions`` sessions; effective means adequate and responded
        (an adequate course always has a PHQ-9 at least 4 weeks after its first
        session, so its response is observed).
        """
        p = self.params
        intensity = self.intensity if treated else np.zeros_like(self.intensity)
        offer = self.adoption[:, None] * intensity
        added = (intensity * self.reach_ratio)[:, :, None] * self.added_screen[None, None, :]
        visits = self.visits[:, None, :]
        usual = self.usual_screen[None, None, :]
        screened = visits * (usual + added)
        positive = visits * (usual * self.positive_targeted[:, None, :] + added * self.positive_routine[:, None, :])
        p_pst = offer[:, :, None] * p.pst_acceptance * self.acceptance[None, None, :]
        p_usual = (1 - offer[:, :, None]) * p.usual_care_start
        full = p.planned_sessions
        h_pst = self.pst_hazard(self.fidelity[:, :, None], self.hazard_ratio[None, None, :])
        h_usual = self.usual_hazard(self.hazard_ratio)[None, None, :]
        adequate_pst = (1 - h_pst) ** (full - 1)
        adequate_usual = (1 - h_usual) ** (full - 1) if p.usual_care_max_sessions >= full else np.zeros_like(h_usual)
        respond_pst = self.pst_response(np.array(full), self.fidelity)[:, :, None]
        respond_usual = self.usual_response(np.array(full))
        return {
            "screened": screened,
            "positive": positive,
            "started": positive * (p_pst + p_usual),
            "adequate": positive * (p_pst * adequate_pst + p_usual * adequate_usual),
            "effective": positive * (p_pst * adequate_pst * respond_pst + p_usual * adequate_usual * respond_usual),
        }


def build_model(p: ExampleParameters, s: Structure) -> RateModel:
    codes = level_codes()
    share = _composition(p, s, codes)
    log_or = np.log(stratum_factor(p.prevalence_odds_ratio))
    shifted = s.prevalence_shift[:, None] + log_or[None, :]
    intercept = _calibrate(lambda a: float((s.size[:, None] * share * expit(a + shifted)).sum()), p.prevalence)
    prevalence = expit(intercept + shifted)
    visits = p.visits_per_adult * s.visit_factor[:, None] * stratum_factor(p.visit_ratio)[None, :]
    usual_screen = p.screening_usual * stratum_factor(p.usual_screening_ratio)
    added_screen = (p.screening_programme - p.screening_usual) * stratum_factor(p.programme_screening_ratio)
    event_time, intensity, reach, fidelity, adoption = _programme_state(p, s)
    model = RateModel(
        params=p,
        structure=s,
        share=share,
        adults=np.ones(p.clinics),
        prevalence=prevalence,
        visits=visits,
        usual_screen=usual_screen,
        added_screen=added_screen,
        positive_targeted=expit(logit(prevalence) + math.log(p.targeted_positive_odds_ratio)),
        positive_routine=expit(logit(prevalence) + math.log(p.attender_positive_odds_ratio)),
        acceptance=stratum_factor(p.acceptance_ratio),
        hazard_ratio=stratum_factor(p.dropout_hazard_ratio),
        event_time=event_time,
        intensity=intensity,
        reach_ratio=reach,
        fidelity=fidelity,
        adoption=adoption,
    )
    # Catchments: scale so that the expected number of people screened in the window equals `persons`.
    screened_per_adult = (model.rates()["screened"] * share[:, None, :]).sum(axis=(1, 2))
    total_adults = p.persons / float((s.size * screened_per_adult).sum())
    return _replace_adults(model, total_adults * s.size)


def _replace_adults(model: RateModel, adults: np.ndarray) -> RateModel:
    values = {name: getattr(model, name) for name in model.__dataclass_fields__}
    values["adults"] = adults
    return RateModel(**values)


def _composition(p: ExampleParameters, s: Structure, codes: np.ndarray) -> np.ndarray:
    """(C, G) share of each clinic's adults in each joint stratum."""
    sex = np.array([p.female_share, 1 - p.female_share])[codes[:, 0]]
    age = np.array(p.age_shares)[codes[:, 1]]
    disabled = np.array(p.disability_by_age)[codes[:, 1]]
    disability = np.where(codes[:, 5] == 1, disabled, 1 - disabled)
    urban_res = np.where(s.urban, p.urban_resident_share[0], p.urban_resident_share[1])
    residence = np.where(codes[None, :, 2] == 0, urban_res[:, None], 1 - urban_res[:, None])
    wealth_table = np.array([p.wealth_shares_urban, p.wealth_shares_rural])
    wealth = wealth_table[codes[:, 2], codes[:, 3]]
    minority = np.where(codes[None, :, 4] == 1, s.minority_share[:, None], 1 - s.minority_share[:, None])
    share = (sex * age * disability * wealth)[None, :] * residence * minority
    return share / share.sum(axis=1, keepdims=True)


def _calibrate(mean_at: Callable[[float], float], target: float) -> float:
    """Intercept a with mean_at(a) == target (mean_at increasing), by bisection."""
    lo, hi = -12.0, 6.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if mean_at(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _programme_state(
    p: ExampleParameters, s: Structure
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    months = np.arange(p.months)
    treated = s.treated[:, None] & (months[None, :] >= s.start[:, None])
    e = np.where(treated, months[None, :] - s.start[:, None], -1)
    ramp = 1 - np.exp(-(e + 1) / p.ramp_months)
    after_support = e >= p.support_months
    stopped = e >= s.stop_event(p)[:, None]
    intensity = np.where(after_support & s.sustains[:, None], p.sustained_intensity * ramp, ramp)
    intensity = np.where(treated & ~stopped, intensity, 0.0)
    reach = np.ones(e.shape)
    fidelity = np.full(e.shape, p.fidelity_base)
    log_odds = np.full(len(s.start), float(logit(p.adoption)) if 0 < p.adoption < 1 else 0.0)
    for strategy in STRATEGIES:
        begin, end = s.strategy_window(p, strategy)
        active = treated & (e >= begin[:, None]) & (e < end[:, None])
        reach *= np.where(active, p.effect_of(strategy, "reach"), 1.0)
        fidelity += np.where(active, p.effect_of(strategy, "fidelity"), 0.0)
        log_odds += np.where(end > begin, math.log(p.effect_of(strategy, "adoption")), 0.0)
    adoption = expit(log_odds) if 0 < p.adoption < 1 else np.full(len(s.start), p.adoption)
    fidelity = np.clip(fidelity, 0.0, 1.0)
    return e, intensity, reach, fidelity, np.where(s.treated, adoption, 0.0)
