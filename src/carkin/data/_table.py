"""Tables other than CK records (patients and PFS, survival data, carkin's own CSV outputs) read once, here.

`read_table` splits the file with the text layer the CK reader uses (`._csv`: physical line numbers, ``#``
comments, ``.`` and empty cells missing, every unreadable line reported with its file and line) and then
types each column the way a pandas user expects: a column whose cells are all numbers is numeric (int64
when every cell is a whole number and none is missing, float64 otherwise), ``true``/``false`` is boolean,
anything else is text with missing cells as NaN (an empty column is float NaN). Header names keep their case
(survival columns are named by the user).

Provenance travels with the table: ``DataTable.simulated`` is True when a leading comment says SIMULATED (the
word in capitals) or
a ``SIMULATED`` column holds 1 on any row (`says_simulated`, the one rule carkin uses for every table and for
CK data sets).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, DataProblem
from ._csv import PathLike, is_missing, parse_numbers, read_table as read_cells, sorted_problems

__all__ = ["DataTable", "read_table", "says_simulated", "SIMULATED_COLUMN"]

SIMULATED_COLUMN = "SIMULATED"
"""Column that marks simulated patients (1 on every row of a simulated table)."""

_WHOLE_NUMBER = re.compile(r"^[+-]?\d+$")
_MARKER = re.compile(r"\bSIMULATED\b")


@dataclasses.dataclass(frozen=True, eq=False)
class DataTable:
    """A table read at the boundary.

    Attributes
    ----------
    frame : pandas.DataFrame
        The records (default ``RangeIndex``), typed per column (see the module docstring).
    lines : dict of int to int
        For each index of ``frame``, the 1-based physical line of the file (comment and blank lines counted),
        so that messages can point at it (the survival functions take it as ``rows=``).
    source : str
        The file, as given.
    comments : tuple of str
        The comment lines before the header, without the leading ``#``.
    simulated : bool
        The table says it is simulated (`says_simulated`).
    """

    frame: pd.DataFrame
    lines: Mapping[int, int]
    source: str
    comments: tuple[str, ...]
    simulated: bool


def says_simulated(comments: Sequence[str] = (), frame: pd.DataFrame | None = None) -> bool:
    """The one provenance rule: a leading comment line holds the word SIMULATED (in capitals, as carkin writes
    it: "# SIMULATED data: ..."; a lower-case "not simulated" is not the marker), or a SIMULATED column is 1 on
    any row."""
    if any(_MARKER.search(c) for c in comments):
        return True
    if frame is not None and SIMULATED_COLUMN in frame.columns:
        return bool((pd.to_numeric(frame[SIMULATED_COLUMN], errors="coerce") == 1).any())
    return False


def read_table(path: PathLike) -> DataTable:
    """Read a comma-separated table (patients/PFS, survival data, a carkin output) into a `DataTable`.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV file with a header line. Lines whose first non-blank character is ``#`` and blank lines are
        skipped (anywhere in the file). ``.`` and empty cells are missing values (NONMEM convention).

    Returns
    -------
    DataTable

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    carkin.errors.DataError
        Every problem found, each with the file and line: not UTF-8, no header, no records, a record with
        the wrong number of fields, a column name used twice, values in an unnamed column.
    """
    problems: list[DataProblem] = []
    table = read_cells(path, problems, upper=False)
    if problems or table is None:
        raise DataError(sorted_problems(problems))
    frame = pd.DataFrame({name: _typed(cells) for name, cells in table.cells.items()})
    lines = {index: int(row) for index, row in enumerate(table.rows)}
    comments = tuple(table.comments)
    return DataTable(frame=frame, lines=lines, source=str(path), comments=comments,
                     simulated=says_simulated(comments, frame))


def _typed(cells: np.ndarray) -> np.ndarray | pd.Series:
    """A column of text cells with the type its values share (see the module docstring)."""
    missing = is_missing(cells)
    if missing.all():
        return np.full(cells.shape, np.nan)
    numbers = parse_numbers(cells)
    if not numbers.bad.any():
        whole = np.fromiter(
            (bool(_WHOLE_NUMBER.match(c)) for c in cells[~missing]), dtype=bool, count=int((~missing).sum())
        )
        if not missing.any() and whole.all():
            return numbers.value.astype(np.int64)
        return numbers.value
    lowered = np.char.lower(cells.astype(str))
    if not missing.any() and np.isin(lowered, ("true", "false")).all():
        return lowered == "true"
    return pd.Series(np.where(missing, np.nan, cells), dtype=object)
