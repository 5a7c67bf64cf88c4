"""Small helpers shared by the CLI command modules: the one user-error handler, the one list splitter and
error display (provenance travels on the data: ``Dataset.simulated``, ``DataTable.simulated``).

Error policy (every command runs its work inside `user_errors`):

- exit 2, "error: MESSAGE" on stderr, no traceback: what the user can fix. `carkin.errors.DataError` (one
  line per problem, each naming file, row and column), `SpecError`, `SolverError`, any other `ValueError`
  (carkin's name the argument, the value received and a fix: an unknown metric, a negative landmark), and
  the file-system errors `FileNotFoundError`, `FileExistsError` (an occupied output folder),
  `IsADirectoryError`, `NotADirectoryError`, `PermissionError` ("PATH: no such file or directory").
- exit 1, same message style: `ConvergenceError` (the input was fine but the computation did not converge),
  as for a fit that fails its gates.
- anything else (a `TypeError`, a `RuntimeError`) is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ConvergenceError, DataError, SolverError, SpecError

console = Console(stderr=True)

#: File-system errors a user fixes (a wrong path, an occupied output folder, a permission).
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def split_list(values: Iterable[str] | str | None) -> list[str]:
    """The names given to a repeatable option whose values may also be comma-separated.

    ``["cmax,auc28", "c_m6"]`` -> ``["cmax", "auc28", "c_m6"]``; blanks are dropped; None or nothing -> ``[]``.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def default_of(function: Callable, name: str):
    """The default of a keyword argument of a library function, so that a command's option uses (and its help
    shows) the library's value instead of a copy of it."""
    return inspect.signature(function).parameters[name].default


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into ``error: ...`` lines on stderr and exit code 2 (see the module
    docstring for the policy); a `ConvergenceError` exits 1."""
    try:
        yield
    except DataError as err:
        for problem in err.problems:
            print_error(problem)
        raise typer.Exit(code=2) from None
    except (SpecError, SolverError, ValueError) as err:
        print_error(err)
        raise typer.Exit(code=2) from None
    except _FILE_ERRORS as err:
        print_error(_file_message(err))
        raise typer.Exit(code=2) from None
    except ConvergenceError as err:
        print_error(err)
        raise typer.Exit(code=1) from None


def _file_message(err: OSError) -> str:
    """The message of a file-system error: ``PATH: no such file or directory`` when the OS raised it, the
    message itself when carkin did (its messages name the path and say what to do)."""
    if err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror.lower()}"
    return str(err)


def print_error(err: object) -> None:
    """One error message on stderr, never re-wrapped: a terminal-width wrap can split "row 3" or a path in two,
    and users (and scripts) grep these messages."""
    console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
