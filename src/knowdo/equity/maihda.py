"""Intersectional strata by MAIHDA: multilevel analysis of individual heterogeneity and discriminatory accuracy.

People are cross-classified into intersectional strata (e.g. sex x wealth
quintile x residence). Two linear mixed models with a random intercept per
stratum are fitted with statsmodels ``MixedLM`` (Evans et al., Soc Sci Med
2018; Merlo 2018):

* the **null model** ``y = b0 + u_stratum + e`` gives the variance partition
  coefficient ``VPC = var(u) / (var(u) + var(e))``: how much of the
  individual variation lies between strata (the discriminatory accuracy of
  the intersections), and the **shrunken stratum means** ``b0 + u_j``
  (empirical Bayes predictions, pulled towards the overall mean in
  proportion to how little a stratum's data say);
* the **additive model** adds each dimension's main effects; the share of
  the between-stratum variance they explain is the PCV, and what is left,
  ``u_j``, is the intersectional (interaction) effect of each stratum.

Shrinkage is what lets small intersections be estimated. Their raw means and
counts are never published: :class:`MaihdaResult` blanks them for strata with
fewer people than the disclosure threshold and reports only the shrunken
estimate.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMResults

from knowdo.equity.common import DEFAULT_LEVEL, check_frame, check_level, jsonable
from knowdo.equity.disclosure import DEFAULT_THRESHOLD
from knowdo.errors import ParameterError

STRATA_COLUMNS = (
    "stratum", "n", "observed", "predicted", "predicted_se", "conf_low", "conf_high",
    "additive", "interaction", "interaction_se", "interaction_low", "interaction_high", "small",
)  # fmt: skip


@dataclass(frozen=True)
class MaihdaResult:
    """Variance partition, explained share and shrunken estimates of intersectional strata.

    ``strata`` has one row per intersection with the dimension columns,
    ``n`` and ``observed`` (blank when ``n`` is under the disclosure
    threshold), the shrunken ``predicted`` mean with its interval, the
    ``additive`` prediction from main effects, and the ``interaction``
    (stratum random effect in the additive model) with its interval.
    """

    outcome: str
    dimensions: tuple[str, ...]
    vpc: float
    vpc_additive: float
    pcv: float
    variance_between: float
    variance_within: float
    variance_between_additive: float
    fixed_effects: pd.DataFrame
    strata: pd.DataFrame
    n_obs: int
    threshold: int
    level: float
    settings: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        return self.strata.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.tidy()

    def summary(self) -> str:
        small = int(self.strata["small"].sum())
        return (
            f"MAIHDA of {self.outcome} across {len(self.strata)} intersections of {' x '.join(self.dimensions)} "
            f"({self.n_obs:,} people): VPC {self.vpc:.1%} (null model), {self.vpc_additive:.1%} after main effects; "
            f"main effects explain {self.pcv:.0%} of the between-stratum variance (PCV). "
            f"{small} intersection(s) under {self.threshold} people are shown only as shrunken estimates."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "dimensions": list(self.dimensions), "vpc": jsonable(self.vpc),
            "vpc_additive": jsonable(self.vpc_additive), "pcv": jsonable(self.pcv),
            "variance_between": jsonable(self.variance_between), "variance_within": jsonable(self.variance_within),
            "variance_between_additive": jsonable(self.variance_between_additive),
            "fixed_effects": jsonable(self.fixed_effects), "strata": jsonable(self.strata),
            "n_obs": self.n_obs, "threshold": self.threshold, "level": self.level,
        }

    def plot(self) -> alt.LayerChart:
        """Caterpillar plot of the shrunken stratum means with their intervals."""
        data = self.strata.sort_values("predicted").reset_index(drop=True)
        base = alt.Chart(data).encode(y=alt.Y("stratum:N", sort=None, title=None))
        rules = base.mark_rule().encode(x=alt.X("conf_low:Q", title=f"{self.outcome} (shrunken)"), x2="conf_high:Q")
        dots = base.mark_point(filled=True).encode(
            x="predicted:Q", color=alt.Color("small:N", title="small stratum"),
            tooltip=["stratum", "predicted", "conf_low", "conf_high", "interaction"])
        return (rules + dots).properties(title=f"Intersectional strata (MAIHDA, VPC {self.vpc:.1%})")


def _fit(endog: np.ndarray, exog: np.ndarray, groups: np.ndarray) -> MixedLMResults:
    model = MixedLM(endog, exog, groups=groups)
    result = None
    for method in ("bfgs", "powell"):  # BFGS is statsmodels' default; Powell needs no gradient when BFGS fails
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; checked below
            try:
                result = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError):
                continue
        if result.converged:
            break
    if result is None or not np.isfinite(result.scale) or not np.all(np.isfinite(result.fe_params)):
        raise ParameterError(
            "MAIHDA: the mixed model did not converge; check the outcome varies and strata are not empty."
        )
    return result


class Maihda:
    """MAIHDA of a person-level outcome over the intersections of several equity dimensions.

    Parameters
    ----------
    outcome
        Column holding the outcome (numeric; a 0/1 column gives a linear probability model).
    dimensions
        Columns whose cross-classification defines the strata.
    threshold
        Disclosure threshold: strata with fewer people show no raw count or mean.
    level
        Confidence level of the intervals.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> people = pd.DataFrame({"sex": rng.choice(["f", "m"], 400), "area": rng.choice(["u", "r"], 400)})
    >>> people["y"] = rng.normal(size=400) + (people["area"] == "r")
    >>> Maihda(outcome="y", dimensions=["sex", "area"]).fit(people).result_.strata.shape[0]
    4
    """

    def __init__(
        self,
        *,
        outcome: str,
        dimensions: Sequence[str],
        threshold: int = DEFAULT_THRESHOLD,
        level: float = DEFAULT_LEVEL,
    ) -> None:
        self.outcome = outcome
        self.dimensions = dimensions
        self.threshold = threshold
        self.level = level

    def fit(self, data: pd.DataFrame) -> Maihda:
        dims = (self.dimensions,) if isinstance(self.dimensions, str) else tuple(self.dimensions)
        if len(dims) < 1:
            raise ParameterError("Maihda: give at least one dimension to cross-classify.")
        check_frame(data, [self.outcome, *dims], "data")
        level = check_level(self.level)
        frame = data[[self.outcome, *dims]].dropna()
        y = pd.to_numeric(frame[self.outcome], errors="coerce")
        if y.isna().any():
            raise ParameterError(f"Maihda: outcome {self.outcome!r} must be numeric.")
        labels = frame[list(dims)].astype(str)
        stratum = labels.agg(" × ".join, axis=1)
        if stratum.nunique() < 3:
            raise ParameterError(
                f"Maihda: need at least 3 intersections to estimate their variance; found {stratum.nunique()}."
            )
        endog = y.to_numpy(dtype=float)
        groups = stratum.to_numpy()
        null = _fit(endog, np.ones((len(frame), 1)), groups)
        dummies = pd.get_dummies(labels, drop_first=True, dtype=float)
        exog = sm.add_constant(dummies.to_numpy(dtype=float), has_constant="add")
        additive = _fit(endog, exog, groups)
        var_u0, var_e0 = float(np.asarray(null.cov_re).ravel()[0]), float(null.scale)
        var_u1, var_e1 = float(np.asarray(additive.cov_re).ravel()[0]), float(additive.scale)
        z = float(stats.norm.ppf(0.5 + level / 2))
        table = _strata_table(frame, labels, stratum, endog, null, additive, exog, groups, z, int(self.threshold))
        fixed = pd.DataFrame({
            "term": ["intercept", *dummies.columns],
            "estimate": np.asarray(additive.fe_params, dtype=float),
            "std_error": np.asarray(additive.bse_fe, dtype=float),
        })
        self.result_ = MaihdaResult(
            outcome=self.outcome, dimensions=dims,
            vpc=var_u0 / (var_u0 + var_e0), vpc_additive=var_u1 / (var_u1 + var_e1),
            pcv=(var_u0 - var_u1) / var_u0 if var_u0 > 0 else float("nan"),
            variance_between=var_u0, variance_within=var_e0, variance_between_additive=var_u1,
            fixed_effects=fixed, strata=table, n_obs=len(frame), threshold=int(self.threshold), level=level,
            settings={"model": "linear mixed model, random intercept per intersection (REML)"},
        )
        return self


def _strata_table(
    frame: pd.DataFrame,
    labels: pd.DataFrame,
    stratum: pd.Series,
    endog: np.ndarray,
    null: MixedLMResults,
    additive: MixedLMResults,
    exog: np.ndarray,
    groups: np.ndarray,
    z: float,
    threshold: int,
) -> pd.DataFrame:
    per = pd.DataFrame({"stratum": stratum.to_numpy(), "y": endog})
    stats_ = per.groupby("stratum", sort=True)["y"].agg(["size", "mean"])
    first = pd.DataFrame(labels.to_numpy(), columns=labels.columns).assign(stratum=stratum.to_numpy())
    first = first.drop_duplicates("stratum").set_index("stratum").loc[stats_.index]
    u0 = {k: float(np.asarray(v).ravel()[0]) for k, v in null.random_effects.items()}
    u1 = {k: float(np.asarray(v).ravel()[0]) for k, v in additive.random_effects.items()}
    c0 = {k: float(np.asarray(v).ravel()[0]) for k, v in null.random_effects_cov.items()}
    c1 = {k: float(np.asarray(v).ravel()[0]) for k, v in additive.random_effects_cov.items()}
    b0 = float(null.fe_params[0])
    var_b0 = float(np.asarray(null.cov_params())[0, 0])
    # Additive prediction for each stratum: its design row times the fixed effects.
    rows = pd.DataFrame(exog).assign(stratum=groups).drop_duplicates("stratum").set_index("stratum").loc[stats_.index]
    additive_pred = rows.to_numpy(dtype=float) @ np.asarray(additive.fe_params, dtype=float)
    out = first.reset_index()
    names = list(stats_.index)
    out["n"] = stats_["size"].to_numpy(dtype=float)
    out["observed"] = stats_["mean"].to_numpy(dtype=float)
    out["predicted"] = [b0 + u0[k] for k in names]
    out["predicted_se"] = [np.sqrt(var_b0 + c0[k]) for k in names]
    out["conf_low"] = out["predicted"] - z * out["predicted_se"]
    out["conf_high"] = out["predicted"] + z * out["predicted_se"]
    out["additive"] = additive_pred
    out["interaction"] = [u1[k] for k in names]
    out["interaction_se"] = [np.sqrt(c1[k]) for k in names]
    out["interaction_low"] = out["interaction"] - z * out["interaction_se"]
    out["interaction_high"] = out["interaction"] + z * out["interaction_se"]
    out["small"] = out["n"] < threshold
    out.loc[out["small"], ["n", "observed"]] = np.nan
    dims = list(labels.columns)
    return out[["stratum", *dims, *STRATA_COLUMNS[1:]]]


def maihda(data: pd.DataFrame, **settings: Any) -> MaihdaResult:
    """One call: ``Maihda(**settings).fit(data).result_``."""
    return Maihda(**settings).fit(data).result_
