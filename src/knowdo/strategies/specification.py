"""Strategy specification: Proctor's seven dimensions for every strategy the team chooses.

Proctor, Powell & McMillen (*Implement Sci* 2013;8:139) ask that each
implementation strategy be reported with its **actor, action, action target,
temporality, dose, implementation outcome affected and justification**, so
that others can reproduce it and so that its effect can be studied. A
:class:`StrategySpecification` holds those fields for one strategy (named
with ERIC terms, or a local strategy marked ``custom``), the CFIR 2.0
barriers it addresses and its hypothesised mechanism; a
:class:`SpecificationSet` collects them and shows what is still blank.

>>> spec = specify("Facilitation", actor="district mental-health coordinator", dose="monthly visit, 12 months")
>>> spec.missing()
('action', 'action_target', 'temporality', 'outcome', 'justification')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import altair as alt
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.strategies._common import jsonable, require_columns
from knowdo.strategies.vocabularies import PROCTOR_FIELDS, load_vocabulary, resolve_constructs

# Proctor et al. 2011's eight implementation outcomes, the values the 'outcome' field takes.
IMPLEMENTATION_OUTCOMES = (
    "acceptability",
    "adoption",
    "appropriateness",
    "feasibility",
    "fidelity",
    "implementation_cost",
    "penetration",
    "sustainability",
)
_OUTCOME_ALIASES = {"cost": "implementation_cost", "reach": "penetration", "uptake": "adoption"}
_TEXT_FIELDS = ("actor", "action", "action_target", "temporality", "dose", "justification")


@dataclass(frozen=True)
class StrategySpecification:
    """One strategy, specified along Proctor et al.'s seven dimensions.

    ``outcome`` holds implementation-outcome names (Proctor 2011's eight;
    'reach' is read as penetration and 'cost' as implementation cost).
    ``barriers`` are CFIR 2.0 construct ids; ``mechanism`` is the team's
    hypothesis of how the strategy works.
    """

    strategy: str
    actor: str = ""
    action: str = ""
    action_target: str = ""
    temporality: str = ""
    dose: str = ""
    outcome: tuple[str, ...] = ()
    justification: str = ""
    barriers: tuple[str, ...] = ()
    mechanism: str = ""
    custom: bool = False
    cluster: str = ""

    def missing(self) -> tuple[str, ...]:
        """Proctor fields still blank, in Proctor's order."""
        return tuple(f for f in PROCTOR_FIELDS if not (getattr(self, f) if f != "outcome" else self.outcome))

    @property
    def complete(self) -> bool:
        return not self.missing()

    def to_dict(self) -> dict[str, Any]:
        return jsonable({**asdict(self), "missing": list(self.missing())})


