"""Read a project's sources into raw frames, with checksums: CSV/Parquet files and connectors.

CSV columns are read as text so that validation, not the parser, decides what
is wrong with a value and can say which row it was. Problems that stop a file
from being read at all (missing, empty, wrong encoding, not CSV/Parquet)
become :class:`~knowdo.errors.Problem` records rather than exceptions, so one
run reports every file's trouble.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from knowdo.config import Project, Source
from knowdo.errors import Problem
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.dhis2 import read_dhis2_source
from knowdo.ingest.fhir_sources import read_fhir_source
from knowdo.ingest.redcap import read_redcap_source
from knowdo.schema import LOAD_ORDER

SourceReader = Callable[[Source, Project], CanonicalFrames]

CONNECTORS: dict[str, SourceReader] = {
    "dhis2-datavalues": read_dhis2_source,
    "dhis2-analytics": read_dhis2_source,
    "dhis2-tracker": read_dhis2_source,
    "fhir-bundle": read_fhir_source,
    "fhir-bulk": read_fhir_source,
    "redcap-flat": read_redcap_source,
    "redcap-eav": read_redcap_source,
}


@dataclass(frozen=True)
class RawSource:
    """One source file as read: its frame (or None if unreadable) and fingerprint."""

    table: str
    path: Path
    frame: pd.DataFrame | None
    sha256: str | None
    problems: tuple[Problem, ...] = ()
    origin: str | None = None  # file or URL a connector read, shown instead of the path's name

    @property
    def label(self) -> str:
        return self.origin if self.origin is not None else self.path.name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_source(source: Source) -> RawSource:
    path = source.path
    label = str(path.name)
    if not path.exists():
        return _failed(source, Problem(label, "file-missing", f"file not found at {path}"))
    if path.stat().st_size == 0:
        return _failed(source, Problem(label, "empty-file", "the file is empty (no header, no rows)"))
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pq.read_table(path).to_pandas()
        elif suffix in {".csv", ".txt"}:
            frame = _read_csv(path)
        else:
            return _failed(source, Problem(label, "file-format", f"unknown file type {suffix!r}; use .csv or .parquet"))
    except UnicodeDecodeError as exc:
        return _failed(
            source,
            Problem(label, "encoding", f"not valid UTF-8 near byte {exc.start}; re-save the file as UTF-8"),
        )
    except (pd.errors.ParserError, csv.Error) as exc:
        return _failed(source, Problem(label, "file-format", f"cannot be parsed as CSV: {exc}"))
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt Parquet
        return _failed(source, Problem(label, "file-format", f"cannot be read: {exc}"))
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawSource(source.table, path, frame, sha256_of(path))


def _read_csv(path: Path) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(3)
    encoding = "utf-8-sig" if head == b"\xef\xbb\xbf" else "utf-8"
    try:
        with warnings.catch_warnings():
            # pandas only warns when a row is longer than the header; treat it as the error it is
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[], encoding=encoding, index_col=False,
                on_bad_lines="error",
            )
    except pd.errors.EmptyDataError:
        raise pd.errors.ParserError("no columns to read (blank file)") from None
    except pd.errors.ParserWarning:
        raise pd.errors.ParserError(_ragged_row(path, encoding)) from None


def _ragged_row(path: Path, encoding: str) -> str:
    with path.open(encoding=encoding, newline="") as handle:
        rows = csv.reader(handle)
        width = len(next(rows, []))
        for line, row in enumerate(rows, start=2):
            if len(row) != width:
                return f"row {line} has {len(row)} fields but the header has {width}"
    return "a row has more fields than the header"


def _failed(source: Source, problem: Problem) -> RawSource:
    return RawSource(source.table, source.path, None, None, (problem,))


def read_sources(project: Project, *, readers: Mapping[str, SourceReader] | None = None) -> list[RawSource]:
    """Read every source named in the project file, in file order.

    ``readers`` adds or replaces connectors by source kind (the store passes
    its OMOP readers this way).
    """
    known = {**CONNECTORS, **(readers or {})}
    out: list[RawSource] = []
    for source in project.sources:
        if source.kind == "csv":
            out.append(read_source(source))
        elif source.kind in known:
            out.extend(raw_sources(source, known[source.kind](source, project)))
        else:
            out.append(_failed(source, Problem(
                source.location, "source-kind",
                f"sources of kind '{source.kind}' are read through the project store; load this project with "
                "`knowdo run` (or pass knowdo.store.omop_source.OMOP_READERS as readers)",
            )))
    return out


def raw_sources(source: Source, frames: CanonicalFrames) -> list[RawSource]:
    """One RawSource per canonical table a connector produced; the connector's problems ride on the first.

    When the connector met an error, no frame is passed on: the tables are
    incomplete, and schema checks on them would only repeat the same trouble.
    """
    name = Path(frames.origin).name if not frames.origin.startswith(("http://", "https://")) else frames.origin
    problems = tuple(frames.problems)
    tables = [t for t in LOAD_ORDER if t in frames.tables]
    if frames.errors or not tables:
        if not tables and not frames.errors:
            problems += (Problem(frames.origin, "no-data", "the source yielded no rows for any canonical table",
                                 severity="warning"),)
        return [RawSource(tables[0] if tables else "sites", source.path, None, frames.sha256, problems, origin=name)]
    return [
        RawSource(table, source.path, frames.tables[table], frames.sha256, problems if i == 0 else (),
                  origin=f"{name} [{table}]")
        for i, table in enumerate(tables)
    ]
