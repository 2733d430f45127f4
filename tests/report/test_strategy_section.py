"""The report section on what the data say about strategies, on the example programme with its known truth.

The example programme's generator sets true strategy effects
(``truth.strategy_effects``); the section must put each beside its estimate
and say how many intervals cover it, counting the coverage itself from the
estimates. Counts in its tables go through the report's disclosure rule.
"""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd

from knowdo.config import Project
from knowdo.examples import generate_programme
from knowdo.report import build_report, render_table
from knowdo.report.sections import ReportSection
from knowdo.report.strategy_sections import KEY, strategies_section
from knowdo.strategies import strategy_evidence
from knowdo.strategies.evidence import StrategyEvidence

THRESHOLD = 11  # CMS/PCORnet minimum cell (data-standards.md section 7)


@functools.cache
def example() -> tuple[StrategyEvidence, pd.DataFrame]:
    programme = generate_programme(persons=2_000, seed=3)
    return strategy_evidence(programme.tables), programme.truth.strategy_effects


def test_section_shows_estimates_with_truth_and_coverage() -> None:
    evidence, truth = example()
    section = strategies_section(evidence, truth)
    assert isinstance(section, ReportSection) and section.key == KEY
    tables = {t.caption.split(":")[0]: t for t in section.tables}
    assert {"Adoption", "Fidelity", "Reach"} <= set(tables)
    fidelity = tables["Fidelity"].frame
    assert {"estimate", "conf_low", "conf_high", "truth", "covered"} <= set(fidelity.columns)
    # Each main-effect truth is the generator's, row by row.
    expected = truth[truth["target"] == "fidelity"].set_index("strategy")["effect"]
    main = fidelity[fidelity["truth"].notna()]
    assert len(main) and all(expected[s] == v for s, v in zip(main["strategy"], main["truth"], strict=True))
    # The coverage note counts the intervals that hold the truth, recomputed here from the estimates.
    estimates = evidence.estimates[(evidence.estimates["term"] == "main") & evidence.estimates["estimable"]]
    merged = estimates.merge(truth.rename(columns={"target": "outcome", "effect": "truth"}),
                             on=["strategy", "outcome"])
    covered = int(((merged["conf_low"] <= merged["truth"]) & (merged["truth"] <= merged["conf_high"])).sum())
    assert f"{covered} of {len(merged)} estimable intervals cover the truth" in section.notes[0]
    assert any(n.startswith("Caveat:") for n in section.notes)
    assert "associations" in section.intro_text


def test_configurations_and_counts_pass_disclosure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    evidence, _ = example()
    section = strategies_section(evidence)
    assert all("truth" not in t.frame.columns for t in section.tables)  # no truth given, none shown
    configuration = [t for t in section.tables if t.caption.startswith("Configurational")]
    assert configuration and {"coverage", "consistency", "in_all_high"} <= set(configuration[0].frame.columns)
    for table in section.tables:
        rendered = render_table(table, threshold=THRESHOLD)
        assert rendered.caption == table.caption
    # Adoption rests on trained providers (people): a count under the threshold is blanked with its estimate.
    adoption = next(t for t in section.tables if t.caption.startswith("Adoption"))
    small = adoption.frame.assign(n=5)
    rendered = render_table(type(adoption)(small, adoption.caption, count_columns=adoption.count_columns,
                                           dependent_columns=adoption.dependent_columns,
                                           hidden_columns=adoption.hidden_columns), threshold=THRESHOLD)
    headers = list(rendered.headers)
    estimate_at = next(i for i, h in enumerate(headers) if h.lower().startswith("estimate"))
    assert all(row[estimate_at].suppressed for row in rendered.rows)
    # Site counts of the configurational table are not counts of people: a 3 stays visible.
    sites = configuration[0]
    few = render_table(type(sites)(sites.frame.assign(n_with=3), sites.caption, count_columns=sites.count_columns,
                                   dependent_columns=sites.dependent_columns, hidden_columns=sites.hidden_columns),
                       threshold=THRESHOLD)
    assert not few.any_suppressed


def test_section_renders_in_a_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    evidence, truth = example()
    project = Project(root=tmp_path, name="Example", start=dt.date(2023, 1, 1), end=dt.date(2026, 12, 31),
                      sources=(), strata=())
    files = build_report(project, {"strategies": evidence.to_dict()}, sections=[strategies_section(evidence, truth)])
    html = files.html.read_text(encoding="utf-8")
    assert "What the data say about the implementation strategies" in html and "Configurational" in html
