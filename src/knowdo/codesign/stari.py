"""The StaRI checklist for the project's study: filled where knowdo knows the answer, flagged where the team must write.

StaRI (Standards for Reporting Implementation Studies; Pinnock et al., *BMJ*
2017;356:i6795, explanation and elaboration in *BMJ Open* 2017;7:e013318)
has 27 items; many have two strands, one for the **implementation strategy**
(always to be reported) and one for the **intervention** (its health
outcomes, or a citation of robust evidence of benefit). The item prompts in
``knowdo/codesign/data/stari.csv`` are our own short paraphrases; report
against the published checklist wording.

Each item gets a status:

``filled``
    knowdo wrote it from the project's configuration or data (sites,
    strata, outcome definitions, costs, fidelity ...); check it.
``draft``
    knowdo wrote a starting point from what the team entered elsewhere
    (barrier assessment, specifications, logic model, strategy evidence);
    the team must edit it.
``team``
    only the team can write it (introduction, discussion, statements ...).
``answered``
    the team's own text, passed in ``answers``.

>>> checklist = stari_checklist()
>>> len(checklist.items), checklist.counts()["team"] > 0
(27, True)
"""

from __future__ import annotations

import csv
import html
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import Any, Literal

import altair as alt
import pandas as pd

from knowdo.codesign.logic_model import LogicModel
from knowdo.config import Project
from knowdo.errors import ParameterError
from knowdo.strategies._common import jsonable
from knowdo.strategies.assessment import BarrierAssessment
from knowdo.strategies.evidence import SCALES, StrategyEvidence
from knowdo.strategies.specification import SpecificationSet

Status = Literal["filled", "draft", "team", "answered"]
STATUSES: tuple[Status, ...] = ("filled", "draft", "team", "answered")
N_ITEMS = 27  # Pinnock et al. 2017
# Aims by hybrid type (Curran et al., Med Care 2012;50:217-226; the 2022 update types by research question).
HYBRID_AIMS = {
    1: "Primary aim: the clinical effectiveness of the intervention; secondary: barriers and facilitators to its "
       "implementation.",
    2: "Co-primary aims: the clinical effectiveness of the intervention and the feasibility and utility of the "
       "implementation strategy.",
    3: "Primary aim: the utility of the implementation strategy (implementation outcomes); secondary: clinical "
       "outcomes.",
}


@dataclass(frozen=True)
class StariItem:
    """One checklist item with knowdo's text (per strand) and its status."""

    number: int
    section: str
    topic: str
    prompt_strategy: str
    prompt_intervention: str = ""
    strategy: str = ""
    intervention: str = ""
    status: Status = "team"
    sources: tuple[str, ...] = ()

    @property
    def dual(self) -> bool:
        return bool(self.prompt_intervention)


def stari_items() -> tuple[StariItem, ...]:
    """The 27 items with their prompts (blank, status 'team')."""
    text = resources.files("knowdo.codesign").joinpath("data").joinpath("stari.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    items = tuple(StariItem(int(r["number"]), r["section"], r["topic"], r["strategy"], r["intervention"])
                  for r in rows)
    if [i.number for i in items] != list(range(1, N_ITEMS + 1)):
        raise ParameterError("stari.csv must list items 1-27 in order (packaging bug).")
    return items


def _sources() -> dict[int, str]:
    text = resources.files("knowdo.codesign").joinpath("data").joinpath("stari.csv").read_text(encoding="utf-8")
    return {int(r["number"]): r["source"] for r in csv.DictReader(text.splitlines())}


