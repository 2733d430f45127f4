"""Regression discontinuity, sharp and fuzzy, through rdrobust; manipulation test through rddensity.

rdrobust (Calonico, Cattaneo & Titiunik 2014; Calonico, Cattaneo, Farrell &
Titiunik 2017) is the reference implementation of local-polynomial RD with
MSE-optimal bandwidths and robust bias-corrected inference, so this module
only wraps it: it checks the inputs, calls ``rdrobust`` and turns its output
into an :class:`Effect`. The headline follows the authors' advice: the
conventional point estimate with the robust bias-corrected standard error,
interval and p-value; all three rows (conventional, bias-corrected, robust)
are in ``details["estimates"]``.

The density (manipulation) test is ``rddensity`` (Cattaneo, Jansson & Ma
2020), the same authors' test that the running variable's density is
continuous at the cutoff; its statistic and p-value go into ``diagnostics``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from rddensity import rddensity
from rdrobust import rdrobust

from knowdo.designs._frames import (
    check_level,
    column_strata,
    require_columns,
    require_frame,
    require_numeric,
    strata_table,
)
from knowdo.designs._options import check_option
from knowdo.designs.effect import Effect
from knowdo.errors import ParameterError

Kernel = Literal["triangular", "epanechnikov", "uniform"]
BwSelect = Literal["mserd", "msetwo", "msesum", "msecomb1", "msecomb2", "cerrd", "certwo", "cersum", "cercomb1",
                   "cercomb2"]
Vce = Literal["nn", "hc0", "hc1", "hc2", "hc3"]
Inference = Literal["robust", "conventional"]
KERNELS: tuple[str, ...] = ("triangular", "epanechnikov", "uniform")
BWSELECT: tuple[str, ...] = ("mserd", "msetwo", "msesum", "msecomb1", "msecomb2", "cerrd", "certwo", "cersum",
                             "cercomb1", "cercomb2")
VCE: tuple[str, ...] = ("nn", "hc0", "hc1", "hc2", "hc3")
INFERENCE: tuple[str, ...] = ("robust", "conventional")

SHARP_ASSUMPTIONS = (
    "Units cannot precisely manipulate the running variable around the cutoff (see the density test).",
    "Potential outcomes are continuous in the running variable at the cutoff: nothing else changes there.",
    "The effect is local: it applies to units at the cutoff.",
)
FUZZY_ASSUMPTIONS = (
    *SHARP_ASSUMPTIONS,
    "Crossing the cutoff changes treatment take-up (strong first stage) and affects outcomes only through "
    "treatment (exclusion); monotonicity: no one is pushed away from treatment by crossing.",
)


class RegressionDiscontinuity:
    """Local-polynomial regression discontinuity (rdrobust).

    Parameters
    ----------
    outcome, running
        Outcome and running-variable columns.
    cutoff
        Threshold of the running variable (treatment at or above it).
    treatment
        Treatment-received column for a fuzzy design (None: sharp).
    p, q
        Polynomial orders of the estimate and of the bias correction (q=None: p + 1).
    h, b
        Fixed main and bias bandwidths (None: chosen by ``bwselect``).
    cluster, covariates
        Cluster column for the variance; covariate columns for efficiency.
    inference
        ``robust`` (conventional estimate, robust bias-corrected SE/CI/p) or ``conventional``.
    strata
        Person-level stratifier columns for per-stratum estimates.
    density_test
        Run the rddensity manipulation test.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> x = rng.uniform(-1, 1, 2000)
    >>> df = pd.DataFrame({"x": x, "y": x + 2.0 * (x >= 0) + rng.normal(0, 0.3, 2000)})
    >>> e = RegressionDiscontinuity(outcome="y", running="x", density_test=False).fit(df).result_
    >>> bool(abs(e.estimate - 2.0) < 0.2)
    True
    """

    def __init__(
        self,
        *,
        outcome: str,
        running: str,
        cutoff: float = 0.0,
        treatment: str | None = None,
        p: int = 1,  # local linear, rdrobust default (Gelman & Imbens 2019 advise against higher orders)
        q: int | None = None,  # None: p + 1, rdrobust default
        kernel: Kernel = "triangular",  # rdrobust default
        bwselect: BwSelect = "mserd",  # rdrobust default: one common MSE-optimal bandwidth
        h: float | None = None,
        b: float | None = None,
        vce: Vce = "nn",  # rdrobust default: nearest-neighbour variance
        nnmatch: int = 3,  # rdrobust default neighbours for vce='nn'
        cluster: str | None = None,
        covariates: Sequence[str] = (),
        inference: Inference = "robust",
        strata: Sequence[str] = (),
        density_test: bool = True,
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.outcome = outcome
        self.running = running
        self.cutoff = cutoff
        self.treatment = treatment
        self.p = p
        self.q = q
        self.kernel = kernel
        self.bwselect = bwselect
        self.h = h
        self.b = b
        self.vce = vce
        self.nnmatch = nnmatch
        self.cluster = cluster
        self.covariates = covariates
        self.inference = inference
        self.strata = strata
        self.density_test = density_test
        self.level = level

    def fit(self, data: pd.DataFrame) -> RegressionDiscontinuity:
        """Run rdrobust (and rddensity); sets ``result_`` and returns self."""
        design = "rd"
        require_frame(data, design)
        check_option("kernel", self.kernel, KERNELS)
        check_option("bwselect", self.bwselect, BWSELECT)
        check_option("vce", self.vce, VCE)
        check_option("inference", self.inference, INFERENCE)
        check_level(self.level, design)
        covs = list(self.covariates)
        strata = list(self.strata)
        require_columns(data, [self.outcome, self.running, self.treatment, self.cluster, *covs, *strata], design)
        require_numeric(data, [self.outcome, self.running, self.treatment, *covs], design)
        if not isinstance(self.p, (int, np.integer)) or self.p < 0:
            raise ParameterError(f"rd: p={self.p!r} must be a non-negative integer.")
        if self.q is not None and (not isinstance(self.q, (int, np.integer)) or self.q < self.p):
            raise ParameterError(f"rd: q={self.q!r} must be an integer >= p={self.p}.")
        for name, value in (("h", self.h), ("b", self.b)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ParameterError(f"rd: {name}={value!r} must be a positive bandwidth or None.")
        x = data[self.running]
        if not ((x < self.cutoff).any() and (x >= self.cutoff).any()):
            raise ParameterError(
                f"rd: the running variable {self.running!r} has no observations on one side of cutoff={self.cutoff}."
            )
        effect = self._fit_frame(data, with_details=True)
        if strata:
            table = strata_table(column_strata(data, strata), lambda part: self._fit_frame(part, with_details=False),
                                 len)
            effect = dataclasses.replace(effect, strata=table)
        self.result_ = effect
        return self

    def _call_rdrobust(self, frame: pd.DataFrame) -> tuple[Any, int]:
        cols = [self.outcome, self.running, self.treatment, self.cluster, *self.covariates]
        rows = frame.dropna(subset=[c for c in cols if c is not None])
        kwargs: dict[str, Any] = {
            "y": rows[self.outcome].to_numpy(dtype=float),
            "x": rows[self.running].to_numpy(dtype=float),
            "c": self.cutoff, "p": self.p, "kernel": self.kernel, "bwselect": self.bwselect,
            "vce": self.vce, "nnmatch": self.nnmatch, "level": 100 * self.level,
        }
        if self.q is not None:
            kwargs["q"] = self.q
        if self.h is not None:
            kwargs["h"] = self.h
        if self.b is not None:
            kwargs["b"] = self.b
        if self.treatment is not None:
            kwargs["fuzzy"] = rows[self.treatment].to_numpy(dtype=float)
        if self.cluster is not None:
            kwargs["cluster"] = rows[self.cluster].to_numpy()
        if self.covariates:
            kwargs["covs"] = rows[list(self.covariates)].to_numpy(dtype=float)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                return rdrobust(**kwargs), len(rows)
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError, IndexError) as err:
                raise ParameterError(f"rd: rdrobust could not fit these data ({err}); check the bandwidth and "
                                     "that both sides of the cutoff have enough observations.") from err

    def _fit_frame(self, frame: pd.DataFrame, *, with_details: bool) -> Effect:
        res, n_used = self._call_rdrobust(frame)
        coef = res.coef.iloc[:, 0].to_numpy(dtype=float)
        se = res.se.iloc[:, 0].to_numpy(dtype=float)
        ci = res.ci.to_numpy(dtype=float)
        pv = res.pv.iloc[:, 0].to_numpy(dtype=float)
        z = res.z.iloc[:, 0].to_numpy(dtype=float)
        row = 2 if self.inference == "robust" else 0
        estimates = pd.DataFrame(
            {"method": ["conventional", "bias-corrected", "robust"], "estimate": coef, "std_error": se,
             "statistic": z, "p_value": pv, "conf_low": ci[:, 0], "conf_high": ci[:, 1]}
        )
        h_l, h_r = (float(v) for v in res.bws.iloc[0, :2])
        b_l, b_r = (float(v) for v in res.bws.iloc[1, :2])
        n_l, n_r = (int(v) for v in res.N)
        nh_l, nh_r = (int(v) for v in res.N_h)
        diagnostics: dict[str, Any] = {
            "h_left": h_l, "h_right": h_r, "b_left": b_l, "b_right": b_r,
            "rho": h_l / b_l if b_l else math.nan,
            "n_left": n_l, "n_right": n_r, "n_effective_left": nh_l, "n_effective_right": nh_r,
            "conventional_estimate": float(coef[0]), "conventional_se": float(se[0]),
            "bias_corrected_estimate": float(coef[1]), "robust_se": float(se[2]),
            "robust_conf_low": float(ci[2, 0]), "robust_conf_high": float(ci[2, 1]),
        }
        details: dict[str, pd.DataFrame] = {}
        if with_details:
            details["estimates"] = estimates
            details["bandwidth"] = pd.DataFrame(
                {"bandwidth": ["h", "b"], "left": [h_l, b_l], "right": [h_r, b_r]}
            )
            if self.density_test:
                density = self._density(frame)
                diagnostics.update(density)
        fuzzy = self.treatment is not None
        side = "at or above"
        estimand = (
            f"{'local average effect of treatment on compliers' if fuzzy else 'jump in'} {self.outcome!r} at "
            f"{self.running!r} = {self.cutoff} (treatment {side} the cutoff)"
        )
        method = (
            f"{'fuzzy' if fuzzy else 'sharp'} RD, local polynomial p={self.p} ({self.kernel} kernel, "
            f"{'bandwidth ' + self.bwselect if self.h is None else 'fixed bandwidth'}), rdrobust; "
            + ("conventional estimate with robust bias-corrected SE, CI and p-value"
               if self.inference == "robust" else "conventional estimate, SE and CI")
        )
        return Effect(
            design="rd",
            estimand=estimand,
            estimate=float(coef[0]),
            std_error=float(se[row]),
            conf_low=float(ci[row, 0]),
            conf_high=float(ci[row, 1]),
            method=method,
            level=self.level,
            p_value=float(pv[row]),
            settings=self._settings(),
            n_obs=n_used,
            n_units=None,
            diagnostics=diagnostics,
            assumptions=FUZZY_ASSUMPTIONS if fuzzy else SHARP_ASSUMPTIONS,
            details=details,
        )

    def _density(self, frame: pd.DataFrame) -> dict[str, Any]:
        x = frame[self.running].dropna().to_numpy(dtype=float)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                test = rddensity(X=x, c=self.cutoff)
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError, IndexError) as err:
                return {"density_test": f"not computed: {err}"}
        return {
            "density_test": "rddensity (Cattaneo, Jansson & Ma 2020), robust bias-corrected",
            "density_t": float(test.test["t_jk"]),
            "density_p_value": float(test.test["p_jk"]),
            "density_h_left": float(test.h["left"]),
            "density_h_right": float(test.h["right"]),
        }

    def _settings(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "running": self.running, "cutoff": self.cutoff, "treatment": self.treatment,
            "p": self.p, "q": self.q, "kernel": self.kernel, "bwselect": self.bwselect, "h": self.h, "b": self.b,
            "vce": self.vce, "nnmatch": self.nnmatch, "cluster": self.cluster, "covariates": list(self.covariates),
            "inference": self.inference, "strata": list(self.strata), "density_test": self.density_test,
            "level": self.level,
        }


def rd(data: pd.DataFrame, **settings: Any) -> Effect:
    """Fit a regression discontinuity in one call; see :class:`RegressionDiscontinuity` for the settings."""
    return RegressionDiscontinuity(**settings).fit(data).result_
