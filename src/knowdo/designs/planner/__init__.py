"""The study planner: power, sample size and minimum detectable effect for designs beyond the RCT.

One GLS engine covers longitudinal cluster designs (stepped wedge, parallel
with baseline, crossover, incomplete, staggered) with exchangeable,
block-exchangeable, decay and cohort correlation; closed forms, parallel
cluster trials, SMARTs, hybrid type 2 studies, ITS and multi-round DiD have
their own modules; simulation power works for any estimator returning an
:class:`~knowdo.designs.effect.Effect`; the advisor ranks the designs a
programme's constraints allow. Every function returns a
:class:`PowerResult`.

>>> from knowdo.designs.planner import plan_stepped_wedge
>>> round(plan_stepped_wedge(clusters=24, steps=4, cluster_period_size=120,
...                          p0=0.05, p1=0.035, tau=0.01).power, 4)
0.7862
"""

from knowdo.designs.planner.advisor import Advice, Constraints, Recommendation, advise, advise_file, load_constraints
from knowdo.designs.planner.binary_ml import binary_ml_power, binary_ml_variance
from knowdo.designs.planner.charts import information_content_chart, power_curve, power_curve_frame
from knowdo.designs.planner.closed_forms import (
    hooper_design_effect,
    hooper_variance,
    hussey_hughes_uwv,
    hussey_hughes_variance,
    kasza_variance,
    woertman_design_effect,
)
from knowdo.designs.planner.cluster import (
    baseline_vif,
    design_effect,
    design_effect_sizes,
    inflate_for_clustering,
    plan_crt,
)
from knowdo.designs.planner.did_power import ar1_covariance, bpw_variance, mckenzie_factor, plan_did
from knowdo.designs.planner.engine import (
    CovarianceModel,
    Design,
    binomial_sigma,
    information_content,
    information_matrix,
    treatment_variance,
)
from knowdo.designs.planner.hybrid import co_primary_power, plan_hybrid_type2, solve_hybrid_size
from knowdo.designs.planner.individual import plan_individual
from knowdo.designs.planner.its_power import its_variance, plan_its, simulate_its_power
from knowdo.designs.planner.longitudinal import plan_longitudinal, plan_stepped_wedge, stepped_wedge_covariance
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.simulate import (
    ProgrammeScenario,
    fit_random_intercept_lmm,
    simulate_data,
    simulate_longitudinal_power,
    simulate_power,
    statistics_from_data,
)
from knowdo.designs.planner.smart import inflation_factor, longitudinal_factor, pilot_smart_size, plan_smart
from knowdo.designs.planner.solve import solve_increasing, t_power, z_mde, z_power

__all__ = [
    "Advice",
    "Constraints",
    "CovarianceModel",
    "Design",
    "PowerResult",
    "ProgrammeScenario",
    "Recommendation",
    "advise",
    "advise_file",
    "ar1_covariance",
    "baseline_vif",
    "binary_ml_power",
    "binary_ml_variance",
    "binomial_sigma",
    "bpw_variance",
    "co_primary_power",
    "design_effect",
    "design_effect_sizes",
    "fit_random_intercept_lmm",
    "hooper_design_effect",
    "hooper_variance",
    "hussey_hughes_uwv",
    "hussey_hughes_variance",
    "inflate_for_clustering",
    "inflation_factor",
    "information_content",
    "information_content_chart",
    "information_matrix",
    "its_variance",
    "kasza_variance",
    "load_constraints",
    "longitudinal_factor",
    "mckenzie_factor",
    "pilot_smart_size",
    "plan_crt",
    "plan_did",
    "plan_hybrid_type2",
    "plan_individual",
    "plan_its",
    "plan_longitudinal",
    "plan_smart",
    "plan_stepped_wedge",
    "power_curve",
    "power_curve_frame",
    "simulate_data",
    "simulate_its_power",
    "simulate_longitudinal_power",
    "simulate_power",
    "solve_hybrid_size",
    "solve_increasing",
    "statistics_from_data",
    "stepped_wedge_covariance",
    "t_power",
    "treatment_variance",
    "woertman_design_effect",
    "z_mde",
    "z_power",
]
