"""Domain errors and warnings of carkin, in one place.

`DataError` collects every problem found in an input file and reports them together, each naming the
file, the 1-based row of the file (the header is row 1, so the first record is row 2), the column, the bad
value and a fix.
"""

from __future__ import annotations

import dataclasses

__all__ = ["DataError", "DataProblem", "ConvergenceError", "ConvergenceWarning", "SpecError", "SolverError"]


@dataclasses.dataclass(frozen=True)
class DataProblem:
    """One problem in one input file.

    Attributes
    ----------
    file : str
        Path of the file, as given by the user.
    row : int or None
        1-based line number in the file (the header is line 1). None when the problem concerns the whole
        file or a whole column.
    column : str or None
        Column name, or None when the problem concerns a whole row.
    message : str
        What is wrong and how to fix it.
    """

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return ", ".join(where) + ": " + self.message


class DataError(ValueError):
    """Invalid input data. Carries every problem found (``.problems``), not only the first."""

    def __init__(self, problems: list[DataProblem] | DataProblem, *, max_shown: int = 25):
        if isinstance(problems, DataProblem):
            problems = [problems]
        self.problems = list(problems)
        shown = self.problems[:max_shown]
        lines = [f"{len(self.problems)} problem(s) in the input data:"]
        lines += [f"  - {p}" for p in shown]
        if len(self.problems) > max_shown:
            lines.append(f"  ... and {len(self.problems) - max_shown} more")
        super().__init__("\n".join(lines))


class SpecError(ValueError):
    """Invalid model or scenario specification (TOML); the message names the file and the key."""


class ConvergenceError(RuntimeError):
    """A fit failed its convergence gates and the caller asked for an error."""


class ConvergenceWarning(UserWarning):
    """A fit failed its convergence gates (R-hat, bulk/tail ESS, divergences)."""


class SolverError(RuntimeError):
    """An ODE solve failed for one or more patients; the message names them."""
