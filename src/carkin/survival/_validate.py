"""Checking survival columns, once, at the boundary.

Every check names the file, the 1-based line of the file, the column, the bad value and a fix, and all
problems are collected and raised together as one `carkin.errors.DataError` (a `ValueError`). After this
step the analysis functions work on clean columns: times as floats >= 0, events as 0/1 integers, and no
missing values.

Tables are read by `carkin.data.read_table`; the analysis functions take its `DataTable` (whose file name
and index-to-line mapping then reach every message) or a plain DataFrame (``source=``/``rows=`` optional;
without a mapping, line = position + 2, the header being line 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import DataTable
from ..errors import DataError, DataProblem

DATAFRAME_SOURCE = "<DataFrame>"
# How many offending lines a message lists before it says "...".
_LINES_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a DataFrame came from: the file name for messages and the index-to-line mapping."""

    file: str
    index: pd.Index
    rows: Mapping[Hashable, int] | None

    @classmethod
    def of(cls, df: pd.DataFrame, source: str | None, rows: Mapping[Hashable, int] | None) -> Where:
        return cls(file=source if source is not None else DATAFRAME_SOURCE, index=df.index, rows=rows)

    def line(self, label: Hashable) -> int:
        """The 1-based line of the file holding the row with index ``label``."""
        if self.rows is not None and label in self.rows:
            return int(self.rows[label])
        position = self.index.get_loc(label)
        if not isinstance(position, (int, np.integer)):
            raise ValueError(f"the DataFrame index has duplicate label {label!r}; reset it with df.reset_index()")
        return int(position) + 2

    def problem(self, column: str | None, message: str, row: int | None = None) -> DataProblem:
        return DataProblem(self.file, row, column, message)

    def rows_problem(self, column: str, bad: pd.Series, what: str, values: pd.Series) -> DataProblem:
        """One problem for all rows flagged in the boolean Series ``bad``: the first row and value named."""
        labels = list(bad.index[bad.to_numpy()])
        first = labels[0]
        lines = [self.line(label) for label in labels]
        message = what.replace("{value}", _show(values.loc[first]))
        if len(labels) > 1:
            shown = ", ".join(str(n) for n in lines[1:_LINES_SHOWN])
            more = ", ..." if len(labels) > _LINES_SHOWN else ""
            message += f" ({len(labels)} rows in all; also rows {shown}{more})"
        return DataProblem(self.file, lines[0], column, message)

    def fail(self, column: str | None, message: str, row: int | None = None) -> DataError:
        return DataError(self.problem(column, message, row))


def _show(value: object) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "missing"
    if isinstance(value, (np.generic,)):
        value = value.item()
    return repr(value)


def unwrap(
    df: pd.DataFrame | DataTable, source: str | None, rows: Mapping[Hashable, int] | None
) -> tuple[pd.DataFrame, str | None, Mapping[Hashable, int] | None]:
    """A DataTable's frame, with its file and line mapping as the defaults of ``source`` and ``rows``; a
    DataFrame as given."""
    if isinstance(df, DataTable):
        return df.frame, df.source if source is None else source, df.lines if rows is None else rows
    return df, source, rows


def as_list(columns: str | Sequence[str] | None) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)


