"""Ingest: read routine-data sources and check them against the canonical schema.

Today: CSV and Parquet files, one per canonical table (``files``), validated
by ``validate``. Connectors for DHIS2, FHIR, OMOP and REDCap produce the same
canonical frames and go through the same validation.
"""

from knowdo.ingest.files import RawSource, read_source, read_sources
from knowdo.ingest.validate import ValidatedData, read_and_validate, validate_sources

__all__ = ["RawSource", "ValidatedData", "read_and_validate", "read_source", "read_sources", "validate_sources"]
