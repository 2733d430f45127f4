"""Designs beyond the RCT: estimators sharing one :class:`Effect` result, and the study planner."""

from knowdo.designs.effect import Effect

__all__ = ["Effect"]
