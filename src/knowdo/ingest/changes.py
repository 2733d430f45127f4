"""What changed between two loads: rows added, removed and corrected, per canonical table and key.

Routine systems are pulled again and again (each month's DHIS2 data, a new
Bulk export). A pull that repeats the last one must change nothing, a
corrected value must show as a correction, and new months as new rows; this
module compares the tables in the store with the ones about to replace them,
by each table's key from :mod:`knowdo.schema`, so the user sees "what changed
since the last run" before trusting a new report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from knowdo.schema import LOAD_ORDER, TABLES

LISTED = 10  # corrected rows shown one by one per table


@dataclass(frozen=True)
class TableChange:
    """Row-level differences of one table, by key."""

    table: str
    added: int
    removed: int
    corrected: int
    unchanged: int
    new_periods: tuple[str, ...] = ()
    examples: tuple[dict[str, Any], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.corrected)


@dataclass(frozen=True)
class ChangeSummary:
    """Differences between the store's tables and a new load."""

    tables: tuple[TableChange, ...]

    @property
    def changed(self) -> bool:
        return any(t.changed for t in self.tables)

    def summary(self) -> str:
        if not self.changed:
            return "No change since the last load."
        lines = ["What changed since the last load:"]
        for t in self.tables:
            if not t.changed:
                continue
            parts = [f"{t.added} added", f"{t.corrected} corrected", f"{t.removed} removed"]
            months = f"; new months {', '.join(t.new_periods)}" if t.new_periods else ""
            lines.append(f"- {t.table}: {', '.join(parts)} ({t.unchanged} unchanged){months}")
            for example in t.examples:
                lines.append(f"    {example['key']}: {example['column']} {example['before']} -> {example['after']}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "tables": [
            {"table": t.table, "added": t.added, "removed": t.removed, "corrected": t.corrected,
             "unchanged": t.unchanged, "new_periods": list(t.new_periods), "examples": list(t.examples)}
            for t in self.tables]}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in row.items() if k != "examples"} for row in self.to_dict()["tables"]])


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable text: dates as YYYY-MM-DD, whole floats without '.0', missing as ''."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            text = values.dt.strftime("%Y-%m-%d")
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            text = values.astype("string")
            whole = numbers.notna() & (numbers == numbers.round())
            text = text.mask(whole, numbers.where(whole).astype("Int64").astype("string"))
        out[column] = text.fillna("").astype(str).str.strip()
    return out


def compare_tables(before: Mapping[str, pd.DataFrame], after: Mapping[str, pd.DataFrame]) -> ChangeSummary:
    """Compare two sets of canonical tables (typed or text) row by row on each table's key."""
    changes = []
    for name in LOAD_ORDER:
        if name not in before and name not in after:
            continue
        table = TABLES[name]
        key = list(table.key)
        old = _text(before.get(name, pd.DataFrame(columns=key)))
        new = _text(after.get(name, pd.DataFrame(columns=key)))
        if old.empty and new.empty:
            continue
        if old.empty or new.empty:
            first = tuple(sorted(set(new["period"].str.slice(0, 7)))) if "period" in key and len(new) else ()
            changes.append(TableChange(name, added=len(new), removed=len(old), corrected=0, unchanged=0,
                                       new_periods=first))
            continue
        columns = [c for c in new.columns if c in old.columns and c not in key]
        merged = old.merge(new, on=key, how="outer", suffixes=("_before", "_after"), indicator=True)
        both = merged[merged["_merge"] == "both"]
        differs = pd.Series(False, index=both.index)
        examples: list[dict[str, Any]] = []
        for column in columns:
            diff = both[f"{column}_before"] != both[f"{column}_after"]
            differs |= diff
            for _, row in both[diff].head(max(LISTED - len(examples), 0)).iterrows():
                examples.append({"key": ", ".join(str(row[k]) for k in key), "column": column,
                                 "before": row[f"{column}_before"], "after": row[f"{column}_after"]})
        added = merged[merged["_merge"] == "right_only"]
        periods: tuple[str, ...] = ()
        if "period" in key:
            known = set(old["period"].str.slice(0, 7))
            periods = tuple(sorted(set(added["period"].str.slice(0, 7)) - known))
        changes.append(TableChange(
            name, added=len(added), removed=int((merged["_merge"] == "left_only").sum()),
            corrected=int(differs.sum()), unchanged=int((~differs).sum()), new_periods=periods,
            examples=tuple(examples[:LISTED]),
        ))
    return ChangeSummary(tuple(changes))