@dataclass(frozen=True)
class StariChecklist:
    """The project's StaRI checklist."""

    items: tuple[StariItem, ...]
    title: str = "StaRI checklist"
    settings: Mapping[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {s: sum(i.status == s for i in self.items) for s in STATUSES}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{**asdict(i), "sources": "; ".join(i.sources)} for i in self.items])

    tidy = to_frame

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "stari_checklist", "title": self.title, "reference": "Pinnock et al., BMJ 2017;356:i6795",
                "counts": self.counts(), "items": [jsonable({**asdict(i), "dual": i.dual}) for i in self.items]}

    def summary(self) -> str:
        c = self.counts()
        lines = [f"{self.title}: {N_ITEMS} items; {c['filled']} filled from the data, {c['draft']} drafted, "
                 f"{c['answered']} answered by the team, {c['team']} for the team to write."]
        for i in self.items:
            lines.append(f"  {i.number:>2}. {i.topic}: {i.status}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The checklist as Markdown, grouped by section, with what remains to write flagged."""
        lines = [f"# {self.title}", "",
                 "Standards for Reporting Implementation Studies (Pinnock et al., BMJ 2017;356:i6795). "
                 "Status: **filled** = written by knowdo from the data (check it); **draft** = a starting point "
                 "(edit it); **team** = to be written by the team.", ""]
        section = None
        for i in self.items:
            if i.section != section:
                section = i.section
                lines += [f"## {section}", ""]
            lines.append(f"### {i.number}. {i.topic} ({i.status})")
            lines.append("")
            for label, prompt, text in self._strands(i):
                prefix = f"**{label}.** " if label else ""
                lines.append(f"{prefix}_{prompt}_")
                lines.append("")
                lines.append(text if text else "> TO WRITE (team)")
                lines.append("")
        return "\n".join(lines)

    def to_html(self) -> str:
        """A self-contained HTML page of the checklist (text escaped)."""
        rows = []
        for i in self.items:
            cells = []
            for label, prompt, text in self._strands(i):
                body = html.escape(text).replace("\n", "<br>") if text else '<em class="todo">to write (team)</em>'
                head = f"<strong>{html.escape(label)}.</strong> " if label else ""
                cells.append(f"<p class=\"prompt\">{head}{html.escape(prompt)}</p><p>{body}</p>")
            rows.append(f"<tr class=\"{i.status}\"><td>{i.number}</td><td>{html.escape(i.section)}</td>"
                        f"<td>{html.escape(i.topic)}</td><td>{''.join(cells)}</td><td>{i.status}</td></tr>")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
                 "td,th{border:1px solid #ccc;padding:6px;vertical-align:top}.prompt{color:#555;font-style:italic}"
                 ".team td:last-child{background:#fde0dd}.draft td:last-child{background:#fff7bc}"
                 ".filled td:last-child{background:#e5f5e0}.todo{color:#b30000}")
        return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1><p>Standards for Reporting Implementation Studies "
                "(Pinnock et al., BMJ 2017;356:i6795).</p><table><thead><tr><th>#</th><th>Section</th><th>Item</th>"
                "<th>Text</th><th>Status</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></body></html>")

    def plot(self) -> alt.Chart:
        data = pd.DataFrame([{"section": i.section, "status": i.status} for i in self.items])
        return alt.Chart(data).mark_bar().encode(
            y=alt.Y("section:N", sort=None, title=None), x=alt.X("count():Q", title="Items"),
            color=alt.Color("status:N", sort=list(STATUSES)),
        ).properties(title="StaRI items by status")

    @staticmethod
    def _strands(i: StariItem) -> list[tuple[str, str, str]]:
        if i.dual:
            return [("Implementation strategy", i.prompt_strategy, i.strategy),
                    ("Intervention", i.prompt_intervention, i.intervention)]
        return [("", i.prompt_strategy, i.strategy)]


@dataclass(frozen=True)
class _Inputs:
    project: Project | None
    tables: Mapping[str, pd.DataFrame]
    design: str | None
    hybrid_type: int | None
    evidence: StrategyEvidence | None
    specifications: SpecificationSet | None
    assessment: BarrierAssessment | None
    logic: LogicModel | None


Fill = tuple[str, str, Status, tuple[str, ...]]  # strategy text, intervention text, status, sources


