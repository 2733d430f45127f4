"""Exporters: canonical tables → DHIS2, FHIR R4, OMOP CDM 5.4 and REDCap, read back by knowdo's own connectors.

Each exporter writes a project folder (see :mod:`knowdo.ingest.exporters.common`)
that knowdo reads through the matching connector, so users can move data
between their systems and tests can check that a round trip keeps the panel.
Person-level exports (DHIS2 tracker, FHIR, OMOP, REDCap) are for moving data
between the user's own systems; no export applies disclosure control. The
OMOP database file is written by :func:`knowdo.store.omop_export.export_omop`
(only the store opens DuckDB); its frames come from :func:`omop_tables`.
"""

from knowdo.ingest.exporters.common import ExportedProject, stable_uid
from knowdo.ingest.exporters.dhis2 import (
    data_value_csv,
    data_value_set,
    data_values,
    export_dhis2_aggregate,
    export_dhis2_tracker,
    organisation_units,
    tracked_entities,
)
from knowdo.ingest.exporters.fhir import export_fhir, fhir_resources, transaction_bundle
from knowdo.ingest.exporters.omop import omop_tables, write_omop_csv
from knowdo.ingest.exporters.redcap import data_dictionary, export_redcap, flat_records

__all__ = [
    "ExportedProject",
    "data_dictionary",
    "data_value_csv",
    "data_value_set",
    "data_values",
    "export_dhis2_aggregate",
    "export_dhis2_tracker",
    "export_fhir",
    "export_redcap",
    "fhir_resources",
    "flat_records",
    "omop_tables",
    "organisation_units",
    "stable_uid",
    "tracked_entities",
    "transaction_bundle",
    "write_omop_csv",
]
