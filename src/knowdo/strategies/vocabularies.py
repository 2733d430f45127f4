"""The vocabularies of implementation practice, shipped as data: CFIR 2.0, CFIR 1.0 barriers, ERIC, Proctor.

Teams name barriers and strategies in many spellings; every other module of
:mod:`knowdo.strategies` and :mod:`knowdo.codesign` resolves names through
this one module, so a construct or strategy means the same thing in a
barrier assessment, a strategy match, a rollout table and a logic model.

The files in ``knowdo/strategies/data/`` (definitions written in our own
words; names, counts and cluster membership as published):

``cfir2.csv``
    CFIR 2.0 (Damschroder et al., *Implement Sci* 2022;17:75): 5 domains,
    48 constructs (8 + 7 + 11 + 13 + 9, the Individuals domain split into 9
    roles and 4 characteristics) and 19 sub-constructs (3 + 10 + 6).
``cfir1_barriers.csv``
    The 39 CFIR 1.0 constructs the CFIR-ERIC matching tool uses as barriers
    (Waltz et al., *Implement Sci* 2019;14:42): the original constructs with
    the sub-constructs of Implementation Climate, Readiness for
    Implementation and Engaging (including Key Stakeholders and Innovation
    Participants). "Other Personal Attributes" and the Engaging parent have
    no barrier row in the tool.
``crosswalk_cfir1_cfir2.csv``
    Each CFIR 1.0 barrier to the CFIR 2.0 construct(s) that took over its
    content: ``equivalent`` (renamed), ``partial`` (split or merged) or
    ``parent`` (a 1.0 parent whose sub-constructs became 2.0 constructs).
    Our reading of the 2022 paper's mapping; the matching tool needs it
    because it is keyed to CFIR 1.0.
``eric.csv`` and ``eric_clusters.csv``
    The 73 ERIC strategies (Powell et al., *Implement Sci* 2015;10:21) in
    Waltz et al.'s 9 clusters (*Implement Sci* 2015;10:109) of
    10/4/4/17/11/5/5/9/8, numbered in cluster order (not Powell's
    alphabetical numbers). ERIC is a vocabulary agreed by experts, not
    evidence that any strategy works.
``proctor_fields.csv``
    The 7 dimensions for specifying a strategy (Proctor, Powell & McMillen,
    *Implement Sci* 2013;8:139).

>>> vocab = load_vocabulary()
>>> len(vocab.constructs(kind="construct")), len(vocab.constructs(kind="sub_construct"))
(48, 19)
>>> vocab.strategy("audit & provide feedback").cluster_name
'Use evaluative and iterative strategies'
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import Any, Literal, TypeVar

import pandas as pd

from knowdo.errors import ParameterError, Problem, SchemaError

T = TypeVar("T")
ConstructKind = Literal["domain", "construct", "sub_construct"]
Relation = Literal["equivalent", "partial", "parent"]
Framework = Literal["cfir2", "cfir1"]
FRAMEWORKS: tuple[Framework, ...] = ("cfir2", "cfir1")
RELATIONS: tuple[Relation, ...] = ("equivalent", "partial", "parent")

# Published counts the data files must reproduce (module docstring gives the sources).
CFIR2_DOMAIN_CONSTRUCTS = {
    "innovation": 8,
    "outer_setting": 7,
    "inner_setting": 11,
    "individuals": 13,
    "implementation_process": 9,
}
CFIR2_SUB_CONSTRUCTS = 19
CFIR1_BARRIERS = 39
ERIC_CLUSTER_SIZES = (10, 4, 4, 17, 11, 5, 5, 9, 8)
PROCTOR_FIELDS = ("actor", "action", "action_target", "temporality", "dose", "outcome", "justification")

DATA_FILES = (
    "cfir2.csv",
    "cfir1_barriers.csv",
    "crosswalk_cfir1_cfir2.csv",
    "eric.csv",
    "eric_clusters.csv",
    "proctor_fields.csv",
)

# Spelling variants seen in copies of the frameworks and of the matching tool.
_WORD_VARIANTS = {
    "adviser": "advisor",
    "organisation": "organization",
    "organisations": "organizations",
    "organisational": "organizational",
    "utilise": "utilize",
    "collaborator": "stakeholder",
    "collaborators": "stakeholders",
    "centredness": "centeredness",
    "centred": "centered",
}
_DROPPED_WORDS = {"the", "a", "an"}


def normalise_name(text: str) -> str:
    """A spelling-insensitive key: lower case, '&' as 'and', no punctuation or articles, US spellings.

    >>> normalise_name("Use an implementation adviser") == normalise_name("Use implementation advisor")
    True
    """
    lowered = str(text).lower().replace("&", " and ").replace("/", " ").replace("-", " ")
    words = re.sub(r"[^0-9a-z ]+", " ", lowered).split()
    return " ".join(_WORD_VARIANTS.get(w, w) for w in words if w not in _DROPPED_WORDS)


@dataclass(frozen=True)
class Construct:
    """One CFIR 2.0 domain, construct or sub-construct."""

    id: str
    kind: ConstructKind
    domain: str
    name: str
    definition: str
    subdomain: str | None = None
    parent: str | None = None
    parent_name: str | None = None

    @property
    def label(self) -> str:
        """Name with its parent for sub-constructs, e.g. 'Engaging: Innovation Recipients'."""
        return self.name if self.parent_name is None else f"{self.parent_name}: {self.name}"


@dataclass(frozen=True)
class Cfir1Barrier:
    """One of the 39 CFIR 1.0 constructs used as barriers by the CFIR-ERIC matching tool."""

    id: str
    domain: str
    name: str
    barrier: str
    parent: str | None = None


@dataclass(frozen=True)
class CrosswalkLink:
    """A CFIR 1.0 barrier whose content lives (wholly or partly) in a CFIR 2.0 construct."""

    cfir1: str
    cfir2: str
    relation: Relation


@dataclass(frozen=True)
class Cluster:
    """One of Waltz et al.'s 9 ERIC clusters."""

    number: int
    id: str
    name: str
    size: int
    definition: str


