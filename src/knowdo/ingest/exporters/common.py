"""What every exporter shares: stable identifiers, text cells, and the exported project folder.

An export is written as a knowdo project folder: the payload in the target
system's own format, the source mapping the connector needs to read it back,
the canonical tables the format has no place for (rollout, population, costs)
as CSV beside it, and a ``knowdo.toml`` naming them all. Running knowdo on
that folder reads the export through the same connector a user would point
at the real system, so a round trip tests exporter and connector together.

Systems number things their own way (DHIS2 wants 11-character UIDs, OMOP
wants integers), so every exporter reports how knowdo's site ids were
renamed (:attr:`ExportedProject.site_ids`). Identifiers are derived from the
data alone (a hash of the knowdo id, or the rank in sorted order), never from
a clock or a random generator, so exporting the same tables twice gives the
same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w

from knowdo.config import CONFIG_NAME, Project, Stratum
from knowdo.errors import ParameterError
from knowdo.schema import TABLES

# Tables no source format here can carry; they travel as canonical CSV beside the export.
COMPANION_TABLES = ("rollout", "population", "costs", "aggregates")
_UID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 id datatype


@dataclass(frozen=True)
class ExportedProject:
    """A project folder written by an exporter.

    ``carried`` are the canonical tables the format itself holds,
    ``companions`` those written as CSV beside it, ``strata`` the equity
    dimensions the format carries (the folder's ``knowdo.toml`` declares only
    these), ``site_ids`` knowdo's site id → the id in the export, and
    ``skipped`` rows left out, by reason.
    """

    format: str
    root: Path
    files: tuple[str, ...]
    carried: tuple[str, ...]
    companions: tuple[str, ...]
    strata: tuple[str, ...]
    site_ids: Mapping[str, str] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)

    def original_site_ids(self) -> dict[str, str]:
        """Id in the export → knowdo's site id (to compare a read-back panel with the original)."""
        return {exported: original for original, exported in self.site_ids.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "root": str(self.root),
            "files": list(self.files),
            "carried": list(self.carried),
            "companions": list(self.companions),
            "strata": list(self.strata),
            "site_ids": dict(self.site_ids),
            "skipped": dict(self.skipped),
        }


def stable_uid(kind: str, key: str) -> str:
    """A DHIS2-style UID (11 characters, a letter first) derived from ``kind`` and ``key`` by SHA-256."""
    number = int.from_bytes(hashlib.sha256(f"{kind}\x1f{key}".encode()).digest()[:16], "big")
    chars = [_UID_ALPHABET[number % 52]]  # first character: a letter (DHIS2 maintenance docs)
    number //= 52
    for _ in range(10):
        chars.append(_UID_ALPHABET[number % 62])
        number //= 62
    return "".join(chars)


def unique_ids(kind: str, keys: Iterable[str]) -> dict[str, str]:
    """:func:`stable_uid` for each key, checked to be collision-free."""
    ids = {k: stable_uid(kind, k) for k in sorted(set(keys))}
    if len(set(ids.values())) != len(ids):  # pragma: no cover - 62^10 space; a collision means a bug
        raise ParameterError(f"export: two {kind} keys hash to the same UID; report this as a bug")
    return ids


def fhir_id(value: str) -> str:
    """``value`` when it is a valid FHIR id, else a stable 32-character hex digest of it."""
    if _FHIR_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def day_text(values: pd.Series) -> pd.Series:
    """Dates as ``YYYY-MM-DD`` text (None where missing), from datetimes or text."""
    parsed = pd.to_datetime(values, errors="coerce")
    text = parsed.dt.strftime("%Y-%m-%d")
    return text.astype(object).where(parsed.notna(), None)


