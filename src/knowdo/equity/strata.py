"""Equity strata and indicator metadata: what HEAT needs to know before measuring a gap.

Three flags decide which inequality measures apply and which way they point
(frameworks.md section 4.1 and fact 6 of section 8):

* the **dimension** is ordered (wealth quintile, education: ranked from most
  disadvantaged to most advantaged) or not (sex, region, language), with its
  PROGRESS-Plus category (O'Neill et al. 2014; section 4.2). This lives in
  ``knowdo.toml`` under ``[equity.<dimension>]`` and reaches us as
  :class:`knowdo.config.Stratum`;
* the **indicator** is favourable (coverage: more is better) or adverse
  (drop-out: less is better), with its **scale** (100 for a percentage, 1000
  for a rate per 1,000) which the simulation intervals need to truncate draws;
* an optional **reference subgroup**.

:class:`IndicatorSpec` turns any pair of panel columns into an indicator
(``started / positive``, ``screened / population`` ...). The project file has
no indicator section yet, so :data:`DEFAULT_INDICATORS` holds sensible defaults
for the example programme; :func:`indicator_specs` resolves names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from knowdo.config import Project, Stratum
from knowdo.errors import ParameterError

PERCENT = 100.0  # HEAT indicator scale for a percentage (frameworks.md section 4.1)
PER_THOUSAND = 1000.0  # HEAT indicator scale for a rate per 1,000


@dataclass(frozen=True)
class IndicatorSpec:
    """An indicator built from two panel columns: ``scale * numerator / denominator``.

    ``complement=True`` reports ``scale * (1 - numerator / denominator)``, so
    drop-out can be defined from ``adequate / started``.

    Examples
    --------
    >>> spec = IndicatorSpec("treatment_start", "started", "positive", label="Started treatment")
    >>> spec.favourable, spec.scale, spec.unit
    (True, 100.0, '%')
    """

    name: str
    numerator: str
    denominator: str
    label: str = ""
    favourable: bool = True
    scale: float = PERCENT
    complement: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.numerator or not self.denominator:
            raise ParameterError(f"IndicatorSpec needs a name, numerator and denominator; got {self!r}.")
        if not self.scale > 0:
            raise ParameterError(f"IndicatorSpec {self.name!r}: scale must be positive (100 for %), got {self.scale}.")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def unit(self) -> str:
        if self.scale == PERCENT:
            return "%"
        return f"per {self.scale:,.0f}"


# Defaults for the example programme (task-shared depression care; frameworks.md
# sections 5 and 7). Cascade steps are favourable; drop-out is adverse.
DEFAULT_INDICATORS: tuple[IndicatorSpec, ...] = (
    IndicatorSpec("reach", "screened", "population", "Screened (per 1,000 adults)", scale=PER_THOUSAND),
    IndicatorSpec("treated_need", "started", "need", "Started treatment among adults in need"),
    IndicatorSpec("treatment_start", "started", "positive", "Started treatment after a positive screen"),
    IndicatorSpec("adequate_treatment", "adequate", "started", "Adequate treatment among starters"),
    IndicatorSpec("dropout", "adequate", "started", "Dropped out before an adequate dose", favourable=False,
                  complement=True),
    IndicatorSpec("response", "responded", "followed_up", "Responded (PHQ-9 halved) among those followed up"),
    IndicatorSpec("effective_coverage", "effective", "need", "Effective coverage among adults in need"),
)
DEFAULT_INDICATOR_NAMES = tuple(s.name for s in DEFAULT_INDICATORS)


def indicator_specs(items: Iterable[str | IndicatorSpec]) -> tuple[IndicatorSpec, ...]:
    """Resolve names of :data:`DEFAULT_INDICATORS` (or pass specs through) into a tuple of specs."""
    if isinstance(items, str | IndicatorSpec):
        items = (items,)
    known = {s.name: s for s in DEFAULT_INDICATORS}
    out: list[IndicatorSpec] = []
    for item in items:
        if isinstance(item, IndicatorSpec):
            out.append(item)
        elif isinstance(item, str) and item in known:
            out.append(known[item])
        else:
            raise ParameterError(
                f"unknown outcome {item!r}; use one of {', '.join(known)} or pass an IndicatorSpec "
                "(name, numerator column, denominator column)."
            )
    if not out:
        raise ParameterError("no outcome given; name at least one indicator.")
    return tuple(out)


@dataclass(frozen=True)
class Dimension:
    """An equity dimension as HEAT sees it: levels in order, ordered flag, reference, PROGRESS-Plus category."""

    name: str
    category: str
    ordered: bool
    levels: tuple[str, ...]
    reference: str | None = None

    @classmethod
    def from_stratum(cls, stratum: Stratum) -> Dimension:
        return cls(stratum.name, stratum.category, stratum.ordered, tuple(stratum.levels), stratum.reference)

    def order_of(self, level: str) -> int:
        """HEAT subgroup order: 1 (most disadvantaged) .. n for ordered dimensions, 0 otherwise."""
        if not self.ordered:
            return 0
        return self.levels.index(level) + 1

    @property
    def least_advantaged(self) -> str | None:
        return self.levels[0] if self.ordered and self.levels else None

    @property
    def most_advantaged(self) -> str | None:
        return self.levels[-1] if self.ordered and self.levels else None


def project_dimensions(project: Project, names: Sequence[str] | None = None) -> tuple[Dimension, ...]:
    """The project's equity dimensions (all, or those named), as :class:`Dimension`."""
    if names is None:
        return tuple(Dimension.from_stratum(s) for s in project.strata)
    known = {s.name: s for s in project.strata}
    out = []
    for name in names:
        if name not in known:
            raise ParameterError(
                f"unknown equity dimension {name!r}; the project declares {', '.join(known) or 'none'} "
                "under [equity.<name>] in knowdo.toml."
            )
        out.append(Dimension.from_stratum(known[name]))
    return tuple(out)
