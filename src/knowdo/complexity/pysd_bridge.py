"""Run a user's own Vensim (``.mdl``) or XMILE model through PySD with knowdo's scenario, sweep and calibration API.

Teams that built a model in Vensim or Stella keep it: :class:`PySDModel`
translates it once with PySD and then behaves like any knowdo simulator,
``{parameter: (B,) array} -> {series: (B, T) array}``, so
:func:`knowdo.complexity.calibration.calibrate`,
:func:`knowdo.complexity.sweep.run_sweep` (via :meth:`PySDModel.task`) and
scenarios (:meth:`PySDModel.run_scenarios`) take it unchanged. PySD runs
one parameter set at a time, so large sweeps are far slower than the
vectorised pathway model (about 16 ms per run of a 6-stock model against
12.5 us, complexity.md section 2.1); use it for the model you trust and the
vectorised model for big sweeps.

The package ships ``models/care_pathway.mdl``: the simplified care pathway
(one stratum, the specialist cadre, no programme) written in Vensim, whose
runs equal :class:`knowdo.complexity.pathway.CarePathway` with the same
settings to machine precision (see :data:`PATHWAY_NAMES` and
:func:`pathway_parameters`). PySD does not cover all of Vensim or XMILE
(Stella conveyors and arrayed graphical functions, for instance); a model
it cannot translate raises :class:`~knowdo.errors.ParameterError` naming the
file and PySD's message.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pysd

from knowdo.complexity.pathway import Change
from knowdo.complexity.simplified import PATHWAY_NAMES, PATHWAY_STOCKS, SIMPLIFIED, pathway_parameters
from knowdo.errors import ParameterError

__all__ = ["PATHWAY_NAMES", "PATHWAY_STOCKS", "SIMPLIFIED", "PySDModel", "bundled_model", "pathway_parameters"]

def bundled_model() -> Path:
    """Path of the shipped Vensim model of the simplified care pathway."""
    return Path(str(resources.files("knowdo.complexity") / "models" / "care_pathway.mdl"))


class PySDModel:
    """A Vensim or XMILE model run through PySD, as a knowdo simulator.

    Parameters
    ----------
    path
        The ``.mdl``, ``.xmile``/``.stmx`` file (translated in a temporary folder, so a read-only
        location is fine), or a PySD-translated ``.py``.
    outputs
        ``{series name: model variable}`` to return; stocks are returned at ``times``,
        others too (PySD reports auxiliaries at the save times).
    parameters
        ``{knowdo name: model variable}`` for parameters passed by knowdo name; other
        names are passed to PySD as they are.
    times
        Save times (default: every month from the model's initial to final time).

    Examples
    --------
    >>> model = PySDModel(bundled_model(), outputs={"waiting": "Waiting"}, times=[0, 12])
    >>> model({"detection rate": np.array([0.01, 0.02])})["waiting"].shape
    (2, 2)
    """

    def __init__(self, path: str | Path, *, outputs: Mapping[str, str], parameters: Mapping[str, str] | None = None,
                 times: Sequence[float] | None = None) -> None:
        self.path = path
        self.outputs = outputs
        self.parameters = parameters
        self.times = times
        self._model: Any = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def load(self) -> Any:
        """Translate (once) and return the PySD model."""
        if self._model is not None:
            return self._model
        file = Path(self.path)
        if not file.exists():
            raise ParameterError(f"PySDModel: model file {file} not found")
        suffix = file.suffix.lower()
        if suffix not in (".mdl", ".xmile", ".xml", ".stmx", ".py"):
            raise ParameterError(f"PySDModel: {file} must be a Vensim .mdl, an XMILE file or a PySD .py; "
                                 f"saw suffix {suffix!r}")
        self._folder = tempfile.TemporaryDirectory(prefix="knowdo-pysd-")
        copy = Path(self._folder.name) / file.name
        shutil.copy(file, copy)
        try:
            if suffix == ".mdl":
                self._model = pysd.read_vensim(str(copy))
            elif suffix == ".py":
                self._model = pysd.load(str(copy))
            else:
                self._model = pysd.read_xmile(str(copy))
        except Exception as exc:  # PySD raises parser errors of many kinds; name the file and pass the message on
            raise ParameterError(f"PySDModel: PySD could not translate {file}: {type(exc).__name__}: "
                                 f"{str(exc)[:300]}. PySD covers most of Vensim and part of XMILE; "
                                 "simplify the construct it names or rebuild the model in knowdo") from None
        return self._model

    def with_outputs(self, outputs: Mapping[str, str], *, parameters: Mapping[str, str] | None = None,
                     times: Sequence[float] | None = None) -> PySDModel:
        """The same translated model with other outputs, parameter names or save times."""
        other = PySDModel(self.path, outputs=outputs, parameters=parameters, times=times)
        other._model, other._folder = self.load(), self._folder
        return other

    def _times(self, model: Any) -> list[float]:
        if self.times is not None:
            return [float(t) for t in self.times]
        start, stop, saveper = (float(model.components.initial_time()), float(model.components.final_time()),
                                float(model.components.saveper()))
        return list(np.arange(start, stop + saveper / 2, saveper))

    def _names(self, params: Mapping[str, Any]) -> dict[str, Any]:
        mapping = dict(self.parameters or {})
        return {mapping.get(k, k): v for k, v in params.items()}

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run every row of ``params`` (``{name: (B,) array}``) and return ``{series: (B, T)}``."""
        model = self.load()
        times = self._times(model)
        named = self._names(params)
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in named.items()}
        b = max((len(v) for v in arrays.values()), default=1)
        columns = list(self.outputs.values())
        out = {k: np.empty((b, len(times))) for k in self.outputs}
        for i in range(b):
            row = {k: float(v[i if len(v) > 1 else 0]) for k, v in arrays.items()}
            frame = model.run(params=row, return_columns=columns, return_timestamps=times, progress=False)
            for key, var in self.outputs.items():
                out[key][i] = frame[var].to_numpy(dtype=float)
        return out

    def task(self, names: Sequence[str]) -> _PySDTask:
        """A :func:`~knowdo.complexity.sweep.run_sweep` task: rows of ``names`` -> outputs ``(n, series, T)``."""
        return _PySDTask(self, list(names))

    def run_scenarios(self, scenarios: Sequence[Any], params: Mapping[str, np.ndarray] | None = None) -> dict[
            str, dict[str, np.ndarray]]:
        """Run each :class:`~knowdo.complexity.scenarios.Scenario` (changes by model variable name) for every row.

        A change from month ``start`` > 0 becomes a step time series (PySD interpolates
        between the two points straddling the step).
        """
        model = self.load()
        times = self._times(model)
        results = {}
        base = dict(params or {})
        for scenario in scenarios:
            run_params: dict[str, Any] = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in base.items()}
            steps: dict[str, list[Change]] = {}
            for change in scenario.changes:
                if change.stratum is not None:
                    raise ParameterError(f"PySDModel: scenario {scenario.name!r} names a stratum; a PySD model "
                                         "has no knowdo strata")
                steps.setdefault(change.parameter, []).append(change)
            results[scenario.name] = self._run_changes(model, run_params, steps, times)
        return results

    def _run_changes(self, model: Any, params: dict[str, np.ndarray], steps: dict[str, list[Change]],
                     times: list[float]) -> dict[str, np.ndarray]:
        named = self._names(params)
        b = max((len(v) for v in named.values()), default=1)
        mapping = dict(self.parameters or {})
        out = {k: np.empty((b, len(times))) for k in self.outputs}
        for i in range(b):
            row: dict[str, Any] = {k: float(v[i if len(v) > 1 else 0]) for k, v in named.items()}
            for parameter, changes in steps.items():
                var = mapping.get(parameter, parameter)
                current = row.get(var)
                if current is None:
                    current = float(getattr(model.components, _py_name(model, var))())
                row[var] = _step_series(float(current), changes, times)
            frame = model.run(params=row, return_columns=list(self.outputs.values()), return_timestamps=times,
                              progress=False)
            for key, var in self.outputs.items():
                out[key][i] = frame[var].to_numpy(dtype=float)
        return out


def _py_name(model: Any, var: str) -> str:
    namespace = model.namespace if hasattr(model, "namespace") else {}
    if var not in namespace:
        raise ParameterError(f"PySDModel: the model has no variable {var!r}")
    return str(namespace[var])


def _step_series(value: float, changes: list[Change], times: list[float]) -> float | pd.Series:
    if all(c.start <= times[0] for c in changes):
        for c in changes:
            value = _edit(value, c)
        return value
    points = {times[0]: value}
    current = value
    for c in sorted(changes, key=lambda c: c.start):
        points[c.start - 1e-6] = current
        current = _edit(current, c)
        points[c.start] = current
    points[times[-1]] = current
    return pd.Series(points).sort_index()


def _edit(value: float, change: Change) -> float:
    if change.op == "set":
        return change.value
    if change.op == "scale":
        return value * change.value
    return value + change.value


class _PySDTask:
    def __init__(self, model: PySDModel, names: list[str]) -> None:
        self.model = model
        self.names = names

    def __call__(self, chunk: np.ndarray, seed: int) -> np.ndarray:
        del seed
        out = self.model({name: chunk[:, j] for j, name in enumerate(self.names)})
        return np.stack([out[k] for k in self.model.outputs], axis=1)
