"""What changed between two loads: rows added, removed and corrected, per canonical table and key.

Routine systems are pulled again and again (each month's DHIS2 data, a new
Bulk export). A pull that repeats the last one must change nothing, a
corrected value must show as a correction (old value -> new value), and new
months as new rows; this module compares the tables in the store with the
ones about to replace them, by each table's key from :mod:`knowdo.schema`.
The store persists the result with every load (its change log), and the
report's "What changed since the last run" section reads it back.

Sources loaded in append mode (``mode = "append"`` in ``knowdo.toml``) are
merged into the stored tables first (:func:`merge_tables`): a pull of the
latest month then adds that month instead of removing every earlier one.

Values are compared as text (dates as ``YYYY-MM-DD``, whole numbers without
``.0``, missing as empty), so a table read back from the store and the same
table freshly validated compare equal whatever their dtypes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from knowdo.schema import LOAD_ORDER, TABLES

LISTED = 10  # corrected values shown one by one per table in the text summary (all are kept in ``rows``)
ROW_COLUMNS = ("table", "change", "key", "column", "before", "after")
CHANGE_KINDS = ("added", "removed", "corrected")


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ROW_COLUMNS})


@dataclass(frozen=True)
class TableChange:
    """Row-level differences of one table, by key.

    ``new_periods`` are months (``YYYY-MM``) with rows now that had none
    before; ``new_sites`` counts sites with rows now that had none before (for
    the ``sites`` table, the sites added).
    """

    table: str
    added: int
    removed: int
    corrected: int
    unchanged: int
    new_periods: tuple[str, ...] = ()
    examples: tuple[dict[str, Any], ...] = ()
    new_sites: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.corrected)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "added": self.added, "removed": self.removed, "corrected": self.corrected,
                "unchanged": self.unchanged, "new_periods": list(self.new_periods), "new_sites": self.new_sites,
                "examples": [dict(e) for e in self.examples]}


@dataclass(frozen=True)
class ChangeSummary:
    """Differences between the store's tables and a new load.

    ``rows`` lists every change one per row (columns :data:`ROW_COLUMNS`):
    the key of each row added or removed, and for each corrected value its
    column, the value before and the value after. It holds person-level keys,
    so it stays in the store; reports show the counts only.
    """

    tables: tuple[TableChange, ...]
    rows: pd.DataFrame = field(default_factory=_empty_rows, compare=False)

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
            sites = f"; {t.new_sites} new site(s)" if t.new_sites and t.table != "sites" else ""
            lines.append(f"- {t.table}: {', '.join(parts)} ({t.unchanged} unchanged){months}{sites}")
            for example in t.examples:
                lines.append(f"    {example['key']}: {example['column']} {example['before']} -> {example['after']}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "tables": [t.to_dict() for t in self.tables]}

    def to_frame(self) -> pd.DataFrame:
        """One row per table: the counts (without the listed examples)."""
        columns = ["table", "added", "removed", "corrected", "unchanged", "new_periods", "new_sites"]
        return pd.DataFrame([{k: v for k, v in t.to_dict().items() if k != "examples"} for t in self.tables],
                            columns=columns)

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()


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


def _keys(frame: pd.DataFrame, key: list[str]) -> pd.Series:
    if frame.empty:
        return pd.Series(dtype=object)
    joined = frame[key[0]].astype(str)
    for column in key[1:]:
        joined = joined + ", " + frame[column].astype(str)
    return joined


def _months(frame: pd.DataFrame) -> set[str]:
    """Months with rows: of ``period`` (site x month tables) or of ``date`` (contacts and scores)."""
    column = next((c for c in ("period", "date") if c in frame.columns), None)
    if column is None or not len(frame):
        return set()
    return set(frame[column].str.slice(0, 7)) - {""}


def _sites(frame: pd.DataFrame) -> set[str]:
    return set(frame["site_id"]) - {""} if "site_id" in frame.columns and len(frame) else set()


def compare_tables(before: Mapping[str, pd.DataFrame], after: Mapping[str, pd.DataFrame]) -> ChangeSummary:
    """Compare two sets of canonical tables (typed or text) row by row on each table's key.

    Examples
    --------
    >>> import pandas as pd
    >>> old = {"sites": pd.DataFrame({"site_id": ["A"], "level": ["facility"], "name": ["Alpha"]})}
    >>> new = {"sites": pd.DataFrame({"site_id": ["A", "B"], "level": ["facility"] * 2, "name": ["Alfa", "Beta"]})}
    >>> change = compare_tables(old, new).tables[0]
    >>> change.added, change.corrected, change.examples[0]["before"], change.examples[0]["after"]
    (1, 1, 'Alpha', 'Alfa')
    """
    changes = []
    details: list[pd.DataFrame] = []
    for name in LOAD_ORDER:
        if name not in before and name not in after:
            continue
        key = list(TABLES[name].key)
        old = _text(before.get(name, pd.DataFrame(columns=key)))
        new = _text(after.get(name, pd.DataFrame(columns=key)))
        if old.empty and new.empty:
            continue
        new_sites = len(_sites(new) - _sites(old))
        if old.empty or new.empty:
            gone = new.empty
            details.append(pd.DataFrame({"table": name, "change": "removed" if gone else "added",
                                         "key": _keys(old if gone else new, key), "column": None,
                                         "before": None, "after": None}))
            changes.append(TableChange(name, added=len(new), removed=len(old), corrected=0, unchanged=0,
                                       new_periods=tuple(sorted(_months(new))), new_sites=new_sites))
            continue
        columns = [c for c in new.columns if c in old.columns and c not in key]
        merged = old.merge(new, on=key, how="outer", suffixes=("_before", "_after"), indicator=True)
        both = merged[merged["_merge"] == "both"]
        both_keys = _keys(both, key)
        differs = pd.Series(False, index=both.index)
        corrected: list[pd.DataFrame] = []
        for column in columns:
            diff = both[f"{column}_before"] != both[f"{column}_after"]
            differs |= diff
            if diff.any():
                corrected.append(pd.DataFrame({"table": name, "change": "corrected", "key": both_keys[diff],
                                               "column": column, "before": both.loc[diff, f"{column}_before"],
                                               "after": both.loc[diff, f"{column}_after"]}))
        added = merged[merged["_merge"] == "right_only"]
        removed = merged[merged["_merge"] == "left_only"]
        details += [pd.DataFrame({"table": name, "change": "added", "key": _keys(added, key), "column": None,
                                  "before": None, "after": None}),
                    pd.DataFrame({"table": name, "change": "removed", "key": _keys(removed, key), "column": None,
                                  "before": None, "after": None}), *corrected]
        examples = pd.concat(corrected).head(LISTED) if corrected else pd.DataFrame(columns=list(ROW_COLUMNS))
        changes.append(TableChange(
            name, added=len(added), removed=len(removed), corrected=int(differs.sum()),
            unchanged=int((~differs).sum()), new_periods=tuple(sorted(_months(new) - _months(old))),
            examples=tuple({"key": r["key"], "column": r["column"], "before": r["before"], "after": r["after"]}
                           for r in examples.to_dict(orient="records")),
            new_sites=new_sites,
        ))
    frames = [d for d in details if len(d)]
    rows = pd.concat(frames, ignore_index=True)[list(ROW_COLUMNS)].astype(object) if frames else _empty_rows()
    return ChangeSummary(tuple(changes), rows)


def merge_tables(
    before: Mapping[str, pd.DataFrame], incoming: Mapping[str, pd.DataFrame], append: Collection[str]
) -> dict[str, pd.DataFrame]:
    """The tables a load leaves: ``incoming`` for replaced tables, stored rows upserted by key for ``append`` ones.

    For a table in ``append``, a key only in the store keeps its row, a key
    in the pull gets the pull's row (new, or correcting the stored one). Every
    other table is the pull's, as in a plain load. Frames must have the same
    columns (the pull's columns win: a stored column the project no longer declares is
    dropped, one it newly declares is empty for stored rows); neither input is modified.

    Examples
    --------
    >>> import pandas as pd
    >>> old = {"sites": pd.DataFrame({"site_id": ["A", "B"], "level": ["facility"] * 2})}
    >>> new = {"sites": pd.DataFrame({"site_id": ["B", "C"], "level": ["district", "facility"]})}
    >>> merge_tables(old, new, append={"sites"})["sites"].values.tolist()
    [['A', 'facility'], ['B', 'district'], ['C', 'facility']]
    """
    out: dict[str, pd.DataFrame] = {}
    for name in LOAD_ORDER:
        new = incoming.get(name)
        old = before.get(name)
        if name not in append or old is None or old.empty:
            if new is not None:
                out[name] = new
            elif name in append and old is not None:
                out[name] = old
            continue
        if new is None or new.empty:
            out[name] = old
            continue
        key = list(TABLES[name].key)
        # Keys compared as text, so stored and freshly validated dtypes (date units, nullable ints) agree.
        old_keys = _keys(_text(old[key]), key)
        new_keys = set(_keys(_text(new[key]), key))
        kept = old.loc[~old_keys.isin(new_keys).to_numpy()].reindex(columns=new.columns)
        out[name] = pd.concat([kept, new], ignore_index=True) if len(kept) else new.reset_index(drop=True)
    return out
