"""Read a project's CSV and Parquet sources into raw frames, with checksums.

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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from knowdo.config import Project, Source
from knowdo.errors import Problem


@dataclass(frozen=True)
class RawSource:
    """One source file as read: its frame (or None if unreadable) and fingerprint."""

    table: str
    path: Path
    frame: pd.DataFrame | None
    sha256: str | None
    problems: tuple[Problem, ...] = ()

    @property
    def label(self) -> str:
        return self.path.name


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


def read_sources(project: Project) -> list[RawSource]:
    """Read every source named in the project file, in file order."""
    return [read_source(source) for source in project.sources]
