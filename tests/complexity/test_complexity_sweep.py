"""Sweeps on Dask: the same seed gives the same results with 1 and 2 workers of a real LocalCluster.

The task is stochastic (network adoption draws random numbers), so equality
shows seeds belong to chunks, not to workers or scheduling order.
"""

from __future__ import annotations

import numpy as np
import pytest

from knowdo.complexity.adoption import NetworkAdoption, make_network
from knowdo.complexity.calibration import calibrate
from knowdo.complexity.pathway import CarePathway
from knowdo.complexity.sensitivity import sobol_indices
from knowdo.complexity.sweep import Sweep, chunk_seeds, run_sweep
from knowdo.errors import ParameterError

NETWORK = make_network(500, degree=6, seed=0)


def adoption_task(chunk: np.ndarray, seed: int) -> np.ndarray:
    model = NetworkAdoption(external=chunk[:, 0], peer=chunk[:, 1], discontinuation=0.0)
    return model.run(NETWORK, steps=12, replications=len(chunk), seed=seed).final


def simulate(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"y": (p["a"] * 100)[:, None] * np.ones((1, 12))}


def linear(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"y": p["a"] + 2 * p["b"]}


def pathway_task(chunk: np.ndarray, seed: int) -> np.ndarray:
    del seed
    run = CarePathway(population=[100_000.0]).run({"detection": chunk[:, 0], "posts_specialist": chunk[:, 1]},
                                                  months=24, record="stocks")
    return run.stocks["waiting"][:, -1, 0, 0]


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.uniform(0.001, 0.05, 64), rng.uniform(0.05, 0.5, 64)])


def test_same_seed_same_results_with_one_and_two_workers(samples: np.ndarray) -> None:
    serial = run_sweep(adoption_task, samples, chunk_size=16, seed=42, sweep=Sweep(engine="serial"))
    results = []
    for workers in (1, 2):
        with Sweep(workers=workers, processes=False) as sweep:
            client = sweep._client()
            assert len(client.scheduler_info()["workers"]) == workers
            results.append(run_sweep(adoption_task, samples, chunk_size=16, seed=42, sweep=sweep))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], serial)
    other_seed = run_sweep(adoption_task, samples, chunk_size=16, seed=43, sweep=Sweep(engine="serial"))
    assert not np.array_equal(other_seed, serial)


def test_pathway_sweep_calibration_and_sobol_on_a_local_cluster(samples: np.ndarray) -> None:
    grid = np.column_stack([samples[:, 0], 20 + 400 * samples[:, 1]])
    direct = pathway_task(grid, 0)

    with Sweep(workers=2, processes=False) as sweep:
        swept = run_sweep(pathway_task, grid, chunk_size=10, seed=1, sweep=sweep)
        abc = calibrate(simulate, {"y": np.full(12, 40.0)}, {"a": (0.0, 1.0)}, method="abc_rejection",
                        simulations=2_000, batch=500, sweep=sweep, seed=4)
        sobol = sobol_indices(linear, {"a": (0, 1), "b": (0, 1)}, n=64, sweep=sweep,
                              chunk_size=100)
    np.testing.assert_allclose(swept, direct, rtol=1e-12)
    serial_abc = calibrate(simulate, {"y": np.full(12, 40.0)}, {"a": (0.0, 1.0)}, method="abc_rejection",
                           simulations=2_000, batch=500, seed=4)
    np.testing.assert_array_equal(abc.draws, serial_abc.draws)
    serial_sobol = sobol_indices(linear, {"a": (0, 1), "b": (0, 1)}, n=64)
    np.testing.assert_allclose(sobol.indices["ST"], serial_sobol.indices["ST"], rtol=1e-12)


def test_chunk_seeds_and_errors() -> None:
    assert chunk_seeds(1, 3) == chunk_seeds(1, 3) and len(set(chunk_seeds(1, 3))) == 3
    with pytest.raises(ParameterError, match="samples must be a non-empty 2-D table"):
        run_sweep(pathway_task, np.zeros(3), sweep=Sweep(engine="serial"))
    with pytest.raises(ParameterError, match="'engine' must be one of"):
        Sweep(engine="ray").map(pathway_task, [np.zeros((1, 2))])  # type: ignore[arg-type]
