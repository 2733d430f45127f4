"""Ingest at scale: 1M FHIR Observations from Bulk ndjson and 10M DHIS2 data values from CSV.

Peers, in the same process, with equal results asserted:

* FHIR: ``fhir.resources`` R4B full-model parsing (what a user validating
  FHIR in Python would reach for), timed on a sample and extrapolated to the
  whole file, beside knowdo's fast path (orjson + field checks);
* DHIS2: plain ``pandas.read_csv`` + ``groupby`` (the usual notebook route)
  computing the same site x month x indicator x stratum sums.

Peak memory is the process's resident-set high-water mark during each step,
sampled every 5 ms above the resident set at its start (so it counts Arrow and
numpy buffers too, which tracemalloc does not see).

Run: ``python benchmarks/bench_ingest.py [--observations N] [--values N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from fhir.resources.R4B.observation import Observation

from knowdo.config import parse_project
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.dhis2 import aggregates_from_values, data_values_from_csv
from knowdo.ingest.fhir import ANSWER_SCORES, ITEM_CODES
from knowdo.ingest.fhir_sources import read_fhir_source
from knowdo.ingest.mapping import CHIS_AGE_SEX_COMBOS, CHIS_MENTAL_HEALTH

T = TypeVar("T")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def measure(step: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, peak resident MB above the start)."""
    start_rss = _rss()
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    began = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - began
    done.set()
    thread.join()
    peak[0] = max(peak[0], _rss())
    return result, seconds, (peak[0] - start_rss) / 1e6


# --------------------------------------------------------------------------- FHIR
PHQ9_ITEMS = [code for code, (name, _) in ITEM_CODES.items() if name == "PHQ-9"]
ANSWERS = list(ANSWER_SCORES)


