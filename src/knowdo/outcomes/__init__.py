"""Implementation outcomes from the analysis panel and the person-level tables.

* :func:`compute_cascade` → :class:`Cascade`: care cascade and effective coverage;
* :func:`compute_reaim` → :class:`ReAim`: Reach, Effectiveness, Adoption, Implementation, Maintenance;
* :func:`compute_proctor` → :class:`Proctor`: Proctor implementation outcomes from routine data;
* :func:`compute_perceptions` → :class:`Perceptions`: AIM / IAM / FIM scale scores;
* :func:`compute_trends` → :class:`Trends`: headline coverage per site and district, month by month;
* :func:`compute_outcomes` → :class:`OutcomeSet`: all of them at once.

Every result is a frozen dataclass around one tidy table (:data:`TIDY_COLUMNS`)
with ``summary()``, ``to_frame()``, ``to_dict()`` and ``plot()``. Every
outcome is reported overall and by site, district and period (month, quarter,
year); person-level outcomes also by each equity stratum. Each tidy row says
what its numerator and denominator count (``unit``, ``denominator_unit``:
people, providers, sessions, sites, score or money), so that publishing can
apply disclosure control to counts of persons and staff only.
"""

from knowdo.outcomes.cascade import STAGES, Cascade, compute_cascade
from knowdo.outcomes.groups import GROUPINGS, Grouping
from knowdo.outcomes.intervals import (
    Interval,
    cluster_proportion,
    cluster_ratio,
    mean_interval,
    smd_means,
    smd_proportions,
    wilson,
)
from knowdo.outcomes.outcome_set import OutcomeSet, compute_outcomes
from knowdo.outcomes.perceptions import Perceptions, compute_perceptions, scale_scores
from knowdo.outcomes.proctor import Proctor, compute_proctor
from knowdo.outcomes.reaim import ReAim, compute_reaim
from knowdo.outcomes.results import TIDY_COLUMNS, UNITS, OutcomeResult, Unit
from knowdo.outcomes.trends import TREND_COLUMNS, TREND_MEASURES, Trends, compute_trends

__all__ = [
    "GROUPINGS",
    "STAGES",
    "TIDY_COLUMNS",
    "TREND_COLUMNS",
    "TREND_MEASURES",
    "UNITS",
    "Cascade",
    "Grouping",
    "Interval",
    "OutcomeResult",
    "OutcomeSet",
    "Perceptions",
    "Proctor",
    "ReAim",
    "Trends",
    "Unit",
    "cluster_proportion",
    "cluster_ratio",
    "compute_cascade",
    "compute_outcomes",
    "compute_perceptions",
    "compute_proctor",
    "compute_reaim",
    "compute_trends",
    "mean_interval",
    "scale_scores",
    "smd_means",
    "smd_proportions",
    "wilson",
]
