"""The simplified care pathway shared by the vectorised model and the shipped Vensim model, name by name.

``models/care_pathway.mdl`` is the care pathway with one stratum, the
specialist cadre only and no programme. :data:`SIMPLIFIED` holds the
:class:`~knowdo.complexity.pathway.CarePathway` settings that reduce the full
model to it, and :data:`PATHWAY_NAMES`/:data:`PATHWAY_STOCKS` map knowdo names
to the Vensim variables, so both engines run the same scenario (kept apart
from :mod:`knowdo.complexity.pysd_bridge` so that using them does not import PySD).
"""

from __future__ import annotations

from collections.abc import Mapping

from knowdo.errors import ParameterError

# knowdo pathway parameter -> variable of models/care_pathway.mdl
PATHWAY_NAMES: dict[str, str] = {
    "prevalence": "prevalence", "remission": "remission rate", "incidence_scale": "incidence scale",
    "detection": "detection rate", "wait_help_seeking": "wait help seeking", "acceptance_specialist": "acceptance",
    "acceptance_ratio": "acceptance ratio", "admin_delay": "admin delay", "patience": "patience",
    "duration_specialist": "duration", "worsening": "worsening", "dropout_specialist": "dropout base",
    "dropout_ratio": "dropout ratio", "wait_dropout": "wait dropout", "recovery_specialist": "recovery fraction",
    "relapse": "relapse rate", "sustained_recovery": "sustained months", "posts_specialist": "posts",
    "caseload_specialist": "caseload", "hiring_delay_specialist": "hiring delay",
    "training_delay_specialist": "training delay", "training_capacity_specialist": "training capacity",
    "attrition_specialist": "attrition rate", "burnout_specialist": "burnout",
}  # fmt: skip
# knowdo stock -> variable of models/care_pathway.mdl (one stratum, specialist cadre)
PATHWAY_STOCKS: dict[str, str] = {
    "well": "Well", "untreated": "Untreated", "waiting": "Waiting", "treatment": "In Treatment",
    "recovered": "Recovered", "trainees": "Trainees", "workforce": "Workforce",
    "cumulative_starts": "Cumulative Starts", "cumulative_recoveries": "Cumulative Recoveries",
}  # fmt: skip
# Pathway settings under which CarePathway is the simplified model: no lay cadre and no programme.
SIMPLIFIED: dict[str, float] = {"posts_lay": 0.0, "posts_per_1000_lay": 0.0, "posts_per_1000_specialist": 0.0,
                                "offer": 0.0, "screening_uplift": 0.0, "coverage_floor": 0.0}


def pathway_parameters(values: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """The same settings for both engines: ``(CarePathway params, Vensim params)`` from knowdo names."""
    unknown = sorted(set(values) - set(PATHWAY_NAMES))
    if unknown:
        raise ParameterError(f"pathway_parameters: {', '.join(unknown)} not in the simplified model; "
                             f"known: {', '.join(PATHWAY_NAMES)}")
    ours = {**SIMPLIFIED, **values}
    theirs = {PATHWAY_NAMES[k]: float(v) for k, v in values.items()}
    return ours, theirs
