"""Complexity lens: care-pathway system dynamics, adoption on networks, calibration, scenarios, sensitivity, sweeps.

The package root exports the light core (the care-pathway model and its
results); the other parts import their engines (networkx, SALib,
dask.distributed, PySD) and are imported from their modules:

* :mod:`knowdo.complexity.adoption`: Bass-plus-peer adoption on networks;
* :mod:`knowdo.complexity.calibration`: least squares, ABC rejection, ABC-SMC;
* :mod:`knowdo.complexity.scenarios`: scenarios from TOML or Python, compared side by side;
* :mod:`knowdo.complexity.sensitivity`: Sobol indices with a sample-size check;
* :mod:`knowdo.complexity.sweep`: Dask sweeps with per-task seeds;
* :mod:`knowdo.complexity.pysd_bridge`: users' Vensim/XMILE models through PySD;
* :mod:`knowdo.complexity.section`: the report's Scale-up scenarios section.

>>> from knowdo.complexity import CarePathway
>>> CarePathway(population=[100_000]).run(months=6).runs
1
"""

from knowdo.complexity.blocks import PARAMETER_SPECS, SPECS, ParameterSpec
from knowdo.complexity.pathway import CarePathway, Change
from knowdo.complexity.results import PathwayRun, stock_flow_chart

__all__ = ["PARAMETER_SPECS", "SPECS", "CarePathway", "Change", "ParameterSpec", "PathwayRun", "stock_flow_chart"]
