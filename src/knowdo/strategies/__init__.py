"""Implementation strategies: CFIR 2.0 barrier assessment, ERIC strategy matching and specification, and evidence.

* :func:`load_vocabulary` -> :class:`Vocabulary`: CFIR 2.0, CFIR 1.0 barriers with the crosswalk, ERIC, Proctor;
* :func:`assess_barriers` -> :class:`BarrierAssessment`: members' ratings with spread, stakeholder groups apart;
* :func:`match_strategies` -> :class:`StrategyMatch`: candidate ERIC strategies (the CFIR-ERIC workbook's expert
  endorsements when supplied, else the list by cluster), always labelled expert opinion;
* :func:`specify` / :class:`SpecificationSet`: Proctor's seven specification dimensions;
* :func:`strategy_evidence` -> :class:`StrategyEvidence`: what the project's own data say about its strategies.

Everything is persistence-free: callers pass ratings, workbooks and tables
in, and get frozen results with ``summary()``, ``to_frame()``,
``to_dict()`` and ``plot()`` back.
"""

from knowdo.strategies.assessment import (
    STAKEHOLDER_GROUPS,
    BarrierAssessment,
    Rating,
    assess_barriers,
    ratings_frame,
)
from knowdo.strategies.evidence import (
    CAVEATS,
    StrategyAssociations,
    StrategyEvidence,
    configurational_table,
    strategy_evidence,
)
from knowdo.strategies.matching import (
    EXPERT_OPINION_NOTE,
    LEVEL_1,
    LEVEL_2,
    MatchingWorkbook,
    StrategyMatch,
    match_strategies,
    read_matching_workbook,
    workbook_from_frame,
)
from knowdo.strategies.specification import (
    IMPLEMENTATION_OUTCOMES,
    SpecificationSet,
    StrategySpecification,
    specification_set,
    specification_template,
    specify,
)
from knowdo.strategies.vocabularies import (
    Cfir1Barrier,
    Cluster,
    Construct,
    Strategy,
    Vocabulary,
    load_vocabulary,
    resolve_constructs,
)

__all__ = [
    "CAVEATS",
    "EXPERT_OPINION_NOTE",
    "IMPLEMENTATION_OUTCOMES",
    "LEVEL_1",
    "LEVEL_2",
    "STAKEHOLDER_GROUPS",
    "BarrierAssessment",
    "Cfir1Barrier",
    "Cluster",
    "Construct",
    "MatchingWorkbook",
    "Rating",
    "SpecificationSet",
    "Strategy",
    "StrategyAssociations",
    "StrategyEvidence",
    "StrategyMatch",
    "StrategySpecification",
    "Vocabulary",
    "assess_barriers",
    "configurational_table",
    "load_vocabulary",
    "match_strategies",
    "ratings_frame",
    "read_matching_workbook",
    "resolve_constructs",
    "specification_set",
    "specification_template",
    "specify",
    "strategy_evidence",
    "workbook_from_frame",
]