def write_fhir(folder: Path, observations: int, seed: int = 1) -> int:
    """Bulk ndjson with PHQ-9 administrations (9 item Observations + 1 total each)."""
    rng = np.random.default_rng(seed)
    administrations = observations // 10
    answers = rng.integers(0, 4, size=(administrations, 9))
    patients = rng.integers(0, max(administrations // 4, 1), size=administrations)
    base = dt.datetime(2024, 1, 1)
    with (folder / "Observation.000.ndjson").open("wb") as handle:
        for a in range(administrations):
            when = (base + dt.timedelta(minutes=int(a))).isoformat() + "Z"
            common = {"status": "final", "subject": {"reference": f"Patient/p{patients[a]}"},
                      "encounter": {"reference": f"Encounter/e{a}"}, "effectiveDateTime": when,
                      "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                "code": "survey"}]}]}
            lines = []
            for i, code in enumerate(PHQ9_ITEMS):
                lines.append({"resourceType": "Observation", "id": f"o{a}-{i}", **common,
                              "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                              "valueCodeableConcept": {"coding": [{"system": "http://loinc.org",
                                                                   "code": ANSWERS[answers[a, i]]}]}})
            lines.append({"resourceType": "Observation", "id": f"o{a}-t", **common,
                          "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                          "valueInteger": int(answers[a].sum())})
            handle.write(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    return administrations * 10


def fhir_models(file: Path, sample: int) -> tuple[dict[str, float], float]:
    """Parse the first ``sample`` lines with the R4B models; totals by observation id and seconds."""
    totals = {}
    began = time.perf_counter()
    with file.open("rb") as handle:
        for _, line in zip(range(sample), handle, strict=False):
            model = Observation.model_validate_json(line)
            if model.code.coding[0].code == "44261-6":
                totals[model.id] = float(model.valueInteger)
    return totals, time.perf_counter() - began


def bench_fhir(folder: Path, observations: int, sample: int) -> dict[str, Any]:
    written = write_fhir(folder, observations)
    project = parse_project({"project": {"start": "2024-01-01", "end": "2030-12-31"},
                             "sources": [{"kind": "fhir-bulk", "path": str(folder)}]}, folder)
    frames, seconds, peak = measure(lambda: read_fhir_source(project.sources[0], project))
    assert not frames.errors, frames.errors[:3]
    measures = frames.tables["measures"]
    assert len(measures) == written // 10
    (model_totals, model_seconds), _, model_peak = measure(lambda: fhir_models(folder / "Observation.000.ndjson",
                                                                              sample))
    ours = dict(zip(measures["measure_id"], measures["total"].astype(float), strict=True))
    assert model_totals and all(ours[k] == v for k, v in model_totals.items())
    items = measures[[f"item_{i}" for i in range(1, 10)]].astype(int).sum(axis=1)
    assert (items == measures["total"].astype(float)).all()
    return {"observations": written, "seconds": seconds, "peak_mb": peak,
            "model_sample": sample, "model_sample_seconds": model_seconds, "model_sample_peak_mb": model_peak,
            "model_extrapolated_seconds": model_seconds * written / sample,
            "file_mb": (folder / "Observation.000.ndjson").stat().st_size / 1e6}


# --------------------------------------------------------------------------- DHIS2
def write_dhis2(file: Path, values: int, seed: int = 2) -> int:
    """A positional dataValueSets CSV: 3 data elements x org units x 24 months x 32 age/sex combos, unique keys."""
    rng = np.random.default_rng(seed)
    elements = np.array(["vXiy7FHtwNM", "kDMCxCZkyjp", "S57hica8wt9"])  # 2 mapped, 1 not
    combos = np.array(list(CHIS_AGE_SEX_COMBOS))
    months = np.array([f"{2023 + m // 12}{m % 12 + 1:02d}" for m in range(24)])
    cells = len(elements) * len(months) * len(combos)
    units = -(-values // cells)
    index = np.arange(values)
    unit = index // cells
    rest = index % cells
    table = pa.table({
        "dataelement": elements[rest % 3],
        "period": months[(rest // 3) % 24],
        "orgunit": np.char.add("OU", np.char.zfill(unit.astype(str), 9)),
        "catoptcombo": combos[rest // 72],
        "attroptcombo": np.full(values, "HllvX50cXC0"),
        "value": rng.integers(0, 40, size=values).astype(str),
        "storedby": np.full(values, "admin"),
        "lastupdated": np.full(values, "2024-02-03T10:11:12.000"),
        "comment": np.full(values, ""),
        "followup": np.full(values, "false"),
    })
    pa_csv.write_csv(table, file)
    assert units >= 1
    return values


def knowdo_dhis2(file: Path) -> tuple[pd.DataFrame, CanonicalFrames]:
    out = CanonicalFrames(file.name)
    values = data_values_from_csv(file.read_bytes(), out)
    return aggregates_from_values(values, CHIS_MENTAL_HEALTH, out), out


def pandas_dhis2(file: Path) -> pd.DataFrame:
    """The notebook route: read, map, sum totals and each dimension's margins."""
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    indicator = frame["dataelement"].map({k: v.indicator for k, v in CHIS_MENTAL_HEALTH.data_elements.items()})
    frame = frame.assign(indicator=indicator, value=frame["value"].astype("int64"),
                         period=frame["period"].str[:4] + "-" + frame["period"].str[4:6] + "-01")
    frame = frame[frame["indicator"].notna()]
    dims = pd.DataFrame.from_dict(CHIS_AGE_SEX_COMBOS, orient="index")
    keys = ["orgunit", "period", "indicator"]
    parts = [frame.groupby(keys, as_index=False)["value"].sum().assign(dimension="all", stratum="all")]
    for dimension in dims.columns:
        level = frame["catoptcombo"].map(dims[dimension])
        part = frame.assign(dimension=dimension, stratum=level)
        parts.append(part.groupby([*keys, "dimension", "stratum"], as_index=False)["value"].sum())
    result = pd.concat(parts, ignore_index=True).rename(columns={"orgunit": "site_id"})
    return result[["site_id", "period", "indicator", "dimension", "stratum", "value"]]


def bench_dhis2(folder: Path, values: int) -> dict[str, Any]:
    file = folder / "dataValueSets.csv"
    write_dhis2(file, values)
    (ours, out), seconds, peak = measure(lambda: knowdo_dhis2(file))
    assert not out.errors, out.errors[:3]
    theirs, pandas_seconds, pandas_peak = measure(lambda: pandas_dhis2(file))
    key = ["site_id", "period", "indicator", "dimension", "stratum"]
    left = ours.assign(value=ours["value"].astype("int64")).sort_values(key).reset_index(drop=True)
    right = theirs.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left[[*key, "value"]].astype({k: str for k in key}),
                                  right[[*key, "value"]].astype({k: str for k in key}), check_dtype=False)
    return {"values": values, "seconds": seconds, "peak_mb": peak, "pandas_seconds": pandas_seconds,
            "pandas_peak_mb": pandas_peak, "rows_out": len(ours), "file_mb": file.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--values", type=int, default=10_000_000)
    parser.add_argument("--model-sample", type=int, default=20_000)
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"nproc={os.cpu_count()} cpu={cpu} python={platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        fhir_dir = Path(tmp) / "bulk"
        fhir_dir.mkdir()
        f = bench_fhir(fhir_dir, args.observations, args.model_sample)
        print(f"FHIR {f['observations']:,} Observations ({f['file_mb']:.0f} MB ndjson): knowdo fast path "
              f"{f['seconds']:.1f} s, peak +{f['peak_mb']:.0f} MB")
        print(f"  fhir.resources R4B models: {f['model_sample']:,} in {f['model_sample_seconds']:.1f} s "
              f"(peak +{f['model_sample_peak_mb']:.0f} MB) -> {f['model_extrapolated_seconds']:.0f} s extrapolated "
              f"for all; ratio {f['model_extrapolated_seconds'] / f['seconds']:.1f}x")
        for file in fhir_dir.iterdir():
            file.unlink()
        d = bench_dhis2(Path(tmp), args.values)
        print(f"DHIS2 {d['values']:,} data values ({d['file_mb']:.0f} MB CSV) -> {d['rows_out']:,} aggregate rows: "
              f"knowdo {d['seconds']:.1f} s, peak +{d['peak_mb']:.0f} MB; pandas read_csv+groupby "
              f"{d['pandas_seconds']:.1f} s, peak +{d['pandas_peak_mb']:.0f} MB; ratio "
              f"{d['pandas_seconds'] / d['seconds']:.2f}x")


if __name__ == "__main__":
    main()