def cell_text(value: Any) -> str | None:
    """One cell as text: None for missing, whole floats without '.0'."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    return str(value)


def table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """A canonical table, or an empty frame with its columns when absent."""
    frame = tables.get(name)
    if frame is None:
        return pd.DataFrame(columns=list(TABLES[name].column_names))
    return frame


def sorted_by(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame.sort_values(list(columns), kind="stable").reset_index(drop=True)


def facilities(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    sites = table(tables, "sites")
    return sorted_by(sites.loc[sites["level"] == "facility"], ["site_id"])


def write_companions(
    root: Path,
    tables: Mapping[str, pd.DataFrame],
    *,
    site_ids: Mapping[str, str],
    strata: Sequence[str],
    names: Sequence[str] = COMPANION_TABLES,
) -> list[tuple[str, str]]:
    """Write the tables in ``names`` as canonical CSV under ``root/data``; return (table, relative path) pairs.

    Site ids are renamed as the export renamed them; population and aggregate
    rows of equity dimensions the export does not declare are dropped (the
    folder's knowdo.toml would reject them).
    """
    written = []
    for name in names:
        frame = tables.get(name)
        if frame is None or frame.empty:
            continue
        out = frame.copy()
        if "site_id" in out and site_ids:
            out["site_id"] = out["site_id"].map(lambda s: site_ids.get(s, s) if isinstance(s, str) else s)
        if "dimension" in out:
            out = out.loc[out["dimension"].isin(["all", *strata])]
        key = [k for k in TABLES[name].key if k in out]
        out = sorted_by(out, key)
        for column in TABLES[name].columns:
            if column.type == "date" and column.name in out:
                out[column.name] = day_text(out[column.name])
        relative = f"data/{name}.csv"
        (root / "data").mkdir(parents=True, exist_ok=True)
        out.to_csv(root / relative, index=False, lineterminator="\n")
        written.append((name, relative))
    return written


def write_toml(path: Path, content: Mapping[str, Any]) -> None:
    path.write_text(tomli_w.dumps(_plain(content)), encoding="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_project_file(
    root: Path,
    project: Project,
    *,
    strata: Sequence[Stratum],
    sources: Sequence[Mapping[str, Any]],
    header: str,
) -> None:
    """``root/knowdo.toml``: the original project's window, outcomes and disclosure, the kept strata, ``sources``."""
    o = project.outcomes
    disclosure: dict[str, Any] = {"threshold": project.disclosure_threshold}
    if project.disclosure_rounding is not None:
        disclosure["round_to"] = project.disclosure_rounding
    content: dict[str, Any] = {
        "project": {"name": project.name, "start": project.start, "end": project.end},
        "disclosure": disclosure,
        "outcomes": {
            "positive_threshold": o.positive_threshold,
            "adequate_sessions": o.adequate_sessions,
            "response_fraction": o.response_fraction,
            "remission_below": o.remission_below,
            "start_window_days": o.start_window_days,
            "maintenance_months": o.maintenance_months,
        },
        "sources": [dict(s) for s in sources],
        "equity": {
            s.name: {"category": s.category, "ordered": s.ordered, "levels": list(s.levels), "reference": s.reference}
            for s in strata
        },
    }
    text = "".join(f"# {line}\n" for line in header.strip().splitlines()) + "\n" + tomli_w.dumps(_plain(content))
    (root / CONFIG_NAME).write_text(text, encoding="utf-8")


def prepare_folder(out_dir: str | Path) -> Path:
    """Create ``out_dir``; refuse a folder that already holds a knowdo project (never overwrite one)."""
    root = Path(out_dir)
    if (root / CONFIG_NAME).exists():
        raise ParameterError(
            f"export: {root} already holds a {CONFIG_NAME}; choose an empty folder (an export never overwrites "
            "a project)"
        )
    if root.exists() and not root.is_dir():
        raise ParameterError(f"export: {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    return root


def person_level(tables: Mapping[str, pd.DataFrame]) -> None:
    """Raise unless the tables hold person-level data (persons and encounters)."""
    if table(tables, "persons").empty or table(tables, "encounters").empty:
        raise ParameterError(
            "export: this format carries person-level records, but the project has no persons or encounters "
            "(an aggregate-only project can be exported as dhis2-aggregate)"
        )
