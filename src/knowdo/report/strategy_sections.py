"""Report section: what the project's own data say about the implementation strategies it used.

Turns a finished :class:`~knowdo.strategies.evidence.StrategyEvidence` into a
:class:`~knowdo.report.sections.ReportSection`: the association of each ERIC
strategy (and pair) with adoption, fidelity and reach, with intervals; the
configurational comparison (which strategies and pairs are present in every
high-performing site); the caveats in words; and, for the example programme,
the generator's true strategy effects beside the estimates with whether each
interval covers its truth. The core computed everything; this module only
chooses the tables, charts and sentences.

Counts in these tables go through the report's disclosure rule like every
other table: the number of observations is a count of providers for
adoption and fidelity (protected, so an estimate resting on fewer providers
than the threshold is blanked with it) and of site-months for reach;
numbers of sites are shown (a clinic is not a person; see
:data:`knowdo.report.publish.NOT_PERSON_UNITS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from knowdo.report.sections import ReportSection, ReportTable
from knowdo.strategies.evidence import DEFINITIONS, NULL, OUTCOMES, SCALES, StrategyEvidence

KEY = "strategies"
TITLE = "What the data say about the implementation strategies"
# What the number of observations counts, per outcome (adoption: trained providers; fidelity: provider-months;
# reach: site-months), so the disclosure rule knows which counts are of people.
N_UNITS = {"adoption": "providers", "fidelity": "providers", "reach": "sites"}
ESTIMATE_DEPENDENTS = ("estimate", "conf_low", "conf_high", "std_error")
SITE_COUNTS = ("n_sites", "n_with", "n_high", "n_high_with")


def _truth_table(truth: Mapping[str, Any] | pd.DataFrame | None) -> pd.DataFrame | None:
    """The generator's true strategy effects as (strategy, outcome, truth), from truth.json or a frame."""
    if truth is None:
        return None
    found = truth if isinstance(truth, pd.DataFrame) else truth.get("strategy_effects")
    frame = pd.DataFrame(found if found is not None else [])
    if frame.empty or not {"strategy", "target", "effect"} <= set(frame.columns):
        return None
    return frame.rename(columns={"target": "outcome", "effect": "truth"})[["strategy", "outcome", "truth"]]


def _estimates_table(evidence: StrategyEvidence, truth: pd.DataFrame | None) -> pd.DataFrame:
    e = evidence.estimates.copy()
    e["label"] = [s if t == "main" else f"{s} (combination)" for s, t in zip(e["strategy"], e["term"], strict=True)]
    columns = ["outcome", "label", "scale", "estimate", "std_error", "conf_low", "conf_high", "p_value",
               "n_sites_contrast", "n_obs", "estimable", "note"]
    out = e[[c for c in columns if c in e.columns]].rename(columns={"label": "strategy", "n_obs": "n"})
    if truth is not None:
        main = e["term"] == "main"
        merged = e.loc[main, ["outcome", "strategy"]].merge(truth, on=["outcome", "strategy"], how="left")
        out.loc[main, "truth"] = merged["truth"].to_numpy()
        inside = (out["conf_low"] <= out["truth"]) & (out["truth"] <= out["conf_high"])
        out["covered"] = inside.where(out["truth"].notna() & out["estimable"].astype(bool))
    out["unit"] = out["outcome"].map(N_UNITS)
    return out


def _sentences(evidence: StrategyEvidence, level: float) -> list[str]:
    """One sentence per estimable main effect whose interval excludes no association, plus the caveat lead."""
    out = []
    e = evidence.estimates
    rows = e[(e["term"] == "main") & e["estimable"].astype(bool)]
    for r in rows.to_dict(orient="records"):
        low, high, null = r["conf_low"], r["conf_high"], NULL[r["outcome"]]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (r["estimate"], low, high)):
            continue
        digits = 3 if r["outcome"] == "fidelity" else 2
        if low > null or high < null:
            way = "higher" if low > null else "lower"
            out.append(f"Where {r['strategy']} was in place, {r['outcome']} was {way} ({SCALES[r['outcome']]} "
                       f"{r['estimate']:.{digits}f}, {level:.0%} CI {low:.{digits}f} to {high:.{digits}f}).")
    if not out:
        out.append("No strategy's interval excludes 'no association' on any outcome: the data cannot tell the "
                   "strategies apart.")
    return out


def strategies_section(
    evidence: StrategyEvidence, truth: Mapping[str, Any] | pd.DataFrame | None = None
) -> ReportSection:
    """The strategy-evidence section: associations with intervals, configurations, caveats, truth when known.

    Parameters
    ----------
    evidence
        The fitted result of :func:`knowdo.strategies.strategy_evidence`.
    truth
        The example programme's ``truth.json`` content (its ``strategy_effects``)
        or that table itself; when given, each estimate is shown beside the true
        effect with whether its interval covers it.

    Examples
    --------
    >>> from knowdo.examples import generate_programme  # doctest: +SKIP
    >>> from knowdo.strategies import strategy_evidence  # doctest: +SKIP
    >>> programme = generate_programme(persons=4_000, seed=3)  # doctest: +SKIP
    >>> section = strategies_section(strategy_evidence(programme.tables), programme.truth.to_dict())  # doctest: +SKIP
    >>> section.key  # doctest: +SKIP
    'strategies'
    """
    level = float(evidence.settings.get("level", 0.95))
    known = _truth_table(truth)
    estimates = _estimates_table(evidence, known)
    tables: list[ReportTable] = []
    for outcome in OUTCOMES:
        part = estimates[estimates["outcome"] == outcome].drop(columns=["outcome"]).reset_index(drop=True)
        if part.empty:
            continue
        tables.append(ReportTable(
            part, f"{outcome.capitalize()}: association of each strategy ({SCALES[outcome]}; "
                  f"{DEFINITIONS[outcome]})",
            count_columns=("n",), dependent_columns=ESTIMATE_DEPENDENTS, hidden_columns=("unit",),
            note="Expert-chosen strategies were not randomised; these are associations across sites."))
    configurations = evidence.configurations
    if len(configurations):
        shown = configurations.assign(unit="sites")
        tables.append(ReportTable(
            shown, "Configurational comparison: strategies and pairs among high-performing sites",
            count_columns=SITE_COUNTS, dependent_columns=(), hidden_columns=("unit",),
            note="Coverage 1.0 with 'in all high' marks a condition present in every high-performing site "
                 "(a crisp-set truth table, not a minimised solution)."))
    notes = [*(f"Caveat: {c}" for c in evidence.caveats), *evidence.notes]
    if known is not None and "covered" in estimates.columns:
        judged = estimates["covered"].dropna()
        if len(judged):
            notes.insert(0, f"The example programme sets true strategy effects: {int(judged.sum())} of "
                            f"{len(judged)} estimable intervals cover the truth.")
    intro = (" ".join(_sentences(evidence, level)) + " These are associations in the project's own data, read "
             "with the caveats below; they are not evidence that a strategy works elsewhere.")
    return ReportSection(TITLE, intro, tables=tables, charts=[evidence.plot()], notes=notes, key=KEY)
