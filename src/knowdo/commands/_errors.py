"""The one way every command turns a deliberate knowdo error into output and exit status 1.

Schema problems are listed one by one (or as JSON records); any other
:class:`~knowdo.errors.KnowdoError` prints its type and message. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from knowdo.errors import KnowdoError, SchemaError

err = Console(stderr=True)


@contextmanager
def user_errors(as_json: bool) -> Iterator[None]:
    """Run the block; on a user error print it (text on stderr, or JSON on stdout) and exit 1."""
    try:
        yield
    except SchemaError as exc:
        if as_json:
            print(json.dumps({"ok": False, "problems": [p.to_dict() for p in exc.problems]}, indent=2))
        else:
            err.print("[bold red]The data break the schema.[/]")
            err.print(exc.report(), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except KnowdoError as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        else:
            err.print(f"[bold red]{type(exc).__name__}:[/] ", end="")
            err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