def stari_checklist(
    *,
    project: Project | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    design: str | None = None,
    hybrid_type: int | None = None,
    evidence: StrategyEvidence | None = None,
    specifications: SpecificationSet | None = None,
    assessment: BarrierAssessment | None = None,
    logic: LogicModel | None = None,
    answers: Mapping[int, str | Mapping[str, str]] | None = None,
) -> StariChecklist:
    """Generate the checklist from what knowdo knows about the study.

    Parameters
    ----------
    project
        The project configuration (name, window, equity strata, outcome definitions).
    tables
        Canonical tables (``sites, persons, rollout, costs, encounters``), any subset.
    design
        The study design in a sentence (e.g. "stepped rollout in three waves, staggered difference-in-differences").
    hybrid_type
        1, 2 or 3 (Curran et al. 2012), if the study is a hybrid.
    evidence, specifications, assessment, logic
        Results from :mod:`knowdo.strategies` and :mod:`knowdo.codesign` to draft from.
    answers
        The team's own text by item number: a string, or ``{"strategy": ..., "intervention": ...}``.
    """
    if hybrid_type is not None and hybrid_type not in HYBRID_AIMS:
        raise ParameterError(f"hybrid_type must be 1, 2 or 3 (Curran et al. 2012) or None; saw {hybrid_type!r}")
    inputs = _Inputs(project, dict(tables or {}), design, hybrid_type, evidence, specifications, assessment, logic)
    sources = _sources()
    items = []
    for item in stari_items():
        fill = _FILLERS.get(sources.get(item.number, ""))
        result = fill(inputs) if fill is not None else None
        if result is not None:
            strategy, intervention, status, used = result
            item = replace(item, strategy=strategy, intervention=intervention if item.dual else "", status=status,
                           sources=used)
        items.append(item)
    for number, text in (answers or {}).items():
        if not isinstance(number, int) or not 1 <= number <= N_ITEMS:
            raise ParameterError(f"answers: item numbers run 1-27; saw {number!r}")
        i = items[number - 1]
        if isinstance(text, Mapping):
            unknown = set(text) - {"strategy", "intervention"}
            if unknown:
                raise ParameterError(
                    f"answers[{number}]: use keys 'strategy' and 'intervention'; saw {sorted(unknown)}"
                )
            items[number - 1] = replace(i, strategy=text.get("strategy", i.strategy),
                                        intervention=text.get("intervention", i.intervention), status="answered")
        else:
            items[number - 1] = replace(i, strategy=str(text), status="answered")
    title = f"StaRI checklist: {project.name}" if project is not None else "StaRI checklist"
    return StariChecklist(tuple(items), title, {"design": design, "hybrid_type": hybrid_type})


# ---------------------------------------------------------------------------- fillers
def _title(x: _Inputs) -> Fill | None:
    if x.project is None:
        return None
    kind = f"a type {x.hybrid_type} hybrid effectiveness-implementation study" if x.hybrid_type else \
        "an implementation study"
    method = f" using {x.design}" if x.design else ""
    return (f"{x.project.name}: {kind}{method}", "", "draft", ("project",))


def _rationale(x: _Inputs) -> Fill | None:
    parts, used = [], []
    if x.specifications is not None:
        for s in x.specifications.specifications:
            if s.justification:
                parts.append(f"{s.strategy}: {s.justification}")
        used.append("specifications")
    if x.logic is not None:
        mechanisms = [n.label for n in x.logic.nodes if n.stage == "mechanisms" and "(team to write" not in n.label]
        if mechanisms:
            parts.append("Expected mechanisms: " + "; ".join(mechanisms) + ".")
        used.append("logic model")
    if not parts:
        return None
    return ("\n".join(parts), "", "draft", tuple(used))


def _aims(x: _Inputs) -> Fill | None:
    if x.hybrid_type is None:
        return None
    return (HYBRID_AIMS[x.hybrid_type], "", "draft", ("hybrid type",))


