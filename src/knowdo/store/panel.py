"""The analysis panel and the episode table, built in SQL inside the store.

Grain of the panel: facility x month x (equity dimension, stratum), with the
totals under dimension 'all'. Every stratified count comes from one scan with
GROUPING SETS, so adding a dimension costs one more grouping, not one more
pass over the encounters.

Episode logic (person-level data):

* a *screen* is a PHQ-9 recorded at an encounter of type 'screen'; people
  screened are counted in the month and site of the screen;
* each positive screen (total >= ``positive_threshold``) opens an *episode*;
  sessions and later PHQ-9s belong to the latest episode opened on or before
  their date (an as-of join);
* *started*: first session within ``start_window_days`` of the screen;
  *adequate*: at least ``adequate_sessions`` sessions (minimally adequate
  treatment for this programme's planned dose);
* *follow-up* PHQ-9: the latest one at least 28 days after the first session
  and before the maintenance window; *late follow-up*: the latest one at least
  ``maintenance_months`` after the last session (RE-AIM individual maintenance);
* response: follow-up <= (1 - ``response_fraction``) x baseline; remission:
  follow-up < ``remission_below``; deterioration (a recorded harm): follow-up
  at least 5 points above baseline (the PHQ-9's minimal clinically important
  difference, Lowe et al. 2004).

Cascade counts are attributed to the month of the positive screen, so within
a row screened >= positive >= started >= adequate >= effective.

When the store holds aggregates but no encounters (a DHIS2-style source), the
same panel is built from the aggregate counts instead.
"""

from __future__ import annotations

import pandas as pd

from knowdo.config import Project
from knowdo.schema import PANEL_COLUMN_NAMES, PANEL_COUNT_COLUMNS
from knowdo.store.database import Store, quote

DETERIORATION_POINTS = 5  # PHQ-9 minimal clinically important difference (Lowe et al., Med Care 2004)
FOLLOWUP_MIN_DAYS = 28  # earliest follow-up: 4 weeks after the first session (MHIP fidelity window)


def _episodes_sql(project: Project) -> str:
    o = project.outcomes
    strata = ", ".join(f"p.{quote(s.name)}" for s in project.strata)
    strata = f", {strata}" if strata else ""
    return f"""
    WITH phq AS (
        SELECT m.person_id, m.date, m.encounter_id, m.site_id,
               coalesce(m.total, m.item_1 + m.item_2 + m.item_3 + m.item_4 + m.item_5 + m.item_6
                        + m.item_7 + m.item_8 + m.item_9) AS score,
               coalesce(e.type, '') = 'screen' AS is_screen
        FROM measures m LEFT JOIN encounters e USING (encounter_id)
        WHERE m.instrument = 'PHQ-9' AND m.person_id IS NOT NULL
    ),
    positives AS (
        SELECT person_id, date AS screen_date, site_id, score AS baseline_phq9,
               row_number() OVER (PARTITION BY person_id ORDER BY date, encounter_id) AS episode_no
        FROM phq WHERE is_screen AND score >= {int(o.positive_threshold)}
    ),
    sessions AS (
        SELECT s.person_id, s.date, p.episode_no
        FROM (SELECT person_id, date FROM encounters WHERE type = 'session') s
        ASOF JOIN positives p ON s.person_id = p.person_id AND s.date >= p.screen_date
    ),
    dose AS (
        SELECT person_id, episode_no, min(date) AS start_date, max(date) AS last_session, count(*) AS sessions
        FROM sessions GROUP BY ALL
    ),
    later AS (
        SELECT f.person_id, f.date, f.score, p.episode_no
        FROM (SELECT person_id, date, score FROM phq WHERE NOT is_screen) f
        ASOF JOIN positives p ON f.person_id = p.person_id AND f.date >= p.screen_date
    ),
    scored AS (
        SELECT d.person_id, d.episode_no,
               arg_max(l.score, l.date) FILTER (
                   WHERE l.date >= d.start_date + INTERVAL {FOLLOWUP_MIN_DAYS} DAY
                   AND l.date < d.last_session + INTERVAL {int(o.maintenance_months)} MONTH) AS followup_phq9,
               max(l.date) FILTER (
                   WHERE l.date >= d.start_date + INTERVAL {FOLLOWUP_MIN_DAYS} DAY
                   AND l.date < d.last_session + INTERVAL {int(o.maintenance_months)} MONTH) AS followup_date,
               arg_max(l.score, l.date) FILTER (
                   WHERE l.date >= d.last_session + INTERVAL {int(o.maintenance_months)} MONTH) AS late_followup_phq9
        FROM dose d JOIN later l USING (person_id, episode_no)
        GROUP BY ALL
    )
    SELECT ep.person_id, ep.episode_no, ep.site_id, s.parent_id AS district_id,
           ep.screen_date, ep.baseline_phq9,
           coalesce(d.start_date <= ep.screen_date + INTERVAL {int(o.start_window_days)} DAY, false) AS started,
           d.start_date,
           coalesce(d.sessions, 0) AS sessions,
           coalesce(d.start_date <= ep.screen_date + INTERVAL {int(o.start_window_days)} DAY
                    AND d.sessions >= {int(o.adequate_sessions)}, false) AS adequate,
           coalesce(d.last_session, ep.screen_date) AS last_contact_date,
           sc.followup_phq9, sc.followup_date, sc.late_followup_phq9,
           sc.followup_phq9 <= (1 - {float(o.response_fraction)}) * ep.baseline_phq9 AS responded,
           sc.followup_phq9 < {int(o.remission_below)} AS remitted,
           sc.followup_phq9 >= ep.baseline_phq9 + {DETERIORATION_POINTS} AS deteriorated
           {strata}
    FROM positives ep
    JOIN persons p USING (person_id)
    LEFT JOIN sites s ON s.site_id = ep.site_id
    LEFT JOIN dose d USING (person_id, episode_no)
    LEFT JOIN scored sc USING (person_id, episode_no)
    """


