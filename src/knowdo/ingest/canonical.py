"""What every connector returns: canonical frames of text cells, and the problems met on the way.

Connectors (DHIS2, FHIR, OMOP, REDCap) turn a system's payload into the
canonical tables of :mod:`knowdo.schema`, with every cell as text, exactly as
the CSV reader gives them, so :func:`knowdo.ingest.validate.validate_sources`
applies every schema rule to them unchanged. Problems a connector can locate
better than the canonical row (a JSON record, an ndjson line, a DHIS2 data
value) are reported here, naming the file or URL, the record and the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from knowdo.errors import Problem
from knowdo.schema import TABLES

# optional column a connector adds: where each canonical row came from (e.g. "dataValues[12]"), for error reports
SOURCE_RECORD = "_source_record"


@dataclass
class CanonicalFrames:
    """Canonical tables read from one source, keyed by table name."""

    origin: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    sha256: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def problem(
        self,
        rule: str,
        message: str,
        *,
        record: str | None = None,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
        severity: str = "error",
    ) -> None:
        if record is not None and record.startswith("row ") and record[4:].isdigit() and row is None:
            row, record = int(record[4:]), None
        where = self.origin if record is None else f"{self.origin} {record}"
        shown = None if value is None else _show(value)
        self.problems.append(Problem(where, rule, message, row=row, column=column, value=shown, severity=severity))


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def text_frame(table: str, records: Mapping[str, Iterable[object] | object] | pd.DataFrame) -> pd.DataFrame:
    """A canonical table as text cells in schema column order (missing columns left out, blanks as '')."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(records)
    known = [c for c in TABLES[table].column_names if c in frame.columns]
    extra = [c for c in frame.columns if c not in known]
    out = frame[known + extra].copy()
    for column in out.columns:
        out[column] = _as_text(out[column])
    return out.reset_index(drop=True)


def _as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        whole = values.notna() & (values == values.round())
        text = values.astype(object).where(~whole, values.where(whole).astype("Int64").astype(str))
        text = text.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
        return text.astype(object)
    filled = values.astype("string").fillna("")
    return filled.astype(object)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_files(paths: Iterable[Path]) -> str:
    """One digest over several files (name and content), in name order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
