"""Settings helpers shared by every design.

Designs declare their string settings as ``Literal`` aliases; ``fit`` passes
each value through :func:`check_option`, so a wrong value is reported the same
way everywhere, listing what is accepted. :func:`constructor_settings` reads
the settings back from the constructor's signature, so no design keeps a
hand-written copy of its parameter list.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from knowdo.errors import ParameterError


def constructor_settings(estimator: object) -> dict[str, Any]:
    """Every keyword of ``type(estimator).__init__`` with its current value (sequences as lists)."""
    names = [
        name
        for name, parameter in inspect.signature(type(estimator).__init__).parameters.items()
        if name != "self" and parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    settings: dict[str, Any] = {}
    for name in names:
        value = getattr(estimator, name)
        is_list = isinstance(value, Sequence) and not isinstance(value, str)
        settings[name] = list(value) if is_list else value
    return settings


def check_option(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ParameterError naming them.

    Examples
    --------
    >>> check_option("family", "poisson", ("gaussian", "poisson"))
    'poisson'
    """
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ParameterError(f"{name}={value!r} is not accepted; use one of {choices}.")
    return value
