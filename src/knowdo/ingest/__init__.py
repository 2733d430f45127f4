"""Ingest: read routine-data sources and check them against the canonical schema.

CSV and Parquet files, one per canonical table (``files``), and connectors
for DHIS2 (aggregate, analytics, tracker; files and live servers), FHIR R4
(Bundles, Bulk ndjson), OMOP CDM 5.4 (mapping here; database reading in the
store) and REDCap (flat and EAV): each produces canonical frames that go
through the same validation (``validate``).
"""

from knowdo.ingest.files import RawSource, read_source, read_sources
from knowdo.ingest.validate import ValidatedData, read_and_validate, validate_sources

__all__ = ["RawSource", "ValidatedData", "read_and_validate", "read_source", "read_sources", "validate_sources"]