def _rollout_facts(x: _Inputs) -> tuple[list[str], list[str]]:
    rollout = x.tables.get("rollout")
    if rollout is None or rollout.empty:
        return [], []
    iv = rollout.loc[rollout["kind"] == "intervention"]
    starts = pd.to_datetime(iv.groupby("site_id")["start"].min())
    facts = []
    if len(starts):
        months = starts.dt.to_period("M").nunique()
        facts.append(f"{len(starts)} site(s) started the intervention between {starts.min():%B %Y} and "
                     f"{starts.max():%B %Y} ({months} distinct start month(s)).")
    strategies = rollout.loc[rollout["kind"] == "strategy"].groupby("name")["site_id"].nunique()
    strategy_facts = [f"{name}: used at {n} site(s)." for name, n in strategies.items()]
    return facts, strategy_facts


def _design(x: _Inputs) -> Fill | None:
    facts, _ = _rollout_facts(x)
    parts, used = [], []
    if x.design:
        parts.append(f"Design: {x.design}.")
        used.append("design")
    if x.project is not None:
        parts.append(f"Observation window: {x.project.start:%d %B %Y} to {x.project.end:%d %B %Y}.")
        used.append("project")
    if facts:
        parts += facts
        used.append("rollout table")
    if not parts:
        return None
    return (" ".join(parts), "", "filled" if x.design else "draft", tuple(used))


def _context(x: _Inputs) -> Fill | None:
    if x.assessment is None:
        return None
    top = x.assessment.priorities(top=8)
    lines = [f"Barrier assessment (CFIR 2.0, {x.assessment.ratings['member'].nunique()} members, "
             f"{x.assessment.ratings['group'].nunique()} stakeholder groups). Main barriers: "
             + "; ".join(f"{r.name} (mean valence {r.valence_mean:+.1f})" for r in top.itertuples()) + "."]
    facilitators = x.assessment.constructs.loc[x.assessment.constructs["valence_mean"] > 0]
    if len(facilitators):
        lines.append("Facilitators: " + "; ".join(facilitators.sort_values("valence_mean", ascending=False)["name"]
                                                  .head(5)) + ".")
    disagreements = x.assessment.disagreements()
    if len(disagreements):
        lines.append("Stakeholder groups disagreed on: " + "; ".join(disagreements["name"]) + ".")
    return ("\n".join(lines), "", "draft", ("barrier assessment",))


def _sites(x: _Inputs) -> Fill | None:
    sites = x.tables.get("sites")
    parts, used = [], []
    if sites is not None and len(sites):
        facilities = sites.loc[sites["level"] == "facility"] if "level" in sites.columns else sites
        text = f"{len(facilities)} facilities"
        if "parent_id" in facilities.columns and facilities["parent_id"].notna().any():
            text += f" in {facilities['parent_id'].nunique()} districts"
        if "urbanicity" in facilities.columns and facilities["urbanicity"].notna().any():
            counts = facilities["urbanicity"].value_counts()
            text += " (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")"
        if "catchment_population" in facilities.columns:
            text += f"; catchment populations {int(facilities['catchment_population'].min()):,} to " \
                    f"{int(facilities['catchment_population'].max()):,} adults"
        parts.append(text + ".")
        used.append("sites table")
    intervention = ""
    if x.project is not None:
        o = x.project.outcomes
        intervention = (f"Adults attending the sites, screened with the PHQ-9; a score of {o.positive_threshold} or "
                        "more is positive and eligible for treatment.")
        used.append("project outcome definitions")
    if not parts and not intervention:
        return None
    return (" ".join(parts), intervention, "filled", tuple(used))