def specify(strategy: str, *, custom: bool = False, **values: Any) -> StrategySpecification:
    """Validate one specification: the ERIC name is resolved, outcomes and barriers are checked.

    Parameters
    ----------
    strategy
        An ERIC strategy name, id or number; with ``custom=True`` any non-empty local name.
    **values
        ``actor, action, action_target, temporality, dose, outcome, justification, barriers, mechanism``;
        ``outcome`` and ``barriers`` accept a list or a ';'-separated string.
    """
    known = {f.name for f in fields(StrategySpecification)} - {"strategy", "custom", "cluster"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParameterError(f"specify: unknown field(s) {', '.join(unknown)}; use {', '.join(sorted(known))}.")
    if not isinstance(strategy, str | int) or not str(strategy).strip():
        raise ParameterError(f"specify: strategy must be a non-empty name; saw {strategy!r}")
    vocab = load_vocabulary()
    if custom:
        name, cluster = str(strategy).strip(), ""
    else:
        try:
            eric = vocab.strategy(str(strategy))
        except ParameterError as exc:
            raise ParameterError(f"{exc} Pass custom=True for a local strategy that is not in ERIC.") from None
        name, cluster = eric.name, eric.cluster_name
    clean: dict[str, Any] = {}
    for key in (*_TEXT_FIELDS, "mechanism"):
        value = values.get(key, "")
        if value is None or (isinstance(value, float) and pd.isna(value)):
            value = ""
        if not isinstance(value, str):
            raise ParameterError(f"specify({name!r}): {key} must be text; saw {value!r}")
        clean[key] = value.strip()
    clean["outcome"] = tuple(_outcome(o, name) for o in _split(values.get("outcome", ())))
    clean["barriers"] = tuple(resolve_constructs(_split(values.get("barriers", ()))))
    return StrategySpecification(strategy=name, custom=custom, cluster=cluster, **clean)


def _split(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(";") if v.strip()]
    if isinstance(value, Iterable):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ParameterError(f"expected a list or a ';'-separated string; saw {value!r}")


def _outcome(value: str, strategy: str) -> str:
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    key = _OUTCOME_ALIASES.get(key, key)
    if key not in IMPLEMENTATION_OUTCOMES:
        raise ParameterError(
            f"specify({strategy!r}): outcome {value!r} is not an implementation outcome; use "
            f"{', '.join(IMPLEMENTATION_OUTCOMES)}."
        )
    return key


@dataclass(frozen=True)
class SpecificationSet:
    """The team's specified strategies, with what is still missing."""

    specifications: tuple[StrategySpecification, ...] = field(default_factory=tuple)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for s in self.specifications:
            row = asdict(s)
            row["outcome"] = "; ".join(s.outcome)
            row["barriers"] = "; ".join(s.barriers)
            row["missing"] = "; ".join(s.missing())
            rows.append(row)
        columns = ["strategy", "cluster", "custom", *PROCTOR_FIELDS, "barriers", "mechanism", "missing"]
        return pd.DataFrame(rows, columns=columns)

    tidy = to_frame

    def summary(self) -> str:
        done = sum(s.complete for s in self.specifications)
        lines = [f"{len(self.specifications)} strategy(ies) specified; {done} complete on Proctor's 7 dimensions."]
        for s in self.specifications:
            gap = f" (missing: {', '.join(s.missing())})" if s.missing() else ""
            lines.append(f"  {s.strategy}{' [local]' if s.custom else ''}{gap}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "strategy_specifications", "fields": list(PROCTOR_FIELDS),
                "specifications": [s.to_dict() for s in self.specifications]}

    def plot(self) -> alt.Chart:
        """Which of Proctor's fields each strategy has filled in."""
        rows = [{"strategy": s.strategy, "field": f, "filled": f not in s.missing()}
                for s in self.specifications for f in PROCTOR_FIELDS]
        return alt.Chart(pd.DataFrame(rows)).mark_rect().encode(
            x=alt.X("field:N", sort=list(PROCTOR_FIELDS), title="Proctor dimension"),
            y=alt.Y("strategy:N", title=None),
            color=alt.Color("filled:N", title="Filled in", scale=alt.Scale(domain=[True, False],
                                                                          range=["#2b8cbe", "#f0f0f0"])),
        ).properties(title="Strategy specification")


def specification_set(items: Sequence[StrategySpecification] | pd.DataFrame) -> SpecificationSet:
    """Collect specifications from :class:`StrategySpecification` objects or a table with a ``strategy`` column.

    Table columns are the Proctor fields plus ``barriers``, ``mechanism``
    and ``custom`` (true for local strategies); each row goes through
    :func:`specify`, so errors name the row.
    """
    if isinstance(items, pd.DataFrame):
        require_columns(items, ("strategy",), "specifications")
        parsed: list[StrategySpecification] = []
        for i, row in enumerate(items.to_dict(orient="records")):
            flag = row.pop("custom", False)
            custom = str(flag).strip().lower() in ("true", "1", "yes") if not pd.isna(flag) else False
            values = {str(k): v for k, v in row.items() if k not in ("strategy", "cluster", "missing")}
            try:
                parsed.append(specify(str(row["strategy"]), custom=custom, **values))
            except ParameterError as exc:
                raise ParameterError(f"specifications row {i + 1}: {exc}") from None
        return SpecificationSet(tuple(parsed))
    specs = tuple(items)
    if not all(isinstance(s, StrategySpecification) for s in specs):
        raise ParameterError("specification_set: give StrategySpecification objects or a table.")
    return SpecificationSet(specs)


def specification_template(strategies: Iterable[str]) -> SpecificationSet:
    """Blank specifications for the chosen ERIC strategies (the form the team fills in)."""
    return SpecificationSet(tuple(specify(s) for s in strategies))
