"""Large sweeps, ABC batches and Sobol samples on Dask (``dask.distributed``), with scheduling-free results.

The vectorised models already run thousands of scenarios per array call, so
work is cut into **chunks** of a fixed size (>= 1,000 scenarios each, so a
task lasts long enough to pay Dask's ~ms overhead; complexity.md section 4)
and each chunk is one task. Each task gets its own seed, spawned from the
sweep's seed with :class:`numpy.random.SeedSequence` in chunk order, so the
results are the same whatever the number of workers, threads or machines:
seeds belong to tasks, never to workers.

Where it runs:

* ``Sweep()``: a local in-process Dask cluster of threads (starts in a few
  hundredths of a second); ``processes=True`` for separate worker processes
  (then call from under ``if __name__ == "__main__":``);
* ``Sweep(address="tcp://scheduler:8786")``: an existing cluster (the project's
  ``knowdo.toml`` may name it under ``[simulation] scheduler``), e.g. one
  started by dask-jobqueue on SLURM or PBS;
* ``Sweep(engine="serial")``: no Dask at all, the same chunks in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal

import numpy as np
import pandas as pd
from dask.distributed import Client, LocalCluster

from knowdo.equity.common import check_option
from knowdo.errors import ParameterError

Engine = Literal["dask", "serial"]
ENGINES: tuple[str, ...] = ("dask", "serial")
DEFAULT_CHUNK = 1_000  # scenarios per task: ~1 s of work or less per task is Dask's sweet spot (complexity.md 4)
Task = Callable[[Any, int], Any]


def chunk_seeds(seed: int, chunks: int) -> list[int]:
    """One independent seed per chunk, in chunk order (``SeedSequence(seed).spawn``)."""
    children = np.random.SeedSequence(int(seed)).spawn(int(chunks))
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


class Sweep:
    """Where sweeps run: a local Dask cluster (default), a remote scheduler, or serially.

    Parameters
    ----------
    address
        Scheduler address of an existing cluster; ``None`` starts a local one.
    workers
        Local workers (default: CPU count).
    processes
        Local workers as processes (True) or threads in this process (False).
    engine
        ``'dask'`` or ``'serial'``.
    client
        An existing ``dask.distributed.Client`` to use as is.

    Examples
    --------
    >>> with Sweep(engine="serial") as sweep:
    ...     sweep.map(lambda chunk, seed: chunk * 2, [1, 2, 3], seed=0)
    [2, 4, 6]
    """

    def __init__(self, *, address: str | None = None, workers: int | None = None, processes: bool = False,
                 engine: Engine = "dask", client: Client | None = None) -> None:
        self.address = address
        self.workers = workers
        self.processes = processes
        self.engine = engine
        self.client = client
        self._own: list[Any] = []

    def _client(self) -> Client:
        if self.client is not None:
            return self.client
        if self.address:
            try:
                self.client = Client(self.address, timeout="10s")
            except OSError as exc:
                raise ParameterError(f"Sweep: cannot reach the Dask scheduler at {self.address!r} ({exc}); "
                                     "check [simulation] scheduler in knowdo.toml or leave it out to run "
                                     "locally") from None
        else:
            n = self.workers or os.cpu_count() or 1
            if not isinstance(n, int) or n < 1:
                raise ParameterError(f"Sweep: workers must be a positive whole number; saw {self.workers!r}")
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=self.processes,
                                   dashboard_address=None)
            self.client = Client(cluster)
            self._own.append(cluster)
        self._own.append(self.client)
        return self.client

    def map(self, task: Task, chunks: Sequence[Any], *, seed: int = 0) -> list[Any]:
        """``[task(chunk, seed_i) for each chunk]``, in chunk order, each with its own spawned seed."""
        check_option("engine", self.engine, ENGINES)
        seeds = chunk_seeds(seed, len(chunks))
        if self.engine == "serial" or len(chunks) == 0:
            return [task(c, s) for c, s in zip(chunks, seeds, strict=True)]
        client = self._client()
        futures = client.map(task, list(chunks), seeds, pure=False)
        return list(client.gather(futures))

    def close(self) -> None:
        for item in reversed(self._own):
            item.close()
        self._own.clear()
        self.client = None

    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def run_sweep(task: Task, samples: np.ndarray | pd.DataFrame, *, chunk_size: int = DEFAULT_CHUNK, seed: int = 0,
              sweep: Sweep | None = None) -> np.ndarray:
    """Evaluate ``task(chunk, seed)`` over ``samples`` (rows = scenarios) in chunks; rows of the results stacked.

    ``task`` returns an array whose first axis matches the chunk's rows. The
    result is the same for any worker count because chunks and their seeds are
    fixed by ``chunk_size`` and ``seed`` alone.
    """
    values = samples.to_numpy(dtype=float) if isinstance(samples, pd.DataFrame) else np.asarray(samples)
    if values.ndim != 2 or len(values) == 0:
        raise ParameterError(f"run_sweep: samples must be a non-empty 2-D table (scenarios x parameters); "
                             f"saw shape {values.shape}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ParameterError(f"run_sweep: chunk_size must be a positive whole number; saw {chunk_size!r}")
    chunks = [values[i : i + chunk_size] for i in range(0, len(values), chunk_size)]
    owner = sweep is None
    sweep = sweep or Sweep()
    try:
        parts = sweep.map(task, chunks, seed=seed)
    finally:
        if owner:
            sweep.close()
    return np.concatenate([np.asarray(p) for p in parts], axis=0)
