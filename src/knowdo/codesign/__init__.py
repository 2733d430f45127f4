"""Co-production tools: Delphi rounds and ranking, logic models, and the StaRI reporting checklist.

* :func:`summarise_delphi` -> :class:`DelphiResult`: consensus per item and round under rules chosen up front;
* :func:`rank_items` -> :class:`RankingResult`: nominal-group ranking of items;
* :func:`logic_model` / :func:`logic_model_from_rollout` -> :class:`LogicModel`: inputs to client outcomes,
  linked to the project's measures and to what the data say about each link;
* :func:`stari_checklist` -> :class:`StariChecklist`: the 27 StaRI items, filled where knowdo knows the answer.

Everything here is persistence-free: callers pass votes, ratings and tables in
and get frozen results back, so the web workspace can store them as it likes.
"""

from knowdo.codesign.logic_model import (
    MEASURES,
    STAGES,
    Link,
    LogicModel,
    Measure,
    Node,
    logic_model,
    logic_model_from_rollout,
)
from knowdo.codesign.priorities import (
    ConsensusRules,
    DelphiResult,
    DelphiVote,
    RankingResult,
    item_statistics,
    rank_items,
    summarise_delphi,
)
from knowdo.codesign.stari import StariChecklist, StariItem, stari_checklist, stari_items

__all__ = [
    "MEASURES",
    "STAGES",
    "ConsensusRules",
    "DelphiResult",
    "DelphiVote",
    "Link",
    "LogicModel",
    "Measure",
    "Node",
    "RankingResult",
    "StariChecklist",
    "StariItem",
    "item_statistics",
    "logic_model",
    "logic_model_from_rollout",
    "rank_items",
    "stari_checklist",
    "stari_items",
    "summarise_delphi",
]
