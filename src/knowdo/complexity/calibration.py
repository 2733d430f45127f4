"""Calibrate a vectorised model to observed monthly series: least squares, ABC rejection and ABC-SMC.

A *simulator* is any callable taking ``{parameter: (B,) array}`` and returning
``{series: (B, T) array}``; the care-pathway model (via
:class:`knowdo.complexity.panel_data.PathwaySimulator`), the adoption model and a
PySD model (:mod:`knowdo.complexity.pysd_bridge`) all fit this shape, so they
share one calibration interface.

* **Least squares** (``scipy.optimize.least_squares``, bounded, on the unit
  cube of the prior box; the Jacobian is taken by finite differences in one
  batched call) gives a quick fit; its intervals come from ``(J'J)^-1`` and are
  reported as infinite when ``J'J`` is singular.
* **ABC rejection** draws from the prior in batches, keeps the closest share.
* **ABC-SMC** (population Monte Carlo: Beaumont et al. 2009, Toni et al. 2009)
  lowers the tolerance generation by generation, perturbing with a Gaussian of
  twice the weighted particle covariance.

Distances compare ``2 sqrt(y)`` with ``2 sqrt(mu)`` (Anscombe's
variance-stabilising transform for Poisson counts, so every month and series
weighs about the same). The last ``held_out`` months are not used to fit;
the posterior predictive (with Poisson noise) is checked against them.

Identifiability is reported in words: a parameter whose 95% posterior interval
is at least 80% as wide as its prior's central 95% is *not identified* by these
data (thresholds 0.8/0.5 are our convention; complexity.md section 2.4 shows a
burnout sensitivity whose posterior was as wide as its prior); strongly
correlated pairs are reported as identified only in combination.

Why our own ABC rather than pyabc: pyabc simulates one particle per call and
keeps a database per run; the models here simulate whole batches in one array
call, which makes 10^5 simulations take seconds (complexity.md section 2.4).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import multivariate_normal

from knowdo.complexity.results import LEVEL, CalibrationResult, rows
from knowdo.complexity.sweep import Sweep
from knowdo.equity.common import check_option
from knowdo.errors import ParameterError

Method = Literal["least_squares", "abc_rejection", "abc_smc"]
METHODS: tuple[str, ...] = ("least_squares", "abc_rejection", "abc_smc")
Scale = Literal["linear", "log"]
Simulate = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]

NOT_IDENTIFIED = 0.8  # posterior 95% width / prior 95% width at or above this: not identified (our convention)
WEAK = 0.5  # between WEAK and NOT_IDENTIFIED: weakly identified (our convention)
CORRELATED = 0.9  # |posterior correlation| above this: only the combination is identified (our convention)
DEFAULT_SIMULATIONS = 20_000  # ABC rejection budget; 2x10^5 took 0.56 s on the benchmark model (complexity.md 2.4)
DEFAULT_ACCEPT = 0.02  # share of prior draws kept by ABC rejection
DEFAULT_PARTICLES = 500  # ABC-SMC population size
DEFAULT_GENERATIONS = 5  # ABC-SMC generations after the first
DEFAULT_QUANTILE = 0.5  # next tolerance = median distance of the current population (Beaumont et al. 2009)
DEFAULT_BATCH = 2_000  # runs simulated per array call
PREDICTIVE_DRAWS = 200  # posterior draws used for the fit bands and held-out check


@dataclass(frozen=True)
class Prior:
    """A uniform prior on ``[low, high]``, on the natural or the log scale.

    Examples
    --------
    >>> Prior(0.1, 10, "log").to_unit(np.array([1.0]))
    array([0.5])
    """

    low: float
    high: float
    scale: Scale = "linear"

    def __post_init__(self) -> None:
        check_option("scale", self.scale, ("linear", "log"))
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ParameterError(f"Prior: need finite low < high; saw low={self.low!r}, high={self.high!r}")
        if self.scale == "log" and self.low <= 0:
            raise ParameterError(f"Prior: a log-scale prior needs low > 0; saw low={self.low!r}")

    def _ends(self) -> tuple[float, float]:
        if self.scale == "log":
            return float(np.log(self.low)), float(np.log(self.high))
        return float(self.low), float(self.high)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self._ends()
        z = np.log(x) if self.scale == "log" else x
        return (z - lo) / (hi - lo)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._ends()
        z = lo + np.asarray(u) * (hi - lo)
        return np.exp(z) if self.scale == "log" else z


def as_priors(priors: Mapping[str, Prior | tuple[float, float] | Sequence[Any]]) -> dict[str, Prior]:
    """Normalise ``{name: Prior | (low, high) | (low, high, scale)}``."""
    out: dict[str, Prior] = {}
    if not priors:
        raise ParameterError("calibration needs at least one parameter with a prior")
    for name, value in priors.items():
        if isinstance(value, Prior):
            out[name] = value
        elif isinstance(value, tuple | list) and len(value) in (2, 3):
            out[name] = Prior(float(value[0]), float(value[1]), *(value[2:]))
        else:
            raise ParameterError(f"prior of {name!r} must be Prior(low, high) or (low, high[, scale]); saw {value!r}")
    return out


class Calibration:
    """Calibrate ``simulate`` to observed monthly series.

    Parameters
    ----------
    simulate
        ``{parameter: (B,) array} -> {series: (B, T) array}``.
    priors
        ``{parameter: Prior or (low, high)}``.
    method
        ``'least_squares'``, ``'abc_rejection'`` or ``'abc_smc'``.
    held_out
        Number of final months left out of the fit and used as a check.
    simulations, accept
        ABC rejection budget and the share kept.
    particles, generations, quantile
        ABC-SMC population size, generations and tolerance quantile.
    sweep
        A :class:`~knowdo.complexity.sweep.Sweep` to spread ABC batches over Dask workers; ``None`` runs in process.
    seed
        Seed of every random draw.
    """

    def __init__(self, *, simulate: Simulate, priors: Mapping[str, Any], method: Method = "abc_smc",
                 held_out: int = 6, simulations: int = DEFAULT_SIMULATIONS, accept: float = DEFAULT_ACCEPT,
                 particles: int = DEFAULT_PARTICLES, generations: int = DEFAULT_GENERATIONS,
                 quantile: float = DEFAULT_QUANTILE, batch: int = DEFAULT_BATCH, sweep: Sweep | None = None,
                 seed: int = 0) -> None:
        self.simulate = simulate
        self.priors = priors
        self.method = method
        self.held_out = held_out
        self.simulations = simulations
        self.accept = accept
        self.particles = particles
        self.generations = generations
        self.quantile = quantile
        self.batch = batch
        self.sweep = sweep
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def fit(self, observed: Mapping[str, np.ndarray | Sequence[float]]) -> Calibration:
        """Calibrate to ``observed`` (``{series: (T,) array}``, NaN = missing); sets ``result_``."""
        check_option("method", self.method, METHODS)
        priors = as_priors(self.priors)
        obs = {str(k): np.asarray(v, dtype=float).reshape(-1) for k, v in observed.items()}
        if not obs:
            raise ParameterError("Calibration.fit: observed holds no series")
        lengths = {len(v) for v in obs.values()}
        if len(lengths) != 1:
            raise ParameterError(f"Calibration.fit: every observed series needs the same months; saw {sorted(lengths)}")
        months = lengths.pop()
        if not isinstance(self.held_out, int) or not 0 <= self.held_out <= months - 3:
            raise ParameterError(f"Calibration.fit: held_out must be a whole number in [0, {months - 3}]; "
                                 f"saw {self.held_out!r}")
        if any(np.nanmin(v, initial=0.0) < 0 for v in obs.values()):
            raise ParameterError("Calibration.fit: observed counts must be non-negative")
        self._names = list(priors)
        self._priors = priors
        self._obs = obs
        self._fit_mask = np.arange(months) < months - self.held_out
        self._target = {k: 2 * np.sqrt(np.maximum(v, 0)) for k, v in obs.items()}
        self._count = 0
        rng = np.random.default_rng(self.seed)
        started = time.perf_counter()
        diagnostics: dict[str, Any] = {}
        if self.method == "least_squares":
            draws, point, diagnostics = self._least_squares(rng)
        elif self.method == "abc_rejection":
            draws, diagnostics = self._rejection(rng)
            point = np.median(draws, axis=0)
        else:
            draws, diagnostics = self._smc(rng)
            point = np.median(draws, axis=0)
        seconds = time.perf_counter() - started
        self.result_ = self._result(draws, point, rng, seconds, diagnostics)
        return self

    # ------------------------------------------------------------------ helpers
    def _params(self, unit: np.ndarray) -> dict[str, np.ndarray]:
        return {n: self._priors[n].from_unit(unit[:, j]) for j, n in enumerate(self._names)}

    def _task(self) -> _DistanceTask:
        return _DistanceTask(self.simulate, self._names, self._priors, self._target, self._fit_mask, self.batch)

    def _simulate(self, unit: np.ndarray) -> dict[str, np.ndarray]:
        self._count += len(unit)
        return self._task().simulate_unit(unit)

    def _residuals(self, sims: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._task().residuals(sims)

    def _distances(self, unit: np.ndarray, seed: int) -> np.ndarray:
        self._count += len(unit)
        task = self._task()
        if self.sweep is None:
            return task(unit, seed)
        chunks = [unit[i : i + self.batch] for i in range(0, len(unit), self.batch)]
        return np.concatenate(self.sweep.map(task, chunks, seed=seed))

    # ------------------------------------------------------------------ methods
    def _least_squares(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        d = len(self._names)
        step = 1e-4

        def fun(x: np.ndarray) -> np.ndarray:
            return self._residuals(self._simulate(x[None, :]))[0]

        def jac(x: np.ndarray) -> np.ndarray:
            # one batched call: the point and a forward (or backward, at the upper bound) step per parameter
            h = np.where(x + step <= 1, step, -step)
            pts = np.repeat(x[None, :], d + 1, axis=0)
            pts[1:] += np.diag(h)
            res = self._residuals(self._simulate(pts))
            return ((res[1:] - res[0]) / h[:, None]).T

        starts = np.vstack([np.full(d, 0.5), rng.random((1, d))])  # a second start guards against local minima
        best = None
        for x0 in starts:
            fit = least_squares(fun, x0, jac=jac, bounds=(0.0, 1.0), x_scale=1.0, max_nfev=60)
            if best is None or fit.cost < best.cost:
                best = fit
        assert best is not None
        x = best.x
        j = best.jac
        dof = max(1, j.shape[0] - d)
        s2 = 2 * best.cost / dof
        info = j.T @ j
        eigval, eigvec = np.linalg.eigh(info)
        top = max(float(eigval.max()), 1e-300)
        flat = eigval < 1e-8 * top  # directions the data do not inform
        unidentified = np.any(np.abs(eigvec[:, flat]) > 0.3, axis=1) if flat.any() else np.zeros(d, dtype=bool)
        inv = eigvec[:, ~flat] @ np.diag(1.0 / eigval[~flat]) @ eigvec[:, ~flat].T
        cov = s2 * inv
        sd = np.sqrt(np.clip(np.diag(cov), 0, np.inf))
        sd[unidentified] = np.inf
        cond = float(top / max(float(eigval.min()), 1e-300))
        n = PREDICTIVE_DRAWS
        draws = rng.multivariate_normal(x, cov, size=n, method="svd")
        draws[:, unidentified] = rng.random((n, int(unidentified.sum())))  # the prior, for what the data miss
        draws = np.clip(draws, 0, 1)
        diag = {"condition_number": cond, "cost": float(best.cost), "sd_unit": sd.tolist(),
                "infinite_interval": [n for n, s in zip(self._names, sd, strict=True) if not np.isfinite(s)]}
        return draws, x, diag

    def _rejection(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        n = int(self.simulations)
        keep = max(2, round(n * self.accept))
        if n < 10 or keep > n:
            raise ParameterError(f"abc_rejection: simulations ({n}) must be >= 10 and accept in (0, 1]")
        unit = rng.random((n, len(self._names)))
        dist = self._distances(unit, seed=int(rng.integers(2**31)))
        order = np.argsort(dist, kind="stable")[:keep]
        return unit[order], {"tolerance": float(dist[order[-1]]), "accepted": keep, "proposed": n}

    def _smc(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        n, d = int(self.particles), len(self._names)
        if n < 20:
            raise ParameterError(f"abc_smc: particles must be >= 20; saw {n}")
        first = rng.random((n * 10, d))  # generation 0: the best tenth of 10 x particles prior draws
        dist = self._distances(first, seed=int(rng.integers(2**31)))
        order = np.argsort(dist, kind="stable")[:n]
        particles, distances = first[order], dist[order]
        weights = np.full(n, 1.0 / n)
        tolerances = [float(distances.max())]
        rates = [0.1]
        for _ in range(int(self.generations)):
            eps = float(np.quantile(distances, self.quantile))
            cov = 2 * np.atleast_2d(np.cov(particles.T, aweights=weights)) + 1e-12 * np.eye(d)
            kept_p: list[np.ndarray] = []
            kept_d: list[np.ndarray] = []
            proposed = 0
            while sum(len(k) for k in kept_p) < n and proposed < 50 * n:
                m = max(n, self.batch)
                pick = rng.choice(len(particles), size=m, p=weights)
                cand = particles[pick] + rng.multivariate_normal(np.zeros(d), cov, size=m, method="svd")
                inside = np.all((cand >= 0) & (cand <= 1), axis=1)
                cand = cand[inside]
                proposed += m
                if len(cand) == 0:
                    continue
                dd = self._distances(cand, seed=int(rng.integers(2**31)))
                ok = dd <= eps
                kept_p.append(cand[ok])
                kept_d.append(dd[ok])
            new_p = np.concatenate(kept_p)[:n] if kept_p else np.zeros((0, d))
            if len(new_p) < n // 2:
                break  # acceptance collapsed; keep the last full population
            new_d = np.concatenate(kept_d)[: len(new_p)]
            kernel = multivariate_normal(np.zeros(d), cov, allow_singular=True)
            dens = np.array([np.sum(weights * kernel.pdf(p - particles).reshape(-1)) for p in new_p])
            w = 1.0 / np.maximum(dens, 1e-300)  # uniform prior: weight = 1 / sum_j w_j K(theta | theta_j)
            weights = w / w.sum()
            particles, distances = new_p, new_d
            tolerances.append(eps)
            rates.append(len(new_p) / proposed)
        ess = float(1.0 / np.sum(weights**2))
        # resample to an equally weighted posterior sample
        idx = rng.choice(len(particles), size=len(particles), p=weights)
        return particles[idx], {"tolerances": tolerances, "acceptance_rates": rates, "effective_sample_size": ess}

    # ------------------------------------------------------------------ result
    def _result(self, draws_unit: np.ndarray, point_unit: np.ndarray, rng: np.random.Generator, seconds: float,
                diagnostics: dict[str, Any]) -> CalibrationResult:
        names = self._names
        tail = (1 - LEVEL) / 2
        rows = []
        lo_u, hi_u = np.quantile(draws_unit, [tail, 1 - tail], axis=0)
        infinite = set(diagnostics.get("infinite_interval", []))
        for j, name in enumerate(names):
            prior = self._priors[name]
            width = (hi_u[j] - lo_u[j]) / LEVEL  # prior central 95% of a uniform on the unit cube is 0.95 wide
            if name in infinite:
                width = np.inf
            label = ("not identified" if width >= NOT_IDENTIFIED else
                     "weakly identified" if width >= WEAK else "identified")
            rows.append({
                "parameter": name, "prior_low": prior.low, "prior_high": prior.high, "scale": prior.scale,
                "estimate": float(prior.from_unit(np.array(point_unit[j]))),
                "conf_low": float(prior.from_unit(np.array(lo_u[j]))) if np.isfinite(width) else prior.low,
                "conf_high": float(prior.from_unit(np.array(hi_u[j]))) if np.isfinite(width) else prior.high,
                "width_ratio": float(min(width, 1.0)) if np.isfinite(width) else 1.0, "identified": label,
            })
        estimates = pd.DataFrame(rows)
        draws = np.column_stack([self._priors[n].from_unit(draws_unit[:, j]) for j, n in enumerate(names)])
        fit, held = self._predictive(draws_unit, point_unit, rng)
        statements = identifiability_statements(estimates, draws, self.method)
        settings: dict[str, Any] = {"method": self.method, "held_out": self.held_out, "seed": self.seed,
                    "priors": {n: [p.low, p.high, p.scale] for n, p in self._priors.items()}}
        if self.method == "abc_rejection":
            settings.update(simulations=self.simulations, accept=self.accept)
        elif self.method == "abc_smc":
            settings.update(particles=self.particles, generations=self.generations, quantile=self.quantile)
        return CalibrationResult(method=self.method, parameters=tuple(names), estimates=estimates, fit=fit,
                                 draws=draws, held_out=held, statements=tuple(statements),
                                 simulations=self._count, seconds=seconds, settings=settings,
                                 diagnostics=diagnostics)

    def _predictive(self, draws_unit: np.ndarray, point_unit: np.ndarray,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
        take = draws_unit[rng.choice(len(draws_unit), size=min(PREDICTIVE_DRAWS, len(draws_unit)), replace=False)]
        sims = self._simulate(np.vstack([point_unit[None, :], take]))
        tail = (1 - LEVEL) / 2
        frames = []
        inside_held, sq_fit, sq_held = [], [], []
        for k, y in self._obs.items():
            mu = np.maximum(sims[k], 0)
            noisy = rng.poisson(mu[1:])  # posterior predictive: parameter uncertainty plus Poisson noise
            lo, hi = np.quantile(noisy, [tail, 1 - tail], axis=0)
            series, _, stratum = k.partition(":")
            frames.append(pd.DataFrame({"series": series, "stratum": stratum or "all", "month": np.arange(len(y)),
                                        "observed": y, "fitted": mu[0], "fit_low": lo, "fit_high": hi,
                                        "held_out": ~self._fit_mask}))
            ok = np.isfinite(y)
            r = 2 * np.sqrt(mu[0]) - 2 * np.sqrt(np.maximum(y, 0))
            sq_fit.extend(r[ok & self._fit_mask] ** 2)
            held = ok & ~self._fit_mask
            sq_held.extend(r[held] ** 2)
            inside_held.extend((y[held] >= lo[held]) & (y[held] <= hi[held]))
        out = {"rmse_fit": float(np.sqrt(np.mean(sq_fit))) if sq_fit else float("nan")}
        if self.held_out:
            out["rmse_held_out"] = float(np.sqrt(np.mean(sq_held))) if sq_held else float("nan")
            out["coverage_held_out"] = float(np.mean(inside_held)) if inside_held else float("nan")
            out["months_held_out"] = float(self.held_out)
        return pd.concat(frames, ignore_index=True), out


@dataclass
class _DistanceTask:
    """Distances of unit-cube draws to the data: a picklable task for :class:`Sweep` (no client inside)."""

    simulate: Simulate
    names: list[str]
    priors: dict[str, Prior]
    target: dict[str, np.ndarray]
    fit_mask: np.ndarray
    batch: int

    def simulate_unit(self, unit: np.ndarray) -> dict[str, np.ndarray]:
        params = {n: self.priors[n].from_unit(unit[:, j]) for j, n in enumerate(self.names)}
        out = self.simulate(params)
        missing = [k for k in self.target if k not in out]
        if missing:
            raise ParameterError(f"calibration: the simulator did not return series {', '.join(missing)}")
        return {k: np.asarray(out[k], dtype=float).reshape(len(unit), -1) for k in self.target}

    def residuals(self, sims: Mapping[str, np.ndarray]) -> np.ndarray:
        """(B, n) Anscombe residuals over the fitting months, missing months dropped."""
        parts = []
        for k, target in self.target.items():
            keep = self.fit_mask & np.isfinite(target)
            parts.append(2 * np.sqrt(np.maximum(sims[k][:, keep], 0)) - target[keep])
        return np.concatenate(parts, axis=1)

    def __call__(self, unit: np.ndarray, seed: int) -> np.ndarray:
        del seed  # the models here are deterministic; the seed is there for stochastic simulators
        out = []
        for start in range(0, len(unit), self.batch):
            res = self.residuals(self.simulate_unit(unit[start : start + self.batch]))
            out.append(np.sqrt(np.mean(res**2, axis=1)))
        d = np.concatenate(out) if out else np.zeros(0)
        return np.where(np.isfinite(d), d, np.inf)


def identifiability_statements(estimates: pd.DataFrame, draws: np.ndarray, method: str) -> list[str]:
    """Plain-language statements of what the data pin down, from the interval widths and correlations."""
    out = []
    for r in rows(estimates):
        ratio = float(r.width_ratio)
        interval = f"{r.conf_low:.3g} to {r.conf_high:.3g}"
        if r.identified == "not identified":
            out.append(f"The data cannot pin down {r.parameter}: its 95% interval ({interval}) is "
                       f"{100 * ratio:.0f}% as wide as its prior ({r.prior_low:g} to {r.prior_high:g}); "
                       "scenario results carry its full prior uncertainty.")
        elif r.identified == "weakly identified":
            out.append(f"{r.parameter} is only weakly identified: its 95% interval ({interval}) is "
                       f"{100 * ratio:.0f}% as wide as its prior.")
        else:
            out.append(f"{r.parameter} is identified: {r.estimate:.3g} ({interval}), "
                       f"{100 * ratio:.0f}% of its prior width.")
    if draws.shape[1] > 1 and draws.shape[0] > 5 and method != "least_squares":
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(np.log(np.maximum(draws, 1e-300)).T)
        names = list(estimates["parameter"])
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                if np.isfinite(corr[i, j]) and abs(corr[i, j]) > CORRELATED:
                    out.append(f"{names[i]} and {names[j]} are identified only in combination "
                               f"(posterior correlation {corr[i, j]:.2f}).")
    return out


def calibrate(simulate: Simulate, observed: Mapping[str, np.ndarray | Sequence[float]],
              priors: Mapping[str, Any], **settings: Any) -> CalibrationResult:
    """One call: ``Calibration(simulate=..., priors=..., **settings).fit(observed).result_``.

    Examples
    --------
    >>> import numpy as np
    >>> def simulate(p):
    ...     t = np.arange(24)
    ...     return {"y": p["rate"][:, None] * 100 * (1 + 0 * t)}
    >>> result = calibrate(simulate, {"y": np.full(24, 50.0)}, {"rate": (0.1, 1.0)},
    ...                    method="abc_rejection", simulations=2_000, seed=1)
    >>> bool(abs(result.point()["rate"] - 0.5) < 0.05)
    True
    """
    return Calibration(simulate=simulate, priors=priors, **settings).fit(observed).result_