@dataclass(frozen=True)
class Strategy:
    """One ERIC strategy."""

    number: int
    id: str
    cluster: int
    name: str
    definition: str
    cluster_name: str


@dataclass(frozen=True)
class SpecificationField:
    """One of Proctor et al.'s 7 strategy specification dimensions."""

    id: str
    label: str
    prompt: str


@dataclass(frozen=True)
class Vocabulary:
    """Every vocabulary with lookups by id or name; load it with :func:`load_vocabulary`."""

    cfir2: tuple[Construct, ...]
    cfir1: tuple[Cfir1Barrier, ...]
    crosswalk: tuple[CrosswalkLink, ...]
    clusters: tuple[Cluster, ...]
    strategies: tuple[Strategy, ...]
    specification_fields: tuple[SpecificationField, ...]

    # ---------------------------------------------------------------- CFIR 2.0
    def constructs(self, *, kind: ConstructKind | None = None, domain: str | None = None) -> tuple[Construct, ...]:
        """CFIR 2.0 entries, optionally of one kind and one domain, in framework order."""
        return tuple(
            c for c in self.cfir2 if (kind is None or c.kind == kind) and (domain is None or c.domain == domain)
        )

    def construct(self, name: str) -> Construct:
        """A CFIR 2.0 domain, construct or sub-construct by id or name.

        Sub-constructs that share a name (e.g. 'Innovation Recipients' under
        Assessing Needs and Engaging) need their id or 'Parent: Name'.
        """
        return _resolve(name, self.cfir2, _construct_keys, "CFIR 2.0 construct")

    def children(self, construct_id: str) -> tuple[Construct, ...]:
        return tuple(c for c in self.cfir2 if c.parent == construct_id)

    # ---------------------------------------------------------------- CFIR 1.0
    def barrier(self, name: str) -> Cfir1Barrier:
        """A CFIR 1.0 matching-tool barrier by id or name."""
        return _resolve(name, self.cfir1, lambda b: (b.id, b.name), "CFIR 1.0 barrier")

    def cfir2_for(self, cfir1_id: str) -> tuple[CrosswalkLink, ...]:
        """Crosswalk links from a CFIR 1.0 barrier to CFIR 2.0."""
        return tuple(link for link in self.crosswalk if link.cfir1 == cfir1_id)

    def cfir1_for(self, cfir2_id: str) -> tuple[tuple[str, str], ...]:
        """CFIR 1.0 barrier rows standing for a CFIR 2.0 construct, as ``(cfir1_id, how)`` pairs.

        ``how`` is the crosswalk relation, or ``'via parent'`` / ``'via
        sub-constructs'`` when the construct has no link of its own and its
        parent's (or its sub-constructs') links are used. Links of relation
        ``parent`` count only when nothing more specific exists. An empty
        tuple means the matching tool has no row for it (e.g. Critical
        Incidents).
        """
        construct = self.construct(cfir2_id)
        own = self._direct_links(construct.id)
        if own:
            return own
        if construct.parent is not None:
            return tuple((cfir1, "via parent") for cfir1, _ in self._direct_links(construct.parent))
        pairs: dict[str, str] = {}
        for child in self.children(construct.id):
            for cfir1, _ in self._direct_links(child.id):
                pairs.setdefault(cfir1, "via sub-constructs")
        return tuple(pairs.items())

    def _direct_links(self, cfir2_id: str) -> tuple[tuple[str, str], ...]:
        links = [link for link in self.crosswalk if link.cfir2 == cfir2_id]
        specific = [link for link in links if link.relation != "parent"]
        return tuple((link.cfir1, link.relation) for link in (specific or links))

    # ---------------------------------------------------------------- ERIC
    def strategy(self, name: str) -> Strategy:
        """An ERIC strategy by id, number or name (spelling-insensitive)."""
        if str(name).strip().isdigit():
            number = int(str(name).strip())
            for s in self.strategies:
                if s.number == number:
                    return s
        return _resolve(name, self.strategies, lambda s: (s.id, s.name), "ERIC strategy")

    def cluster(self, name: str | int) -> Cluster:
        """An ERIC cluster by number, id or name ('Use financial strategies' is accepted)."""
        if isinstance(name, int) or str(name).strip().isdigit():
            number = int(name)
            for c in self.clusters:
                if c.number == number:
                    return c
            raise ParameterError(f"ERIC cluster number must be 1-{len(self.clusters)}; saw {name!r}")
        aliases = {normalise_name("Use financial strategies"): "financial"}
        key = aliases.get(normalise_name(str(name)), str(name))
        return _resolve(key, self.clusters, lambda c: (c.id, c.name), "ERIC cluster")

    def strategies_in(self, cluster: str | int) -> tuple[Strategy, ...]:
        number = self.cluster(cluster).number
        return tuple(s for s in self.strategies if s.cluster == number)

    # ---------------------------------------------------------------- frames
    def constructs_frame(self) -> pd.DataFrame:
        """CFIR 2.0 as a table: ``id, kind, domain, subdomain, parent, name, definition``."""
        frame = pd.DataFrame([asdict(c) for c in self.cfir2])
        frame["label"] = [c.label for c in self.cfir2]
        return frame[["id", "kind", "domain", "subdomain", "parent", "name", "label", "definition"]]

    def barriers_frame(self) -> pd.DataFrame:
        """The 39 CFIR 1.0 barriers with the CFIR 2.0 constructs they map to."""
        rows = []
        for b in self.cfir1:
            links = self.cfir2_for(b.id)
            rows.append({**asdict(b), "cfir2": ", ".join(f"{link.cfir2} ({link.relation})" for link in links)})
        return pd.DataFrame(rows)

    def strategies_frame(self) -> pd.DataFrame:
        """ERIC as a table: ``number, id, cluster, cluster_name, name, definition``."""
        return pd.DataFrame([asdict(s) for s in self.strategies])[
            ["number", "id", "cluster", "cluster_name", "name", "definition"]
        ]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (for the web workspace's pickers)."""
        return {
            "cfir2": [asdict(c) for c in self.cfir2],
            "cfir1_barriers": [asdict(b) for b in self.cfir1],
            "crosswalk": [asdict(link) for link in self.crosswalk],
            "eric_clusters": [asdict(c) for c in self.clusters],
            "eric_strategies": [asdict(s) for s in self.strategies],
            "specification_fields": [asdict(f) for f in self.specification_fields],
        }


def _construct_keys(c: Construct) -> tuple[str, ...]:
    return (c.id, c.name) if c.parent is None else (c.id, c.label, c.name)


def _resolve(name: str, items: Sequence[T], keys: Callable[[T], tuple[str, ...]], what: str) -> T:
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"{what}: expected a non-empty name or id; saw {name!r}")
    wanted = normalise_name(name)
    exact = [item for item in items if any(k == name.strip() for k in keys(item))]
    if len(exact) == 1:
        return exact[0]
    # The first two keys are the id and the full name; later keys (a sub-construct's bare name,
    # which several sub-constructs can share) are tried only when those find nothing.
    unique: dict[int, T] = {}
    for first, last in ((0, 2), (2, None)):
        matches = [item for item in items if any(normalise_name(k) == wanted for k in keys(item)[first:last])]
        unique = {id(m): m for m in matches}
        if unique:
            break
    if len(unique) == 1:
        return next(iter(unique.values()))
    all_keys = [str(k) for item in items for k in keys(item)]
    if len(unique) > 1:
        ids = ", ".join(sorted(str(keys(m)[0]) for m in unique.values()))
        raise ParameterError(f"{what} {name!r} is ambiguous: it matches {ids}; give the id instead.")
    close = difflib.get_close_matches(name, all_keys, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ParameterError(f"{what} {name!r} is not known.{hint} List them with `knowdo strategies list`.")


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("knowdo.strategies").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _blank(value: str | None) -> str | None:
    return value if value not in (None, "") else None


@functools.cache
def load_vocabulary() -> Vocabulary:
    """Read and validate the package's vocabulary files (cached; the data never change at run time).

    Raises
    ------
    SchemaError
        When a data file breaks a published count or a reference (a packaging bug).
    """
    clusters = tuple(
        Cluster(int(r["number"]), r["id"], r["name"], int(r["size"]), r["definition"])
        for r in _read("eric_clusters.csv")
    )
    cluster_names = {c.number: c.name for c in clusters}
    vocab = Vocabulary(
        cfir2=tuple(
            Construct(
                id=r["id"],
                kind=r["kind"],  # type: ignore[arg-type]
                domain=r["domain"],
                name=r["name"],
                definition=r["definition"],
                subdomain=_blank(r["subdomain"]),
                parent=_blank(r["parent"]),
            )
            for r in _read("cfir2.csv")
        ),
        cfir1=tuple(
            Cfir1Barrier(r["id"], r["domain"], r["name"], r["barrier"], _blank(r["parent"]))
            for r in _read("cfir1_barriers.csv")
        ),
        crosswalk=tuple(
            CrosswalkLink(r["cfir1"], r["cfir2"], r["relation"])  # type: ignore[arg-type]
            for r in _read("crosswalk_cfir1_cfir2.csv")
        ),
        clusters=clusters,
        strategies=tuple(
            Strategy(
                int(r["number"]), r["id"], int(r["cluster"]), r["name"], r["definition"],
                cluster_names.get(int(r["cluster"]), ""),
            )
            for r in _read("eric.csv")
        ),
        specification_fields=tuple(
            SpecificationField(r["id"], r["label"], r["prompt"]) for r in _read("proctor_fields.csv")
        ),
    )
    names = {c.id: c.name for c in vocab.cfir2}
    vocab = replace(vocab, cfir2=tuple(replace(c, parent_name=names.get(c.parent or "")) for c in vocab.cfir2))
    problems = check_vocabulary(vocab)
    if problems:
        raise SchemaError(problems)
    return vocab


def check_vocabulary(vocab: Vocabulary) -> list[Problem]:
    """Every broken count or reference in ``vocab`` (empty when the files are consistent)."""
    problems: list[Problem] = []

    def need(ok: bool, file: str, rule: str, message: str, value: object = None) -> None:
        if not ok:
            problems.append(Problem(file, rule, message, value=None if value is None else str(value)))

    ids = [c.id for c in vocab.cfir2]
    need(len(ids) == len(set(ids)), "cfir2.csv", "unique_id", "construct ids repeat", _repeats(ids))
    for domain, expected in CFIR2_DOMAIN_CONSTRUCTS.items():
        n = len(vocab.constructs(kind="construct", domain=domain))
        need(n == expected, "cfir2.csv", "count", f"domain {domain} should have {expected} constructs", n)
    need(len(vocab.constructs(kind="domain")) == len(CFIR2_DOMAIN_CONSTRUCTS), "cfir2.csv", "count", "5 domains")
    n_sub = len(vocab.constructs(kind="sub_construct"))
    need(n_sub == CFIR2_SUB_CONSTRUCTS, "cfir2.csv", "count", "should have 19 sub-constructs", n_sub)
    by_id = {c.id: c for c in vocab.cfir2}
    for c in vocab.cfir2:
        need(c.kind in ("domain", "construct", "sub_construct"), "cfir2.csv", "kind", f"{c.id}: unknown kind", c.kind)
        need(c.domain in CFIR2_DOMAIN_CONSTRUCTS, "cfir2.csv", "domain", f"{c.id}: unknown domain", c.domain)
        need(bool(c.definition.strip()), "cfir2.csv", "definition", f"{c.id}: empty definition")
        if c.kind == "sub_construct":
            parent = by_id.get(c.parent or "")
            need(parent is not None and parent.kind == "construct", "cfir2.csv", "parent",
                 f"{c.id}: parent must be a construct", c.parent)
            need(parent is None or parent.domain == c.domain, "cfir2.csv", "parent",
                 f"{c.id}: parent in another domain")
        else:
            need(c.parent is None, "cfir2.csv", "parent", f"{c.id}: only sub-constructs have a parent", c.parent)
    individuals = vocab.constructs(kind="construct", domain="individuals")
    roles = sum(1 for c in individuals if c.subdomain == "roles")
    need(roles == 9, "cfir2.csv", "count", "Individuals should have 9 roles", roles)

    b_ids = [b.id for b in vocab.cfir1]
    need(len(vocab.cfir1) == CFIR1_BARRIERS, "cfir1_barriers.csv", "count", "should have 39 barriers", len(vocab.cfir1))
    need(len(b_ids) == len(set(b_ids)), "cfir1_barriers.csv", "unique_id", "barrier ids repeat", _repeats(b_ids))
    for b in vocab.cfir1:
        need(b.parent is None or b.parent in set(b_ids) | {"engaging"}, "cfir1_barriers.csv", "parent",
             f"{b.id}: unknown parent", b.parent)

    for link in vocab.crosswalk:
        need(link.cfir1 in b_ids, "crosswalk_cfir1_cfir2.csv", "reference", "unknown CFIR 1.0 barrier", link.cfir1)
        need(link.cfir2 in by_id and by_id[link.cfir2].kind != "domain", "crosswalk_cfir1_cfir2.csv", "reference",
             "unknown CFIR 2.0 construct", link.cfir2)
        need(link.relation in RELATIONS, "crosswalk_cfir1_cfir2.csv", "relation", "unknown relation", link.relation)
    linked = {link.cfir1 for link in vocab.crosswalk}
    for barrier_id in b_ids:
        need(barrier_id in linked, "crosswalk_cfir1_cfir2.csv", "coverage", "CFIR 1.0 barrier without a CFIR 2.0 link",
             barrier_id)

    sizes = tuple(c.size for c in vocab.clusters)
    need(sizes == ERIC_CLUSTER_SIZES, "eric_clusters.csv", "count", "cluster sizes should be 10/4/4/17/11/5/5/9/8",
         sizes)
    s_ids = [s.id for s in vocab.strategies]
    need(len(s_ids) == sum(ERIC_CLUSTER_SIZES), "eric.csv", "count", "should have 73 strategies", len(s_ids))
    need(len(set(s_ids)) == len(s_ids), "eric.csv", "unique_id", "strategy ids repeat", _repeats(s_ids))
    keys = [normalise_name(s.name) for s in vocab.strategies]
    need(len(set(keys)) == len(keys), "eric.csv", "unique_name", "strategy names collide once normalised",
         _repeats(keys))
    numbers = [s.number for s in vocab.strategies]
    need(numbers == list(range(1, len(numbers) + 1)), "eric.csv", "number", "numbers should run 1..73 in order")
    for cluster in vocab.clusters:
        n = sum(1 for s in vocab.strategies if s.cluster == cluster.number)
        need(n == cluster.size, "eric.csv", "count", f"cluster {cluster.number} should hold {cluster.size}", n)
    fields = tuple(f.id for f in vocab.specification_fields)
    need(fields == PROCTOR_FIELDS, "proctor_fields.csv", "fields", "should be Proctor's 7 fields in order", fields)
    return problems


def _repeats(values: Iterable[str]) -> str:
    seen: set[str] = set()
    return ", ".join(sorted({v for v in values if v in seen or seen.add(v)}))  # type: ignore[func-returns-value]


def resolve_constructs(names: Iterable[str], framework: Framework = "cfir2") -> list[str]:
    """Ids of the CFIR 2.0 constructs (or CFIR 1.0 barriers) named in ``names``, first occurrence order."""
    vocab = load_vocabulary()
    if framework not in FRAMEWORKS:
        raise ParameterError(f"framework={framework!r} is not accepted; use one of 'cfir2', 'cfir1'.")
    out: list[str] = []
    for name in names:
        item_id = vocab.construct(name).id if framework == "cfir2" else vocab.barrier(name).id
        if framework == "cfir2" and vocab.construct(item_id).kind == "domain":
            raise ParameterError(f"{name!r} is a CFIR 2.0 domain; rate its constructs instead.")
        if item_id not in out:
            out.append(item_id)
    return out
