"""The Ibis panel gives the DuckDB SQL panel's rows and values on DuckDB, PostgreSQL and Spark.

Reference: ``knowdo.store.build_panel`` (the DuckDB SQL of
``knowdo.store.panel``, itself checked against an independent pandas
recomputation in test_panel_vs_pandas.py), run on the example programme.
The canonical tables are copied to each engine with their canonical column
types; PostgreSQL is a real server on loopback (Debian's postgresql), Spark a
local session (Java 17).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ibis
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from knowdo.config import Project, load_project, parse_project
from knowdo.errors import ConfigError, ParameterError, StoreError
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.schema import PANEL_COLUMNS, PANEL_KEY
from knowdo.store import Store, build_panel, read_episodes, read_panel
from knowdo.store.engines import (
    EngineResult,
    build_panel_on_engine,
    compute_on_engine,
    connect_engine,
    episodes_on_engine,
    panel_on_engine,
    upload_tables,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))  # the shared PostgreSQL fixture helpers
from ingest_servers import Cluster, throwaway_postgres

pytestmark = [  # deprecations inside Ibis 12 and PySpark 4.0 under DuckDB 2 and pandas 3, not in knowdo
    pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]
ENGINES = ("duckdb", "postgres", "spark")
FLOATS = [c.name for c in PANEL_COLUMNS if c.type == "float"]
EXACT = [c.name for c in PANEL_COLUMNS if c.type != "float"]


@dataclass(frozen=True)
class Programme:
    project: Project
    frames: dict[str, pd.DataFrame]
    panel: pd.DataFrame
    episodes: pd.DataFrame


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Programme:
    # 400 people over 3 years: ~100 episodes with sessions, follow-ups and late follow-ups, small enough for Spark
    directory = write_project(generate_programme(seed=3, persons=400), tmp_path_factory.mktemp("engines") / "ex")
    project = load_project(directory)
    data = read_and_validate(project)
    with Store.for_project(project) as store:
        store.load(data, project)
        build_panel(store, project)
        frames = {name: store.table(name) for name in store.row_counts()}
        return Programme(project, frames, _sorted(read_panel(store)), read_episodes(store))


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    with throwaway_postgres() as cluster:
        yield cluster


def _start_spark(warehouse: Path) -> SparkSession:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("knowdo-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(warehouse))
        # tiny data: planning and task start-up dominate, so skip what pays off only at scale
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


@pytest.fixture(scope="module", autouse=True)
def spark_starting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[SparkSession]]:
    """The JVM boots in the background while the example programme is generated and PostgreSQL starts."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_start_spark, tmp_path_factory.mktemp("spark-warehouse"))
        try:
            yield future
        finally:
            future.result().stop()


@pytest.fixture(scope="module")
def spark(spark_starting: Future[SparkSession]) -> ibis.BaseBackend:
    return ibis.pyspark.connect(spark_starting.result())


@pytest.fixture(scope="module")
def backends(programme: Programme, postgres: Cluster, spark: ibis.BaseBackend) -> dict[str, ibis.BaseBackend]:
    duck = ibis.duckdb.connect()
    pg = ibis.connect(postgres.url().replace("postgresql://", "postgres://"))
    upload_tables(duck, programme.frames, programme.project)
    upload_tables(pg, programme.frames, programme.project)
    upload_tables(spark, programme.frames, programme.project, temp=True)
    return {"duckdb": duck, "postgres": pg, "spark": spark}


@pytest.fixture(scope="module")
def results(backends: dict[str, ibis.BaseBackend], programme: Programme) -> dict[str, EngineResult]:
    return {name: compute_on_engine(backend, project=programme.project) for name, backend in backends.items()}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(PANEL_KEY), kind="stable").reset_index(drop=True)