def _description(x: _Inputs) -> Fill | None:
    _, strategy_facts = _rollout_facts(x)
    lines, used = [], []
    if x.specifications is not None and x.specifications.specifications:
        for s in x.specifications.specifications:
            fields = [f"{name}: {getattr(s, name)}" for name in ("actor", "action", "action_target", "temporality",
                                                                  "dose", "justification") if getattr(s, name)]
            if s.outcome:
                fields.append("outcomes: " + ", ".join(s.outcome))
            missing = f" [still to specify: {', '.join(s.missing())}]" if s.missing() else ""
            lines.append(f"{s.strategy} ({'; '.join(fields) or 'not specified'}){missing}")
        used.append("specifications")
    elif strategy_facts:
        lines += strategy_facts
        lines.append("Specify each strategy's actor, action, target, timing, dose, outcome and justification "
                     "(Proctor et al. 2013).")
        used.append("rollout table")
    rollout = x.tables.get("rollout")
    intervention = ""
    if rollout is not None and len(rollout):
        names = rollout.loc[rollout["kind"] == "intervention", "name"].unique()
        intervention = ("Intervention: " + "; ".join(names) + ".") if len(names) else ""
        if x.project is not None:
            intervention += f" Planned dose: {x.project.outcomes.adequate_sessions} sessions."
    if not lines and not intervention:
        return None
    complete = x.specifications is not None and all(s.complete for s in x.specifications.specifications)
    return ("\n".join(lines), intervention.strip(), "filled" if complete else "draft", tuple(used))


def _outcomes(x: _Inputs) -> Fill | None:
    strategy = ("Implementation outcomes computed by knowdo from routine data (Proctor et al. 2011; RE-AIM): "
                "adoption (providers delivering at least one session among those trained; sites delivering), "
                "fidelity (mean session fidelity), reach (people screened; screening above usual care), "
                "penetration, sustainability (sites delivering after support ends) and implementation cost.")
    intervention = ""
    if x.project is not None:
        o = x.project.outcomes
        intervention = (f"Care cascade (screened, positive at PHQ-9 >= {o.positive_threshold}, started within "
                        f"{o.start_window_days} days, at least {o.adequate_sessions} sessions, effective coverage) and "
                        f"PHQ-9 response (a fall of at least {o.response_fraction:.0%} from baseline) and remission "
                        f"(PHQ-9 below {o.remission_below}), with maintenance at {o.maintenance_months} months or "
                        "later.")
    return (strategy, intervention, "filled" if x.project is not None else "draft",
            ("knowdo outcomes",) + (("project outcome definitions",) if x.project is not None else ()))


def _process(x: _Inputs) -> Fill | None:
    if x.logic is None:
        return None
    paths = x.logic.paths()
    if paths.empty:
        return None
    lines = ["Process measures tied to the logic model: " + "; ".join(
        f"{p.strategy} -> {p.measure}" for p in paths.itertuples()) + "."]
    return ("\n".join(lines), "", "draft", ("logic model",))


def _cost_frame(x: _Inputs) -> pd.DataFrame | None:
    costs = x.tables.get("costs")
    return costs if costs is not None and len(costs) else None


def _economic(x: _Inputs) -> Fill | None:
    costs = _cost_frame(x)
    if costs is None:
        return None
    def items(category: str) -> str:
        names = sorted(costs.loc[costs["category"] == category, "item"].unique()) if "category" in costs else []
        return ", ".join(names) or "none recorded"
    currency = ", ".join(costs["currency"].unique()) if "currency" in costs else "the recorded currency"
    return (f"Implementation costs recorded per site and month ({currency}): {items('implementation')}.",
            f"Delivery costs recorded per site and month ({currency}): {items('delivery')}.",
            "filled", ("costs table",))


def _economic_results(x: _Inputs) -> Fill | None:
    costs = _cost_frame(x)
    if costs is None or "category" not in costs:
        return None
    totals = costs.groupby(["category", "currency"] if "currency" in costs else ["category"])["amount"].sum()

    def total(category: str) -> str:
        rows = totals.loc[totals.index.get_level_values(0) == category] if len(totals) else totals
        return "; ".join(f"{v:,.0f} {k[1] if isinstance(k, tuple) else ''}".strip() for k, v in rows.items()) or "none"
    return (f"Total implementation cost: {total('implementation')}.", f"Total delivery cost: {total('delivery')}.",
            "filled", ("costs table",))


