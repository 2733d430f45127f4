"""Equity at the centre: strata, WHO HEAT inequality measures, trends and impact, heterogeneity, MAIHDA, disclosure.

Every table this package hands out for publication has passed disclosure
control (:func:`suppress_table`, :func:`protect_table`).
"""

from knowdo.equity.disclosure import (
    TOTAL,
    ProtectedTable,
    RecoverabilityAudit,
    audit_recoverability,
    protect_table,
    suppress_table,
)
from knowdo.equity.heat import HeatMeasures, HeatResult, equiplot, heat_measures
from knowdo.equity.heat_measures import MEASURE_CODES, MEASURES
from knowdo.equity.heat_table import (
    HEAT_COLUMNS,
    heat_table_from_panel,
    normalise_heat_table,
    read_heat_csv,
    to_heat_plus,
    write_heat_csv,
)
from knowdo.equity.heterogeneity import HeterogeneityResult, cochran_q, heterogeneity
from knowdo.equity.maihda import Maihda, MaihdaResult, maihda
from knowdo.equity.section import EquityReport, equity_report
from knowdo.equity.strata import DEFAULT_INDICATORS, Dimension, IndicatorSpec, indicator_specs, project_dimensions
from knowdo.equity.trends import ImpactResult, TrendResult, equity_impact, equity_impacts, inequality_trends

__all__ = [
    "DEFAULT_INDICATORS",
    "HEAT_COLUMNS",
    "MEASURES",
    "MEASURE_CODES",
    "TOTAL",
    "Dimension",
    "EquityReport",
    "HeatMeasures",
    "HeatResult",
    "HeterogeneityResult",
    "ImpactResult",
    "IndicatorSpec",
    "Maihda",
    "MaihdaResult",
    "ProtectedTable",
    "RecoverabilityAudit",
    "TrendResult",
    "audit_recoverability",
    "cochran_q",
    "equiplot",
    "equity_impact",
    "equity_impacts",
    "equity_report",
    "heat_measures",
    "heat_table_from_panel",
    "heterogeneity",
    "indicator_specs",
    "inequality_trends",
    "maihda",
    "normalise_heat_table",
    "project_dimensions",
    "protect_table",
    "read_heat_csv",
    "suppress_table",
    "to_heat_plus",
    "write_heat_csv",
]
