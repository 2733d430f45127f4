"""Loading is all-or-nothing, idempotent and recorded."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import tiny_project
from knowdo.config import load_project
from knowdo.errors import SchemaError
from knowdo.ingest import read_and_validate
from knowdo.store import Store


def _load(directory: Path) -> dict[str, int]:
    project = load_project(directory)
    with Store.for_project(project) as store:
        store.load(read_and_validate(project), project)
        return store.row_counts()


def _snapshot(directory: Path) -> dict[str, pd.DataFrame]:
    project = load_project(directory)
    with Store.for_project(project, read_only=True) as store:
        return {name: store.table(name) for name in [*store.row_counts(), "provenance"]}


def _same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_like=True)


def test_load_counts_rows(tiny_dir: Path) -> None:
    counts = _load(tiny_dir)
    assert counts == {"sites": 3, "persons": 6, "providers": 2, "encounters": 17, "measures": 8, "rollout": 2,
                      "population": 36, "aggregates": 0, "costs": 3}


def test_loading_twice_adds_no_duplicates_and_records_provenance(tiny_dir: Path) -> None:
    first = _load(tiny_dir)
    second = _load(tiny_dir)
    assert first == second
    project = load_project(tiny_dir)
    with Store.for_project(project) as store:
        provenance = store.provenance()
    assert sorted(provenance["load_id"].unique()) == [1, 2]
    latest = provenance[provenance["load_id"] == 2].set_index("table_name")
    assert latest.loc["encounters", "rows"] == 17
    expected = hashlib.sha256((tiny_dir / "data" / "encounters.csv").read_bytes()).hexdigest()
    assert latest.loc["encounters", "sha256"] == expected


def test_failed_load_leaves_store_unchanged(tiny_dir: Path) -> None:
    _load(tiny_dir)
    before = _snapshot(tiny_dir)
    frames = tiny_project.tables()
    frames["encounters"].loc[3, "site_id"] = "NOWHERE"
    tiny_project.write(tiny_dir, frames)
    with pytest.raises(SchemaError, match="foreign-key"):
        _load(tiny_dir)
    _same(before, _snapshot(tiny_dir))


def test_new_data_replace_old(tiny_dir: Path) -> None:
    _load(tiny_dir)
    frames = tiny_project.tables()
    frames["persons"] = frames["persons"].iloc[:-1]
    frames["encounters"] = frames["encounters"][frames["encounters"]["person_id"] != "P6"]
    frames["measures"] = frames["measures"][frames["measures"]["person_id"] != "P6"]
    tiny_project.write(tiny_dir, frames)
    assert _load(tiny_dir)["persons"] == 5


KILL_SCRIPT = """
import sys, time
import knowdo.store.database as db
from knowdo.config import load_project
from knowdo.ingest import read_and_validate
original = db.Store._replace_table
def slow(self, table, frame, project):
    original(self, table, frame, project)
    if table.name == "measures":
        print("midway", flush=True)
        time.sleep(60)
db.Store._replace_table = slow
project = load_project(sys.argv[1])
with db.Store.for_project(project) as store:
    store.load(read_and_validate(project), project)
"""


def test_load_killed_midway_leaves_store_unchanged(tiny_dir: Path) -> None:
    _load(tiny_dir)
    before = _snapshot(tiny_dir)
    frames = tiny_project.tables()
    frames["persons"].loc[0, "sex"] = "male"
    tiny_project.write(tiny_dir, frames)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tiny_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "midway" not in line:
        line = proc.stdout.readline()
    assert "midway" in line, "the loader never reached the middle of its transaction"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    after = _snapshot(tiny_dir)
    _same(before, after)
    assert after["persons"].set_index("person_id").loc["P1", "sex"] == "female"