def _grouping(project: Project, prefix: str = "") -> tuple[str, str, str]:
    """SQL pieces that stratify a grouped query by every dimension at once."""
    names = [quote(s.name) for s in project.strata]
    sets = ["(site_id, period)"] + [f"(site_id, period, {prefix}{n})" for n in names]
    dimension = "CASE " + " ".join(
        f"WHEN grouping({prefix}{n}) = 0 THEN '{s.name}'" for n, s in zip(names, project.strata, strict=True)
    ) + " ELSE 'all' END" if names else "'all'"
    stratum = f"coalesce({', '.join(prefix + n for n in names)}, 'all')" if names else "'all'"
    return f"GROUPING SETS ({', '.join(sets)})", dimension, stratum


def _person_counts_sql(project: Project) -> str:
    strata = ", ".join(f"p.{quote(s.name)}" for s in project.strata)
    strata_sel = f", {strata}" if strata else ""
    sets, dimension, stratum = _grouping(project)
    return f"""
    screens AS (
        SELECT DISTINCT e.site_id, date_trunc('month', e.date) AS period, e.person_id
        FROM encounters e JOIN measures m USING (encounter_id)
        WHERE e.type = 'screen' AND m.instrument = 'PHQ-9'
    ),
    screened AS (
        SELECT site_id, period, {dimension} AS dimension, {stratum} AS stratum, count(*) AS screened
        FROM (SELECT sc.site_id, sc.period {strata_sel} FROM screens sc JOIN persons p USING (person_id))
        GROUP BY {sets}
    ),
    cascade AS (
        SELECT site_id, period, {dimension} AS dimension, {stratum} AS stratum,
               count(*) AS positive,
               count(*) FILTER (WHERE started) AS started,
               count(*) FILTER (WHERE adequate) AS adequate,
               count(*) FILTER (WHERE started AND followup_phq9 IS NOT NULL) AS followed_up,
               count(*) FILTER (WHERE started AND responded) AS responded,
               count(*) FILTER (WHERE started AND remitted) AS remitted,
               count(*) FILTER (WHERE adequate AND responded) AS effective
        FROM (SELECT *, date_trunc('month', screen_date) AS period FROM episodes)
        GROUP BY {sets}
    ),
    delivered AS (
        SELECT site_id, period, {dimension} AS dimension, {stratum} AS stratum,
               count(*) AS sessions, sum(fidelity) AS fidelity_sum, count(fidelity) AS fidelity_n
        FROM (SELECT e.site_id, date_trunc('month', e.date) AS period, e.fidelity {strata_sel}
              FROM encounters e JOIN persons p USING (person_id) WHERE e.type = 'session')
        GROUP BY {sets}
    ),
    counts AS (
        SELECT * FROM screened
        FULL JOIN cascade USING (site_id, period, dimension, stratum)
        FULL JOIN delivered USING (site_id, period, dimension, stratum)
    )
    """


def _aggregate_counts_sql() -> str:
    pivots = ",\n".join(
        f"sum(value) FILTER (WHERE indicator = '{c}') AS {c}" for c in PANEL_COUNT_COLUMNS if c != "followed_up"
    )
    return f"""
    counts AS (
        SELECT site_id, date_trunc('month', period) AS period, dimension, stratum,
               {pivots},
               CAST(NULL AS BIGINT) AS followed_up,
               CAST(NULL AS DOUBLE) AS fidelity_sum, CAST(NULL AS BIGINT) AS fidelity_n
        FROM aggregates GROUP BY ALL
    )
    """


