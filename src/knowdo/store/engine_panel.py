"""The episode table and the analysis panel as Ibis expressions that DuckDB, PostgreSQL and Spark all run.

The definitions are those of :mod:`knowdo.store.panel` (read its docstring
for the episode logic); only the spelling differs. That module writes DuckDB
SQL with constructs the other engines lack (ASOF JOIN, GROUPING SETS,
``arg_max``, ``GROUP BY ALL``, ``range()``), so here each one is rewritten
with operations that Ibis compiles for every backend:

* as-of join -> join on person and ``screen_date <= date``, keep the latest
  episode (``max(episode_no)``: episodes are numbered in date order);
* ``arg_max(score, date)`` -> ``row_number()`` over date descending among the
  rows with a score (``arg_max`` skips NULL arguments);
* GROUPING SETS -> one grouped query per equity dimension, stacked with
  UNION ALL (the total under dimension 'all');
* the month x stratum grid -> a small in-memory table built from the project
  file and cross-joined with the facilities;
* ``datediff('month', ...)`` -> year and month arithmetic on first-of-month dates.

Ibis is used rather than hand-written SQL per dialect because it already owns
the dialect differences (date truncation, intervals, filtered aggregates,
quoting) for all three engines; the equality with the DuckDB SQL panel is
tested on the example programme.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import ibis
import ibis.expr.types as ir

from knowdo.config import Project
from knowdo.schema import PANEL_COLUMN_NAMES, PANEL_COUNT_COLUMNS
from knowdo.store.panel import DETERIORATION_POINTS, FOLLOWUP_MIN_DAYS

KEY = ("site_id", "period", "dimension", "stratum")
PHQ9_ITEMS = tuple(f"item_{k}" for k in range(1, 10))


@dataclass(frozen=True)
class CanonicalTables:
    """The canonical tables as Ibis table expressions on one backend (``aggregates`` may be absent)."""

    sites: ir.Table
    persons: ir.Table
    encounters: ir.Table
    measures: ir.Table
    rollout: ir.Table
    population: ir.Table
    costs: ir.Table
    aggregates: ir.Table | None = None


def _month(value: ir.DateValue) -> ir.DateValue:
    return value.truncate("M").cast("date")


def _attach(left: ir.Table, right: ir.Table, keys: Sequence[str], *, how: str = "left") -> ir.Table:
    """Join ``right`` onto ``left`` by same-named keys, keeping ``left``'s key columns only.

    The right-hand keys are renamed first so that no engine sees two columns
    with one name, whatever Ibis's rules for join key de-duplication are.
    """
    renamed = right.rename({f"_r_{k}": k for k in keys})
    predicates = [left[k] == renamed[f"_r_{k}"] for k in keys]
    joined = left.join(renamed, predicates, how=how)
    return joined.drop(*[f"_r_{k}" for k in keys])


def _phq9(t: CanonicalTables) -> ir.Table:
    m = t.measures
    m = m.filter((m.instrument == "PHQ-9") & m.person_id.notnull())
    items = m[PHQ9_ITEMS[0]]
    for name in PHQ9_ITEMS[1:]:
        items = items + m[name]
    enc = t.encounters.select(encounter_id=t.encounters.encounter_id, enc_type=t.encounters.type)
    phq = _attach(
        m.select("measure_id", "person_id", "date", "encounter_id", "site_id",
                 score=ibis.coalesce(m.total.cast("float64"), items.cast("float64"))),
        enc, ["encounter_id"],
    )
    return phq.mutate(is_screen=ibis.coalesce(phq.enc_type, "") == "screen").drop("enc_type")


def _latest_episode(rows: ir.Table, positives: ir.Table, row_key: str, carry: Sequence[str]) -> ir.Table:
    """Give each row the latest episode opened on or before its date (an as-of join)."""
    p = positives.select(p_person=positives.person_id, p_date=positives.screen_date, p_episode=positives.episode_no)
    joined = rows.join(p, [rows.person_id == p.p_person, p.p_date <= rows.date])
    return joined.group_by([row_key, *carry]).aggregate(episode_no=joined.p_episode.max())


def _latest_score(rows: ir.Table, flag: str, name: str) -> ir.Table:
    """The score of the latest scored row with ``flag`` set, per episode (DuckDB's ``arg_max``)."""
    kept = rows.filter(rows[flag] & rows.score.notnull())
    order = ibis.row_number().over(
        group_by=[kept.person_id, kept.episode_no], order_by=[ibis.desc(kept.date), ibis.desc(kept.measure_id)]
    )
    ranked = kept.mutate(_rank=order)
    return ranked.filter(ranked._rank == 0).select("person_id", "episode_no", **{name: ranked.score})


def episodes_expr(t: CanonicalTables, project: Project) -> ir.Table:
    """One row per positive screen (episode) with its treatment, follow-up scores and the person's strata."""
    o = project.outcomes
    phq = _phq9(t)
    screens = phq.filter(phq.is_screen & (phq.score >= int(o.positive_threshold)))
    numbering = ibis.row_number().over(
        group_by=screens.person_id, order_by=[screens.date, screens.encounter_id, screens.measure_id]
    )
    positives = screens.select(
        "person_id", "site_id", screen_date=screens.date, baseline_phq9=screens.score, episode_no=numbering + 1
    )

    e = t.encounters
    sessions = e.filter(e.type == "session").select("encounter_id", "person_id", "date")
    sessions = _latest_episode(sessions, positives, "encounter_id", ["person_id", "date"])
    dose = sessions.group_by(["person_id", "episode_no"]).aggregate(
        start_date=sessions.date.min(), last_session=sessions.date.max(), sessions=sessions.count()
    )

    later = phq.filter(~phq.is_screen).select("measure_id", "person_id", "date", "score")
    later = _latest_episode(later, positives, "measure_id", ["person_id", "date", "score"])
    scored = _attach(dose, later, ["person_id", "episode_no"], how="inner")
    maintenance = scored.last_session + ibis.interval(months=int(o.maintenance_months))
    scored = scored.mutate(
        in_followup=(scored.date >= scored.start_date + ibis.interval(days=FOLLOWUP_MIN_DAYS))
        & (scored.date < maintenance),
        in_late=scored.date >= maintenance,
    )
    followup_dates = scored.group_by(["person_id", "episode_no"]).aggregate(
        followup_date=scored.date.max(where=scored.in_followup)
    )

    strata = [s.name for s in project.strata]
    people = t.persons.select("person_id", *strata)
    districts = t.sites.select("site_id", district_id=t.sites.parent_id)
    ep = _attach(positives, people, ["person_id"], how="inner")
    ep = _attach(ep, districts, ["site_id"])
    ep = _attach(ep, dose, ["person_id", "episode_no"])
    ep = _attach(ep, followup_dates, ["person_id", "episode_no"])
    ep = _attach(ep, _latest_score(scored, "in_followup", "followup_phq9"), ["person_id", "episode_no"])
    ep = _attach(ep, _latest_score(scored, "in_late", "late_followup_phq9"), ["person_id", "episode_no"])

    in_window = ep.start_date <= ep.screen_date + ibis.interval(days=int(o.start_window_days))
    # the SQL panel writes (1 - fraction) as a decimal literal; the same exact decimal, then one rounding to float
    factor = float(1 - Decimal(repr(float(o.response_fraction))))
    return ep.select(
        "person_id", "episode_no", "site_id", "district_id", "screen_date", "baseline_phq9",
        started=ibis.coalesce(in_window, False),
        start_date=ep.start_date,
        sessions=ibis.coalesce(ep.sessions, 0).cast("int64"),
        adequate=ibis.coalesce(in_window & (ep.sessions >= int(o.adequate_sessions)), False),
        last_contact_date=ibis.coalesce(ep.last_session, ep.screen_date),
        followup_phq9=ep.followup_phq9,
        followup_date=ep.followup_date,
        late_followup_phq9=ep.late_followup_phq9,
        responded=ep.followup_phq9 <= ep.baseline_phq9 * factor,
        remitted=ep.followup_phq9 < int(o.remission_below),
        deteriorated=ep.followup_phq9 >= ep.baseline_phq9 + DETERIORATION_POINTS,
        **{name: ep[name] for name in strata},
    )


def _stratified(
    rows: ir.Table, project: Project, metrics: Callable[[ir.Table], dict[str, ir.Value]]
) -> ir.Table:
    """Aggregate by site x month in total and by every equity dimension in one pass (GROUPING SETS, portably).

    Each row is repeated once per dimension (a cross join with the list of
    dimensions) carrying that dimension's level, then grouped once. A missing
    level stays a group of its own and is labelled 'all', as GROUPING SETS
    with ``coalesce`` labels it in the SQL panel.
    """
    dimensions = ibis.memtable({"dimension": ["all", *(s.name for s in project.strata)]},
                               schema={"dimension": "string"})
    spread = rows.cross_join(dimensions)
    level = ibis.cases(
        *((spread.dimension == s.name, spread[s.name]) for s in project.strata), else_=ibis.null("string")
    ) if project.strata else ibis.null("string")
    spread = spread.mutate(_level=level)
    grouped = spread.group_by(["site_id", "period", "dimension", "_level"]).aggregate(**metrics(spread))
    labelled = grouped.mutate(stratum=ibis.coalesce(grouped._level, "all"))
    return labelled.select(*KEY, *[c for c in grouped.columns if c not in {*KEY, "_level"}])


def _person_counts(t: CanonicalTables, project: Project, episodes: ir.Table) -> list[ir.Table]:
    strata = [s.name for s in project.strata]
    people = t.persons.select("person_id", *strata)
    e, m = t.encounters, t.measures
    screen_encounters = e.filter(e.type == "screen").select("encounter_id", "site_id", "person_id", "date")
    phq9 = m.filter(m.instrument == "PHQ-9").select("encounter_id")
    screens = _attach(screen_encounters, phq9, ["encounter_id"], how="inner")
    screens = screens.select("site_id", "person_id", period=_month(screens.date)).distinct()
    screened = _stratified(
        _attach(screens, people, ["person_id"], how="inner"), project, lambda r: {"screened": r.count()}
    )

    def cascade(r: ir.Table) -> dict[str, ir.Value]:
        def count(condition: ir.BooleanValue) -> ir.Value:
            return r.count(where=ibis.coalesce(condition, False))

        return {
            "positive": r.count(),
            "started": count(r.started),
            "adequate": count(r.adequate),
            "followed_up": count(r.started & r.followup_phq9.notnull()),
            "responded": count(r.started & r.responded),
            "remitted": count(r.started & r.remitted),
            "effective": count(r.adequate & r.responded),
        }

    cascades = _stratified(episodes.mutate(period=_month(episodes.screen_date)), project, cascade)

    sessions = e.filter(e.type == "session").select("person_id", "site_id", "fidelity", period=_month(e.date))
    delivered = _stratified(
        _attach(sessions, people, ["person_id"], how="inner"),
        project,
        lambda r: {"sessions": r.count(), "fidelity_sum": r.fidelity.sum(), "fidelity_n": r.fidelity.count()},
    )
    return [screened, cascades, delivered]


def _aggregate_counts(t: CanonicalTables) -> list[ir.Table]:
    if t.aggregates is None:
        return []
    a = t.aggregates
    a = a.mutate(period=_month(a.period))
    counts = {c: a.value.sum(where=a.indicator == c) for c in PANEL_COUNT_COLUMNS if c != "followed_up"}
    return [a.group_by(list(KEY)).aggregate(**counts)]


def _grid(t: CanonicalTables, project: Project) -> ir.Table:
    months = []
    month = project.start.replace(day=1)
    while month <= project.end:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    levels = [("all", "all"), *((s.name, level) for s in project.strata for level in s.levels)]
    cells = ibis.memtable(
        {
            "period": [m for m in months for _ in levels],
            "dimension": [d for _ in months for d, _s in levels],
            "stratum": [s for _ in months for _d, s in levels],
        },
        schema={"period": "date", "dimension": "string", "stratum": "string"},
    )
    sites = t.sites.filter(t.sites.level == "facility").select("site_id", district_id=t.sites.parent_id)
    return sites.cross_join(cells)


def panel_expr(
    t: CanonicalTables, project: Project, *, source: str = "persons", episodes: ir.Table | None = None
) -> ir.Table:
    """The site x month x (dimension, stratum) panel with the columns of :data:`knowdo.schema.PANEL_COLUMNS`.

    ``source`` is 'persons' (cascade from person-level encounters) or
    'aggregates' (counts reported by a DHIS2-style source). ``episodes`` is
    :func:`episodes_expr` already materialised on the engine, if it is (Spark
    would otherwise recompute it for every use).
    """
    panel = _grid(t, project)
    if source == "aggregates":
        count_tables = _aggregate_counts(t)
    else:
        count_tables = _person_counts(t, project, episodes if episodes is not None else episodes_expr(t, project))
    for counts in count_tables:
        panel = _attach(panel, counts, KEY)

    p = t.population
    pop = p.mutate(period=_month(p.period)).group_by(list(KEY)).aggregate(
        population=p.population.sum().cast("int64"), need=(p.population * p.prevalence).sum()
    )
    panel = _attach(panel, pop, KEY)
    r = t.rollout
    r = r.filter(r.kind == "intervention")
    starts = r.group_by("site_id").aggregate(first_treated=_month(r.start.min()))
    panel = _attach(panel, starts, ["site_id"])
    c = t.costs
    spend = c.mutate(period=_month(c.period)).group_by(["site_id", "period"]).aggregate(cost=c.amount.sum())
    panel = _attach(panel, spend, ["site_id", "period"])

    counts = {}
    for name in PANEL_COUNT_COLUMNS:
        if source == "aggregates" and name == "followed_up":  # aggregate sources do not report follow-up: unknown
            counts[name] = ibis.null("int64")
        elif name in panel.columns:
            counts[name] = ibis.coalesce(panel[name], 0).cast("int64")
        else:
            counts[name] = ibis.literal(0, "int64")
    has_fidelity = "fidelity_sum" in panel.columns
    months_since = (panel.period.year() - panel.first_treated.year()) * 12 + (
        panel.period.month() - panel.first_treated.month()
    )
    out = panel.select(
        "site_id", "district_id", "period", "dimension", "stratum", "population", "need",
        **counts,
        fidelity_sum=ibis.coalesce(panel.fidelity_sum, 0.0) if has_fidelity else ibis.literal(0.0, "float64"),
        fidelity_n=ibis.coalesce(panel.fidelity_n, 0).cast("int64") if has_fidelity else ibis.literal(0, "int64"),
        cost=ibis.cases((panel.dimension == "all", ibis.coalesce(panel.cost, 0.0)), else_=ibis.null("float64")),
        treated=ibis.coalesce(panel.period >= panel.first_treated, False).cast("int32"),
        first_treated=panel.first_treated,
        event_time=months_since.cast("int32"),
    )
    return out.select(*PANEL_COLUMN_NAMES).order_by(list(KEY))
