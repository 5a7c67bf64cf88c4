"""The text layer shared by carkin's CSV readers: physical lines, comments, cells, numbers, problems.

A file is split into a header and text cells while keeping the physical 1-based line of every record
(comment and blank lines count, so the numbers match what an editor shows). Cells stay text until a
reader parses the columns it needs with `parse_numbers`, which is exact (float64 round trip) and marks,
rather than raises on, the cells that are not numbers, so that every culprit can be reported.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataProblem

PathLike = str | os.PathLike

_MAX_ROWS_LISTED = 10
"""How many row numbers a note or message lists before it says "and N more"."""

_BLANK_LINE = re.compile(r"[\s,]*")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_INTEGRAL_DECIMAL = r"^([+-]?\d+)\.0*$"


# ---------------------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------------------


class Report:
    """Collects the problems of one file; record indices are turned into physical line numbers here."""

    def __init__(self, file: str, rows: np.ndarray, problems: list[DataProblem]):
        self.file, self.rows, self.problems = file, rows, problems

    def whole(self, column: str | None, message: str, *, row: int | None = None) -> None:
        """A problem of the file, the header or a whole column (``row`` for a specific line)."""
        self.problems.append(DataProblem(self.file, row, column, message))

    def each(self, mask: np.ndarray, column: str | None, message: Callable[[int], str]) -> None:
        """One problem per record where ``mask`` is true; ``message(i)`` words it for record ``i``.

        ``message`` is called before this method returns, so a lambda may use the caller's loop variables.
        """
        for i in np.flatnonzero(mask):
            self.problems.append(DataProblem(self.file, int(self.rows[i]), column, message(int(i))))

    def count(self) -> int:
        return len(self.problems)


def sorted_problems(problems: list[DataProblem]) -> list[DataProblem]:
    """File order, whole-column problems first, then by row (stable within a row)."""
    files = list(dict.fromkeys(p.file for p in problems))
    return sorted(problems, key=lambda p: (files.index(p.file), p.row is not None, p.row or 0))


# ---------------------------------------------------------------------------------------------------------
# Text layer: physical lines, comments, fields
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    """A CSV file as stripped text cells, with the physical line of every record."""

    file: str
    header_row: int
    columns: tuple[str, ...]  # upper case, in file order; unnamed empty columns removed
    cells: dict[str, np.ndarray]  # column -> object array of stripped strings, one per record
    rows: np.ndarray  # int64, physical 1-based line of each record
    skipped_ids: frozenset[str]  # normalised IDs of records left out for a wrong field count (reported)
    comments: list[str]  # comment lines before the header, without the leading '#'


def read_table(path: PathLike, problems: list[DataProblem], *, upper: bool = True) -> Table | None:
    """Split a CSV file into header and text cells, keeping physical line numbers; None if unusable.

    Header names are stripped and, with ``upper`` (the CK and covariate files' convention), upper-cased: two
    names then clash when they differ only in case.
    """
    file = str(path)
    report = Report(file, np.zeros(0, dtype=np.int64), problems)
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        report.whole(
            None,
            f"the file is not UTF-8 text (byte {raw[err.start : err.start + 1]!r} cannot be decoded). Fix: save "
            "it as CSV with UTF-8 encoding.",
            row=len(_LINE_BREAK.findall(raw[: err.start].decode("utf-8", errors="replace"))) + 1,
        )
        return None
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()

    kept: list[int] = []  # physical line numbers handed to the csv reader
    comments: list[str] = []

    def data_lines():
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if stripped.startswith("#"):
                if not kept:
                    comments.append(stripped.lstrip("#").strip())
            elif not _BLANK_LINE.fullmatch(line):
                kept.append(number)
                yield line + "\n"

    records: list[list[str]] = []
    starts: list[int] = []  # physical line where each record starts
    consumed = 0
    try:
        for fields in csv.reader(data_lines(), strict=True):
            starts.append(kept[consumed])
            consumed = len(kept)
            records.append(fields)
    except csv.Error as err:
        report.whole(
            None,
            f"cannot split the line into comma-separated fields ({err}). Fix: check the quotes on this line "
            '(a value with a comma must be quoted as "a,b").',
            row=kept[min(consumed, len(kept) - 1)] if kept else None,
        )
        return None

    if not records:
        only = f" (only {len(comments)} comment line(s))" if comments else ""
        report.whole(
            None,
            f"the file is empty: no header line and no records{only}. Fix: check the path, or write the header "
            "line and the records.",
        )
        return None
    header_row, header = starts[0], [name.strip().upper() if upper else name.strip() for name in records[0]]
    body, report.rows = records[1:], np.asarray(starts[1:], dtype=np.int64)
    if not body:
        report.whole(
            None,
            f"the file has a header ({', '.join(header)}) but no data records. Fix: check that the records "
            "were exported.",
            row=header_row,
        )
        return None

    # A record with the wrong number of fields cannot be read column by column: it is reported and left
    # out, and its patient (if its ID field can be found) is spared the patient-level checks.
    width = len(header)
    counts = np.fromiter((len(r) for r in body), dtype=np.int64, count=len(body))
    malformed = counts != width
    report.each(
        malformed,
        None,
        lambda i: (
            f"the record has {counts[i]} fields but the header has {width} ({', '.join(header)}). Fix: "
            "give every record one value per column ('.' for a missing value); a value containing a comma must be "
            'quoted ("1,5" is not a number: write 1.5).'
        ),
    )
    at = header.index("ID") if "ID" in header else None
    skipped = [body[i][at].strip() for i in np.flatnonzero(malformed) if at is not None and len(body[i]) > at]
    skipped_ids = frozenset(normalise_ids(np.asarray(skipped, dtype=object)))
    body = [record for record, bad in zip(body, malformed, strict=True) if not bad]
    rows = report.rows[~malformed]
    if not body:
        return None

    cells: dict[str, np.ndarray] = {}
    position: dict[str, int] = {}
    for j, (name, column) in enumerate(zip(header, zip(*body, strict=True), strict=True)):
        values = np.asarray([cell.strip() for cell in column], dtype=object)
        if name == "":
            filled = np.flatnonzero(values != "")
            if filled.size:
                report.whole(
                    None,
                    f"column {j + 1} has no name in the header but holds values (e.g. {values[filled[0]]!r} on "
                    f"row {rows[filled[0]]}). Fix: name the column or delete it.",
                    row=header_row,
                )
        elif name in position:
            first = position[name]
            report.whole(
                name,
                f"the column name appears twice (columns {first + 1} and {j + 1}"
                + (f"; names are case-insensitive: {records[0][first].strip()!r} and {records[0][j].strip()!r}" if upper
                   else "")
                + "). Fix: rename or delete one of them.",
                row=header_row,
            )
        else:
            position[name] = j
            cells[name] = values
    return Table(file, header_row, tuple(cells), cells, rows, skipped_ids, comments)


# ---------------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Numbers:
    """A text column parsed as float64.

    ``value`` is NaN where the cell is missing (``missing``) or not a number (``bad``); ``nan`` and ``inf``
    written as text are numbers, with ``finite`` False.
    """

    text: np.ndarray
    value: np.ndarray
    missing: np.ndarray
    bad: np.ndarray

    @property
    def finite(self) -> np.ndarray:
        return np.isfinite(self.value)

    def positive(self) -> np.ndarray:
        """Finite and > 0."""
        return self.finite & (self.value > 0)

    def flag(self) -> np.ndarray:
        """A valid 0/1 flag."""
        return np.isin(self.value, (0.0, 1.0))


def is_missing(text: np.ndarray) -> np.ndarray:
    """``.`` (NONMEM) and empty cells."""
    return (text == "") | (text == ".")


def parse_numbers(text: np.ndarray) -> Numbers:
    """Parse text cells as float64 exactly (Python float syntax, without underscores or decimal commas)."""
    missing = is_missing(text)
    filled = np.where(missing, "nan", text).astype(str)
    try:
        if np.any(np.char.find(filled, "_") >= 0):
            raise ValueError("underscore")
        value = filled.astype(np.float64)
        bad = np.zeros(text.shape, dtype=bool)
    except ValueError:  # find the culprits, one distinct text at a time
        unique, inverse = np.unique(filled, return_inverse=True)
        converted = np.full(unique.shape, np.nan)
        unique_bad = np.zeros(unique.shape, dtype=bool)
        for k, cell in enumerate(unique):
            try:
                if "_" in cell:
                    raise ValueError(cell)
                converted[k] = float(cell)
            except ValueError:
                unique_bad[k] = True
        value, bad = converted[inverse.ravel()], unique_bad[inverse.ravel()]
    return Numbers(text=text, value=value, missing=missing, bad=bad)


def report_bad_numbers(report: Report, column: str, numbers: Numbers, where: np.ndarray | None = None) -> None:
    """One problem per cell that is not a number (within ``where``), naming the text and suggesting a fix."""

    def message(i):
        text = numbers.text[i]
        if "," in text:
            fix = f"write it with a decimal point ({text.replace(',', '.')!r}), not a decimal comma"
        else:
            fix = (
                "write a plain number such as 1.5 (decimal point, no units or thousands separators), or '.' if missing"
            )
        return f"{column} is not a number: {text!r}. Fix: {fix}."

    report.each(numbers.bad if where is None else numbers.bad & where, column, message)


def shown(text: str) -> str:
    """A cell as quoted in messages."""
    if text == "":
        return "an empty cell"
    if text == ".":
        return "'.' (missing)"
    return repr(text)


def normalise_ids(text: np.ndarray) -> np.ndarray:
    """IDs as text; integral decimals such as '1.0' become '1' so that files written by different tools match."""
    if text.size == 0:
        return text
    return pd.Series(text, dtype=object).str.replace(_INTEGRAL_DECIMAL, r"\1", regex=True).to_numpy(dtype=object)


def first_index(groups: np.ndarray, indices: np.ndarray, n_groups: int) -> np.ndarray:
    """Smallest of ``indices`` within each group, -1 for a group without any."""
    none = np.iinfo(np.int64).max
    out = np.full(n_groups, none, dtype=np.int64)
    np.minimum.at(out, groups, indices)
    return np.where(out == none, -1, out)


def rows_listed(rows) -> str:
    """Row numbers for a message: the first few, then "and N more"."""
    rows = [int(r) for r in rows]
    more = len(rows) - _MAX_ROWS_LISTED
    return ", ".join(str(r) for r in rows[:_MAX_ROWS_LISTED]) + (f" and {more} more" if more > 0 else "")
