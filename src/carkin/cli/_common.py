"""Small helpers shared by the CLI command modules (error display)."""

from __future__ import annotations

import contextlib

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import DataError, SolverError, SpecError

console = Console(stderr=True)


@contextlib.contextmanager
def user_errors():
    """Turn the errors a user can fix (bad data or spec, missing file, occupied output folder, failed ODE solve) into a
    message and exit code 2."""
    try:
        yield
    except (DataError, SpecError, SolverError, FileNotFoundError, FileExistsError) as err:
        print_error(err)
        raise typer.Exit(code=2) from None


def print_error(err: object) -> None:
    """One error message on stderr, never re-wrapped: a terminal-width wrap can split "row 3" or a path in two,
    and users (and scripts) grep these messages."""
    console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
