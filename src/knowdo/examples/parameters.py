"""Parameters of the example programme, each with where its value comes from.

Sources are sections of the project's domain primer (``frameworks.md``):
§2.2 RE-AIM, §2.3 AIM/IAM/FIM, §5.4-5.5 LMIC coverage and screening, §7
task-sharing programmes at scale (Friendship Bench, PM+, IMPACT/MHIP, mhGAP)
and its "suggested defaults for a synthetic example dataset". Values without
a section reference are synthetic choices, made so that the cascade lands
inside the ranges those sections give; the data describe no real programme.

Stratum-specific factors are given as ``(dimension, level, factor)`` triples;
levels not listed have factor 1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from knowdo.config import Stratum
from knowdo.errors import ParameterError

StratumFactors = tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class Dimension:
    """One equity dimension of the example persons (a PROGRESS-Plus stratifier)."""

    name: str
    category: str
    levels: tuple[str, ...]
    ordered: bool = False
    reference: str | None = None

    def stratum(self) -> Stratum:
        return Stratum(self.name, self.category, self.ordered, self.levels, self.reference)


# PROGRESS-Plus stratifiers (frameworks.md §4.2). Order matters: it fixes the
# joint stratum index used inside the generator.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("sex", "Gender/sex", ("female", "male")),
    Dimension("age_band", "Age", ("18-29", "30-44", "45-59", "60+"), ordered=True),
    Dimension("residence", "Place of residence", ("urban", "rural"), reference="urban"),
    Dimension("wealth_quintile", "Socioeconomic status", ("Q1", "Q2", "Q3", "Q4", "Q5"), ordered=True, reference="Q5"),
    Dimension("language", "Race/ethnicity/culture/language", ("majority", "minority"), reference="majority"),
    Dimension("disability", "Disability", ("no", "yes"), reference="no"),
)
DIMENSION_NAMES = tuple(d.name for d in DIMENSIONS)

STRATEGIES = (
    "Conduct ongoing training",
    "Provide clinical supervision",
    "Facilitation",
    "Audit and provide feedback",
)  # ERIC names (Powell et al. 2015; frameworks.md §3.2)
TARGETS = ("adoption", "fidelity", "reach")
TARGET_SCALES = {
    "adoption": (
        "odds ratio",
        "odds that a trained lay worker starts delivering PST (applies to every worker trained at the clinic)",
    ),
    "fidelity": ("difference", "mean session fidelity (share of PST components delivered, 0-1) while active"),
    "reach": ("rate ratio", "programme screening above usual care (people screened per adult) while active"),
}
INTERVENTION = "Problem-solving therapy (lay health worker)"


@dataclass(frozen=True)
class ExampleParameters:
    """Everything the example generator uses; change any field with ``generate_programme(**overrides)``.

    Rates are per adult per month unless stated otherwise.
    """

    # --- size and window -------------------------------------------------
    districts: int = 8
    clinics_per_district: int = 6
    months: int = 36
    start: dt.date = dt.date(2023, 1, 1)
    # Approximate number of people screened over the window. Catchment
    # populations are scaled so that the expected number screened equals it.
    persons: int = 20_000

    # --- sites (synthetic) ----------------------------------------------
    urban_share: float = 0.4  # share of clinics that are urban
    catchment_spread: float = 0.35  # log-normal sd of clinic catchment sizes
    urban_size_ratio: float = 1.5  # urban catchments are larger
    urban_resident_share: tuple[float, float] = (0.85, 0.10)  # urban residents at urban / rural clinics
    minority_share: float = 0.18  # mean share of minority-language adults (varies by district)

    # --- population structure (synthetic, typical LMIC adult pyramid) ------
    female_share: float = 0.52
    age_shares: tuple[float, ...] = (0.35, 0.30, 0.21, 0.14)  # 18-29, 30-44, 45-59, 60+
    disability_by_age: tuple[float, ...] = (0.04, 0.06, 0.11, 0.24)  # functional difficulty rises with age
    wealth_shares_urban: tuple[float, ...] = (0.12, 0.16, 0.20, 0.24, 0.28)  # Q1..Q5 among urban residents
    wealth_shares_rural: tuple[float, ...] = (0.28, 0.24, 0.20, 0.16, 0.12)  # Q1..Q5 among rural residents

    # --- need: probable depression, PHQ-9 >= 10 --------------------------
    # LMIC district 11-17%, PHQ-9 >= 10 in primary care about 17% (§7 defaults;
    # PRIME baselines 11.2-29.7%, §5.4). Population mean set at 14%.
    prevalence: float = 0.14
    prevalence_clinic_sd: float = 0.08  # logit-scale spread between clinics (keeps clinics near 11-17%)
    # Higher in women (Nepal primary care: 19.6% in women vs 16.8% overall, §5.4),
    # the poorest, people with disability, older and minority adults (synthetic).
    prevalence_odds_ratio: StratumFactors = (
        ("sex", "female", 1.5),
        ("age_band", "30-44", 1.1),
        ("age_band", "45-59", 1.2),
        ("age_band", "60+", 1.3),
        ("wealth_quintile", "Q1", 1.8),
        ("wealth_quintile", "Q2", 1.5),
        ("wealth_quintile", "Q3", 1.3),
        ("wealth_quintile", "Q4", 1.1),
        ("language", "minority", 1.2),
        ("disability", "yes", 2.5),
        ("residence", "rural", 1.1),
    )

    # --- primary-care contact and screening -----------------------------
    visits_per_adult: float = 0.1  # primary-care visits per adult per month (~1.2 a year; synthetic)
    visits_clinic_sd: float = 0.15  # log-normal spread of clinic visit rates
    visit_ratio: StratumFactors = (
        ("sex", "female", 1.3),
        ("age_band", "45-59", 1.2),
        ("age_band", "60+", 1.4),
        ("disability", "yes", 1.3),
        ("residence", "rural", 0.7),
        ("wealth_quintile", "Q1", 0.85),
    )
    # Without the programme 2-5% of visits include depression screening (§7;
    # 4.2% of US primary-care visits, §5.5). Clinician-triggered screens.
    screening_usual: float = 0.03
    # Older and Black patients are about half as likely to be screened (§5.5);
    # used here for older and minority-language adults.
    usual_screening_ratio: StratumFactors = (
        ("age_band", "60+", 0.5),
        ("language", "minority", 0.5),
        ("residence", "rural", 0.8),
        ("wealth_quintile", "Q1", 0.8),
        ("wealth_quintile", "Q2", 0.9),
        ("disability", "yes", 0.8),
    )
    # With the programme, screening of visits rises towards this share
    # (programmes set targets above 80% of eligible patients, §7; routine
    # achievement is far lower and population coverage moves little, §5.4).
    screening_programme: float = 0.25
    ramp_months: float = 6.0  # tau in the ramp 1 - exp(-(e + 1) / tau), e = months since rollout
    # Who the programme reaches: multiplies the programme's added screening.
    programme_screening_ratio: StratumFactors = (
        ("residence", "rural", 0.6),
        ("wealth_quintile", "Q1", 0.6),
        ("wealth_quintile", "Q2", 0.8),
        ("wealth_quintile", "Q3", 0.9),
        ("language", "minority", 0.6),
        ("disability", "yes", 0.7),
        ("age_band", "45-59", 0.9),
        ("age_band", "60+", 0.7),
    )
    # Odds ratio of screening positive relative to the adult prevalence:
    # clinician-triggered screens are enriched; routine screening of attenders
    # sees attender prevalence (16.8% in Nepal primary care vs 11-17% in the
    # community, §5.4).
    targeted_positive_odds_ratio: float = 4.0
    attender_positive_odds_ratio: float = 1.25

    # --- treatment start ---------------------------------------------------
    # Usual care: GP contact for a minority of positives (LMIC contact
    # coverage 8-15%, treated ~8% and adequately ~3%, §5.2, §7).
    usual_care_start: float = 0.35
    # PST: a positive person is offered PST with probability adoption x
    # programme intensity (a trained lay worker's planned caseload is only
    # covered if she delivers) and accepts with this probability (synthetic).
    pst_acceptance: float = 0.8
    acceptance_ratio: StratumFactors = (
        ("language", "minority", 0.85),
        ("residence", "rural", 0.9),
        ("wealth_quintile", "Q1", 0.9),
        ("disability", "yes", 0.9),
        ("sex", "male", 0.9),
    )
    adoption: float = 0.65  # probability a trained lay worker starts delivering (synthetic)

    # --- sessions ------------------------------------------------------------
    planned_sessions: int = 6  # 6 weekly PST sessions (Friendship Bench, §7); adequate dose in knowdo.toml
    # Per-session dropout: 0.22 gives about 3 sessions among attenders (with the
    # stratum hazard ratios), between real-world Friendship Bench (~2) and trials (~5) (§7).
    pst_dropout: float = 0.22
    fidelity_dropout_slope: float = 2.0  # dropout hazard x exp(-slope x (fidelity - reference))
    usual_care_dropout: float = 0.6  # about 1.4 GP contacts among people in usual care (synthetic)
    usual_care_max_sessions: int = 8
    dropout_hazard_ratio: StratumFactors = (
        ("residence", "rural", 1.3),
        ("wealth_quintile", "Q1", 1.3),
        ("wealth_quintile", "Q2", 1.15),
        ("language", "minority", 1.2),
        ("disability", "yes", 1.2),
        ("age_band", "18-29", 1.15),
        ("age_band", "60+", 1.1),
    )

    # --- outcomes (PHQ-9 at every session and at follow-up) -------------------
    # Response = >= 50% reduction; remission = PHQ-9 < 5 (§7 scoring).
    usual_care_response: float = 0.19  # IMPACT usual care 19% (§7)
    usual_care_dose_response: float = 0.04  # extra response after a full course of GP contacts
    pst_response_one_session: float = 0.25
    # Full course at reference fidelity: 60%. Averaged over the real-world dose
    # this gives ~40% among people starting PST, near CoCM's 45% vs 19% (§7);
    # the Friendship Bench trial's 14% vs 50% caseness at 6 months implies a
    # large effect for completers (§7).
    pst_response_full_course: float = 0.60
    fidelity_response_slope: float = 0.5  # response probability per unit of mean session fidelity
    reference_fidelity: float = 0.75
    # Remission among responders; gives ~30% remission among people starting
    # PST (real-world CoCM 30-40%, Penn 32.6%, §2.2 and §7).
    remission_given_response: float = 0.75
    deterioration_share: float = 0.04  # non-responders 5+ points worse (a recorded harm; synthetic)
    # Follow-up PHQ-9 ~12 weeks after the first session: trial follow-up
    # 67-91% (§7), rising from 67% after one session to 91% after a full course.
    followup_one_session: float = 0.67
    followup_full_course: float = 0.91
    followup_weeks: int = 12
    # Individual maintenance: a late PHQ-9 >= 6 months after the last session
    # (RE-AIM, §2.2) for a share of those followed up.
    late_followup_share: float = 0.4
    late_maintained: float = 0.8  # responders still responding at the late follow-up (synthetic)
    late_recovered: float = 0.3  # non-responders responding by the late follow-up (synthetic)

    # --- rollout and support -------------------------------------------------
    wave_months: tuple[int, ...] = (6, 12, 20)  # months after the window start when each wave begins
    never_treated_districts: int = 2
    clinic_lag_max: int = 2  # a clinic starts 0-2 months after its district
    support_months: int = 18  # external support (training, supervision, A&F) after the clinic's start
    facilitation_share: float = 0.5  # random half of clinics get facilitation ...
    facilitation_months: int = 12  # ... for their first 12 months
    audit_feedback_share: float = 0.5  # random half (independently) get audit and feedback ...
    audit_feedback_delay: int = 3  # ... from month 3 (first data) to the end of support

    # --- implementation strategies: (strategy, target, effect) --------------
    # Scales: adoption = odds ratio, fidelity = difference, reach = rate ratio
    # (see TARGET_SCALES). Pairs not listed have no effect. Synthetic sizes;
    # lay workers needed weekly supervision (Friendship Bench, §7) and
    # value-based payment raised MHIP fidelity by 9-30% (§7).
    strategy_effects: tuple[tuple[str, str, float], ...] = (
        ("Conduct ongoing training", "fidelity", 0.05),
        ("Provide clinical supervision", "fidelity", 0.10),
        ("Facilitation", "adoption", 2.0),
        ("Facilitation", "fidelity", 0.03),
        ("Facilitation", "reach", 1.2),
        ("Audit and provide feedback", "fidelity", 0.07),
        ("Audit and provide feedback", "reach", 1.1),
    )
    fidelity_base: float = 0.55  # expected session fidelity after initial training alone (synthetic)
    provider_fidelity_sd: float = 0.06  # lay worker's own level around the clinic's expectation
    session_fidelity_sd: float = 0.05

    # --- maintenance (RE-AIM setting level, §2.2) -----------------------------
    sustain_probability: float = 0.5  # clinics that keep delivering after support ends
    sustained_intensity: float = 0.8  # programme intensity kept after support (synthetic voltage drop)
    stop_lag_max: int = 2  # non-sustaining clinics stop 0-2 months after support ends

    # --- staff ----------------------------------------------------------------
    lay_workers_min: int = 3  # 3-5 lay workers per clinic at the default size
    lay_workers_extra: int = 2
    lay_worker_caseload: int = 40  # PST sessions per lay worker per month used to size larger clinics
    lay_worker_attrition: float = 0.015  # monthly hazard of leaving (~17% a year; synthetic)
    screens_per_nurse: int = 300  # screens per nurse per month used to size larger clinics
    nurse_screen_share: float = 0.75  # screens done by nurses (the rest by GPs)

    # --- costs, USD (synthetic magnitudes for a low-income setting) -----------
    training_cost: float = 150.0  # per lay worker trained (3-5 day course, mhGAP-style, §7)
    supervision_cost: float = 120.0  # per clinic-month of weekly group supervision
    facilitation_cost: float = 400.0  # per clinic-month of external facilitation
    audit_feedback_cost: float = 60.0  # per clinic-month of data review and feedback
    stipend: float = 40.0  # per lay worker per month in post
    session_cost: float = 1.5  # materials and transport per PST session

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def end(self) -> dt.date:
        """Last day of the final month of the window."""
        return add_months(self.start, self.months) - dt.timedelta(days=1)

    @property
    def clinics(self) -> int:
        return self.districts * self.clinics_per_district

    def effect_of(self, strategy: str, target: str) -> float:
        """True effect of ``strategy`` on ``target`` on the target's scale (null when not listed)."""
        for name, tgt, value in self.strategy_effects:
            if name == strategy and tgt == target:
                return value
        return 0.0 if target == "fidelity" else 1.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif f.name == "strategy_effects":
                value = [{"strategy": s, "target": t, "effect": v} for s, t, v in value]
            elif isinstance(value, tuple) and value and isinstance(value[0], tuple):
                value = [{"dimension": d, "stratum": s, "factor": v} for d, s, v in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _validate(p: ExampleParameters) -> None:
    def need(ok: bool, what: str, value: object) -> None:
        if not ok:
            raise ParameterError(f"ExampleParameters: {what} (saw {value!r})")

    need(p.districts >= 1 and p.clinics_per_district >= 1, "districts and clinics_per_district must be >= 1",
         (p.districts, p.clinics_per_district))
    need(p.months >= 2, "months must be at least 2", p.months)
    need(p.start.day == 1, "start must be the first day of a month", p.start)
    need(p.persons >= 1, "persons must be positive", p.persons)
    need(0 <= p.never_treated_districts < p.districts, "never_treated_districts must be in [0, districts)",
         p.never_treated_districts)
    need(len(p.wave_months) >= 1 and all(0 <= m < p.months for m in p.wave_months),
         "wave_months must be non-empty and inside [0, months)", p.wave_months)
    need(len(p.age_shares) == 4 and len(p.disability_by_age) == 4, "age_shares and disability_by_age need 4 values",
         (p.age_shares, p.disability_by_age))
    need(len(p.wealth_shares_urban) == 5 and len(p.wealth_shares_rural) == 5, "wealth shares need 5 values",
         (p.wealth_shares_urban, p.wealth_shares_rural))
    need(p.planned_sessions >= 2, "planned_sessions must be >= 2", p.planned_sessions)
    need(p.usual_care_max_sessions >= 1, "usual_care_max_sessions must be >= 1", p.usual_care_max_sessions)
    need(p.screening_usual <= p.screening_programme <= 1, "need screening_usual <= screening_programme <= 1",
         (p.screening_usual, p.screening_programme))
    for name in (
        "urban_share", "minority_share", "female_share", "prevalence", "pst_acceptance", "adoption",
        "usual_care_start", "pst_dropout", "usual_care_dropout", "usual_care_response", "pst_response_one_session",
        "pst_response_full_course", "remission_given_response", "followup_one_session", "followup_full_course",
        "late_followup_share", "sustain_probability", "facilitation_share", "audit_feedback_share",
        "nurse_screen_share", "fidelity_base", "lay_worker_attrition", "deterioration_share",
    ):
        value = getattr(p, name)
        need(0 <= value <= 1, f"{name} must be a probability in [0, 1]", value)
    levels = {d.name: d.levels for d in DIMENSIONS}
    for f in fields(p):
        value = getattr(p, f.name)
        if f.name == "strategy_effects":
            for strategy, target, effect in value:
                need(strategy in STRATEGIES and target in TARGETS, "strategy_effects names an unknown strategy or "
                     f"target; strategies: {', '.join(STRATEGIES)}; targets: {', '.join(TARGETS)}",
                     (strategy, target))
                need(effect > 0 or target == "fidelity", "ratio effects must be positive", (strategy, target, effect))
        elif isinstance(value, tuple) and value and isinstance(value[0], tuple):
            for dim, level, factor in value:
                need(level in levels.get(dim, ()), f"{f.name} names an unknown dimension or level", (dim, level))
                need(factor > 0, f"{f.name} factors must be positive", (dim, level, factor))


def parameter_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(ExampleParameters))
