"""Report sections about the data themselves: what changed since the last run, and data quality.

Both read finished objects: the store's change log (one row per load and
table, see :class:`knowdo.store.Store`) and a
:class:`~knowdo.ingest.quality.DataQuality`. Only counts reach the page,
never a person's key or value. Row counts of person-level tables are counts
of people (or of their contacts), so they pass the disclosure rule of
:mod:`knowdo.report.publish` with everything else: in the tables when the
report is built, and in the sentences here, which are written from the
already-suppressed figures.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from knowdo.ingest.quality import DataQuality
from knowdo.outcomes import Unit
from knowdo.report.publish import SUPPRESSED, UNIT_KEY, suppress_frame
from knowdo.report.sections import ReportSection, ReportTable

CHANGE_COUNTS = ("added", "corrected", "removed", "unchanged")
# What a row of each canonical table stands for, as the disclosure rule judges it: rows of persons and
# measures are people, encounters are contacts (sessions), providers are staff; the other tables hold one
# row per site, site-month or site-strategy, which no count of can single out a person.
TABLE_UNITS: dict[str, Unit] = {
    "persons": "people",
    "measures": "people",
    "encounters": "sessions",
    "providers": "providers",
    "sites": "sites",
    "rollout": "sites",
    "population": "sites",
    "aggregates": "sites",
    "costs": "sites",
}
HISTORY_LOADS = 12  # earlier loads listed in the history table
LISTED_FINDINGS = 40  # flagged findings listed one by one per check; the rest are in results.json
NO_COUNTS: tuple[str, ...] = ()


def _plain(frame: pd.DataFrame, caption: str, note: str = "") -> ReportTable:
    return ReportTable(frame, caption, count_columns=NO_COUNTS, dependent_columns=NO_COUNTS, note=note)


def _latest(log: pd.DataFrame) -> tuple[int | None, pd.DataFrame]:
    if log.empty:
        return None, log
    load_id = int(log["load_id"].max())
    return load_id, log[log["load_id"] == load_id].reset_index(drop=True)


def _change_table(latest: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({
        "table": latest["table_name"].astype(str),
        **{c: pd.to_numeric(latest[c]).astype(int) for c in CHANGE_COUNTS},
        "new_months": latest["new_periods"].fillna("").astype(str).map(month_ranges),
        "new_sites": pd.to_numeric(latest["new_sites"]).fillna(0).astype(int),
        UNIT_KEY: latest["table_name"].map(TABLE_UNITS).fillna("people"),
    })
    return frame


def month_ranges(months: str) -> str:
    """Comma-separated ``YYYY-MM`` months as runs: ``2024-01 to 2024-03, 2024-06``.

    Examples
    --------
    >>> month_ranges("2024-01,2024-02,2024-03,2024-06")
    '2024-01 to 2024-03, 2024-06'
    """
    found = sorted({m.strip() for m in months.split(",") if m.strip()})
    if not found:
        return ""
    index = [int(m[:4]) * 12 + int(m[5:7]) for m in found]
    runs: list[tuple[str, str]] = []
    for month, number, previous in zip(found, index, [None, *index[:-1]], strict=True):
        if previous is not None and number == previous + 1:
            runs[-1] = (runs[-1][0], month)
        else:
            runs.append((month, month))
    return ", ".join(a if a == b else f"{a} to {b}" for a, b in runs)


def _published(frame: pd.DataFrame, threshold: int, rounding: int | None) -> pd.DataFrame:
    return suppress_frame(frame, threshold=threshold, rounding=rounding, count_columns=CHANGE_COUNTS).frame


def _count(value: Any, threshold: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"fewer than {threshold}"
    return f"{int(value):,}"


def change_sentences(log: pd.DataFrame, loads: pd.DataFrame, *, threshold: int, rounding: int | None = None) -> str:
    """A few sentences on the latest load against the one before, from the published (suppressed) counts."""
    load_id, latest = _latest(log)
    if load_id is None:
        return "The store has no change log yet: load the project to start one."
    when = ""
    row = loads[loads["load_id"] == load_id] if len(loads) else loads
    if len(row):
        when = f" on {pd.Timestamp(row['loaded_at'].iloc[0]):%d %B %Y at %H:%M} UTC"
    if log["load_id"].nunique() == 1 and len(loads) <= 1:
        return (f"Load #{load_id}{when} is the first load of this project's store, so every row is new; later "
                "runs will say here what each new pull added, corrected or removed.")
    table = _published(_change_table(latest), threshold, rounding)
    changed = table[(table[list(CHANGE_COUNTS[:3])].fillna(1) > 0).any(axis=1) | table[SUPPRESSED]]
    if changed.empty:
        return (f"No change since the last run: load #{load_id}{when} brought exactly the rows and values the "
                "store already held (re-running the same pull adds nothing).")
    parts = []
    for _, r in changed.iterrows():
        if r[SUPPRESSED]:
            parts.append(f"{r['table']} changed, by counts too small to publish")
            continue
        bits = [f"{_count(r[c], threshold)} {verb}" for c, verb in
                (("added", "rows added"), ("corrected", "rows with corrected values"), ("removed", "rows removed"))
                if r[c] is None or (isinstance(r[c], float) and math.isnan(r[c])) or r[c] > 0]
        if r["new_months"]:
            bits.append(f"new months {r['new_months']}")
        if r["new_sites"] and r["table"] != "sites":
            bits.append(f"{int(r['new_sites'])} site(s) reporting for the first time")
        parts.append(f"{r['table']}: {', '.join(bits)}")
    return (f"Since the last run, load #{load_id}{when} changed {len(changed)} table(s). " + "; ".join(parts) + ". "
            "A corrected value replaced the old one; every change (with the old and new value) is kept in the "
            "store's change log.")


def changes_section(log: pd.DataFrame, loads: pd.DataFrame, *, threshold: int,
                    rounding: int | None = None) -> ReportSection:
    """'What changed since the last run': the latest load's counts per table, and the recent loads.

    ``log`` is :meth:`knowdo.store.Store.change_log` and ``loads``
    :meth:`knowdo.store.Store.loads`.
    """
    intro = change_sentences(log, loads, threshold=threshold, rounding=rounding)
    load_id, latest = _latest(log)
    tables: list[ReportTable] = []
    if load_id is not None:
        tables.append(ReportTable(
            _change_table(latest), f"Load #{load_id}: rows added, corrected, removed and unchanged, by table",
            count_columns=CHANGE_COUNTS, dependent_columns=NO_COUNTS, hidden_columns=(UNIT_KEY,),
            note="Counts of people, contacts and providers follow the disclosure rule; counts of site-level "
                 "rows (sites, months, indicators) are shown as they are."))
        moved = log[(log[["added", "removed", "corrected"]] > 0).any(axis=1)]
        names = {int(str(k)): ", ".join(map(str, g["table_name"])) for k, g in moved.groupby("load_id")}
        ids = sorted({int(i) for i in log["load_id"]})
        history = pd.DataFrame({"load_id": ids, "tables_changed": [names.get(i, "none") for i in ids]})
        if len(loads):
            stamps = loads.assign(loaded_at=pd.to_datetime(loads["loaded_at"]).dt.strftime("%Y-%m-%d %H:%M UTC"))
            history = history.merge(stamps[["load_id", "loaded_at", "same_files"]], on="load_id", how="left")
            history = history[["load_id", "loaded_at", "same_files", "tables_changed"]]
        tables.append(_plain(history.sort_values("load_id", ascending=False).head(HISTORY_LOADS),
                             "Recent loads and the tables each one changed"))
    notes = ["Rows are matched on each table's key (for example site, month, indicator and stratum for "
             "aggregate counts); a row whose key is new is added, one whose key is gone is removed, and one whose "
             "other values differ is corrected."]
    return ReportSection("What changed since the last run", intro, tables=tables, notes=notes, key="changes")


def changes_results(log: pd.DataFrame, loads: pd.DataFrame, *, threshold: int,
                    rounding: int | None = None) -> dict[str, Any]:
    """The same figures for results.json: one record per table and kind of change, its count in ``n``.

    ``n`` and ``unit`` let :func:`~knowdo.report.publish.publishable_results`
    suppress small counts of people exactly as the page does.
    """
    load_id, latest = _latest(log)
    records: list[dict[str, Any]] = []
    for _, row in _change_table(latest).iterrows() if load_id is not None else []:
        for change in CHANGE_COUNTS:
            records.append({"table": row["table"], "change": change, "n": int(row[change]),
                            "unit": row[UNIT_KEY]})
    return {"summary": change_sentences(log, loads, threshold=threshold, rounding=rounding),
            "load_id": load_id, "tables": records}


def quality_section(quality: DataQuality | None) -> ReportSection:
    """Data quality in the WHO Data Quality Review / DHIS2 style: what was checked and what was found."""
    title = "Data quality"
    if quality is None:
        return ReportSection(title, "There were no monthly facility counts to check.", key="data-quality")
    s = quality.settings
    completeness, by_site = quality.completeness, quality.timeliness_by_site()
    outliers, related, over_time = quality.outliers, quality.related, quality.over_time
    judged = int(by_site["judged"].sum()) if len(by_site) else 0
    on_time = int(by_site["on_time"].sum()) if len(by_site) else 0
    overview = pd.DataFrame([
        {"check": "Completeness", "checked": len(completeness), "flagged": int(completeness["below_target"].sum()),
         "rule": f"below {s['target']:g}% of months reported (facility x indicator series)"},
        {"check": "Timeliness", "checked": judged, "flagged": judged - on_time,
         "rule": f"reported more than {s['deadline_days']:g} days after the month ended (facility-months)"},
        {"check": "Outliers (extreme)", "checked": None, "flagged": int((outliers["severity"] == "extreme").sum()),
         "rule": f"at least {s['extreme']:g} SD from the facility's mean (monthly values)"},
        {"check": "Outliers (moderate)", "checked": None,
         "flagged": int((outliers["severity"] == "moderate").sum()),
         "rule": f"{s['moderate']:g} to {s['extreme']:g} SD from the facility's mean (monthly values)"},
        {"check": "Consistency between related indicators", "checked": len(related),
         "flagged": int(related["flagged"].sum()) if len(related) else 0,
         "rule": f"facility ratio more than {s['consistency']:g}% from the overall ratio"},
        {"check": "Consistency over time", "checked": len(over_time),
         "flagged": int(over_time["flagged"].sum()) if len(over_time) else 0,
         "rule": f"latest 12 months more than {s['consistency']:g}% from earlier years (needs 24 months)"},
    ])
    tables = [_plain(overview, "Data-quality checks and findings")]
    low = _one_row_per_site(completeness[completeness["below_target"]]).sort_values("percent")
    if len(low):
        tables.append(_plain(low.drop(columns="below_target").head(LISTED_FINDINGS),
                             "Facility series below the completeness target", _more(len(low))))
    if len(by_site):
        tables.append(_plain(by_site.sort_values(["below_target", "percent_on_time"], ascending=[False, True]),
                             "Timeliness by facility"))
    if len(outliers):
        shown = outliers.assign(z=outliers["z"].round(2)).sort_values("z", key=abs, ascending=False)
        tables.append(ReportTable(
            shown[["site_id", "indicator", "period", "value", "mean", "z", "severity"]].head(LISTED_FINDINGS),
            "Outlying monthly values", count_columns=("value",), dependent_columns=("mean", "z"),
            note=_more(len(outliers))))
    odd = related[related["flagged"]] if len(related) else related
    if len(odd):
        tables.append(_plain(odd.drop(columns="flagged").head(LISTED_FINDINGS),
                             "Facilities whose ratio of related indicators stands out", _more(len(odd))))
    drift = over_time[over_time["flagged"]] if len(over_time) else over_time
    if len(drift):
        tables.append(_plain(drift.drop(columns="flagged").head(LISTED_FINDINGS),
                             "Series whose latest year departs from earlier years", _more(len(drift))))
    intro = (
        "These checks follow the WHO Data Quality Review and DHIS2: are the expected monthly reports there "
        "(completeness), did they arrive in time (timeliness), are any monthly values far from a facility's usual "
        "level (outliers at 2 and 3 standard deviations), and do related counts agree with each other and over "
        "time (internal consistency)? "
        f"{int(overview['flagged'].sum())} finding(s) in all. Findings are reported, never used to drop data: "
        "every figure in this report uses all the data loaded, so read flagged facilities' figures with care."
    )
    notes = [
        f"Timeliness: the reporting time is {quality.timeliness_basis}. A month counts as on time when it was "
        f"reported within {s['deadline_days']:g} days of its end (DHIS2's default for a data set). Months that "
        "were already overdue when the store's first load brought them in are not judged: they were back-filled, "
        "not reported late.",
        "Thresholds are the WHO Data Quality Tool defaults: completeness target 90%, moderate outliers 2 SD, "
        "extreme outliers 3 SD, consistency 33%.",
        "A flag asks for a check, not a correction: in a programme that is scaling up, counts rising year on "
        "year and clinics differing from the average are expected, and a clinic that has not started yet "
        "reports few months.",
    ]
    return ReportSection(title, intro, tables=tables, notes=notes, key="data-quality")


def quality_results(quality: DataQuality | None) -> dict[str, Any]:
    """Data quality for results.json: every finding, with outlying values as counts (``count``) under the rule."""
    if quality is None:
        return {}
    out = quality.to_dict()
    out["summary"] = quality.summary()
    out["outliers"] = [{"site_id": r["site_id"], "indicator": r["indicator"], "period": r["period"],
                        "count": r["value"], "z": r["z"], "severity": r["severity"]} for r in out["outliers"]]
    return out


def _one_row_per_site(low: pd.DataFrame) -> pd.DataFrame:
    """Series of one facility reported in the same months (as the panel's counts are) shown as one row."""
    if low.empty:
        return low
    same = low.groupby("site_id")["reported"].transform("nunique") == 1
    collapsed = (low[same].groupby(["site_id", "expected", "reported", "percent"], as_index=False)
                 .agg(indicator=("indicator", lambda v: ", ".join(sorted(map(str, v))))))
    columns = ["site_id", "indicator", "expected", "reported", "percent", "below_target"]
    return pd.concat([collapsed.assign(below_target=True), low[~same]], ignore_index=True)[columns]


def _more(total: int) -> str:
    return f"The first {LISTED_FINDINGS} of {total:,} are listed; all are in results.json." \
        if total > LISTED_FINDINGS else ""
