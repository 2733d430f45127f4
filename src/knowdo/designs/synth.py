"""Synthetic control (Abadie & Gardeazabal 2003; Abadie, Diamond & Hainmueller 2010, 2015).

The synthetic unit is a convex combination of donors, ``w >= 0, sum(w) = 1``,
chosen to reproduce the treated unit's predictors ``x1`` given predictor
weights ``V``: ``w(V) = argmin (x1 - X0 w)' V (x1 - X0 w)``. ``V`` is diagonal
and chosen, as in Abadie's ``Synth``, to minimise the mean squared error of
the outcome over the pre-period fit window: the nested optimisation. Each
predictor is divided by its standard deviation across the treated unit and
donors before weighting, also as in ``Synth``.

Optimisers (our own code; the peers' are slow or tied to matplotlib):

* inner problem: least squares on the simplex, solved by non-negative least
  squares with the adding-up constraint as a heavily weighted extra row
  (Lawson-Hanson NNLS, scipy), then polished exactly by solving the
  equality-constrained least-squares (KKT) system on the support found;
* outer problem: ``v = |theta| / sum |theta|`` over unconstrained ``theta``,
  Nelder-Mead from equal weights (as ``Synth`` and pysyncon start) and from
  a regression-based start (inverse-variance weights from regressing the
  fitted outcomes on the predictors), followed by one restart from the best
  point; the lower loss wins.

When no predictors are given, every pre-period outcome in the fit window is a
predictor with equal weight, so ``w`` simply minimises the pre-period fit.

Inference is by placebos in space (Abadie et al. 2010): every donor in turn is
treated as if treated, with the others as its donors. The permutation p-value
is the share of all units whose post/pre RMSPE ratio is at least the treated
unit's. The standard error is the spread of the placebo effects (the placebo
variance of Arkhangelsky et al. 2021, Algorithm 4), so its interval assumes the
treated unit's error behaves like a donor's. An in-time placebo and
leave-one-out donors check robustness.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.linalg.lapack import dgesv as _dgesv

from knowdo.designs._frames import (
    check_level,
    headline_rows,
    panel_strata,
    require_columns,
    require_frame,
    require_numeric,
    strata_table,
)
from knowdo.designs._options import check_option
from knowdo.designs.effect import Effect
from knowdo.errors import ParameterError

VMethod = Literal["nested", "equal"]
PredictorOp = Literal["mean", "median", "sum"]
V_METHODS: tuple[str, ...] = ("nested", "equal")
PREDICTOR_OPS: tuple[str, ...] = ("mean", "median", "sum")

ASSUMPTIONS = (
    "A weighted average of the donors reproduces what the treated unit would have done without the intervention "
    "(check the pre-period fit and predictor balance).",
    "No donor was affected by the intervention or by a similar intervention during the post-period.",
    "No other shock hit the treated unit alone at the intervention start.",
    "Placebo inference treats the treated unit as exchangeable with the donors.",
)

# Weight of the adding-up row relative to the largest scaled predictor: large
# enough that NNLS meets sum(w) = 1 to ~1e-8 before the exact polish step.
_SUM_ROW_WEIGHT = 1e4
# Weights below this share of the largest are treated as zero when polishing.
_SUPPORT_TOL = 1e-9


def simplex_least_squares(A: np.ndarray, b: np.ndarray, support: np.ndarray | None = None) -> np.ndarray:
    """Solve ``min ||A w - b||^2`` subject to ``w >= 0`` and ``sum(w) = 1``.

    ``support`` (a boolean guess of the non-zero weights, e.g. the previous
    solution's in an outer loop) is tried first: if the exact solution on it
    satisfies the optimality (KKT) conditions it is the optimum and NNLS is skipped.

    Examples
    --------
    >>> A = np.eye(3); b = np.array([0.2, 0.3, 0.5])
    >>> np.round(simplex_least_squares(A, b), 6).tolist()
    [0.2, 0.3, 0.5]
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    J = A.shape[1]
    if J == 1:
        return np.ones(1)
    if support is not None and support.any():
        guess = _polish(A, b, support)
        if guess is not None:
            return guess
    scale = float(np.abs(A).max()) or 1.0
    A_aug = np.vstack([A / scale, np.full((1, J), _SUM_ROW_WEIGHT)])
    b_aug = np.concatenate([b / scale, [_SUM_ROW_WEIGHT]])
    w, _ = optimize.nnls(A_aug, b_aug, maxiter=50 * J)
    if w.sum() <= 0:
        return np.full(J, 1.0 / J)
    polished = _polish(A, b, w > _SUPPORT_TOL * w.max())
    if polished is not None:
        return polished
    return w / w.sum()


def _polish(A: np.ndarray, b: np.ndarray, support: np.ndarray) -> np.ndarray | None:
    """Exact equality-constrained LS on the support; None if it leaves the simplex or fails KKT.

    Called thousands of times inside the V search, so it talks to LAPACK
    directly (dgesv) rather than through numpy.linalg's per-call checks.
    """
    As = A[:, support]
    k = As.shape[1]
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = As.T @ As
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    rhs = np.empty(k + 1)
    rhs[:k] = As.T @ b
    rhs[k] = 1.0
    _, _, sol, info = _dgesv(kkt, rhs)
    if info != 0:
        return None
    ws = sol[:k]
    if not (ws.min() >= -1e-10) or not np.isfinite(ws).all():
        return None
    w = np.zeros(A.shape[1])
    w[support] = np.maximum(ws, 0.0)
    w /= w.sum()
    if k == A.shape[1]:
        return w
    # KKT for the excluded donors: moving weight onto them must not lower the loss.
    grad = A.T @ (A @ w - b)
    mu = -float(grad[support].mean())
    tol = 1e-8 * max(1.0, float(np.abs(grad).max()))
    if float((grad[~support] + mu).min()) < -tol:
        return None
    return w


@dataclass(frozen=True)
class Predictor:
    """A predictor of the synthetic control: ``op`` of ``column`` over ``times`` for each unit."""

    column: str
    times: tuple[Any, ...]
    op: PredictorOp = "mean"

    @property
    def label(self) -> str:
        times = list(self.times)
        span = f"{times[0]}" if len(times) == 1 else f"{times[0]}-{times[-1]}"
        return f"{self.column} ({self.op} {span})"


@dataclass
class _Fit:
    """One synthetic-control solution (internal)."""

    weights: np.ndarray
    v: np.ndarray
    gaps: np.ndarray
    loss: float
    nfev: int


class SyntheticControl:
    """Synthetic control for one treated unit.

    Parameters
    ----------
    unit, time, outcome
        Columns of a long (unit x time) frame.
    treated_unit
        The value of ``unit`` that was treated.
    treatment_time
        The first treated period.
    predictors
        :class:`Predictor` list (or ``(column, times[, op])`` tuples); None uses
        every pre-period outcome in ``fit_times`` with equal weight.
    fit_times
        Periods whose outcome fit chooses ``V`` (the SSR window); default every
        period before ``treatment_time``.
    donors
        Donor units; default every other unit.
    v_method
        ``nested`` (Abadie's data-driven V) or ``equal``.
    placebo, leave_one_out
        Run placebos in space / leave-one-out donor refits.
    in_time_placebo
        A fake start before ``treatment_time`` for the in-time placebo (None: skip).
    effect_times
        Post-treatment periods the effect is averaged over; default all from ``treatment_time``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(20, 1)).cumsum(axis=0)
    >>> rows = [(u, t, float(f[t, 0] * (1 + u / 10)) + (2.0 if (u == 0 and t >= 15) else 0.0))
    ...         for u in range(6) for t in range(20)]
    >>> df = pd.DataFrame(rows, columns=["unit", "time", "y"])
    >>> sc = SyntheticControl(unit="unit", time="time", outcome="y", treated_unit=0, treatment_time=15)
    >>> bool(abs(sc.fit(df).result_.estimate - 2.0) < 0.5)
    True
    """

    def __init__(
        self,
        *,
        unit: str = "site_id",
        time: str = "period",
        outcome: str,
        treated_unit: Any,
        treatment_time: Any,
        predictors: Sequence[Predictor | tuple[Any, ...]] | None = None,
        fit_times: Sequence[Any] | None = None,
        donors: Sequence[Any] | None = None,
        v_method: VMethod = "nested",
        placebo: bool = True,
        leave_one_out: bool = True,
        in_time_placebo: Any = None,
        effect_times: Sequence[Any] | None = None,
        level: float = 0.95,  # conventional 95% intervals
    ) -> None:
        self.unit = unit
        self.time = time
        self.outcome = outcome
        self.treated_unit = treated_unit
        self.treatment_time = treatment_time
        self.predictors = predictors
        self.fit_times = fit_times
        self.donors = donors
        self.v_method = v_method
        self.placebo = placebo
        self.leave_one_out = leave_one_out
        self.in_time_placebo = in_time_placebo
        self.effect_times = effect_times
        self.level = level

    # ------------------------------------------------------------------ API
    def fit(self, data: pd.DataFrame) -> SyntheticControl:
        """Fit the synthetic control and its placebos; sets ``result_`` and returns self."""
        design = "scm"
        require_frame(data, design)
        check_option("v_method", self.v_method, V_METHODS)
        check_level(self.level, design)
        predictors = self._predictors()
        require_columns(data, [self.unit, self.time, self.outcome, *[p.column for p in predictors]], design)
        require_numeric(data, [self.outcome, *[p.column for p in predictors]], design)
        effect = self._fit_frame(headline_rows(data), predictors, with_details=True)
        strata = strata_table(
            panel_strata(data),
            lambda part: self._fit_frame(part, predictors, with_details=False),
            lambda part: int(part[self.unit].nunique()),
        )
        if len(strata):
            effect = dataclasses.replace(effect, strata=strata)
        self.result_ = effect
        return self

    def _predictors(self) -> list[Predictor]:
        out: list[Predictor] = []
        for p in self.predictors or ():
            if isinstance(p, Predictor):
                pred = p
            elif isinstance(p, tuple) and 2 <= len(p) <= 3:
                times = tuple(p[1]) if not isinstance(p[1], (str, int, float)) else (p[1],)
                pred = Predictor(p[0], times, *(p[2:]))
            else:
                raise ParameterError(
                    f"scm: predictor {p!r} must be a Predictor or a (column, times[, op]) tuple."
                )
            check_option("predictor op", pred.op, PREDICTOR_OPS)
            if len(pred.times) == 0:
                raise ParameterError(f"scm: predictor {pred.column!r} has no times; give the periods to summarise.")
            out.append(pred)
        return out

    # ---------------------------------------------------------------- data
    def _matrices(
        self, frame: pd.DataFrame, predictors: list[Predictor]
    ) -> tuple[pd.DataFrame, pd.DataFrame, list[Any], np.ndarray]:
        """Return (outcome matrix units x times, predictor matrix predictors x units, donors, fit mask)."""
        if frame.duplicated([self.unit, self.time]).any():
            raise ParameterError(
                f"scm: more than one row per ({self.unit!r}, {self.time!r}); aggregate the data or filter to "
                "one stratum (dimension == 'all') first."
            )
        Y = frame.pivot(index=self.unit, columns=self.time, values=self.outcome).sort_index(axis=1)
        if self.treated_unit not in Y.index:
            raise ParameterError(
                f"scm: treated_unit={self.treated_unit!r} is not a value of {self.unit!r}; "
                f"units include {list(Y.index[:8])}."
            )
        donors = list(self.donors) if self.donors is not None else [u for u in Y.index if u != self.treated_unit]
        unknown = [d for d in donors if d not in Y.index or d == self.treated_unit]
        if unknown:
            raise ParameterError(f"scm: donors {unknown[:5]} are not units of the data (or are the treated unit).")
        if len(donors) < 2:
            raise ParameterError(f"scm: {len(donors)} donor(s); a synthetic control needs at least 2.")
        times = np.asarray(Y.columns)
        start = _coerce_time(self.treatment_time, times)
        pre = times < start
        if pre.sum() < 2 or (~pre).sum() < 1:
            raise ParameterError(
                f"scm: treatment_time={self.treatment_time!r} leaves {int(pre.sum())} pre and {int((~pre).sum())} "
                "post periods; need >= 2 pre and >= 1 post."
            )
        Y = Y.loc[[self.treated_unit, *donors]]
        if Y.isna().any().any():
            bad = Y.index[Y.isna().any(axis=1)].tolist()[:5]
            raise ParameterError(
                f"scm: outcome {self.outcome!r} is missing for some periods of units {bad}; "
                "a synthetic control needs a balanced panel."
            )
        if self.fit_times is None:
            fit_mask = pre.copy()
        else:
            wanted = {_coerce_time(t, times) for t in self.fit_times}
            fit_mask = np.array([t in wanted for t in times]) & pre
            if not fit_mask.any():
                raise ParameterError("scm: fit_times has no pre-treatment period of the data.")
        if predictors:
            X = pd.DataFrame(
                {p.label: self._predictor_values(frame, p, times) for p in predictors}
            ).T.loc[:, [self.treated_unit, *donors]]
            if X.isna().any().any():
                bad_rows = X.index[X.isna().any(axis=1)].tolist()[:5]
                raise ParameterError(f"scm: predictors {bad_rows} are missing for some units in the times given.")
        else:
            X = Y.loc[:, fit_mask].T
            X.index = [f"{self.outcome} ({t})" for t in times[fit_mask]]
        return Y, X, donors, fit_mask

    def _predictor_values(self, frame: pd.DataFrame, p: Predictor, times: np.ndarray) -> pd.Series:
        wanted = [_coerce_time(t, times) for t in p.times]
        rows = frame[frame[self.time].isin(wanted)]
        if rows.empty:
            raise ParameterError(f"scm: predictor {p.label!r}: none of its times are in {self.time!r}.")
        grouped = rows.groupby(self.unit)[p.column]
        values: pd.Series = getattr(grouped, p.op)()
        return values

    # ----------------------------------------------------------------- core
    def _solve(self, Y: np.ndarray, X: np.ndarray, fit_mask: np.ndarray, treated: int, donors: np.ndarray) -> _Fit:
        """Synthetic control for row ``treated`` of Y (units x times) from rows ``donors``."""
        sd = X[:, [treated, *donors]].std(axis=1, ddof=1)
        sd[~np.isfinite(sd) | (sd == 0)] = 1.0
        Xs = X / sd[:, None]
        x1, X0 = Xs[:, treated], Xs[:, donors]
        z1, Z0 = Y[treated, fit_mask], Y[np.ix_(donors, fit_mask)].T
        k = Xs.shape[0]

        support = np.ones(X0.shape[1], dtype=bool)

        def weights_for(v: np.ndarray) -> np.ndarray:
            nonlocal support
            root = np.sqrt(v)
            w = simplex_least_squares(X0 * root[:, None], x1 * root, support)
            support = w > _SUPPORT_TOL * w.max()
            return w

        def loss(theta: np.ndarray) -> float:
            a = np.abs(theta)
            total = a.sum()
            if total <= 0:
                return math.inf
            r = z1 - Z0 @ weights_for(a / total)
            return float(r @ r) / len(z1)

        nfev = 0
        if self.v_method == "equal" or k == 1 or not self.predictors:
            v = np.full(k, 1.0 / k)
        else:
            starts = [np.full(k, 1.0 / k), _regression_start(x1, X0, z1, Z0)]
            best: optimize.OptimizeResult | None = None
            for s in starts:
                res = _nelder_mead(loss, s)
                nfev += int(res.nfev)
                if best is None or res.fun < best.fun:
                    best = res
            assert best is not None
            again = _nelder_mead(loss, best.x)
            nfev += int(again.nfev)
            if again.fun < best.fun:
                best = again
            v = np.abs(best.x) / np.abs(best.x).sum()
        w = weights_for(v)
        gaps = Y[treated] - w @ Y[donors]
        r = z1 - Z0 @ w
        return _Fit(weights=w, v=v, gaps=gaps, loss=float(r @ r) / len(z1), nfev=nfev)

    def _fit_frame(self, frame: pd.DataFrame, predictors: list[Predictor], *, with_details: bool) -> Effect:
        Y_df, X_df, donors, fit_mask = self._matrices(frame, predictors)
        times = np.asarray(Y_df.columns)
        start = _coerce_time(self.treatment_time, times)
        post = times >= start
        pre = ~post
        Y = Y_df.to_numpy(dtype=float)
        X = X_df.to_numpy(dtype=float)
        donor_idx = np.arange(1, Y.shape[0])
        main = self._solve(Y, X, fit_mask, 0, donor_idx)
        effect_mask = post.copy()
        if self.effect_times is not None:
            wanted = {_coerce_time(t, times) for t in self.effect_times}
            effect_mask &= np.array([t in wanted for t in times])
            if not effect_mask.any():
                raise ParameterError("scm: effect_times names no post-treatment period of the data.")
        att = float(main.gaps[effect_mask].mean())
        pre_rmspe = _rmspe(main.gaps[pre])
        post_rmspe = _rmspe(main.gaps[post])
        ratio = post_rmspe / pre_rmspe if pre_rmspe > 0 else math.inf

        diagnostics: dict[str, Any] = {
            "pre_rmspe": pre_rmspe,
            "post_rmspe": post_rmspe,
            "rmspe_ratio": ratio,
            "pre_mspe": pre_rmspe**2,
            "fit_window_mspe": main.loss,
            "n_donors": len(donors),
            "n_donors_weighted": int((main.weights > 1e-6).sum()),
            "optimiser_evaluations": main.nfev,
        }
        details: dict[str, pd.DataFrame] = {}
        se = math.nan
        p_value = math.nan
        path_se = np.full(len(times), math.nan)
        if self.placebo:
            rows = []
            gaps = []
            for j in donor_idx:
                others = np.array([d for d in donor_idx if d != j])
                fit_j = self._solve(Y, X, fit_mask, int(j), others)
                pr, po = _rmspe(fit_j.gaps[pre]), _rmspe(fit_j.gaps[post])
                rows.append({"unit": donors[j - 1], "att": float(fit_j.gaps[effect_mask].mean()), "pre_rmspe": pr,
                             "post_rmspe": po, "rmspe_ratio": po / pr if pr > 0 else math.inf})
                gaps.append(fit_j.gaps)
            placebo = pd.DataFrame(rows)
            ratios = placebo["rmspe_ratio"].to_numpy()
            p_value = float((1 + np.sum(ratios >= ratio)) / (1 + len(ratios)))
            se = float(placebo["att"].std(ddof=0))
            path_se = np.asarray(gaps).std(axis=0, ddof=0)
            diagnostics.update(
                permutation_p_value=p_value,
                rmspe_ratio_rank=int(1 + np.sum(ratios > ratio)),
                n_placebos=len(ratios),
                placebo_se=se,
            )
            if with_details:
                details["placebo"] = placebo
                details["placebo_gaps"] = pd.DataFrame(
                    [{"unit": donors[i], "time": _plain(t), "gap": float(g)}
                     for i, row in enumerate(gaps) for t, g in zip(times, row, strict=True)]
                )
        if with_details:
            details["weights"] = pd.DataFrame({"unit": donors, "weight": main.weights})
            details["predictor_weights"] = pd.DataFrame({"predictor": list(X_df.index), "v": main.v})
            synth_x = X[:, 1:] @ main.weights
            details["balance"] = pd.DataFrame(
                {"predictor": list(X_df.index), "treated": X[:, 0], "synthetic": synth_x,
                 "donor_mean": X[:, 1:].mean(axis=1)}
            )
            details["series"] = pd.DataFrame(
                {"time": [_plain(t) for t in times], "treated": Y[0], "synthetic": Y[0] - main.gaps,
                 "gap": main.gaps, "post": post.astype(int)}
            )
            if self.leave_one_out:
                details["leave_one_out"] = self._leave_one_out(Y, X, fit_mask, effect_mask, pre, donors, main)
                loo = details["leave_one_out"]
                if len(loo):
                    diagnostics["leave_one_out_att_min"] = float(loo["att"].min())
                    diagnostics["leave_one_out_att_max"] = float(loo["att"].max())
            if self.in_time_placebo is not None:
                details["in_time_placebo"], in_time = self._in_time(Y, times, start, donor_idx)
                diagnostics.update(in_time)
        z = float(stats.norm.ppf(0.5 + self.level / 2))
        path = pd.DataFrame(
            {"time": [_plain(t) for t in times], "estimate": main.gaps, "std_error": path_se,
             "conf_low": main.gaps - z * path_se, "conf_high": main.gaps + z * path_se}
        )
        return Effect(
            design="scm",
            estimand=(
                f"average effect on {self.outcome!r} in {self.treated_unit} over {int(effect_mask.sum())} "
                f"post-treatment period(s) from {_plain(times[effect_mask][0])}: treated minus synthetic control (ATT)"
            ),
            estimate=att,
            std_error=se,
            conf_low=att - z * se,
            conf_high=att + z * se,
            method=(
                f"synthetic control, {'nested (data-driven)' if self.v_method == 'nested' and predictors else 'equal'}"
                " predictor weights; p-value by placebo-in-space permutation of the post/pre RMSPE ratio, "
                "SE from the spread of placebo effects"
            ),
            level=self.level,
            p_value=p_value,
            settings=self._settings(predictors),
            n_obs=int(Y.size),
            n_units=int(Y.shape[0]),
            path=path if with_details else None,
            diagnostics=diagnostics,
            assumptions=ASSUMPTIONS,
            details=details,
            term="att",
        )

    def _leave_one_out(
        self,
        Y: np.ndarray,
        X: np.ndarray,
        fit_mask: np.ndarray,
        effect_mask: np.ndarray,
        pre: np.ndarray,
        donors: list[Any],
        main: _Fit,
    ) -> pd.DataFrame:
        rows = []
        positive = np.flatnonzero(main.weights > 1e-3)  # donors carrying weight (Abadie et al. 2015, sec. 4)
        donor_idx = np.arange(1, Y.shape[0])
        for j in positive:
            keep = np.array([d for d in donor_idx if d != j + 1])
            if len(keep) < 2:
                continue
            fit_j = self._solve(Y, X, fit_mask, 0, keep)
            rows.append({"dropped": donors[j], "att": float(fit_j.gaps[effect_mask].mean()),
                         "pre_rmspe": _rmspe(fit_j.gaps[pre])})
        return pd.DataFrame(rows, columns=["dropped", "att", "pre_rmspe"])

    def _in_time(
        self, Y: np.ndarray, times: np.ndarray, start: Any, donor_idx: np.ndarray
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Pretend the intervention began at ``in_time_placebo``, using only periods before the real start.

        Uses the pre-fake-start outcomes as predictors (equal weights), since
        the user's predictors may span the fake post-period.
        """
        fake = _coerce_time(self.in_time_placebo, times)
        keep = times < start
        fake_pre = times[keep] < fake
        if fake_pre.sum() < 2 or (~fake_pre).sum() < 1:
            raise ParameterError(
                f"scm: in_time_placebo={self.in_time_placebo!r} must leave >= 2 periods before it and >= 1 "
                f"before treatment_time={self.treatment_time!r}."
            )
        Yk = Y[:, keep]
        X = Yk[:, fake_pre]
        fit = _equal_v_fit(Yk, X, fake_pre, donor_idx)
        gaps = fit.gaps
        table = pd.DataFrame({"time": [_plain(t) for t in times[keep]], "gap": gaps,
                              "placebo_post": (~fake_pre).astype(int)})
        pr, po = _rmspe(gaps[fake_pre]), _rmspe(gaps[~fake_pre])
        return table, {"in_time_placebo_att": float(gaps[~fake_pre].mean()),
                       "in_time_placebo_rmspe_ratio": po / pr if pr > 0 else math.inf}

    def _settings(self, predictors: list[Predictor]) -> dict[str, Any]:
        return {
            "unit": self.unit, "time": self.time, "outcome": self.outcome,
            "treated_unit": _plain(self.treated_unit), "treatment_time": _plain(self.treatment_time),
            "predictors": [p.label for p in predictors] or None,
            "fit_times": [_plain(t) for t in self.fit_times] if self.fit_times is not None else None,
            "donors": [_plain(d) for d in self.donors] if self.donors is not None else None,
            "v_method": self.v_method, "placebo": self.placebo, "leave_one_out": self.leave_one_out,
            "in_time_placebo": _plain(self.in_time_placebo),
            "effect_times": [_plain(t) for t in self.effect_times] if self.effect_times is not None else None,
            "level": self.level,
        }


def _equal_v_fit(Y: np.ndarray, X: np.ndarray, fit_mask: np.ndarray, donors: np.ndarray) -> _Fit:
    w = simplex_least_squares(X[donors].T, X[0])
    gaps = Y[0] - w @ Y[donors]
    r = gaps[fit_mask]
    return _Fit(weights=w, v=np.full(X.shape[1], 1.0 / X.shape[1]), gaps=gaps, loss=float(r @ r) / len(r), nfev=0)


def _nelder_mead(loss: Any, start: np.ndarray) -> optimize.OptimizeResult:
    k = len(start)
    # Tolerances relative to the starting loss: the loss scale is the outcome's, not fixed.
    return optimize.minimize(
        loss, start, method="Nelder-Mead",
        options={"maxfev": 400 * k, "xatol": 1e-7, "fatol": 1e-10 * max(loss(start), 1e-300), "adaptive": k > 4},
    )


def _regression_start(x1: np.ndarray, X0: np.ndarray, z1: np.ndarray, Z0: np.ndarray) -> np.ndarray:
    """V start from regressing the fit-window outcomes on the (scaled) predictors across units.

    Predictors that explain more of the outcomes get more weight: the squared
    coefficients, normalised (the idea of Synth's regression-based start).
    """
    Xall = np.column_stack([x1, X0]).T
    Zall = np.column_stack([z1, Z0]).T
    design = np.column_stack([np.ones(len(Xall)), Xall])
    coef, *_ = np.linalg.lstsq(design, Zall, rcond=None)
    b = (coef[1:] ** 2).sum(axis=1)
    if not np.isfinite(b).all() or b.sum() <= 0:
        return np.full(Xall.shape[1], 1.0 / Xall.shape[1])
    return b / b.sum()


def _rmspe(gaps: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(gaps)))) if len(gaps) else math.nan


def _coerce_time(value: Any, times: np.ndarray) -> Any:
    if len(times) and isinstance(times[0], (pd.Timestamp, np.datetime64)):
        return np.datetime64(pd.Timestamp(value))
    return value


def _plain(value: Any) -> Any:
    """JSON-friendly scalar for settings and detail tables."""
    if isinstance(value, (np.datetime64, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if isinstance(value, np.generic):
        return value.item()
    return value


def synthetic_control(data: pd.DataFrame, **settings: Any) -> Effect:
    """Fit a synthetic control in one call; see :class:`SyntheticControl` for the settings."""
    return SyntheticControl(**settings).fit(data).result_