def _analysis(x: _Inputs) -> Fill | None:
    parts, used = [], []
    if x.design:
        parts.append(f"Design-based analysis: {x.design}.")
        used.append("design")
    if x.evidence is not None and len(x.evidence.estimates):
        designs = x.evidence.estimates.drop_duplicates("outcome")
        parts.append("Strategy associations: " + "; ".join(f"{r.outcome}: {r.design}" for r in designs.itertuples())
                     + ".")
        used.append("strategy evidence")
    if not parts:
        return None
    return (" ".join(parts), "", "draft", tuple(used))


def _subgroup_analyses(x: _Inputs) -> Fill | None:
    if x.project is None or not x.project.strata:
        return None
    names = "; ".join(f"{s.name} ({s.category}: {', '.join(s.levels)})" for s in x.project.strata)
    return (f"Pre-specified equity strata (PROGRESS-Plus), with outcomes and inequality measures by stratum: {names}.",
            "", "filled", ("project equity strata",))


def _characteristics(x: _Inputs) -> Fill | None:
    rollout, encounters, persons = x.tables.get("rollout"), x.tables.get("encounters"), x.tables.get("persons")
    parts, used = [], []
    if rollout is not None and len(rollout):
        parts.append(f"{rollout.loc[rollout['kind'] == 'intervention', 'site_id'].nunique()} site(s) implemented "
                     "the intervention.")
        used.append("rollout table")
    if encounters is not None and "type" in encounters.columns:
        screened = encounters.loc[encounters["type"] == "screen", "person_id"].nunique()
        parts.append(f"{screened:,} people were screened.")
        used.append("encounters")
    elif persons is not None:
        parts.append(f"{len(persons):,} people are in the data.")
        used.append("persons")
    if not parts:
        return None
    return (" ".join(parts), "", "filled", tuple(used))


def _results(x: _Inputs) -> Fill | None:
    if x.evidence is None:
        return None
    rows = x.evidence.estimates.loc[x.evidence.estimates["estimable"] & (x.evidence.estimates["term"] == "main")]
    if rows.empty:
        return None
    level = x.evidence.settings.get("level", 0.95)
    lines = [f"{r['strategy']} and {r['outcome']}: {SCALES[str(r['outcome'])]} {r['estimate']:.3g} ({level:.0%} CI "
             f"{r['conf_low']:.3g} to {r['conf_high']:.3g})" for r in rows.to_dict(orient="records")]
    return ("Associations in the project's data (not proof of effect):\n" + "\n".join(lines), "", "draft",
            ("strategy evidence",))


def _subgroup_results(x: _Inputs) -> Fill | None:
    if x.project is None or not x.project.strata:
        return None
    return ("Reach, cascade and outcomes by " + ", ".join(s.name for s in x.project.strata)
            + " with inequality measures are in knowdo's equity report; summarise them here.", "", "draft",
            ("project equity strata",))


def _fidelity(x: _Inputs) -> Fill | None:
    encounters = x.tables.get("encounters")
    if encounters is None or "fidelity" not in encounters.columns or encounters["fidelity"].notna().sum() == 0:
        return None
    f = encounters["fidelity"].dropna()
    return ("", f"Session fidelity recorded for {len(f):,} sessions: mean {f.mean():.2f} (0-1 scale); see knowdo's "
                "Proctor fidelity outcome for sites and periods.", "draft", ("encounters",))


def _harms(x: _Inputs) -> Fill | None:
    if x.project is None:
        return None
    return ("Deterioration (a rise in PHQ-9 at follow-up) among people treated is reported by knowdo's effectiveness "
            "outcomes; add other harms.", "", "draft", ("knowdo outcomes",))


_FILLERS: dict[str, Callable[[_Inputs], Fill | None]] = {
    "title": _title,
    "rationale": _rationale,
    "aims": _aims,
    "design": _design,
    "context": _context,
    "sites": _sites,
    "description": _description,
    "outcomes": _outcomes,
    "process": _process,
    "economic": _economic,
    "analysis": _analysis,
    "subgroup_analyses": _subgroup_analyses,
    "characteristics": _characteristics,
    "results": _results,
    "economic_results": _economic_results,
    "subgroup_results": _subgroup_results,
    "fidelity": _fidelity,
    "harms": _harms,
}

