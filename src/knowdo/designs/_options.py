"""One check for string options, shared by every design.

Designs declare their string settings as ``Literal`` aliases; ``fit`` passes
each value through :func:`check_option`, so a wrong value is reported the same
way everywhere, listing what is accepted.
"""

from __future__ import annotations

from knowdo.errors import ParameterError


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
