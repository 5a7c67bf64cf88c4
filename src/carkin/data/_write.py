"""Writing CK records and covariate tables as CSV files that `carkin.data` reads back unchanged.

Numbers are written in their shortest exact form (``repr`` of the float64; integral values without a
decimal point), so a write followed by a read gives the same float64 values. Missing values are written
``.`` (NONMEM). Every write is atomic: the text goes to a temporary file in the target's directory, which
then replaces the target (`os.replace`), so a reader never sees a half-written file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import ArrayLike

from .._atomic import atomic_write_text
from ._dataset import Dataset

__all__ = ["write_ck", "write_covariates", "write_table", "SIMULATED_NOTE"]

PathLike = str | os.PathLike

CK_COLUMNS = ("ID", "TIME", "DV", "EVID", "AMT", "MDV", "BLQ", "LLOQ")
"""Columns of a CK file written by carkin, in order."""

_MISSING = "."

SIMULATED_NOTE = "SIMULATED data: a virtual cohort, not trial data"
"""The comment line every table built on simulated data opens with (``# SIMULATED data: ...``)."""


def write_ck(path: PathLike, dataset: Dataset, *, comment: str | None = None) -> None:
    """Write a Dataset's records as a NONMEM-style CK file.

    Columns ``ID, TIME, DV, EVID, AMT, MDV, BLQ, LLOQ``, plus ``CMT``, ``DUR`` and ``DVID`` where the data
    have dosing compartments, infusions or several analytes. For each patient (in ``dataset.patient_ids``
    order), its records in time order, doses before observations at the same time: dose records (``TIME =
    dose_time + dose time``, ``DV = .``, ``EVID = 1``, ``AMT`` = the amount, ``MDV = 1``; ADDL/II are written
    as the explicit doses they stand for) and observation records (``TIME = dose_time + times``, ``EVID = 0``,
    ``MDV = 0``; on BLQ records ``DV`` holds the LLOQ). Padding is not written. ``.`` marks a missing value
    (AMT on observations, LLOQ where the dataset has NaN). Covariates are not written: see
    `write_covariates` (time-varying covariates are not written either).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its directory must exist. An existing file is replaced atomically.
    dataset : Dataset
        The records. TIME is written in days, DV and LLOQ in copies/ug gDNA, AMT in 10^6 CAR+ T cells.
    comment : str, optional
        Written first, each of its lines as a ``# ...`` comment line. A simulated dataset
        (``dataset.simulated``) always opens with a line that says SIMULATED (`SIMULATED_NOTE` when
        ``comment`` does not say it), so that the file reads back as simulated.

    Raises
    ------
    TypeError
        If ``dataset`` is not a Dataset.
    ValueError
        If a patient ID cannot be written so that it reads back (empty, ``.``, starting with ``#``, or
        containing a line break).
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"write_ck expects a carkin Dataset, got {type(dataset).__name__}")
    ids = [_checked_id(pid) for pid in dataset.patient_ids]
    mask = np.asarray(dataset.obs_mask, dtype=bool)
    times = np.asarray(dataset.times, dtype=np.float64)
    dv = np.asarray(dataset.dv, dtype=np.float64)
    blq = np.asarray(dataset.blq, dtype=bool)
    lloq = np.asarray(dataset.lloq, dtype=np.float64)
    dose_time = np.asarray(dataset.dose_time, dtype=np.float64)

    doses = dataset.dose_events
    d_time, d_amount, d_duration = (np.asarray(x, dtype=np.float64) for x in (doses.time, doses.amount, doses.duration))
    d_cmt, d_mask = np.asarray(doses.cmt), np.asarray(doses.mask, dtype=bool)
    codes = dataset.analyte_codes
    # Optional columns only where the data need them, so that a single-infusion CK file keeps its plain layout.
    extra = [name for name, needed in (("CMT", dataset.doses is not None and np.any(d_cmt[d_mask] != 0)),
                                       ("DUR", np.any(d_duration[d_mask] > 0)),
                                       ("DVID", dataset.analyte is not None)) if needed]

    def row(pid, time, dv, evid, amt, mdv, blq_flag, lloq_value, cmt="", dur="", dvid=""):
        cells = {"CMT": cmt or _MISSING, "DUR": dur or _MISSING, "DVID": dvid or _MISSING}
        return [pid, time, dv, evid, amt, mdv, blq_flag, lloq_value, *(cells[name] for name in extra)]

    records: list[list[str]] = []
    for p, pid in enumerate(ids):
        events = []  # (time, 0 for a dose / 1 for an observation, order, record): doses first at equal times
        for k in np.flatnonzero(d_mask[p]):
            cmt = str(int(d_cmt[p, k])) if d_cmt[p, k] > 0 else ""
            dur = _number(d_duration[p, k]) if d_duration[p, k] > 0 else ""
            events.append((d_time[p, k], 0, k, row(pid, _number(dose_time[p] + d_time[p, k]), _MISSING, "1",
                                                   _number(d_amount[p, k]), "1", "0", _MISSING, cmt=cmt, dur=dur)))
        for j in np.flatnonzero(mask[p]):
            events.append((times[p, j], 1, j, row(pid, _number(dose_time[p] + times[p, j]), _number(dv[p, j]), "0",
                                                  _MISSING, "0", "1" if blq[p, j] else "0", _number(lloq[p, j]),
                                                  dvid=_number(codes[p, j]))))
        records += [record for *_, record in sorted(events, key=lambda e: e[:3])]
    if dataset.simulated and "SIMULATED" not in (comment or "").upper():
        comment = SIMULATED_NOTE if comment is None else f"{SIMULATED_NOTE}\n{comment}"
    _write_csv(path, [*CK_COLUMNS, *extra], records, comment)


def write_covariates(
    path: PathLike,
    ids: Sequence[str],
    table: Mapping[str, ArrayLike | Sequence[Any]] | pd.DataFrame,
    *,
    comment: str | None = None,
) -> None:
    """Write a per-patient covariate table: ``ID`` then the table's columns, one row per patient.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its directory must exist. An existing file is replaced atomically.
    ids : sequence of str
        Patient IDs, one per row (e.g. ``Dataset.patient_ids``).
    table : mapping of column name to 1-D array, or pandas.DataFrame
        Columns in output order, each of length ``len(ids)``, in the units the covariate is used in.
        Names are written upper case. Numeric columns are written exactly (NaN as ``.``, and +inf as ``.``:
        an event time that never happened, e.g. a co-medication never given, reads back as +inf); other columns
        (e.g. ``ARM``) are written as text (None/NaN as ``.``). A DataFrame's index is ignored.
    comment : str, optional
        Written first, each of its lines as a ``# ...`` comment line.

    Raises
    ------
    ValueError
        If a column's length differs from ``len(ids)``, a name is empty, repeated (case-insensitive) or is
        ``ID``, or an ID cannot be written so that it reads back.

    Examples
    --------
    >>> write_covariates("patients.csv", ds.patient_ids,
    ...                  dict(zip(ds.covariate_names, np.asarray(ds.covariates).T)))  # doctest: +SKIP
    """
    if isinstance(ids, str):
        raise TypeError(f"ids must be a sequence of patient IDs, got the single string {ids!r}")
    id_texts = [_checked_id(pid) for pid in ids]
    columns = dict(table.items()) if isinstance(table, pd.DataFrame) else dict(table)
    header = ["ID"]
    texts: list[list[str]] = []
    for name, values in columns.items():
        label = str(name).strip().upper()
        if not label:
            raise ValueError(f"table has a column with an empty name ({name!r}); name it")
        if label == "ID":
            raise ValueError("table must not contain an ID column: the IDs are given by the `ids` argument")
        if label in header:
            raise ValueError(f"table has the column {label} twice (names are written upper case)")
        array = np.asarray(values)
        if array.shape != (len(id_texts),):
            raise ValueError(
                f"table column {name!r} has shape {array.shape}, expected ({len(id_texts)},): one value per ID"
            )
        header.append(label)
        texts.append(_column_texts(array))
    records = (
        [[pid, *cells] for pid, *cells in zip(id_texts, *texts, strict=True)] if texts else [[pid] for pid in id_texts]
    )
    _write_csv(path, header, records, comment)


def write_table(
    path: PathLike,
    frame: pd.DataFrame,
    *,
    simulated: bool = False,
    comment: str | None = None,
    float_format: str | None = "%.8g",
) -> None:
    """Write a result table (CSV) that `read_table` reads back, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its directory must exist. An existing file is replaced atomically.
    frame : pandas.DataFrame
        Written without its index; missing values as ``.``.
    simulated : bool, default False
        Open the file with the ``# SIMULATED data: ...`` line (`SIMULATED_NOTE`): every table built on
        simulated data says so.
    comment : str, optional
        Further comment lines, written after the SIMULATED line (each line as ``# ...``).
    float_format : str or None, default "%.8g"
        Format of floating-point cells (significant digits of a result table); None writes them exactly (as
        `write_ck` writes CK records).
    """
    lines = ([SIMULATED_NOTE] if simulated else []) + (str(comment).splitlines() if comment else [])
    header = "".join(line.rstrip() + "\n" if line.lstrip().startswith("#") else f"# {line}".rstrip() + "\n"
                     for line in lines)
    body = frame.to_csv(index=False, float_format=float_format, na_rep=_MISSING, lineterminator="\n")
    atomic_write_text(Path(path), header + body)


def _number(x: float) -> str:
    """Shortest text that reads back as exactly ``x``; ``.`` for NaN."""
    x = float(x)
    if np.isnan(x):
        return _MISSING
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _column_texts(array: np.ndarray) -> list[str]:
    if array.dtype.kind == "b":
        return ["1" if v else "0" for v in array]
    if array.dtype.kind in "iu":
        return [str(int(v)) for v in array]
    if array.dtype.kind == "f":  # +inf: an event that never happened ('.' in an event-time column)
        return [_MISSING if v == np.inf else _number(v) for v in array]
    return [_MISSING if v is None or (np.ndim(v) == 0 and pd.isna(v)) else str(v) for v in array]


def _checked_id(pid) -> str:
    text = str(pid).strip()
    if text in ("", ".") or text.startswith("#") or "\n" in text or "\r" in text:
        raise ValueError(
            f"patient ID {pid!r} cannot be written to CSV so that it reads back (empty, '.', a leading '#' "
            "or a line break); rename the patient"
        )
    return text


def _write_csv(path: PathLike, header: list[str], records: list[list[str]], comment: str | None) -> None:
    buffer = io.StringIO()
    if comment is not None:
        for line in str(comment).splitlines() or [""]:
            buffer.write(line.rstrip() + "\n" if line.lstrip().startswith("#") else f"# {line}".rstrip() + "\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    atomic_write_text(Path(path), buffer.getvalue())
