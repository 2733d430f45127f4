"""Logic model / theory of change: inputs -> strategies -> mechanisms -> implementation -> service -> client outcomes.

A team draws its theory of change as **nodes** in six stages (Proctor et
al.'s chain from implementation strategies through implementation, service
and client outcomes, *Adm Policy Ment Health* 2011;38:65-76, with inputs
before and mechanisms between, as in Lewis et al., *Front Public Health*
2018;6:136) and **links** between them. Nodes in the measurable stages
point at the measure knowdo computes for them (:data:`MEASURES`: adoption,
fidelity, screening reach, cascade stages, PHQ-9 response ...), strategy
nodes carry their ERIC name, and mechanism nodes the CFIR 2.0 constructs
they act on, so that :meth:`LogicModel.link_evidence` can put beside each
strategy -> outcome link what the project's data say about it
(:class:`~knowdo.strategies.evidence.StrategyEvidence`), and
:meth:`LogicModel.gaps` can say what nobody has measured or written yet.

>>> model = logic_model(
...     nodes=[Node("fac", "strategies", "Facilitation", strategy="Facilitation"),
...            Node("adopt", "implementation_outcomes", "Lay workers deliver PST", measure="adoption")],
...     links=[Link("fac", "adopt")])
>>> model.gaps()["issue"].tolist()
['strategy without a mechanism']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import altair as alt
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.strategies._common import jsonable, require_columns
from knowdo.strategies.evidence import StrategyEvidence
from knowdo.strategies.specification import SpecificationSet
from knowdo.strategies.vocabularies import load_vocabulary, resolve_constructs

Stage = Literal["inputs", "strategies", "mechanisms", "implementation_outcomes", "service_outcomes", "client_outcomes"]
STAGES: tuple[Stage, ...] = (
    "inputs",
    "strategies",
    "mechanisms",
    "implementation_outcomes",
    "service_outcomes",
    "client_outcomes",
)
STAGE_LABELS = {
    "inputs": "Inputs",
    "strategies": "Implementation strategies",
    "mechanisms": "Mechanisms",
    "implementation_outcomes": "Implementation outcomes",
    "service_outcomes": "Service outcomes",
    "client_outcomes": "Client outcomes",
}
MEASURED_STAGES = ("implementation_outcomes", "service_outcomes", "client_outcomes")


@dataclass(frozen=True)
class Measure:
    """A measure knowdo computes, by the result that reports it."""

    id: str
    label: str
    stage: Stage
    source: str  # the knowdo result and outcome name that report it


MEASURES: dict[str, Measure] = {
    m.id: m
    for m in (
        Measure("implementation_cost", "Implementation cost", "inputs", "outcomes.Proctor: implementation_cost"),
        Measure("providers_trained", "Providers trained", "inputs", "providers table: trained_date"),
        Measure("adoption", "Adoption (providers delivering among those trained)", "implementation_outcomes",
                "outcomes.Proctor: adoption; strategies.evidence: adoption"),
        Measure("adoption_settings", "Adoption (sites delivering)", "implementation_outcomes",
                "outcomes.ReAim: adoption_settings"),
        Measure("fidelity", "Fidelity (mean session fidelity)", "implementation_outcomes",
                "outcomes.Proctor: fidelity; strategies.evidence: fidelity"),
        Measure("reach", "Reach (people screened above usual care)", "implementation_outcomes",
                "outcomes.Cascade: screening_coverage; strategies.evidence: reach"),
        Measure("penetration", "Penetration (providers delivering among all providers)", "implementation_outcomes",
                "outcomes.Proctor: penetration"),
        Measure("sustainability", "Sustainability (sites still delivering after support)", "implementation_outcomes",
                "outcomes.Proctor: sustainability"),
        Measure("acceptability", "Acceptability (AIM)", "implementation_outcomes", "outcomes.Perceptions: AIM"),
        Measure("appropriateness", "Appropriateness (IAM)", "implementation_outcomes", "outcomes.Perceptions: IAM"),
        Measure("feasibility", "Feasibility (FIM)", "implementation_outcomes", "outcomes.Perceptions: FIM"),
        Measure("detected", "Detected (screened positive)", "service_outcomes", "outcomes.Cascade: detected"),
        Measure("started", "Started treatment", "service_outcomes", "outcomes.Cascade: started"),
        Measure("adequate", "Minimally adequate treatment", "service_outcomes", "outcomes.Cascade: adequate"),
        Measure("effective_coverage", "Effective coverage", "service_outcomes", "outcomes.Cascade: effective"),
        Measure("equity_gap", "Inequality in coverage (HEAT measures)", "service_outcomes", "equity: heat_measures"),
        Measure("response", "Response (PHQ-9 down by half or more)", "client_outcomes",
                "outcomes.ReAim: effectiveness response"),
        Measure("remission", "Remission (PHQ-9 below the cut-off)", "client_outcomes",
                "outcomes.ReAim: effectiveness remission"),
        Measure("phq9_change", "Change in PHQ-9", "client_outcomes", "outcomes.ReAim: phq9_change"),
        Measure("maintenance", "Maintained response at 6 months or later", "client_outcomes",
                "outcomes.ReAim: maintenance"),
    )
}
# The strategy-evidence outcome behind each measure.
EVIDENCE_OUTCOME = {"adoption": "adoption", "fidelity": "fidelity", "reach": "reach"}


@dataclass(frozen=True)
class Node:
    """One box of the logic model.

    ``measure`` is a :data:`MEASURES` id (measurable stages); ``strategy`` an
    ERIC name (strategy nodes); ``constructs`` CFIR 2.0 construct ids a
    mechanism or strategy acts on.
    """

    id: str
    stage: Stage
    label: str
    measure: str | None = None
    strategy: str | None = None
    constructs: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Link:
    """An arrow from ``source`` to ``target`` (the same or a later stage)."""

    source: str
    target: str
    note: str = ""


@dataclass(frozen=True)
class LogicModel:
    """A validated theory of change (build it with :func:`logic_model`)."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...] = field(default_factory=tuple)
    title: str = "Logic model"

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ParameterError(f"logic model: no node {node_id!r}")

    def to_frame(self) -> pd.DataFrame:
        """One row per link with both ends' stage, label and measure."""
        rows = []
        for link in self.links:
            s, t = self.node(link.source), self.node(link.target)
            rows.append({"source": s.id, "source_stage": s.stage, "source_label": s.label, "target": t.id,
                         "target_stage": t.stage, "target_label": t.label, "target_measure": t.measure,
                         "note": link.note})
        return pd.DataFrame(rows, columns=["source", "source_stage", "source_label", "target", "target_stage",
                                           "target_label", "target_measure", "note"])

    tidy = to_frame

    def nodes_frame(self) -> pd.DataFrame:
        rows = [{**asdict(n), "constructs": "; ".join(n.constructs),
                 "measure_label": MEASURES[n.measure].label if n.measure else ""} for n in self.nodes]
        return pd.DataFrame(rows, columns=["id", "stage", "label", "measure", "measure_label", "strategy",
                                           "constructs", "note"])

    def gaps(self) -> pd.DataFrame:
        """What is missing: unmeasured outcome nodes, strategies with no mechanism, unlinked nodes."""
        rows = []
        targets = {link.target for link in self.links}
        sources = {link.source for link in self.links}
        for n in self.nodes:
            if n.stage in MEASURED_STAGES and n.measure is None:
                rows.append({"node": n.id, "label": n.label, "issue": "outcome without a measure"})
            if n.stage == "strategies":
                downstream = [self.node(link.target) for link in self.links if link.source == n.id]
                if not any(d.stage == "mechanisms" for d in downstream):
                    rows.append({"node": n.id, "label": n.label, "issue": "strategy without a mechanism"})
            if n.id not in targets and n.id not in sources:
                rows.append({"node": n.id, "label": n.label, "issue": "not linked"})
            elif n.stage not in ("inputs", "strategies") and n.id not in targets:
                rows.append({"node": n.id, "label": n.label, "issue": "nothing leads to it"})
        return pd.DataFrame(rows, columns=["node", "label", "issue"])

    def paths(self) -> pd.DataFrame:
        """Each strategy and the measured outcomes reachable from it (through mechanisms or directly)."""
        out: dict[str, list[str]] = {link.source: [] for link in self.links}
        for link in self.links:
            out[link.source].append(link.target)
        rows = []
        for n in self.nodes:
            if n.stage != "strategies":
                continue
            seen, stack = set(), [n.id]
            while stack:
                current = stack.pop()
                for nxt in out.get(current, []):
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            for target in sorted(seen):
                t = self.node(target)
                if t.measure is not None:
                    via = "direct" if target in out.get(n.id, []) else "through mechanisms or other outcomes"
                    rows.append({"strategy_node": n.id, "strategy": n.strategy or n.label, "outcome_node": t.id,
                                 "outcome_stage": t.stage, "measure": t.measure, "via": via})
        return pd.DataFrame(rows, columns=["strategy_node", "strategy", "outcome_node", "outcome_stage", "measure",
                                           "via"])

    def link_evidence(self, evidence: StrategyEvidence) -> pd.DataFrame:
        """Each strategy -> outcome path with what the data say (estimate and interval), where they say anything."""
        paths = self.paths()
        rows = []
        for p in paths.to_dict(orient="records"):
            outcome = EVIDENCE_OUTCOME.get(str(p["measure"]))
            row = {**p, "evidence": "none", "scale": "", "estimate": float("nan"),
                   "conf_low": float("nan"), "conf_high": float("nan"), "note": ""}
            if outcome is not None:
                hit = evidence.estimates.loc[(evidence.estimates["strategy"] == p["strategy"])
                                             & (evidence.estimates["outcome"] == outcome)
                                             & (evidence.estimates["term"] == "main")]
                if len(hit):
                    h = hit.iloc[0]
                    if bool(h["estimable"]):
                        row.update(evidence="estimate", scale=h["scale"], estimate=h["estimate"],
                                   conf_low=h["conf_low"], conf_high=h["conf_high"], note=h["design"])
                    else:
                        row.update(evidence="not estimable", note=h["note"])
                else:
                    row.update(note="strategy not in the rollout table")
            else:
                row.update(note="no strategy-level analysis for this measure")
            rows.append(row)
        return pd.DataFrame(rows, columns=[*paths.columns, "evidence", "scale", "estimate", "conf_low", "conf_high",
                                           "note"])

    def summary(self) -> str:
        lines = [f"{self.title}: {len(self.nodes)} node(s), {len(self.links)} link(s)."]
        for stage in STAGES:
            names = [n.label + (f" [{n.measure}]" if n.measure else "") for n in self.nodes if n.stage == stage]
            if names:
                lines.append(f"  {STAGE_LABELS[stage]}: {'; '.join(names)}")
        gaps = self.gaps()
        if len(gaps):
            lines.append(f"{len(gaps)} gap(s): " + "; ".join(f"{g.label} ({g.issue})" for g in gaps.itertuples()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "logic_model", "title": self.title, "stages": list(STAGES),
                "nodes": [jsonable(asdict(n)) for n in self.nodes], "links": [asdict(link) for link in self.links],
                "gaps": jsonable(self.gaps())}

    def to_mermaid(self) -> str:
        """A Mermaid flowchart (left to right, one subgraph per stage) for Markdown documents."""
        lines = ["flowchart LR"]
        safe = {n.id: "n_" + re.sub(r"\W", "_", n.id) for n in self.nodes}
        for stage in STAGES:
            members = [n for n in self.nodes if n.stage == stage]
            if not members:
                continue
            lines.append(f'  subgraph {stage}["{STAGE_LABELS[stage]}"]')
            for n in members:
                label = n.label.replace('"', "'")
                lines.append(f'    {safe[n.id]}["{label}"]')
            lines.append("  end")
        for link in self.links:
            lines.append(f"  {safe[link.source]} --> {safe[link.target]}")
        return "\n".join(lines)

    def plot(self) -> alt.LayerChart:
        """Boxes in stage columns with arrows as lines."""
        pos = {}
        for i, stage in enumerate(STAGES):
            members = [n for n in self.nodes if n.stage == stage]
            for j, n in enumerate(members):
                pos[n.id] = (i, j)
        nodes = pd.DataFrame([{"id": n.id, "label": n.label, "stage": STAGE_LABELS[n.stage], "x": pos[n.id][0],
                               "y": pos[n.id][1], "measure": n.measure or ""} for n in self.nodes])
        edges = pd.DataFrame([{"link": k, "x": pos[p][0], "y": pos[p][1]} for k, link in enumerate(self.links)
                              for p in (link.source, link.target)], columns=["link", "x", "y"])
        lines = alt.Chart(edges).mark_line(color="#999").encode(x="x:Q", y="y:Q", detail="link:N")
        boxes = alt.Chart(nodes).mark_point(size=300, filled=True).encode(
            x=alt.X("x:Q", title=None, axis=None), y=alt.Y("y:Q", title=None, axis=None, scale=alt.Scale(reverse=True)),
            color=alt.Color("stage:N", sort=[STAGE_LABELS[s] for s in STAGES], title="Stage"),
            tooltip=["label:N", "stage:N", "measure:N"])
        text = alt.Chart(nodes).mark_text(dy=-14, fontSize=10).encode(x="x:Q", y="y:Q", text="label:N")
        return (lines + boxes + text).properties(title=self.title, width=700)


def logic_model(nodes: Sequence[Node] | pd.DataFrame, links: Sequence[Link] | pd.DataFrame = (), *,
                title: str = "Logic model") -> LogicModel:
    """Validate a logic model: unique ids, known stages and measures, ERIC and CFIR names, forward links.

    Tables are accepted too: nodes with ``id, stage, label`` (and optional
    ``measure, strategy, constructs`` ';'-separated, ``note``), links with
    ``source, target`` (and ``note``).
    """
    node_list = _nodes(nodes)
    link_list = _links(links)
    vocab = load_vocabulary()
    seen: dict[str, Node] = {}
    checked = []
    for n in node_list:
        if not isinstance(n.id, str) or not n.id.strip():
            raise ParameterError(f"logic model: node ids must be non-empty text; saw {n.id!r}")
        if n.id in seen:
            raise ParameterError(f"logic model: node id {n.id!r} is used twice.")
        if n.stage not in STAGES:
            raise ParameterError(f"logic model: node {n.id!r} has stage {n.stage!r}; use one of {', '.join(STAGES)}.")
        if n.measure is not None and n.measure not in MEASURES:
            raise ParameterError(f"logic model: node {n.id!r} measure {n.measure!r} is not a knowdo measure; use one "
                                 f"of {', '.join(MEASURES)}.")
        strategy = vocab.strategy(n.strategy).name if n.strategy else None
        if strategy and n.stage != "strategies":
            raise ParameterError(f"logic model: node {n.id!r} names a strategy but sits in stage {n.stage!r}.")
        fixed = Node(n.id, n.stage, n.label, n.measure, strategy, tuple(resolve_constructs(n.constructs)), n.note)
        seen[n.id] = fixed
        checked.append(fixed)
    order = {s: i for i, s in enumerate(STAGES)}
    for link in link_list:
        for end in (link.source, link.target):
            if end not in seen:
                raise ParameterError(
                    f"logic model: link {link.source!r} -> {link.target!r} names unknown node {end!r}."
                )
        if order[seen[link.target].stage] < order[seen[link.source].stage]:
            raise ParameterError(
                f"logic model: link {link.source!r} -> {link.target!r} runs backwards "
                f"({seen[link.source].stage} -> {seen[link.target].stage}); "
                "links go from inputs towards client outcomes."
            )
    if len({(link.source, link.target) for link in link_list}) != len(link_list):
        raise ParameterError("logic model: a link appears twice.")
    return LogicModel(tuple(checked), tuple(link_list), title)


def _nodes(nodes: Sequence[Node] | pd.DataFrame) -> list[Node]:
    if isinstance(nodes, pd.DataFrame):
        require_columns(nodes, ("id", "stage", "label"), "logic model nodes")
        out = []
        for r in nodes.to_dict(orient="records"):
            constructs = r.get("constructs") or ""
            out.append(Node(
                id=str(r["id"]), stage=str(r["stage"]), label=str(r["label"]),  # type: ignore[arg-type]
                measure=_text(r.get("measure")), strategy=_text(r.get("strategy")),
                constructs=tuple(c.strip() for c in str(constructs).split(";") if c.strip())
                if _text(constructs) else (),
                note=_text(r.get("note")) or ""))
        return out
    out_nodes = list(nodes)
    if not all(isinstance(n, Node) for n in out_nodes):
        raise ParameterError("logic model: nodes must be Node objects or a table.")
    return out_nodes


def _links(links: Sequence[Link] | pd.DataFrame) -> list[Link]:
    if isinstance(links, pd.DataFrame):
        require_columns(links, ("source", "target"), "logic model links")
        return [Link(str(r["source"]), str(r["target"]), _text(r.get("note")) or "")
                for r in links.to_dict(orient="records")]
    out = list(links)
    if not all(isinstance(link, Link) for link in out):
        raise ParameterError("logic model: links must be Link objects or a table.")
    return out


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


# Which implementation outcomes a strategy is expected to move when the team has not said (a starting point only).
_DEFAULT_OUTCOMES = ("adoption", "fidelity", "reach")


def logic_model_from_rollout(
    rollout: pd.DataFrame,
    *,
    specifications: SpecificationSet | None = None,
    title: str = "Logic model (draft from the rollout table)",
) -> LogicModel:
    """A draft theory of change from the project's rollout table, for the team to edit.

    Inputs (implementation cost, trained providers), one node per strategy
    in the rollout (with a mechanism placeholder, or the mechanism and
    outcomes from the strategy's specification), the implementation outcomes
    knowdo measures, the care cascade and PHQ-9 client outcomes, linked in
    order. Placeholders say "(team to write)".
    """
    require_columns(rollout, ("kind", "name"), "rollout")
    vocab = load_vocabulary()
    names: list[str] = []
    for raw in rollout.loc[rollout["kind"] == "strategy", "name"].astype(str):
        try:
            name = vocab.strategy(raw).name
        except ParameterError:
            name = raw
        if name not in names:
            names.append(name)
    interventions = list(dict.fromkeys(rollout.loc[rollout["kind"] == "intervention", "name"].astype(str)))
    specs = {s.strategy: s for s in specifications.specifications} if specifications is not None else {}
    nodes = [Node("cost", "inputs", "Implementation and delivery funding", measure="implementation_cost"),
             Node("staff", "inputs", "Trained providers" + (f" ({', '.join(interventions)})" if interventions else ""),
                  measure="providers_trained")]
    links: list[Link] = []
    outcome_nodes = {
        "adoption": Node("adoption", "implementation_outcomes", "Providers deliver the intervention",
                         measure="adoption"),
        "fidelity": Node("fidelity", "implementation_outcomes", "Sessions delivered as intended", measure="fidelity"),
        "reach": Node("reach", "implementation_outcomes", "More people screened", measure="reach"),
    }
    for k, name in enumerate(names, start=1):
        sid, mid = f"s{k}", f"m{k}"
        spec = specs.get(name)
        is_eric = _is_eric(name)
        nodes.append(Node(sid, "strategies", name, strategy=name if is_eric else None,
                          constructs=spec.barriers if spec else ()))
        mechanism = spec.mechanism if spec and spec.mechanism else "(team to write: how does it work?)"
        nodes.append(Node(mid, "mechanisms", mechanism))
        links += [Link("cost", sid), Link("staff", sid), Link(sid, mid)]
        targets = [o for o in (spec.outcome if spec and spec.outcome else _DEFAULT_OUTCOMES)]
        for outcome in targets:
            key = {"penetration": "reach"}.get(outcome, outcome)
            if key not in outcome_nodes:
                outcome_nodes[key] = Node(key, "implementation_outcomes", key.replace("_", " ").capitalize(),
                                          measure=key if key in MEASURES else None)
            links.append(Link(mid, key))
    nodes += list(outcome_nodes.values())
    nodes += [Node("started", "service_outcomes", "People start treatment", measure="started"),
              Node("effective", "service_outcomes", "Effective coverage", measure="effective_coverage"),
              Node("response", "client_outcomes", "Depression improves", measure="response"),
              Node("remission", "client_outcomes", "Remission", measure="remission")]
    linked = {link.target for link in links}
    for key in outcome_nodes:
        if key in linked or not names:
            links.append(Link(key, "started" if key in ("adoption", "reach") else "effective"))
    links += [Link("started", "effective"), Link("effective", "response"), Link("response", "remission")]
    unique = list(dict.fromkeys(links))
    return logic_model(nodes, unique, title=title)


def _is_eric(name: str) -> bool:
    try:
        load_vocabulary().strategy(name)
        return True
    except ParameterError:
        return False


def measures_frame(stages: Iterable[str] | None = None) -> pd.DataFrame:
    """The measures a node can point at (optionally of some stages only)."""
    rows = [asdict(m) for m in MEASURES.values() if stages is None or m.stage in set(stages)]
    return pd.DataFrame(rows, columns=["id", "label", "stage", "source"])
