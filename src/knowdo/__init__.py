"""knowdo: actionable evidence for closing the mental health know-do gap.

Routine data (CSV/Parquet today; DHIS2, FHIR, OMOP, REDCap next) flow one way:
ingest (validate) -> store (DuckDB, the analysis panel) -> outcomes / equity
-> report. See ARCHITECTURE.md for the module map.
"""

__version__ = "0.1.0"
