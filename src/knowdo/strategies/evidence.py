"""What the project's own data say about its implementation strategies.

From the rollout table (which ERIC strategies each site used, and when) and
the routine data, this module estimates how each strategy is associated with
three implementation outcomes across sites:

**Fidelity** (difference in mean session fidelity, 0-1)
    Sessions are attributed to the month their client was screened, the
    month whose strategies shaped the care episode, and averaged by
    provider x month. A weighted fixed-effects regression with **provider**
    (nested in site), **event-time** (months since the site's start) and
    **calendar-month** effects compares the same providers with and without
    a strategy, against other sites at the same point of their rollout and
    in the same month; strategies that start and stop at different times
    (staggered strategy timing) identify their effect. Provider effects keep
    staff turnover from masquerading as a strategy effect (without them the
    example programme's intervals were far too narrow). Weights are session
    counts, so the estimate equals the session-level regression. Without
    provider ids, sites take the providers' place.
**Reach** (rate ratio of screening above usual care)
    Screened people per site-month minus the site's own pre-rollout monthly
    mean (usual-care screening), within the intervention's supported period
    (after it sites differ in whether they keep delivering, which is an
    outcome in itself). A Poisson pseudo-likelihood regression with site,
    event-time and calendar-month effects gives the ratio by which a strategy multiplies the
    programme's added screening. The pseudo-likelihood needs only the mean
    to be right, so months with slightly negative excess counts are fine.
**Adoption** (odds ratio that a trained provider delivers at least once)
    A logistic regression over trained providers, comparing providers at
    sites that used the strategy (at any time up to the data end) with
    providers at sites that did not. This compares sites, so it is only as
    good as the sites' comparability: fair when the strategy was allocated
    at random, not otherwise. Providers trained in the last :data:`ADOPTION_GRACE_DAYS`
    days are left out: they have had no time to adopt.

All intervals are cluster-robust with sites as clusters: Bell & McCaffrey's
CR2 sandwich with their Satterthwaite degrees of freedom by default (CR1
with G - 1 on request), because the contrast for a strategy often rests on
a few sites; ``docs/studies/strategy-evidence.md`` reports the coverage of
these intervals on the example programme. A strategy is **not estimable**
when the data hold no contrast for it: a strategy used at every site
whenever the intervention runs (e.g. initial training) cannot be told apart
from the intervention itself, and is reported as such, never given a number.

A **configurational comparison** (coincidence-analysis style) sits beside the
regressions: sites are labelled high-performing on each outcome (at or above
the median by default), and for each strategy and pair of strategies the
table gives how many high performers used it (coverage; 1.0 means present in
every high-performing site) and how many of its users performed highly
(consistency). It is a crisp-set truth table, not a minimised
coincidence-analysis or QCA solution (no Python library implements CNA), and
with few sites it describes, it does not test.

Why the regressions are written here rather than with the designs'
estimators: the designs' staggered difference-in-differences assume a
single, absorbing treatment, while strategies overlap and switch off again
(facilitation for a year, audit and feedback from month 3); several
on/off treatments in one fixed-effects regression is the standard tool for
that, with the caveat, stated in :data:`CAVEATS`, that it assumes an effect
that does not change over time or between sites.

>>> from knowdo.examples import generate_programme
>>> programme = generate_programme(persons=4_000, seed=2)
>>> result = strategy_evidence(programme.tables)
>>> sorted(result.estimates["outcome"].unique())
['adoption', 'fidelity', 'reach']
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import altair as alt
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from knowdo.errors import ParameterError
from knowdo.strategies._common import check_option, jsonable, require_columns
from knowdo.strategies._fixed_effects import VCOVS, Vcov, cluster_covariance, fit_absorbed, spanned
from knowdo.strategies.vocabularies import load_vocabulary

Outcome = Literal["adoption", "fidelity", "reach"]
OUTCOMES: tuple[Outcome, ...] = ("adoption", "fidelity", "reach")
TimeEffects = Literal["event", "calendar", "both"]
TIME_EFFECTS: tuple[TimeEffects, ...] = ("event", "calendar", "both")
SCALES = {"adoption": "odds ratio", "fidelity": "difference", "reach": "rate ratio"}
NULL = {"adoption": 1.0, "fidelity": 0.0, "reach": 1.0}
DEFINITIONS = {
    "adoption": "odds that a trained provider delivers at least one session",
    "fidelity": "mean session fidelity (0-1) of care episodes screened while the strategy was active",
    "reach": "people screened per site-month above the site's pre-rollout (usual-care) level",
}
ADOPTION_GRACE_DAYS = 60  # providers trained this close to the data end are left out (own convention: ~2 months)
MIN_PRE_MONTHS = 3  # a site needs this many pre-rollout months for its usual-care screening baseline (own convention)
HIGH_QUANTILE = 0.5  # own convention: sites at or above the median are 'high-performing' (a median split)
FIDELITY_WEIGHTS: str | None = "n"
MID_MONTH_DAY = 15  # own convention: a strategy counts as active in a month when it is in place on the 15th
ESTIMATE_COLUMNS = (
    "outcome", "strategy", "term", "scale", "estimate", "std_error", "statistic", "df", "p_value", "conf_low",
    "conf_high", "estimable", "n_obs", "n_sites", "n_sites_contrast", "design", "note",
)
CAVEATS = (
    "These are associations in the project's own data, not proof that a strategy works: unless strategies were "
    "allocated at random, sites that used one may differ from sites that did not.",
    "The fixed-effects regressions assume a strategy's effect is the same at every site and every month; with "
    "effects that grow or fade, the estimate is a weighted mix of them.",
    "A strategy used wherever and whenever the intervention is delivered cannot be separated from the intervention "
    "itself; it is listed as not estimable.",
    "Reach compares screening with each site's own pre-rollout level, taken as its usual care.",
    "The configurational table describes which strategies high-performing sites had in common; with few sites it is "
    "descriptive only.",
)


# ---------------------------------------------------------------------------- inputs
def _month(values: pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(values).dt.to_period("M").dt.to_timestamp(), index=values.index)


def _month_diff(later: pd.Series, earlier: pd.Series) -> pd.Series:
    a, b = pd.to_datetime(later), pd.to_datetime(earlier)
    return (a.dt.year - b.dt.year) * 12 + (a.dt.month - b.dt.month)


@dataclass(frozen=True)
class Rollout:
    """The rollout table split into intervention periods and strategy periods (ERIC names where known)."""

    intervention: pd.DataFrame  # site_id, start, end
    strategies: pd.DataFrame  # site_id, strategy, start, end
    unknown_names: tuple[str, ...]

    @classmethod
    def from_table(cls, rollout: pd.DataFrame) -> Rollout:
        require_columns(rollout, ("site_id", "kind", "name", "start"), "rollout")
        frame = rollout.copy()
        if "end" not in frame.columns:
            frame["end"] = pd.NaT
        frame["start"] = pd.to_datetime(frame["start"])
        frame["end"] = pd.to_datetime(frame["end"])
        frame["site_id"] = frame["site_id"].astype(str)
        kinds = set(frame["kind"].astype(str))
        if not kinds <= {"intervention", "strategy"}:
            raise ParameterError(f"rollout: column 'kind' must be 'intervention' or 'strategy'; saw {sorted(kinds)}")
        by_site = frame.loc[frame["kind"] == "intervention"].groupby("site_id")
        iv = by_site.agg(start=("start", "min"), end=("end", "max"))
        vocab = load_vocabulary()
        names, unknown = [], []
        for name in frame.loc[frame["kind"] == "strategy", "name"].astype(str):
            try:
                names.append(vocab.strategy(name).name)
            except ParameterError:
                names.append(name)
                unknown.append(name)
        st = frame.loc[frame["kind"] == "strategy", ["site_id", "start", "end"]].copy()
        st.insert(1, "strategy", names)
        return cls(iv.reset_index(), st.reset_index(drop=True), tuple(dict.fromkeys(unknown)))

    @property
    def names(self) -> list[str]:
        order = {s.name: s.number for s in load_vocabulary().strategies}
        return sorted(self.strategies["strategy"].unique(), key=lambda n: (order.get(n, 999), n))

    def active(self, cells: pd.DataFrame) -> pd.DataFrame:
        """0/1 columns, one per strategy: in place at ``site_id`` on the 15th of ``month``."""
        out = pd.DataFrame(index=cells.index)
        mid = pd.to_datetime(cells["month"]) + pd.Timedelta(days=MID_MONTH_DAY - 1)
        for name in self.names:
            periods = self.strategies.loc[self.strategies["strategy"] == name]
            merged = cells[["site_id"]].assign(mid=mid).reset_index().merge(periods, on="site_id", how="left")
            on = (merged["start"] <= merged["mid"]) & (merged["end"].isna() | (merged["end"] >= merged["mid"]))
            on &= merged["start"].notna()
            out[name] = on.groupby(merged["index"]).any().reindex(cells.index, fill_value=False).astype(float)
        return out

    def started_by(self, sites: pd.Series, dates: pd.Series) -> pd.DataFrame:
        """0/1 columns, one per strategy: the site had started it on or before ``dates``."""
        out = pd.DataFrame(index=sites.index)
        for name in self.names:
            first = self.strategies.loc[self.strategies["strategy"] == name].groupby("site_id")["start"].min()
            out[name] = (sites.map(first) <= dates).fillna(False).astype(float)
        return out


@dataclass(frozen=True)
class _Fit:
    params: pd.Series
    bse: pd.Series
    df: pd.Series


def _logit_fit(y: np.ndarray, x: np.ndarray, groups: np.ndarray, names: Sequence[str], vcov: Vcov) -> _Fit:
    """Logistic regression (statsmodels GLM, intercept added) with cluster-robust errors on ``groups``."""
    exog = np.column_stack([x, np.ones(len(y))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(y, exog, family=sm.families.Binomial()).fit()
    mu = np.asarray(res.fittedvalues)
    w = mu * (1 - mu)
    cov, dfs = cluster_covariance(x, w, (y - mu) / w, [], groups, vcov=vcov, n_params=x.shape[1] + 1)
    params = pd.Series(np.asarray(res.params)[: len(names)], index=list(names))
    bse = pd.Series(np.sqrt(np.clip(np.diag(cov), 0, None)), index=list(names))
    return _Fit(params, bse, pd.Series(dfs, index=list(names)))


def _contrast_sites(cells: pd.DataFrame, name: str) -> int:
    """Sites where the strategy is both on and off among the analysed rows (the within-site contrast)."""
    return int((cells.groupby("site_id")[name].nunique() > 1).sum())


def _estimable(cells: pd.DataFrame, candidates: list[str], fixed: list[np.ndarray]) -> tuple[list[str], dict[str, str]]:
    """Drop strategies the fixed effects (or earlier strategies) already span; say why."""
    if not candidates:
        return [], {}
    flags = spanned(cells[candidates].to_numpy(float), fixed)
    kept = [n for n, flag in zip(candidates, flags, strict=True) if not flag]
    why = {n: "no contrast left once site and time effects (and the other strategies) are accounted for"
           for n, flag in zip(candidates, flags, strict=True) if flag}
    return kept, why


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True)
class StrategyEvidence:
    """Associations of strategies with adoption, fidelity and reach, and the configurational table.

    Attributes
    ----------
    estimates
        Tidy table (:data:`ESTIMATE_COLUMNS`): one row per outcome x
        strategy (and strategy pair when combinations were asked for);
        estimates on the outcome's scale (odds ratio, difference, rate
        ratio); ``estimable`` False rows carry the reason in ``note``.
    configurations
        Per outcome, strategy or strategy pair: sites with it, high
        performers with it, ``consistency``, ``coverage``,
        ``in_all_high`` (present in every high-performing site).
    sites
        Site-level outcomes and strategies used (the truth table's rows).
    caveats
        What the reader must keep in mind, in words.
    notes
        What was left out and why (missing inputs, sites without a baseline ...).
    """

    estimates: pd.DataFrame
    configurations: pd.DataFrame
    sites: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)
    caveats: tuple[str, ...] = CAVEATS
    notes: tuple[str, ...] = ()

    def tidy(self) -> pd.DataFrame:
        return self.estimates.copy()

    to_frame = tidy

    def estimate(self, strategy: str, outcome: Outcome) -> pd.Series:
        """The row of one strategy and outcome (strategy by ERIC name, id or number)."""
        name = _display_name(strategy)
        rows = self.estimates.loc[(self.estimates["strategy"] == name) & (self.estimates["outcome"] == outcome)
                                  & (self.estimates["term"] == "main")]
        if rows.empty:
            raise ParameterError(f"no estimate for {name!r} on {outcome!r}; the data hold "
                                 f"{sorted(self.estimates['strategy'].unique())}")
        return rows.iloc[0]

    def summary(self) -> str:
        lines = ["What the project's data say about its implementation strategies (associations, not proof):"]
        for outcome in OUTCOMES:
            rows = self.estimates.loc[self.estimates["outcome"] == outcome]
            if rows.empty:
                continue
            lines.append(f"{outcome.capitalize()} ({SCALES[outcome]}; {DEFINITIONS[outcome]}):")
            for r in rows.to_dict(orient="records"):
                label = r["strategy"] if r["term"] == "main" else f"{r['strategy']} (combination)"
                if r["estimable"]:
                    digits = 3 if outcome == "fidelity" else 2
                    lines.append(f"  {label}: {r['estimate']:.{digits}f} ({self.settings.get('level', 0.95):.0%} CI "
                                 f"{r['conf_low']:.{digits}f} to {r['conf_high']:.{digits}f}), "
                                 f"{r['n_sites_contrast']} site(s) with a contrast")
                else:
                    lines.append(f"  {label}: not estimable ({r['note']})")
        c = self.configurations
        necessary = c.loc[c["in_all_high"].astype(bool)] if len(c) else c
        if len(necessary):
            lines.append("Present in every high-performing site:")
            for r in necessary.to_dict(orient="records"):
                lines.append(f"  {r['outcome']}: {r['condition']} ({r['n_high_with']}/{r['n_high']} high performers; "
                             f"consistency {r['consistency']:.0%})")
        lines.extend(f"Note: {n}" for n in self.notes)
        lines.extend(f"Caveat: {c}" for c in self.caveats)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "strategy_evidence",
            "settings": jsonable(self.settings),
            "scales": SCALES,
            "definitions": DEFINITIONS,
            "estimates": jsonable(self.estimates),
            "configurations": jsonable(self.configurations),
            "sites": jsonable(self.sites),
            "caveats": list(self.caveats),
            "notes": list(self.notes),
        }

    def plot(self) -> alt.Chart | alt.HConcatChart:
        """Forest plot: one panel per outcome, estimates with intervals and the no-association line."""
        data = self.estimates.loc[self.estimates["estimable"]].copy()
        data["label"] = np.where(data["term"] == "main", data["strategy"], data["strategy"] + " (combination)")
        data["null"] = data["outcome"].map(NULL)
        panels = []
        for outcome in OUTCOMES:
            d = data.loc[data["outcome"] == outcome]
            if d.empty:
                continue
            log = outcome != "fidelity"
            x_scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
            base = alt.Chart(d).encode(y=alt.Y("label:N", title=None))
            bars = base.mark_rule().encode(x=alt.X("conf_low:Q", scale=x_scale, title=f"{outcome} ({SCALES[outcome]})"),
                                           x2="conf_high:Q")
            points = base.mark_point(filled=True).encode(
                x="estimate:Q", tooltip=["label:N", "estimate:Q", "conf_low:Q", "conf_high:Q", "n_sites_contrast:Q"]
            )
            null = alt.Chart(pd.DataFrame({"null": [NULL[outcome]]})).mark_rule(strokeDash=[4, 4]).encode(x="null:Q")
            panels.append((bars + points + null).properties(title=outcome, width=260))
        if not panels:
            return alt.Chart(pd.DataFrame({"text": ["no estimable strategy"]})).mark_text().encode(text="text:N")
        return alt.hconcat(*panels).properties(title="Strategies and implementation outcomes (associations)")


def _display_name(strategy: str) -> str:
    try:
        return load_vocabulary().strategy(strategy).name
    except ParameterError:
        return strategy


# ---------------------------------------------------------------------------- estimator
class StrategyAssociations:
    """Estimate associations of each rollout strategy with adoption, fidelity and reach.

    Parameters (keyword-only)
    -------------------------
    outcomes
        Which of ``'adoption', 'fidelity', 'reach'`` to estimate (those whose inputs are missing are skipped).
    time_effects
        ``'both'`` (default): months since the site's start (learning, ramp-up) and calendar months (secular
        change, and right-censoring of episodes near the data end); or only ``'event'`` or ``'calendar'``.
    level
        Confidence level.
    combinations
        Also estimate each pair of strategies' interaction (on the outcome's scale).
    high_quantile
        Sites at or above this quantile of a site-level outcome count as high-performing.
    vcov
        ``'CR2'`` (Bell-McCaffrey; default) or ``'CR1'`` cluster-robust errors, sites as clusters.
    """

    def __init__(
        self,
        *,
        outcomes: Sequence[Outcome] = OUTCOMES,
        time_effects: TimeEffects = "both",
        level: float = 0.95,
        combinations: bool = False,
        high_quantile: float = HIGH_QUANTILE,
        vcov: Vcov = "CR2",
    ) -> None:
        self.outcomes = outcomes
        self.time_effects = time_effects
        self.level = level
        self.combinations = combinations
        self.high_quantile = high_quantile
        self.vcov = vcov

    def _check(self) -> None:
        for outcome in self.outcomes:
            check_option("outcomes", outcome, OUTCOMES)
        check_option("time_effects", self.time_effects, TIME_EFFECTS)
        check_option("vcov", self.vcov, VCOVS)
        if not (isinstance(self.level, float) and 0.5 < self.level < 1):
            raise ParameterError(f"level must be a number between 0.5 and 1; saw {self.level!r}")
        if not (isinstance(self.high_quantile, float) and 0 < self.high_quantile < 1):
            raise ParameterError(f"high_quantile must be between 0 and 1; saw {self.high_quantile!r}")

    def fit(self, tables: Mapping[str, pd.DataFrame]) -> Self:
        """Estimate from canonical tables: ``rollout`` and any of ``encounters``, ``providers``, ``panel``.

        ``encounters`` gives sessions with fidelity and screens; ``providers``
        (with ``trained_date`` and, from the store, ``sessions_delivered``)
        gives adoption; ``panel`` (its 'all' rows) gives screening counts,
        else screens are counted from ``encounters``. The tables are not
        modified.
        """
        self._check()
        if not isinstance(tables, Mapping) or "rollout" not in tables:
            raise ParameterError("strategy_evidence: give a mapping of tables that includes 'rollout'.")
        rollout = Rollout.from_table(tables["rollout"])
        if rollout.strategies.empty:
            raise ParameterError("rollout: no 'strategy' rows; record which ERIC strategies each site used and when.")
        if rollout.intervention.empty:
            raise ParameterError("rollout: no 'intervention' rows; the analysis needs each site's start date.")
        notes: list[str] = []
        if rollout.unknown_names:
            notes.append("Not ERIC names (kept as given): " + ", ".join(rollout.unknown_names) + ".")
        encounters = tables.get("encounters")
        end = self._data_end(tables)
        rows: list[dict[str, Any]] = []
        site_values: dict[str, pd.Series] = {}
        for outcome in self.outcomes:
            if outcome == "fidelity":
                if encounters is None or "fidelity" not in encounters.columns:
                    notes.append("Fidelity skipped: no encounters with a 'fidelity' column.")
                    continue
                rows += self._fidelity(rollout, encounters, notes, site_values)
            elif outcome == "reach":
                counts = self._screen_counts(tables, notes)
                if counts is None:
                    continue
                rows += self._reach(rollout, counts, end, notes, site_values)
            else:
                providers = tables.get("providers")
                if providers is None:
                    notes.append("Adoption skipped: no providers table.")
                    continue
                rows += self._adoption(rollout, providers, encounters, end, notes, site_values)
        estimates = pd.DataFrame(rows, columns=list(ESTIMATE_COLUMNS))
        sites = self._site_table(rollout, site_values)
        configurations = configurational_table(sites, rollout.names, list(site_values), self.high_quantile)
        self.result_ = StrategyEvidence(
            estimates=estimates,
            configurations=configurations,
            sites=sites,
            settings={"outcomes": list(self.outcomes), "time_effects": self.time_effects, "level": self.level,
                      "combinations": self.combinations, "high_quantile": self.high_quantile, "vcov": self.vcov,
                      "data_end": end.date().isoformat()},
            notes=tuple(notes),
        )
        return self

    # ------------------------------------------------------------ helpers
    def _data_end(self, tables: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
        candidates = []
        if tables.get("encounters") is not None and len(tables["encounters"]):
            candidates.append(pd.to_datetime(tables["encounters"]["date"]).max())
        if tables.get("panel") is not None and len(tables["panel"]):
            candidates.append(_month(tables["panel"]["period"]).max() + pd.offsets.MonthEnd(0))
        if not candidates:
            raise ParameterError("strategy_evidence: give encounters or a panel; there are no dates to analyse.")
        return max(candidates).normalize()

    def _time_columns(self) -> list[str]:
        return {"event": ["event_time"], "calendar": ["month"], "both": ["event_time", "month"]}[self.time_effects]

    def _rows(self, outcome: Outcome, fit: _Fit | None, cells: pd.DataFrame, names: list[str],
              estimable: list[str], why: dict[str, str], design: str, pairs: list[str]) -> list[dict[str, Any]]:
        out = []
        for name in names + pairs:
            term = "main" if name in names else "combination"
            row: dict[str, Any] = {"outcome": outcome, "strategy": name, "term": term, "scale": SCALES[outcome],
                                   "design": design, "n_obs": len(cells), "n_sites": cells["site_id"].nunique(),
                                   "n_sites_contrast": _contrast_sites(cells, name) if name in cells else 0}
            if fit is not None and name in estimable:
                b, se, df = float(fit.params[name]), float(fit.bse[name]), float(fit.df[name])
                t = float(stats.t.ppf(0.5 + self.level / 2, df))
                lo, hi = b - t * se, b + t * se
                stat = b / se if se > 0 else math.nan
                p = float(2 * stats.t.sf(abs(stat), df)) if se > 0 else math.nan
                if outcome != "fidelity":
                    b, lo, hi = math.exp(b), math.exp(lo), math.exp(hi)
                row.update(estimate=b, std_error=se, statistic=stat, p_value=p, conf_low=lo, conf_high=hi, df=df,
                           estimable=True, note="std_error on the log scale" if outcome != "fidelity" else "")
            else:
                row.update(estimate=math.nan, std_error=math.nan, statistic=math.nan, p_value=math.nan, df=math.nan,
                           conf_low=math.nan, conf_high=math.nan, estimable=False,
                           note=why.get(name, "no contrast in the data"))
            out.append(row)
        return out

    def _with_pairs(self, cells: pd.DataFrame, names: list[str], by_site: bool) -> list[str]:
        if not self.combinations:
            return []
        pairs = []
        for a, b in itertools.combinations(names, 2):
            label = f"{a} + {b}"
            cells[label] = cells[a] * cells[b]
            if cells[label].nunique() > 1 and (not by_site or _contrast_sites(cells, label) > 0):
                pairs.append(label)
            else:
                del cells[label]
        return pairs

    def _fixed_effects_model(
        self, outcome: Outcome, cells: pd.DataFrame, y: str, weights: str | None, design: str, names: list[str],
        notes: list[str], unit: str = "site_id",
    ) -> list[dict[str, Any]]:
        pairs = self._with_pairs(cells, names, by_site=True)
        fixed = [cells[c].astype(str).to_numpy() for c in [unit, *self._time_columns()]]
        candidates = [n for n in names + pairs if _contrast_sites(cells, n) > 0]
        why = {n: "the strategy is on (or off) throughout at every site analysed: no before/after contrast"
               for n in names + pairs if n not in candidates}
        kept, dropped = _estimable(cells, candidates, fixed)
        why.update(dropped)
        if not kept:
            return self._rows(outcome, None, cells, names, [], why, design, pairs)
        result = fit_absorbed(
            cells[y].to_numpy(float),
            cells[kept].to_numpy(float),
            fixed,
            cells["site_id"].astype(str).to_numpy(),
            weights=cells[weights].to_numpy(float) if weights else None,
            family="poisson" if outcome == "reach" else "gaussian",
            vcov=self.vcov,
        )
        fit = _Fit(pd.Series(result.coef, index=kept), pd.Series(result.std_error, index=kept),
                   pd.Series(result.df, index=kept))
        if result.n_dropped:
            notes.append(f"{outcome.capitalize()}: {result.n_dropped} site-month(s) left out because their "
                               "site, event month or calendar month has no screening above usual care at all.")
        return self._rows(outcome, fit, cells, names, kept, why, design, pairs)

    # ------------------------------------------------------------ outcomes
    def _fidelity(self, rollout: Rollout, encounters: pd.DataFrame, notes: list[str],
                  site_values: dict[str, pd.Series]) -> list[dict[str, Any]]:
        require_columns(encounters, ("person_id", "site_id", "date", "fidelity"), "encounters")
        keep = ["person_id", "site_id", "date", "fidelity"] + (["provider_id"] if "provider_id" in encounters else [])
        sessions = encounters.loc[encounters["fidelity"].notna(), keep].copy()
        if sessions.empty:
            notes.append("Fidelity skipped: no session has a fidelity score.")
            return []
        sessions["date"] = pd.to_datetime(sessions["date"])
        sessions["site_id"] = sessions["site_id"].astype(str)
        timing = "screen month"
        if "type" in encounters.columns and (encounters["type"] == "screen").any():
            screens = encounters.loc[encounters["type"] == "screen", ["person_id", "date"]].copy()
            screens["screen_date"] = pd.to_datetime(screens["date"])
            screens = screens.drop(columns="date").sort_values("screen_date")
            sessions = pd.merge_asof(sessions.sort_values("date"), screens, left_on="date", right_on="screen_date",
                                     by="person_id", direction="backward")
            missing = sessions["screen_date"].isna()
            if missing.any():
                notes.append(f"Fidelity: {int(missing.sum())} session(s) with no earlier screen were timed by their "
                             "own month.")
            sessions["month"] = _month(sessions["screen_date"].fillna(sessions["date"]))
        else:
            timing = "session month"
            sessions["month"] = _month(sessions["date"])
            notes.append("Fidelity: no screens in encounters, so sessions were timed by their own month.")
        unit = "provider_id" if "provider_id" in sessions and sessions["provider_id"].notna().all() else "site_id"
        keys = ["site_id", "month"] if unit == "site_id" else ["site_id", "provider_id", "month"]
        cells = sessions.groupby(keys).agg(fidelity=("fidelity", "mean"), n=("fidelity", "size")).reset_index()
        cells = self._add_event_time(cells, rollout, notes, "Fidelity")
        cells = pd.concat([cells, rollout.active(cells)], axis=1)
        per_site = sessions.groupby("site_id")["fidelity"].mean()
        site_values["fidelity"] = per_site
        design = (f"weighted two-way fixed effects (site and {self.time_effects} time), sessions timed by {timing}, "
                  f"{self.vcov} by site")
        return self._fixed_effects_model(
            "fidelity", cells, "fidelity", FIDELITY_WEIGHTS, design, rollout.names, notes, unit
        )

    def _add_event_time(self, cells: pd.DataFrame, rollout: Rollout, notes: list[str], what: str) -> pd.DataFrame:
        starts = rollout.intervention.set_index("site_id")["start"]
        cells = cells.loc[cells["site_id"].isin(starts.index)].copy()
        cells["event_time"] = _month_diff(cells["month"], cells["site_id"].map(starts))
        before = cells["event_time"] < 0
        if before.any():
            notes.append(f"{what}: {int(before.sum())} site-month(s) before the site's start were left out.")
        return cells.loc[~before].reset_index(drop=True)

    def _screen_counts(self, tables: Mapping[str, pd.DataFrame], notes: list[str]) -> pd.DataFrame | None:
        panel = tables.get("panel")
        if panel is not None and len(panel):
            require_columns(panel, ("site_id", "period", "screened"), "panel")
            rows = panel
            if "dimension" in panel.columns:
                rows = panel.loc[(panel["dimension"] == "all") & (panel["stratum"] == "all")]
            out = rows[["site_id", "period", "screened"]].rename(columns={"period": "month"}).copy()
            if "population" in rows.columns:
                out["population"] = rows["population"].to_numpy()
            out["month"] = _month(out["month"])
            out["site_id"] = out["site_id"].astype(str)
            return out.groupby(["site_id", "month"], as_index=False).sum(numeric_only=True)
        encounters = tables.get("encounters")
        if encounters is None or "type" not in encounters.columns:
            notes.append("Reach skipped: neither a panel nor encounters with screens.")
            return None
        screens = encounters.loc[encounters["type"] == "screen", ["site_id", "date"]]
        counts = screens.assign(month=_month(screens["date"]), site_id=screens["site_id"].astype(str))
        counts = counts.groupby(["site_id", "month"]).size().rename("screened").reset_index()
        months = pd.date_range(counts["month"].min(), counts["month"].max(), freq="MS")
        sites = sorted(set(counts["site_id"]))
        grid = pd.MultiIndex.from_product([sites, months], names=["site_id", "month"])
        return counts.set_index(["site_id", "month"]).reindex(grid, fill_value=0).reset_index()

    def _reach(self, rollout: Rollout, counts: pd.DataFrame, end: pd.Timestamp, notes: list[str],
               site_values: dict[str, pd.Series]) -> list[dict[str, Any]]:
        iv = rollout.intervention.set_index("site_id")
        counts = counts.loc[counts["site_id"].isin(iv.index)].copy()
        start = counts["site_id"].map(iv["start"])
        stop = counts["site_id"].map(iv["end"]).fillna(end)
        pre = counts.loc[counts["month"] < _month(start)]
        n_pre = pre.groupby("site_id").size()
        baseline = pre.groupby("site_id")["screened"].mean()
        short = sorted(set(counts["site_id"]) - set(n_pre.index[n_pre >= MIN_PRE_MONTHS]))
        if short:
            notes.append(f"Reach: {len(short)} site(s) with fewer than {MIN_PRE_MONTHS} pre-rollout months have no "
                         f"usual-care baseline and were left out ({', '.join(short[:5])}"
                         f"{' ...' if len(short) > 5 else ''}).")
        inside = (counts["month"] >= _month(start)) & (counts["month"] <= stop) & ~counts["site_id"].isin(short)
        cells = counts.loc[inside].copy()
        cells["excess"] = cells["screened"] - cells["site_id"].map(baseline)
        cells = self._add_event_time(cells.reset_index(drop=True), rollout, notes, "Reach")
        cells = pd.concat([cells, rollout.active(cells)], axis=1)
        per_month = cells.groupby("site_id")["excess"].mean()
        if "population" in cells.columns:
            per_month = per_month / cells.groupby("site_id")["population"].mean() * 1000
        site_values["reach"] = per_month
        design = (f"Poisson pseudo-likelihood with site and {self.time_effects} time effects on screening above the "
                  "site's pre-rollout mean, within the supported period; " + f"{self.vcov} by site")
        return self._fixed_effects_model("reach", cells, "excess", None, design, rollout.names, notes)

    def _adoption(self, rollout: Rollout, providers: pd.DataFrame, encounters: pd.DataFrame | None,
                  end: pd.Timestamp, notes: list[str], site_values: dict[str, pd.Series]) -> list[dict[str, Any]]:
        require_columns(providers, ("provider_id", "site_id", "trained_date"), "providers")
        staff = providers.loc[providers["trained_date"].notna()].copy()
        staff["site_id"] = staff["site_id"].astype(str)
        staff["trained_date"] = pd.to_datetime(staff["trained_date"])
        if "sessions_delivered" in staff.columns:
            staff["adopted"] = (pd.to_numeric(staff["sessions_delivered"]).fillna(0) > 0).astype(float)
        elif encounters is not None and "provider_id" in encounters.columns:
            sessions = encounters.loc[encounters["type"] == "session"] if "type" in encounters.columns else encounters
            staff["adopted"] = staff["provider_id"].isin(set(sessions["provider_id"].dropna())).astype(float)
        else:
            notes.append("Adoption skipped: no sessions_delivered column and no encounters with provider_id.")
            return []
        late = staff["trained_date"] > end - pd.Timedelta(days=ADOPTION_GRACE_DAYS)
        if late.any():
            notes.append(f"Adoption: {int(late.sum())} provider(s) trained in the last {ADOPTION_GRACE_DAYS} days "
                         "were left out (no time to adopt).")
        staff = staff.loc[~late & staff["site_id"].isin(set(rollout.intervention["site_id"]))].reset_index(drop=True)
        if staff.empty:
            notes.append("Adoption skipped: no trained provider at a site with a rollout.")
            return []
        # Exposure is the site's (any use of the strategy by the data end), not the provider's own time in post:
        # counting only strategies started before a provider left would class early leavers, who rarely
        # adopt, as unexposed and bias the odds ratio upwards.
        exposure = rollout.started_by(staff["site_id"], pd.Series(end, index=staff.index))
        cells = pd.concat([staff[["site_id", "adopted"]], exposure], axis=1)
        names = rollout.names
        site_values["adoption"] = cells.groupby("site_id")["adopted"].mean()
        pairs = self._with_pairs(cells, names, by_site=False)
        why: dict[str, str] = {}
        candidates = []
        for name in names + pairs:
            on_sites = cells.loc[cells[name] == 1, "site_id"].nunique()
            off_sites = cells.loc[cells[name] == 0, "site_id"].nunique()
            if on_sites >= 1 and off_sites >= 1:
                candidates.append(name)
            else:
                why[name] = "every trained provider's site used it (or none did): nothing to compare with"
        kept, dropped = _estimable(cells, candidates, [])
        why.update(dropped)
        design = f"logistic regression over trained providers, comparing sites; {self.vcov} by site"
        fit = None
        if kept:
            fit = _logit_fit(cells["adopted"].to_numpy(float), cells[kept].to_numpy(float),
                             pd.factorize(cells["site_id"])[0], kept, self.vcov)
        rows = self._rows("adoption", fit, cells, names, kept, why, design, pairs)
        for row in rows:  # the adoption contrast is between sites
            name = row["strategy"]
            row["n_sites_contrast"] = int(min(cells.loc[cells[name] == 1, "site_id"].nunique(),
                                              cells.loc[cells[name] == 0, "site_id"].nunique())) \
                if name in cells.columns else 0
        return rows

    def _site_table(self, rollout: Rollout, values: dict[str, pd.Series]) -> pd.DataFrame:
        sites = sorted(set(rollout.intervention["site_id"]))
        table = pd.DataFrame({"site_id": sites})
        used = rollout.strategies.groupby("site_id")["strategy"].agg(set)
        for name in rollout.names:
            table[name] = [name in used.get(s, set()) for s in sites]
        for outcome, series in values.items():
            table[outcome] = table["site_id"].map(series)
        return table


def configurational_table(sites: pd.DataFrame, names: Sequence[str], outcomes: Sequence[str],
                          quantile: float = HIGH_QUANTILE) -> pd.DataFrame:
    """Crisp-set truth table: for each strategy and pair, how it lines up with high performance on each outcome.

    ``sites`` has one row per site, a boolean column per strategy (used or
    not) and a numeric column per outcome. A site is high-performing when
    its outcome is at or above the ``quantile``. ``consistency`` is the share
    of sites with the condition that perform highly (sufficiency);
    ``coverage`` the share of high performers with it (necessity);
    ``in_all_high`` marks a condition present in every high performer but
    not in every site.

    >>> sites = pd.DataFrame({"A": [True, True, False, False], "B": [True, False, True, False],
    ...                       "fidelity": [0.9, 0.8, 0.5, 0.4]})
    >>> t = configurational_table(sites, ["A", "B"], ["fidelity"])
    >>> t.loc[t["condition"] == "A", ["consistency", "coverage", "in_all_high"]].values.tolist()
    [[1.0, 1.0, True]]
    """
    rows = []
    for outcome in outcomes:
        data = sites.dropna(subset=[outcome])
        if len(data) < 2:
            continue
        cut = data[outcome].quantile(quantile)
        high = data[outcome] >= cut
        conditions: list[tuple[str, pd.Series]] = [(n, data[n].astype(bool)) for n in names]
        conditions += [(f"{a} + {b}", data[a].astype(bool) & data[b].astype(bool))
                       for a, b in itertools.combinations(names, 2)]
        n_high = int(high.sum())
        for label, present in conditions:
            n_with = int(present.sum())
            n_high_with = int((present & high).sum())
            rows.append({
                "outcome": outcome, "condition": label, "size": label.count(" + ") + 1, "threshold": float(cut),
                "n_sites": len(data), "n_with": n_with, "n_high": n_high, "n_high_with": n_high_with,
                "consistency": n_high_with / n_with if n_with else math.nan,
                "coverage": n_high_with / n_high if n_high else math.nan,
                "in_all_high": n_high > 0 and n_high_with == n_high and n_with < len(data),
            })
    columns = ["outcome", "condition", "size", "threshold", "n_sites", "n_with", "n_high", "n_high_with",
               "consistency", "coverage", "in_all_high"]
    return pd.DataFrame(rows, columns=columns)


def strategy_evidence(tables: Mapping[str, pd.DataFrame], **settings: Any) -> StrategyEvidence:
    """One call: :class:`StrategyAssociations` (keyword settings) fitted to ``tables``; returns the result.

    Examples
    --------
    >>> from knowdo.examples import generate_programme
    >>> tables = generate_programme(persons=4_000, seed=3).tables
    >>> row = strategy_evidence(tables, outcomes=["reach"]).estimate("Facilitation", "reach")
    >>> row["scale"]
    'rate ratio'
    """
    return StrategyAssociations(**settings).fit(tables).result_
