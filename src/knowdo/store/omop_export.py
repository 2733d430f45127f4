"""Write canonical tables as an OMOP CDM 5.4 DuckDB database inside a project folder that reads it back.

The OMOP frames are built by :mod:`knowdo.ingest.exporters.omop`; this module
only writes them, because the store is the only code that opens DuckDB.
Person-level records: for moving data between the user's own systems.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from knowdo.config import Project
from knowdo.ingest.exporters.common import (
    ExportedProject,
    prepare_folder,
    write_companions,
    write_project_file,
    write_toml,
)
from knowdo.ingest.exporters.omop import (
    omop_mapping,
    omop_site_ids,
    omop_skipped,
    omop_tables,
    sex_stratum,
    write_omop_csv,
)
from knowdo.store.omop_source import write_omop_duckdb

OMOP_FILE = "omop.duckdb"


def export_omop(tables: Mapping[str, pd.DataFrame], project: Project, out_dir: str | Path, *,
                csv: bool = False) -> ExportedProject:
    """Write ``tables`` as OMOP CDM 5.4 (``omop.duckdb``, and ``omop/*.csv`` with ``csv=True``) in a project folder.

    The folder's ``knowdo.toml`` reads the database through the ``omop-duckdb``
    connector; rollout, population and costs travel as canonical CSV.
    """
    frames = omop_tables(tables, project)
    root = prepare_folder(out_dir)
    write_omop_duckdb(frames, root / OMOP_FILE)
    files = [OMOP_FILE]
    if csv:
        files += [f"omop/{p.name}" for p in write_omop_csv(frames, root / "omop")]
    write_toml(root / "mapping.toml", omop_mapping(project))
    sex = sex_stratum(list(project.strata))
    kept = [sex] if sex is not None else []
    site_ids = omop_site_ids(tables)
    companions = write_companions(root, tables, site_ids=site_ids, strata=[s.name for s in kept])
    write_project_file(
        root, project, strata=kept, header=_HEADER,
        sources=[{"kind": "omop-duckdb", "path": OMOP_FILE, "mapping": "mapping.toml"},
                 *({"table": t, "path": p} for t, p in companions)],
    )
    return ExportedProject(
        format="omop", root=root, files=(*files, "mapping.toml", *(p for _, p in companions)),
        carried=("sites", "persons", "providers", "encounters", "measures"),
        companions=tuple(t for t, _ in companions), strata=tuple(s.name for s in kept), site_ids=site_ids,
        skipped=omop_skipped(tables),
    )


_HEADER = """knowdo export (OMOP CDM 5.4): person-level records for moving data between your own systems.
Care sites, persons, providers, visits and score observations are in omop.duckdb; rollout, population and
costs, which OMOP has no place for, are in data/. Only the equity dimension OMOP carries (gender) is declared."""
