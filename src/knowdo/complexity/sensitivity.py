"""Global sensitivity: Sobol indices (SALib) of scenario outcomes, with intervals and a sample-size check.

Sampling is SALib's scrambled Sobol' sequence with Saltelli's scheme
(first and total order, ``calc_second_order=False``: ``N x (D + 2)`` runs),
seeded explicitly: SALib's unscrambled sampler ignores ``seed`` (SALib
#412/#334) and ``sobol.analyze`` silently gives wrong indices when the rows
are reordered (SALib #665), so rows go to the model and back in order.
``N`` is rounded up to a power of two (SALib #447).

The check: Saltelli rows come in blocks of ``D + 2`` per base point, and the
first ``N/2`` points of a Sobol' sequence are themselves a balanced sample, so
the indices are recomputed on the first half. The sample is judged enough
when no total-order index moves by more than 0.05 between ``N/2`` and ``N``
and every total-order interval half-width is below 0.1 (our thresholds); the
message otherwise says to double ``N``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import sobol as sobol_sample

from knowdo.complexity.results import LEVEL, SobolResult
from knowdo.complexity.sweep import Sweep
from knowdo.errors import ParameterError

Evaluate = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]

DEFAULT_N = 512  # base samples; x (D + 2) model runs. 1,024 gave stable indices for D = 13 (complexity.md 2.4)
DEFAULT_RESAMPLES = 200  # bootstrap resamples for the intervals (SALib default 100; more for steadier CIs)
MAX_CHANGE = 0.05  # largest allowed move of a total-order index between N/2 and N (our threshold)
MAX_HALF_WIDTH = 0.1  # largest allowed half-width of a total-order interval (our threshold)


def sobol_indices(evaluate: Evaluate, bounds: Mapping[str, tuple[float, float]], *, n: int = DEFAULT_N,
                  seed: int = 0, resamples: int = DEFAULT_RESAMPLES, sweep: Sweep | None = None,
                  chunk_size: int = 2_000) -> SobolResult:
    """Sobol S1 and ST of every output of ``evaluate`` with respect to the parameters in ``bounds``.

    Parameters
    ----------
    evaluate
        ``{parameter: (n,) array} -> {output: (n,) array}``, vectorised over rows.
    bounds
        ``{parameter: (low, high)}``, sampled uniformly.
    n
        Base sample size (rounded up to a power of two).
    sweep
        Spread the model runs over Dask workers in chunks of ``chunk_size``.

    Examples
    --------
    >>> import numpy as np
    >>> result = sobol_indices(lambda p: {"y": p["a"] + 0.1 * p["b"]}, {"a": (0, 1), "b": (0, 1)}, n=256)
    >>> bool(result.indices.set_index("parameter").loc["a", "ST"] > 0.9)
    True
    """
    names = list(bounds)
    if len(names) < 2:
        raise ParameterError("sobol_indices: needs at least two parameters in bounds")
    for name, (lo, hi) in bounds.items():
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ParameterError(f"sobol_indices: bounds of {name!r} must be finite with low < high; saw {(lo, hi)}")
    if not isinstance(n, int) or n < 16:
        raise ParameterError(f"sobol_indices: n must be a whole number >= 16; saw {n!r}")
    n = 2 ** math.ceil(math.log2(n))
    d = len(names)
    problem = {"num_vars": d, "names": names, "bounds": [list(map(float, bounds[k])) for k in names]}
    started = time.perf_counter()
    x = sobol_sample.sample(problem, n, calc_second_order=False, scramble=True, seed=seed)
    if sweep is None:
        outputs = {k: np.asarray(v, dtype=float) for k, v in evaluate(_columns(x, names)).items()}
    else:
        chunks = [x[i : i + chunk_size] for i in range(0, len(x), chunk_size)]
        parts = sweep.map(_EvaluateTask(evaluate, names), chunks, seed=seed)
        outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    rows, conv = [], []
    enough = True
    half = (n // 2) * (d + 2)
    for output, y in outputs.items():
        if y.shape != (len(x),) or not np.all(np.isfinite(y)):
            raise ParameterError(f"sobol_indices: output {output!r} must be finite with one value per row")
        full = _analyse(problem, y, resamples, seed)
        part = _analyse(problem, y[:half], resamples, seed)
        for j, name in enumerate(names):
            rows.append({"output": output, "parameter": name, "S1": full["S1"][j], "S1_conf": full["S1_conf"][j],
                         "ST": full["ST"][j], "ST_conf": full["ST_conf"][j]})
            change = abs(full["ST"][j] - part["ST"][j])
            conv.append({"output": output, "parameter": name, "ST_half": part["ST"][j], "ST_full": full["ST"][j],
                         "change": change})
            if change > MAX_CHANGE or full["ST_conf"][j] > MAX_HALF_WIDTH:
                enough = False
    convergence = pd.DataFrame(conv)
    worst = float(convergence["change"].max())
    widest = float(max(r["ST_conf"] for r in rows))
    if enough:
        message = (f"N = {n} was enough: total-order indices moved by at most {worst:.3f} between N/2 and N and "
                   f"every interval half-width is at most {widest:.3f}.")
    else:
        message = (f"N = {n} may be too small: total-order indices moved by up to {worst:.3f} between N/2 and N "
                   f"(limit {MAX_CHANGE}) and interval half-widths reach {widest:.3f} (limit {MAX_HALF_WIDTH}); "
                   f"rerun with n = {2 * n}.")
    return SobolResult(indices=pd.DataFrame(rows), convergence=convergence, base_samples=n, evaluations=len(x),
                       enough=enough, message=message, seconds=time.perf_counter() - started,
                       settings={"seed": seed, "resamples": resamples, "bounds": {k: list(v) for k, v in
                                                                                   bounds.items()}})


def _columns(x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {name: x[:, j] for j, name in enumerate(names)}


def _analyse(problem: dict[str, object], y: np.ndarray, resamples: int, seed: int) -> dict[str, np.ndarray]:
    return dict(sobol_analyze.analyze(problem, y, calc_second_order=False, num_resamples=resamples,
                                      conf_level=LEVEL, print_to_console=False, seed=seed))


class _EvaluateTask:
    """A picklable chunk task for :class:`Sweep`."""

    def __init__(self, evaluate: Evaluate, names: list[str]) -> None:
        self.evaluate = evaluate
        self.names = names

    def __call__(self, chunk: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        del seed  # the models here are deterministic
        return {k: np.asarray(v, dtype=float) for k, v in self.evaluate(_columns(chunk, self.names)).items()}
