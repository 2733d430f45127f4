"""The project store (DuckDB): transactional loads, provenance and the analysis panel.

The only package that imports ``duckdb``; everything else asks the store.
"""

from knowdo.store.database import LoadSummary, Store
from knowdo.store.omop_source import OMOP_READERS
from knowdo.store.panel import build_panel, read_episodes, read_panel, read_perceptions, read_providers

__all__ = [
    "OMOP_READERS",
    "LoadSummary",
    "Store",
    "build_panel",
    "read_episodes",
    "read_panel",
    "read_perceptions",
    "read_providers",
]