def prepare_survival_data(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None = None,
    strata: str | Sequence[str] | None = None,
    covariates: str | Sequence[str] | None = None,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> tuple[pd.DataFrame, Where]:
    """Check the columns of a survival analysis and return them clean.

    Returns a new DataFrame (same index) holding only the named columns: ``time`` as float (>= 0, finite),
    ``event`` as int (0/1), group and strata columns unchanged (no missing values), covariates as float
    (numeric, finite), and where the data came from. Raises one `DataError` listing every problem found.
    """
    return prepare_columns(
        df,
        time=time,
        binary={event: "event"},
        labels=[*([group] if group is not None else []), *as_list(strata)],
        covariates=as_list(covariates),
        source=source,
        rows=rows,
    )


def prepare_columns(
    df: pd.DataFrame,
    *,
    time: str | None = None,
    binary: Mapping[str, str] | None = None,
    labels: Sequence[str] = (),
    covariates: Sequence[str] = (),
    categories: Mapping[str, Sequence[Hashable]] | None = None,
    unique: Sequence[str] = (),
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> tuple[pd.DataFrame, Where]:
    """Check named columns by role and return them clean, with where the data came from.

    ``time``: a duration column (float, >= 0); ``binary``: 0/1 columns, each with the noun used in messages
    ("event", "response"); ``labels``: group/stratum columns (no missing values); ``covariates``: numeric;
    ``categories``: columns whose values must be in the given set; ``unique``: identifier columns (no
    missing or repeated values). Every problem found is raised together.
    """
    df, source, rows = unwrap(df, source, rows)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"expected a pandas DataFrame or a carkin DataTable, got {type(df).__name__}; read a CSV with "
            "carkin.data.read_table"
        )
    where = Where.of(df, source, rows)
    binary = dict(binary or {})
    times = [time] if time is not None else []
    categories = dict(categories or {})
    wanted = list(dict.fromkeys([*times, *binary, *labels, *covariates, *categories, *unique]))
    problems: list[DataProblem] = []
    for column in wanted:
        if column not in df.columns:
            available = ", ".join(map(str, df.columns)) or "none"
            problems.append(where.problem(column, f"column {column!r} not found (columns in the data: {available})"))
    if problems:
        raise DataError(problems)
    if len(df) == 0:
        raise where.fail(None, "the table has no rows")

    clean = pd.DataFrame(index=df.index)
    for column in times:
        clean[column], found = _check_time(df[column], column, where)
        problems += found
    for column, noun in binary.items():
        clean[column], found = _check_binary(df[column], column, noun, where)
        problems += found
    for column in labels:
        missing = df[column].isna()
        if missing.any():
            problems.append(
                where.rows_problem(column, missing, "missing value: every row needs a group/stratum", df[column])
            )
        clean[column] = df[column]
    for column in covariates:
        clean[column], found = _check_covariate(df[column], column, where)
        problems += found
    for column, allowed in categories.items():
        outside = ~df[column].isin(list(allowed))
        if outside.any():
            problems.append(
                where.rows_problem(column, outside, f"value {{value}} is not one of {list(allowed)!r}", df[column])
            )
        clean[column] = df[column]
    for column in unique:
        missing = df[column].isna()
        if missing.any():
            problems.append(where.rows_problem(column, missing, "missing identifier", df[column]))
        repeated = df[column].duplicated(keep="first") & ~missing
        if repeated.any():
            problems.append(
                where.rows_problem(column, repeated, "repeated identifier {value}: one row per subject", df[column])
            )
        clean[column] = df[column]
    if problems:
        raise DataError(problems)
    return clean, where


def _check_time(raw: pd.Series, column: str, where: Where) -> tuple[pd.Series, list[DataProblem]]:
    problems: list[DataProblem] = []
    missing = raw.isna()
    if raw.dtype == bool:
        numeric = raw.astype(float)
    else:
        numeric = pd.to_numeric(raw, errors="coerce").astype(float)
    not_numeric = numeric.isna() & ~missing
    if missing.any():
        problems.append(where.rows_problem(column, missing, "missing time (empty or '.'): every row needs a time", raw))
    if not_numeric.any():
        problems.append(where.rows_problem(column, not_numeric, "non-numeric time {value}: times must be numbers", raw))
    infinite = np.isinf(numeric)
    if infinite.any():
        problems.append(
            where.rows_problem(column, infinite, "infinite time {value}: give the last follow-up time, censored", raw)
        )
    negative = numeric < 0
    if negative.any():
        problems.append(
            where.rows_problem(
                column, negative, "negative time {value}: times are durations from the origin and must be >= 0", raw
            )
        )
    return numeric, problems


def _check_binary(raw: pd.Series, column: str, noun: str, where: Where) -> tuple[pd.Series, list[DataProblem]]:
    problems: list[DataProblem] = []
    missing = raw.isna()
    if raw.dtype == bool:
        numeric = raw.astype(float)
    else:
        numeric = pd.to_numeric(raw, errors="coerce").astype(float)
    not_binary = ~missing & ~numeric.isin([0.0, 1.0])
    if missing.any():
        problems.append(where.rows_problem(column, missing, f"missing {noun} value: every row needs 0 or 1", raw))
    if not_binary.any():
        problems.append(
            where.rows_problem(
                column,
                not_binary,
                f"non-binary {noun} value {{value}}: the column must hold 0 or 1 (or False/True)",
                raw,
            )
        )
    return numeric.fillna(0).astype(int), problems


def _check_covariate(raw: pd.Series, column: str, where: Where) -> tuple[pd.Series, list[DataProblem]]:
    if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
        present = raw.dropna()
        example = f" (e.g. {_show(present.iloc[0])})" if len(present) else ""
        message = (
            f"covariate column {column!r} is not numeric{example}; the Cox model takes numeric covariates only: "
            f"one-hot code a categorical column, e.g. pd.get_dummies(df, columns=[{column!r}], drop_first=True, "
            "dtype=float), or write it as 0/1 columns in the file"
        )
        return raw, [where.problem(column, message)]
    values = raw.astype(float)
    problems = []
    missing = values.isna()
    if missing.any():
        problems.append(
            where.rows_problem(column, missing, "missing covariate value: impute it or remove the row explicitly", raw)
        )
    infinite = np.isinf(values)
    if infinite.any():
        problems.append(where.rows_problem(column, infinite, "infinite covariate value {value}", raw))
    return values, problems


def strata_codes(clean: pd.DataFrame, strata: Sequence[str]) -> np.ndarray:
    """Stratum number (0, 1, ...) of each row: the cross-classification of the strata columns (all 0 without)."""
    if not strata:
        return np.zeros(len(clean), dtype=int)
    return clean.groupby(list(strata), sort=True).ngroup().to_numpy()


def group_labels(values: pd.Series, groups: Sequence[Hashable] | None, column: str, where: Where) -> list[Hashable]:
    """The group labels in analysis order: ``groups`` as given (checked against the data), else sorted."""
    present = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(values)]
    if groups is None:
        try:
            return sorted(present)
        except TypeError:
            return sorted(present, key=str)
    groups = list(groups)
    if len(set(groups)) != len(groups):
        raise ValueError(f"groups={groups!r} names a group twice")
    unknown = ~values.isin(groups)
    if unknown.any():
        raise DataError(
            where.rows_problem(column, unknown, f"value {{value}} is not one of the groups {groups!r}", values)
        )
    absent = [g for g in groups if g not in present]
    if absent:
        raise where.fail(column, f"group(s) {absent!r} have no rows (values present: {present!r})")
    return groups