def _grid_sql(project: Project) -> str:
    levels = ["('all', 'all')"] + [
        f"('{s.name}', '{level.replace(chr(39), chr(39) * 2)}')" for s in project.strata for level in s.levels
    ]
    return f"""
    WITH months AS (
        SELECT CAST(range AS DATE) AS period
        FROM range(DATE '{project.start:%Y-%m-01}', DATE '{project.end:%Y-%m-%d}' + INTERVAL 1 DAY, INTERVAL 1 MONTH)
    ),
    strata(dimension, stratum) AS (VALUES {", ".join(levels)}),
    grid AS (
        SELECT s.site_id, s.parent_id AS district_id, m.period, st.dimension, st.stratum
        FROM sites s, months m, strata st WHERE s.level = 'facility'
    ),
    starts AS (
        SELECT site_id, CAST(date_trunc('month', min(start)) AS DATE) AS first_treated
        FROM rollout WHERE kind = 'intervention' GROUP BY site_id
    ),
    spend AS (
        SELECT site_id, CAST(date_trunc('month', period) AS DATE) AS period, sum(amount) AS cost
        FROM costs GROUP BY ALL
    ),
    pop AS (
        SELECT site_id, CAST(date_trunc('month', period) AS DATE) AS period, dimension, stratum,
               CAST(sum(population) AS BIGINT) AS population, sum(population * prevalence) AS need
        FROM population GROUP BY ALL
    ),
    """


def panel_sql(project: Project, *, source: str) -> str:
    counts = _aggregate_counts_sql() if source == "aggregates" else _person_counts_sql(project)
    count_cols = ",\n".join(f"CAST(coalesce(c.{c}, 0) AS BIGINT) AS {c}" for c in PANEL_COUNT_COLUMNS)
    if source == "aggregates":  # aggregate sources do not report follow-up; leave it unknown, not zero
        count_cols = count_cols.replace("CAST(coalesce(c.followed_up, 0) AS BIGINT)", "c.followed_up")
    return (
        _grid_sql(project)
        + counts.strip().removesuffix(",")
        + f"""
    SELECT g.site_id, g.district_id, g.period, g.dimension, g.stratum,
           p.population, p.need,
           {count_cols},
           coalesce(c.fidelity_sum, 0) AS fidelity_sum, CAST(coalesce(c.fidelity_n, 0) AS BIGINT) AS fidelity_n,
           CASE WHEN g.dimension = 'all' THEN coalesce(sp.cost, 0) END AS cost,
           CAST(coalesce(g.period >= st.first_treated, false) AS INTEGER) AS treated,
           st.first_treated,
           CAST(datediff('month', st.first_treated, g.period) AS INTEGER) AS event_time
    FROM grid g
    LEFT JOIN pop p USING (site_id, period, dimension, stratum)
    LEFT JOIN counts c ON c.site_id = g.site_id AND CAST(c.period AS DATE) = g.period
                       AND c.dimension = g.dimension AND c.stratum = g.stratum
    LEFT JOIN starts st ON st.site_id = g.site_id
    LEFT JOIN spend sp ON sp.site_id = g.site_id AND sp.period = g.period AND g.dimension = 'all'
    ORDER BY g.site_id, g.period, g.dimension, g.stratum
    """
    )


def panel_source(store: Store) -> str:
    """'persons' when encounters are loaded, else 'aggregates' (DHIS2-style counts)."""
    counts = store.row_counts()
    if counts.get("encounters", 0) > 0:
        return "persons"
    if counts.get("aggregates", 0) > 0:
        return "aggregates"
    return "persons"


def build_panel(store: Store, project: Project) -> str:
    """Materialise ``episodes`` and ``panel`` tables in the store; return the source used."""
    source = panel_source(store)
    if source == "persons":
        store.execute(f"CREATE OR REPLACE TABLE episodes AS {_episodes_sql(project)}")
    store.execute(f"CREATE OR REPLACE TABLE panel AS {panel_sql(project, source=source)}")
    return source


def read_panel(store: Store) -> pd.DataFrame:
    frame = store.query(f"SELECT {', '.join(PANEL_COLUMN_NAMES)} FROM panel")
    frame["period"] = pd.to_datetime(frame["period"])
    frame["first_treated"] = pd.to_datetime(frame["first_treated"])
    return frame


def read_episodes(store: Store) -> pd.DataFrame:
    if not store.has_table("episodes"):
        return pd.DataFrame()
    frame = store.query("SELECT * FROM episodes ORDER BY person_id, episode_no")
    for column in ("screen_date", "start_date", "last_contact_date", "followup_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def read_providers(store: Store) -> pd.DataFrame:
    return store.query(
        """
        SELECT p.provider_id, p.site_id, p.cadre, p.trained_date, p.left_date,
               count(e.encounter_id) AS sessions_delivered, min(e.date) AS first_session_date
        FROM providers p
        LEFT JOIN encounters e ON e.provider_id = p.provider_id AND e.type = 'session'
        GROUP BY ALL ORDER BY p.provider_id
        """
    )


def read_perceptions(store: Store) -> pd.DataFrame:
    return store.query(
        """
        SELECT measure_id, provider_id, site_id, date, instrument, total, item_1, item_2, item_3, item_4
        FROM measures WHERE instrument IN ('AIM', 'IAM', 'FIM') ORDER BY measure_id
        """
    )
