"""Equity: disclosure control today; strata and inequality measures build on it."""

from knowdo.equity.disclosure import suppress_table

__all__ = ["suppress_table"]