def assert_same_panel(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    for column in EXACT:  # keys, counts, dates and flags: exactly equal, missing where missing
        pd.testing.assert_series_equal(got[column], want[column], check_names=False, check_dtype=False,
                                       check_exact=True, obj=column)
    for column in FLOATS:  # sums of fidelity, need and cost: engines may add in another order
        pd.testing.assert_series_equal(got[column], want[column], check_names=False, check_dtype=False,
                                       rtol=1e-12, atol=0, obj=column)


def test_example_exercises_every_branch(programme: Programme) -> None:
    # the comparison below only means something if the episode logic is exercised
    episodes = programme.episodes
    assert len(episodes) > 50
    assert episodes["started"].sum() > 10 and episodes["adequate"].sum() > 0
    assert episodes["followup_phq9"].notna().sum() > 5 and episodes["late_followup_phq9"].notna().sum() > 0
    assert episodes["responded"].fillna(False).sum() > 0
    assert programme.panel["treated"].sum() > 0 and programme.panel["cost"].notna().any()


@pytest.mark.parametrize("engine", ENGINES)
def test_panel_equals_the_sql_panel(engine: str, results: dict[str, EngineResult], programme: Programme) -> None:
    assert results[engine].source == "persons" and results[engine].engine == {"spark": "pyspark"}.get(engine, engine)
    assert_same_panel(results[engine].panel, programme.panel)


def test_three_engines_agree(results: dict[str, EngineResult]) -> None:
    off_by_one = results["spark"].panel.copy()
    started = off_by_one["started"].to_numpy().copy()
    started[started.argmax()] += 1
    off_by_one["started"] = started
    with pytest.raises(AssertionError, match="started"):  # the comparison notices a single count
        assert_same_panel(off_by_one, results["duckdb"].panel)
    assert_same_panel(results["postgres"].panel, results["duckdb"].panel)
    assert_same_panel(results["spark"].panel, results["duckdb"].panel)
    for engine in ("postgres", "spark"):
        pd.testing.assert_frame_equal(results[engine].episodes, results["duckdb"].episodes, check_exact=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_episodes_equal_the_sql_episodes(engine: str, results: dict[str, EngineResult], programme: Programme) -> None:
    pd.testing.assert_frame_equal(results[engine].episodes, programme.episodes, check_dtype=False, check_exact=True)


def test_episodes_alone_on_duckdb(backends: dict[str, ibis.BaseBackend], programme: Programme) -> None:
    got = episodes_on_engine(backends["duckdb"], project=programme.project)
    pd.testing.assert_frame_equal(got, programme.episodes, check_dtype=False, check_exact=True)


def test_aggregate_source_equals_the_sql_panel(programme: Programme, tmp_path: Path) -> None:
    # a DHIS2-style store: the example's 'all'-row counts as aggregates, no encounters
    counts = programme.panel[programme.panel["dimension"] == "all"]
    rows = counts.melt(id_vars=["site_id", "period", "dimension", "stratum"],
                       value_vars=["screened", "positive", "started", "sessions"], var_name="indicator")
    rows = rows[rows["value"] > 0]
    frames = {**programme.frames, "aggregates": rows, "encounters": programme.frames["encounters"].iloc[:0],
              "measures": programme.frames["measures"].iloc[:0]}
    with Store(tmp_path / "agg.duckdb") as store:
        duck = ibis.duckdb.from_connection(store.connection)
        upload_tables(duck, frames, programme.project)
        assert build_panel(store, programme.project) == "aggregates"
        want = _sorted(read_panel(store))
    got = panel_on_engine(ibis.duckdb.connect(str(tmp_path / "agg.duckdb"), read_only=True), project=programme.project)
    assert got["followed_up"].isna().all() and got["positive"].sum() == counts["positive"].sum()
    assert_same_panel(got, want)


def test_project_engine_section_runs_on_postgres(
    programme: Programme, postgres: Cluster, backends: dict[str, ibis.BaseBackend], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KNOWDO_TEST_PG_URL", postgres.url())
    project = parse_project({
        "project": {"start": str(programme.project.start), "end": str(programme.project.end)},
        "equity": {s.name: {"category": s.category, "levels": list(s.levels)} for s in programme.project.strata},
        "engine": {"kind": "postgres", "url_env": "KNOWDO_TEST_PG_URL"},
    }, tmp_path)
    with Store(tmp_path / "local.duckdb") as store:
        assert build_panel_on_engine(store, project, connect_engine(project)) == "persons"
        assert_same_panel(_sorted(read_panel(store)), programme.panel)
        pd.testing.assert_frame_equal(read_episodes(store), programme.episodes, check_dtype=False)


def test_engine_section_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"project": {"start": "2024-01-01", "end": "2024-12-31"}}
    spark = parse_project({**base, "engine": {"kind": "spark", "master": "local[2]", "schema": "mh",
                                              "tables": {"encounters": "visits"},
                                              "conf": {"spark.sql.shuffle.partitions": 4}}}, tmp_path).engine
    assert spark is not None and spark.kind == "spark" and spark.tables == {"encounters": "visits"}
    assert spark.conf == {"spark.sql.shuffle.partitions": "4"}
    assert parse_project(base, tmp_path).engine is None
    bad = [
        ({"kind": "postgres"}, "url_env"),
        ({"kind": "postgres", "url": "postgresql://u:secret@h/db"}, "environment variable"),
        ({"kind": "oracle"}, "oracle"),
        ({"kind": "postgres", "url_env": "not a name"}, "url_env"),
        ({"kind": "spark", "tables": {"visits": "v"}}, "visits"),
    ]
    for section, words in bad:
        with pytest.raises(ConfigError, match=words):
            parse_project({**base, "engine": section}, tmp_path)
    project = parse_project({**base, "engine": {"kind": "postgres", "url_env": "KNOWDO_UNSET_URL"}}, tmp_path)
    monkeypatch.delenv("KNOWDO_UNSET_URL", raising=False)
    with pytest.raises(ConfigError, match="KNOWDO_UNSET_URL"):
        connect_engine(project)


def test_missing_tables_and_bad_source_are_reported(programme: Programme) -> None:
    with pytest.raises(StoreError, match="missing"):
        panel_on_engine(ibis.duckdb.connect(), project=programme.project)
    with pytest.raises(ParameterError, match="source"):
        panel_on_engine(ibis.duckdb.connect(), project=programme.project, source="cubes")  # type: ignore[arg-type]
