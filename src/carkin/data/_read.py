"""Reading and validating CK records and the per-patient covariate table.

`carkin.data` is the only place where carkin reads CSV files. Every cell is read as text (see `._csv`)
and checked here, so that each problem can be reported with its file, its physical 1-based line (comment
and blank lines count, so the numbers match what an editor shows), its column, the bad value and a fix.
All problems of a call are collected and raised together as one `carkin.errors.DataError`; nothing is
dropped silently. The result is an immutable `Dataset` of padded arrays plus masks; no DataFrame leaves
this module.

File conventions shared by both tables
--------------------------------------
- Comma-separated, UTF-8 (a byte-order mark is accepted), first non-comment line is the header.
- Header names are case-insensitive and normalised to upper case.
- Lines whose first non-blank character is ``#`` are comments and are skipped (shipped simulated files
  start with a ``# SIMULATED ...`` line). Blank lines and lines made only of commas are skipped as well.
- ``.`` (NONMEM) and empty cells are missing values.
- ID values are kept as text, stripped of whitespace; an integral decimal such as ``1.0`` is written ``1``
  so that IDs match between the CK file and the covariate table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from ..errors import DataError, DataProblem
from ._csv import (
    Numbers,
    PathLike,
    Report,
    Table,
    first_index,
    is_missing,
    normalise_ids,
    parse_numbers,
    read_table,
    report_bad_numbers,
    rows_listed,
    shown,
    sorted_problems,
)
from ._dataset import Dataset
from ._table import SIMULATED_COLUMN, says_simulated

__all__ = ["load_dataset", "read_ck", "read_covariates", "data_hash"]

REQUIRED_CK_COLUMNS = ("ID", "TIME", "DV", "EVID", "AMT", "MDV")
"""Columns every CK file must have."""

RECORD_COLUMNS = REQUIRED_CK_COLUMNS + ("BLQ", "CENS", "LLOQ")
"""Columns with a meaning in the CK file; any other column is ignored unless requested as a covariate."""

_REL_TOL_LLOQ = 1e-6
"""Largest relative difference tolerated between DV and LLOQ on a censored record (rounding in files)."""


# ---------------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------------


def load_dataset(
    ck_path: PathLike,
    covariates_path: PathLike | None = None,
    *,
    covariate_columns: Sequence[str] | None = None,
    allow_extra_ids: bool = False,
    verbose: bool = True,
) -> Dataset:
    """Read, validate and assemble a CK file and (optionally) its per-patient covariate table.

    **Main arguments**

    Parameters
    ----------
    ck_path : str or os.PathLike
        NONMEM-style CK records (CSV). Required columns ``ID, TIME, DV, EVID, AMT, MDV``; optional
        ``BLQ`` (or its synonym ``CENS``) and ``LLOQ``. TIME in days (any origin), DV in copies/ug gDNA
        (linear scale), AMT in 10^6 CAR+ T cells on the dose record. See `read_ck` for every rule.
    covariates_path : str or os.PathLike, optional
        Covariate table (CSV): one row per patient, an ``ID`` column plus covariate columns
        (e.g. ``TUMOR_BURDEN``, ``AGE``). Text columns (e.g. ``ARM``) may be present as long as they are
        not requested as covariates. See `read_covariates`.
    covariate_columns : sequence of str, optional
        Covariates to take, in this order (case-insensitive). With a covariate table and
        ``covariate_columns=None``, every numeric column of the table except ``ID`` is taken (in table
        order) -- beware that this includes outcome columns such as PFS times if the table has them; pass
        the names explicitly to be sure. Without a covariate table, ``None`` means no covariates, and
        named columns are taken from the CK file itself, where each must be numeric and constant within
        every patient.

    **Other arguments**

    allow_extra_ids : bool, default False
        Accept covariate-table rows for IDs that have no CK records (e.g. patients randomised but never
        infused). They are reported as a count when ``verbose``; otherwise they are an error.
    verbose : bool, default True
        Print ``Dataset.summary()`` and the data-layer notes (MDV=1 records ignored, extra covariate IDs,
        unused columns, the files' leading comments such as ``# SIMULATED ...``) to standard output.

    Returns
    -------
    Dataset
        Patients in order of first appearance in the CK file; records sorted by time within patient;
        ``times`` = TIME minus the patient's dose TIME (days); covariates of shape
        ``(patients, covariates)`` in the order of ``covariate_columns``; ``source`` =
        ``"ck=<ck_path>; covariates=<covariates_path>"`` (``"ck=<ck_path>"`` without a table).

    Raises
    ------
    DataError
        Listing every problem found in both files, each with file, row, column, value and a fix.
    FileNotFoundError
        If a file does not exist.
    TypeError, ValueError
        If ``covariate_columns`` is not a sequence of distinct column names.

    Examples
    --------
    >>> ds = load_dataset("ck.csv", "patients.csv", covariate_columns=["TUMOR_BURDEN"],
    ...                   allow_extra_ids=True)  # doctest: +SKIP
    >>> ds.covariate("TUMOR_BURDEN").shape  # doctest: +SKIP
    (250,)
    """
    columns = _check_covariate_columns(covariate_columns)
    problems: list[DataProblem] = []
    notes: list[str] = []
    ck_table = read_table(ck_path, problems)
    ck = _validate_ck(ck_table, problems, notes, covariate_columns=None if covariates_path else columns)
    cov_table = None
    if covariates_path is not None:
        cov_table = read_table(covariates_path, problems)
        covariates = _validate_covariates(
            cov_table,
            problems,
            notes,
            patients=None if ck is None else ck.patients,
            covariate_columns=columns,
            allow_extra_ids=allow_extra_ids,
        )
    else:
        covariates = None if ck is None else ck.covariates
    if problems:
        raise DataError(sorted_problems(problems))
    assert ck is not None and covariates is not None  # no problems means both were built
    source = f"ck={ck_path}" if covariates_path is None else f"ck={ck_path}; covariates={covariates_path}"
    simulated = _says_simulated(ck_table) or _says_simulated(cov_table)
    dataset = _assemble(ck, covariates, source, simulated)
    if verbose:
        _print_report(dataset, notes)
    return dataset


def read_ck(
    path: PathLike,
    *,
    covariate_columns: Sequence[str] | None = None,
    verbose: bool = True,
) -> Dataset:
    """Read and validate a CK file on its own (covariates, if any, from the same file).

    Equivalent to ``load_dataset(path, None, covariate_columns=covariate_columns, verbose=verbose)``.

    Records and columns
    -------------------
    - ``ID`` patient; ``TIME`` days, >= 0 and finite (model time is TIME minus the patient's dose TIME).
    - ``EVID`` 1 = the dose record: exactly one per patient (carkin models a single infusion), ``AMT`` =
      dose in 10^6 CAR+ T cells, > 0 and finite; DV may be ``.``.
      ``EVID`` 0 = an observation, at or after the dose TIME.
    - ``MDV`` 0 or 1. An observation with ``MDV=1`` carries no information: it is kept out of the
      Dataset and counted in the load report ("N records with MDV=1 ignored"), never dropped silently.
      ``MDV`` may be missing on a dose record only.
    - ``BLQ`` (or ``CENS``, as in Monolix and nlmixr2; not both) 0 or 1; 1 marks a left-censored record
      (below the LLOQ, likelihood M3). Its LLOQ comes from the ``LLOQ`` column or, when that is missing,
      from DV (the Monolix convention); when both are given they must agree. A censored record must have
      ``MDV=0``. Without a BLQ/CENS column every observation is quantified. Right-censoring (``CENS=-1``)
      is not supported.
    - ``DV`` > 0 and finite on every quantified observation (EVID=0, MDV=0, BLQ=0), copies/ug gDNA.
    - ``LLOQ`` optional, copies/ug gDNA, > 0 and finite wherever given on an observation.
    - Every patient needs at least one observation with MDV=0, and no two records may share
      (ID, TIME, EVID).
    - Other columns are ignored unless named in ``covariate_columns``; such a column must be numeric and
      constant within each patient (missing cells are allowed as long as one row of the patient has it).

    Parameters
    ----------
    path : str or os.PathLike
        The CK file (CSV).
    covariate_columns : sequence of str, optional
        Columns of the CK file to use as per-patient covariates, in this order. None: no covariates.
    verbose : bool, default True
        Print the summary and notes (see `load_dataset`).

    Returns
    -------
    Dataset
        As for `load_dataset`; ``covariates`` has shape ``(patients, len(covariate_columns))``.

    Raises
    ------
    DataError
        Every problem found, each naming file, physical line, column, value and a fix.
    """
    return load_dataset(path, None, covariate_columns=covariate_columns, verbose=verbose)


def read_covariates(
    path: PathLike,
    patient_ids: Sequence[str],
    *,
    covariate_columns: Sequence[str] | None = None,
    allow_extra_ids: bool = False,
    verbose: bool = True,
) -> tuple[tuple[str, ...], Float[Array, "patients covariates"]]:
    """Read and validate a per-patient covariate table for the given patients.

    Rules: an ``ID`` column is required; each ID appears once; every patient of ``patient_ids`` has a row;
    rows for other IDs are an error unless ``allow_extra_ids``; each requested covariate exists, is
    numeric and finite (``.``/empty, ``nan`` and ``inf`` are rejected) for every patient of
    ``patient_ids``. Columns that are not requested (e.g. a text ``ARM`` column) are not checked.

    Parameters
    ----------
    path : str or os.PathLike
        The covariate table (CSV), one row per patient.
    patient_ids : sequence of str
        Patients whose covariates are wanted, in the order of the output rows (e.g.
        ``Dataset.patient_ids``). Integral decimals (``"1.0"``) are normalised like the file's IDs.
    covariate_columns : sequence of str, optional
        Covariates to take, in this order (case-insensitive). None: every column except ``ID`` whose
        values for these patients are all numbers (in table order); the columns left out are listed in the
        notes.
    allow_extra_ids : bool, default False
        Accept rows for IDs not in ``patient_ids`` (reported as a count).
    verbose : bool, default True
        Print the notes (extra IDs, unused columns, the file's leading comments) to standard output.

    Returns
    -------
    names : tuple of str
        Covariate names, upper case.
    values : Float[Array, "patients covariates"]
        Covariate values, in the units of the file, rows in the order of ``patient_ids``.

    Raises
    ------
    DataError
        Every problem found, each naming file, physical line, column, value and a fix.
    """
    columns = _check_covariate_columns(covariate_columns)
    if isinstance(patient_ids, str):
        raise TypeError(
            f"patient_ids must be a sequence of patient IDs, got the single string {patient_ids!r}; "
            f"wrap it in a list: [{patient_ids!r}]"
        )
    ids = tuple(normalise_ids(np.asarray([str(i).strip() for i in patient_ids], dtype=object)))
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"patient_ids names {', '.join(map(repr, repeated))} more than once; give each patient once")
    patients = _Patients(ids=ids, first_rows=None, file=None)
    problems: list[DataProblem] = []
    notes: list[str] = []
    table = read_table(path, problems)
    covariates = _validate_covariates(
        table, problems, notes, patients=patients, covariate_columns=columns, allow_extra_ids=allow_extra_ids
    )
    if problems:
        raise DataError(sorted_problems(problems))
    assert covariates is not None
    if verbose:
        for note in notes:
            print(f"note: {note}")
    return covariates.names, jnp.asarray(covariates.values)


def data_hash(paths: PathLike | Sequence[PathLike]) -> str:
    """SHA-256 of the bytes of the given files, read in order, as a hex string (for fit manifests).

    The hash is that of the files' concatenated bytes, so ``cat ck.csv patients.csv | sha256sum`` gives
    the same value.

    Parameters
    ----------
    paths : path or sequence of paths
        One file or several, in a fixed order (e.g. ``[ck_path, covariates_path]``).

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> data_hash(["ck.csv", "patients.csv"])  # doctest: +SKIP
    '3f5a...'
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    digest = hashlib.sha256()
    for path in paths:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"data_hash expects file paths, got {path!r} of type {type(path).__name__}")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------


def _check_covariate_columns(covariate_columns) -> tuple[str, ...] | None:
    """Upper-case, distinct column names, or None; a TypeError/ValueError for anything else."""
    if covariate_columns is None:
        return None
    if isinstance(covariate_columns, str):
        raise TypeError(
            f"covariate_columns must be a sequence of column names, got the single string {covariate_columns!r}; "
            f"wrap it in a list: covariate_columns=[{covariate_columns!r}]"
        )
    names = []
    for name in covariate_columns:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(
                f"covariate_columns must hold column names (non-empty str), got {name!r} of type {type(name).__name__}"
            )
        names.append(name.strip().upper())
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"covariate_columns names {', '.join(repeated)} more than once (names are case-insensitive); give "
            "each covariate once"
        )
    if "ID" in names:
        raise ValueError("covariate_columns must not contain 'ID': it identifies the patient, it is not a covariate")
    return tuple(names)


# ---------------------------------------------------------------------------------------------------------
# CK records
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Patients:
    ids: tuple[str, ...]
    first_rows: np.ndarray | None  # physical line of each patient's first record in the CK file
    file: str | None  # the CK file


@dataclasses.dataclass
class _Covariates:
    names: tuple[str, ...]
    values: np.ndarray  # float64, (patients, covariates)


@dataclasses.dataclass
class _Records:
    """The CK file's records parsed and checked one by one (flat, file order)."""

    ids: np.ndarray
    time: Numbers
    evid: Numbers
    amt: Numbers
    is_dose: np.ndarray
    is_obs: np.ndarray
    mdv_one: np.ndarray  # observation records with MDV=1 (ignored, reported)
    informative: np.ndarray  # observation records with MDV=0: the ones that enter the Dataset
    blq: np.ndarray  # censored
    dv: np.ndarray  # DV, or the LLOQ on a censored record
    lloq: np.ndarray  # NaN where not given
    usable: np.ndarray  # ID, TIME, EVID, MDV and BLQ valid: fit for the patient-level checks


@dataclasses.dataclass
class _CK:
    """Validated CK records (flat, file order) before padding."""

    patients: _Patients
    code: np.ndarray  # patient index of each kept observation
    time: np.ndarray  # TIME of each kept observation, days
    dv: np.ndarray
    blq: np.ndarray
    lloq: np.ndarray
    rows: np.ndarray
    dose: np.ndarray  # per patient
    dose_time: np.ndarray  # per patient
    covariates: _Covariates


def _validate_ck(
    table: Table | None,
    problems: list[DataProblem],
    notes: list[str],
    *,
    covariate_columns: tuple[str, ...] | None,
) -> _CK | None:
    """Check every CK rule; append problems and notes. None when no patient could be identified."""
    if table is None:
        return None
    _note_comments(table, notes)
    report = Report(table.file, table.rows, problems)
    readable, blq_name = _check_ck_header(table, report)
    if not readable:
        return None
    records = _check_records(table, report, blq_name)

    codes, unique_ids = pd.factorize(pd.Series(records.ids, dtype=object), sort=False)
    first_rows = np.full(unique_ids.size, np.iinfo(np.int64).max)
    np.minimum.at(first_rows, codes, table.rows)
    patients = _Patients(ids=tuple(str(i) for i in unique_ids), first_rows=first_rows, file=table.file)
    dose, dose_time = _check_patients(table, report, records, codes, patients)
    _check_duplicates(report, records)
    covariates = _ck_covariates(table, report, codes, patients, records.usable, covariate_columns or ())

    name = Path(table.file).name
    other = [c for c in table.columns if c not in RECORD_COLUMNS and c not in (covariate_columns or ())]
    if other:
        notes.append(
            f"columns of {name} not used: {', '.join(other)} (covariates come from the covariate table or from "
            "covariate_columns)"
        )
    if records.mdv_one.any():
        notes.append(
            f"{int(records.mdv_one.sum())} records with MDV=1 ignored (observation records without a value; "
            f"{name} rows {rows_listed(table.rows[records.mdv_one])})"
        )
    keep = records.informative
    return _CK(
        patients=patients,
        code=codes[keep],
        time=records.time.value[keep],
        dv=records.dv[keep],
        blq=records.blq[keep],
        lloq=records.lloq[keep],
        rows=table.rows[keep],
        dose=dose,
        dose_time=dose_time,
        covariates=covariates,
    )


def _check_ck_header(table: Table, report: Report) -> tuple[bool, str | None]:
    """Whether the records can be read (required columns present, BLQ/CENS not both), and the name of the
    censoring column (BLQ, CENS or None)."""
    before = report.count()
    found = ", ".join(table.columns) or "(none)"
    hint = ""
    if len(table.columns) == 1 and any(sep in table.columns[0] for sep in (";", "\t")):
        hint = " The header looks separated by ';' or tabs: carkin reads comma-separated files."
    for name in REQUIRED_CK_COLUMNS:
        if name not in table.cells:
            report.whole(
                name,
                f"required column {name} is missing; columns found: {found}. Fix: add the column (required: "
                f"{', '.join(REQUIRED_CK_COLUMNS)}; names are case-insensitive).{hint}",
            )
    if "BLQ" in table.cells and "CENS" in table.cells:
        report.whole(
            "CENS",
            "the file has both BLQ and CENS columns; CENS is a synonym of BLQ, so it is unclear which one flags "
            "censoring. Fix: keep one of the two columns.",
        )
    blq_name = "BLQ" if "BLQ" in table.cells else ("CENS" if "CENS" in table.cells else None)
    return report.count() == before, blq_name


def _check_records(table: Table, report: Report, blq_name: str | None) -> _Records:
    """Record-level rules: values, flags, DV and LLOQ on quantified and censored observations."""
    cells, n = table.cells, table.rows.size
    numeric = ("TIME", "DV", "EVID", "AMT", "MDV", "LLOQ", blq_name)
    parsed = {name: parse_numbers(cells[name]) for name in numeric if name in cells}
    for name, numbers in parsed.items():
        report_bad_numbers(report, name, numbers)
    time, dv, evid, amt, mdv = (parsed[name] for name in ("TIME", "DV", "EVID", "AMT", "MDV"))

    # ID
    id_missing = is_missing(cells["ID"])
    report.each(id_missing, "ID", lambda i: f"ID is {shown(cells['ID'][i])}. Fix: every record needs its patient's ID.")

    # TIME: present, finite, >= 0 (days)
    report.each(time.missing, "TIME", lambda i: f"TIME is {shown(time.text[i])}. Fix: write the record's time in days.")
    report.each(
        ~time.missing & ~time.bad & ~time.finite,
        "TIME",
        lambda i: f"TIME must be a finite number of days, got {time.text[i]!r}. Fix: write the record's time.",
    )
    report.each(
        time.finite & (time.value < 0),
        "TIME",
        lambda i: (
            f"TIME must be >= 0 days, got {time.text[i]!r}. Fix: shift the file's time origin so that no "
            "record is before 0 (carkin subtracts each patient's dose TIME anyway), or remove pre-infusion records."
        ),
    )

    # EVID: 0 or 1
    report.each(
        ~evid.flag() & ~evid.bad,
        "EVID",
        lambda i: (
            f"EVID must be 0 (observation) or 1 (dose), got {shown(evid.text[i])}. carkin models one "
            "infusion and observations only (no EVID 2-4 events). Fix: correct the value or remove the record."
        ),
    )
    is_dose = evid.value == 1.0
    is_obs = evid.value == 0.0

    # MDV: 0 or 1; it may be missing on a dose record
    mdv_wrong = ~mdv.flag() & ~mdv.bad & ~(mdv.missing & is_dose)
    report.each(
        mdv_wrong,
        "MDV",
        lambda i: f"MDV must be 0 (observed) or 1 (no observation), got {shown(mdv.text[i])}. Fix: correct the value.",
    )
    informative = is_obs & (mdv.value == 0.0)
    mdv_one = is_obs & (mdv.value == 1.0)

    # BLQ/CENS: 0 or 1; it may be missing where it means nothing (dose records, MDV=1 records)
    if blq_name is not None:
        flag = parsed[blq_name]
        blq_valid = flag.flag() | (flag.missing & ~informative)

        def blq_message(i):
            text = flag.text[i]
            if flag.missing[i]:
                return (
                    f"{blq_name} is {shown(text)} on an observation record. Fix: write 0 (quantified) or 1 (below "
                    f"the LLOQ) in {blq_name} on every observation."
                )
            if blq_name == "CENS" and flag.value[i] == -1.0:
                return (
                    f"CENS={text} (right-censoring, above an upper limit) is not supported. Fix: carkin handles "
                    "only left-censoring below the LLOQ (CENS=1); remove or correct the record."
                )
            return (
                f"{blq_name} must be 0 (quantified) or 1 (below the LLOQ), got {shown(text)}. Fix: correct the "
                "value; carkin handles only left-censoring below the LLOQ."
            )

        report.each(~blq_valid & ~flag.bad, blq_name, blq_message)
        is_blq = blq_valid & (flag.value == 1.0)
    else:
        blq_valid = np.ones(n, dtype=bool)
        is_blq = np.zeros(n, dtype=bool)
    report.each(
        is_blq & is_dose,
        blq_name,
        lambda i: (
            f"{blq_name}=1 on a dose record (EVID=1); only observations can be censored. Fix: set "
            f"{blq_name} to 0 on the dose record."
        ),
    )
    report.each(
        is_blq & mdv_one,
        "MDV",
        lambda i: (
            f"MDV=1 on a censored record ({blq_name}=1): a value below the LLOQ is information (it is used in "
            f"the likelihood), so MDV must be 0. Fix: set MDV to 0, or set {blq_name} to 0 if no sample was measured."
        ),
    )

    # AMT: the dose, on dose records
    report.each(
        is_dose & ~amt.bad & ~amt.positive(),
        "AMT",
        lambda i: (
            f"AMT must be the dose in 10^6 CAR+ T cells (> 0 and finite) on a dose record (EVID=1), got "
            f"{shown(amt.text[i])}. Fix: write the infused dose."
        ),
    )

    # LLOQ: > 0 and finite wherever given on an observation
    if "LLOQ" in parsed:
        lloq = parsed["LLOQ"]
        lloq_wrong = informative & ~lloq.missing & ~lloq.bad & ~lloq.positive()
        report.each(
            lloq_wrong,
            "LLOQ",
            lambda i: (
                f"LLOQ must be > 0 and finite (copies/ug gDNA), got {lloq.text[i]!r}. Fix: write the assay's "
                "lower limit of quantification, or '.' if unknown on a quantified record."
            ),
        )
        lloq_value = np.where(lloq.positive(), lloq.value, np.nan)
        lloq_absent = lloq.missing
    else:
        lloq, lloq_value, lloq_absent = None, np.full(n, np.nan), np.ones(n, dtype=bool)

    # DV on quantified observations: > 0 and finite
    quantified = informative & blq_valid & ~is_blq
    flagged = f", {blq_name}=0" if blq_name else ""
    censor_hint = f", or {blq_name}=1 with the LLOQ if it was below the limit" if blq_name else ""
    report.each(
        quantified & dv.missing,
        "DV",
        lambda i: (
            f"DV is {shown(dv.text[i])} on a quantified observation (EVID=0, MDV=0{flagged}). Fix: write "
            f"the measured value; set MDV=1 if no sample was measured{censor_hint}."
        ),
    )
    report.each(
        quantified & ~dv.missing & ~dv.bad & ~dv.positive(),
        "DV",
        lambda i: (
            f"DV must be > 0 and finite on a quantified observation (copies/ug gDNA; carkin fits log DV), "
            f"got {dv.text[i]!r}. Fix: a zero or tiny value usually means below the LLOQ: flag the record BLQ=1 "
            f"(column {blq_name or 'BLQ'}) and put the LLOQ in DV or LLOQ."
        ),
    )

    # Censored observations: the LLOQ comes from LLOQ, else from DV (Monolix); when both are given they agree
    censored = informative & is_blq
    dv_given = ~dv.missing & ~dv.bad
    has_lloq = np.isfinite(lloq_value)
    disagree = censored & has_lloq & dv_given
    disagree[disagree] = ~(np.abs(dv.value[disagree] - lloq_value[disagree]) <= _REL_TOL_LLOQ * lloq_value[disagree])
    report.each(
        disagree,
        "DV",
        lambda i: (
            f"on a censored record ({blq_name}=1) DV must hold the LLOQ or be '.', but DV is {dv.text[i]!r} "
            f"and LLOQ is {lloq.text[i]!r}. Fix: set DV to the LLOQ ({lloq.text[i]}) or to '.', or correct the LLOQ."
        ),
    )
    no_lloq = censored & lloq_absent & ~dv.bad & ~dv.positive()
    if lloq is not None:
        report.each(
            no_lloq & dv.missing,
            "LLOQ",
            lambda i: (
                f"the record is censored ({blq_name}=1) but gives no LLOQ: DV is {shown(dv.text[i])} and "
                f"LLOQ is {shown(lloq.text[i])}. Fix: write the lower limit of quantification in LLOQ or in DV (the "
                "Monolix convention)."
            ),
        )
    else:
        report.each(
            no_lloq & dv.missing,
            "DV",
            lambda i: (
                f"the record is censored ({blq_name}=1) but gives no LLOQ: DV is {shown(dv.text[i])} and "
                "there is no LLOQ column. Fix: write the lower limit of quantification in DV (the Monolix convention) "
                "or in an LLOQ column."
            ),
        )
    report.each(
        no_lloq & ~dv.missing,
        "DV",
        lambda i: (
            f"the record is censored ({blq_name}=1) and has no LLOQ value, so DV must hold the LLOQ (> 0), "
            f"got {dv.text[i]!r}. Fix: write the lower limit of quantification in DV or LLOQ."
        ),
    )
    censored_lloq = np.where(has_lloq, lloq_value, np.where(dv.positive(), dv.value, np.nan))

    usable = ~id_missing & time.finite & (time.value >= 0) & evid.flag() & ~mdv_wrong & ~mdv.bad & blq_valid
    return _Records(
        ids=normalise_ids(cells["ID"]),
        time=time,
        evid=evid,
        amt=amt,
        is_dose=is_dose,
        is_obs=is_obs,
        mdv_one=mdv_one,
        informative=informative,
        blq=is_blq,
        dv=np.where(is_blq, censored_lloq, dv.value),
        lloq=np.where(is_blq, censored_lloq, lloq_value),
        usable=usable,
    )


def _check_patients(
    table: Table, report: Report, records: _Records, codes: np.ndarray, patients: _Patients
) -> tuple[np.ndarray, np.ndarray]:
    """Patient-level rules: one dose record, observations after it, at least one observation.

    Returns the dose (AMT) and the dose TIME per patient (NaN where not known).
    """
    n = len(patients.ids)
    rows, time, ids = table.rows, records.time, patients.ids
    # An unusable ID/TIME/EVID/MDV/BLQ makes a patient's counts meaningless: it is reported already.
    checked = np.ones(n, dtype=bool)
    checked[codes[~records.usable]] = False
    checked &= np.asarray([pid not in table.skipped_ids for pid in ids], dtype=bool)

    n_dose = np.bincount(codes[records.is_dose], minlength=n)
    n_informative = np.bincount(codes[records.informative], minlength=n)
    n_mdv_one = np.bincount(codes[records.mdv_one], minlength=n)
    dose_index = first_index(codes[records.is_dose], np.flatnonzero(records.is_dose), n)

    for p in np.flatnonzero(checked & (n_dose == 0)):
        report.whole(
            "ID",
            f"patient {ids[p]!r} has no dose record (EVID=1). Fix: add the infusion record (EVID=1, AMT = dose in "
            "10^6 CAR+ T cells, TIME = infusion time) or remove the patient's records.",
            row=int(patients.first_rows[p]),
        )
    for p in np.flatnonzero(checked & (n_dose > 1)):
        dose_rows = rows[records.is_dose & (codes == p)]
        report.whole(
            "EVID",
            f"patient {ids[p]!r} has {n_dose[p]} dose records (EVID=1 on rows {rows_listed(dose_rows)}); carkin "
            "models a single CAR-T infusion per patient. Fix: keep the one infusion whose kinetics the records "
            "follow (for a re-infusion, model the second course as a separate patient ID).",
            row=int(dose_rows[1]),
        )

    single = checked & (n_dose == 1)
    dose = np.where(single, records.amt.value[dose_index], np.nan)
    dose_time = np.where(single, time.value[dose_index], np.nan)
    report.each(
        records.informative & single[codes] & (time.value < dose_time[codes]),
        "TIME",
        lambda i: (
            f"observation at TIME {time.text[i]} is before the dose of patient {ids[codes[i]]!r} at TIME "
            f"{time.text[dose_index[codes[i]]]} (row {rows[dose_index[codes[i]]]}); carkin models the kinetics from "
            "the infusion on. Fix: remove pre-infusion records (or set MDV=1 on them) or correct TIME."
        ),
    )
    for p in np.flatnonzero(single & (n_informative == 0)):
        ignored = f" (its {n_mdv_one[p]} observation record(s) have MDV=1)" if n_mdv_one[p] else ""
        report.whole(
            "ID",
            f"patient {ids[p]!r} has a dose record but no observation record with MDV=0{ignored}; a fit cannot "
            "use it. Fix: remove the patient's records from the file (and from the covariate table, or load with "
            "allow_extra_ids=True).",
            row=int(patients.first_rows[p]),
        )
    return dose, dose_time


def _check_duplicates(report: Report, records: _Records) -> None:
    """No two records may share (ID, TIME, EVID); each later one is reported with the first one's row."""
    keyed = np.flatnonzero(records.usable)
    frame = pd.DataFrame(
        {"id": records.ids[keyed], "time": records.time.value[keyed], "evid": records.evid.value[keyed]}
    )
    later = frame.duplicated(keep="first").to_numpy()
    if not later.any():
        return
    group = frame.groupby(["id", "time", "evid"], sort=False).ngroup().to_numpy()
    first_of = np.full(records.ids.size, -1)  # record index of the first record with the same key
    first_of[keyed] = first_index(group, keyed, int(group.max()) + 1)[group]
    is_later = np.zeros(records.ids.size, dtype=bool)
    is_later[keyed[later]] = True
    rows = report.rows
    report.each(
        is_later,
        "TIME",
        lambda i: (
            f"duplicate {'dose' if records.is_dose[i] else 'observation'} record: same ID {records.ids[i]!r}, "
            f"TIME {records.time.text[i]} and EVID {records.evid.text[i]} as row {rows[first_of[i]]} (rows "
            f"{rows[first_of[i]]} and {rows[i]}). Fix: delete one of the two records, or correct its TIME."
        ),
    )


def _ck_covariates(
    table: Table,
    report: Report,
    codes: np.ndarray,
    patients: _Patients,
    usable: np.ndarray,
    covariate_columns: tuple[str, ...],
) -> _Covariates:
    """Covariates read from the CK file: each named column numeric, finite and constant within every patient."""
    rows, n = table.rows, len(patients.ids)
    values = np.full((n, len(covariate_columns)), np.nan)
    for k, name in enumerate(covariate_columns):
        if name in RECORD_COLUMNS:
            report.whole(
                name,
                f"{name} is a CK record column, not a per-patient covariate. Fix: remove it from covariate_columns "
                "(the dose is always available as the covariate DOSE).",
            )
            continue
        if name not in table.cells:
            report.whole(
                name,
                f"requested covariate {name} is not a column of the CK file; columns found: "
                f"{', '.join(table.columns)}. Fix: correct the name in covariate_columns, or give the covariates "
                "in a covariate table (covariates_path).",
            )
            continue
        numbers = parse_numbers(table.cells[name])
        report_bad_numbers(report, name, numbers)
        given = ~numbers.missing & ~numbers.bad & usable
        report.each(
            given & ~numbers.finite,
            name,
            lambda i: (
                f"covariate {name} must be finite, got {numbers.text[i]!r}. Fix: write the value, or '.' on "
                "rows that do not carry it."
            ),
        )
        given &= numbers.finite
        # each patient's first given value is its covariate; any other value is reported (once per patient)
        first = first_index(codes[given], np.flatnonzero(given), n)
        for p in np.flatnonzero(first < 0):
            report.whole(
                name,
                f"covariate {name} has no value for patient {patients.ids[p]!r} (every record is missing or "
                "invalid). Fix: write the value on the patient's records, or leave it out of covariate_columns.",
                row=int(patients.first_rows[p]),
            )
        values[:, k] = np.where(first >= 0, numbers.value[np.maximum(first, 0)], np.nan)
        differs = given & (numbers.value != values[codes, k])
        once = np.zeros(differs.size, dtype=bool)
        once[first_index(codes[differs], np.flatnonzero(differs), n)[np.unique(codes[differs])]] = True
        report.each(
            once,
            name,
            lambda i: (
                f"covariate {name} is not constant within patient {patients.ids[codes[i]]!r}: "
                f"{numbers.text[i]!r} here, {numbers.text[first[codes[i]]]!r} on row {rows[first[codes[i]]]}. Fix: a "
                "covariate has one value per patient; correct it, or give covariates in a covariate table."
            ),
        )
    return _Covariates(names=tuple(covariate_columns), values=values)


# ---------------------------------------------------------------------------------------------------------
# Covariate table
# ---------------------------------------------------------------------------------------------------------


def _validate_covariates(
    table: Table | None,
    problems: list[DataProblem],
    notes: list[str],
    *,
    patients: _Patients | None,
    covariate_columns: tuple[str, ...] | None,
    allow_extra_ids: bool,
) -> _Covariates | None:
    """Check the covariate table against the patients (when known); append problems and notes."""
    if table is None:
        return None
    _note_comments(table, notes)
    report = Report(table.file, table.rows, problems)
    name, rows, cells = Path(table.file).name, table.rows, table.cells
    if "ID" not in cells:
        report.whole(
            "ID",
            f"the covariate table has no ID column; columns found: {', '.join(table.columns) or '(none)'}. Fix: "
            "add an ID column matching the CK file's IDs (names are case-insensitive).",
        )
        return None

    # IDs: present, once each
    id_missing = is_missing(cells["ID"])
    report.each(id_missing, "ID", lambda i: f"ID is {shown(cells['ID'][i])}. Fix: write the patient's ID.")
    ids = normalise_ids(cells["ID"])
    repeated = pd.Series(np.where(id_missing, None, ids), dtype=object).duplicated(keep="first").to_numpy()
    repeated &= ~id_missing
    row_of = {ids[i]: i for i in np.flatnonzero(~id_missing & ~repeated)}  # the first row of each ID
    report.each(
        repeated,
        "ID",
        lambda i: (
            f"patient {ids[i]!r} appears twice (rows {rows[row_of[ids[i]]]} and {rows[i]}). Fix: keep one row "
            "per patient."
        ),
    )

    # Rows used: one per patient of the CK data, in its order; the others are extra
    if patients is not None:
        for p, pid in enumerate(patients.ids):
            if pid not in row_of and pid not in table.skipped_ids and pid not in ("", "."):
                where = (
                    f" (first record: {Path(patients.file).name} row {patients.first_rows[p]})" if patients.file else ""
                )
                report.whole(
                    "ID",
                    f"patient {pid!r} has CK records{where} but no row in the covariate table. Fix: add a row for "
                    "it, or remove its CK records.",
                )
        wanted = set(patients.ids)
        extra = ~id_missing & ~repeated & np.asarray([pid not in wanted for pid in ids], dtype=bool)
        if allow_extra_ids and extra.any():
            notes.append(
                f"{int(extra.sum())} rows of {name} are for IDs without CK records, not used (allow_extra_ids=True; "
                f"rows {rows_listed(rows[extra])})"
            )
        elif not allow_extra_ids:
            report.each(
                extra,
                "ID",
                lambda i: (
                    f"patient {ids[i]!r} is in the covariate table but has no CK records. Fix: remove the row, "
                    "or pass allow_extra_ids=True if the table lists patients who were never infused or never sampled."
                ),
            )
        use = np.asarray([row_of.get(pid, -1) for pid in patients.ids], dtype=np.int64)
    else:
        use = np.flatnonzero(~id_missing & ~repeated)
    present = use >= 0
    used = np.zeros(rows.size, dtype=bool)
    used[use[present]] = True

    # Columns: the requested ones, or every column that is numeric on the rows used
    parsed = {c: parse_numbers(cells[c]) for c in table.columns if c != "ID"}
    if covariate_columns is None:
        numeric = {c: not (n.bad[used].any() or n.missing[used].all()) for c, n in parsed.items()}
        names = tuple(c for c, ok in numeric.items() if ok)
        left_out = [c for c, ok in numeric.items() if not ok]
        if left_out:
            notes.append(f"columns of {name} not used as covariates (not numeric or empty): {', '.join(left_out)}")
    else:
        names = covariate_columns
        for column in names:
            if column not in parsed:
                report.whole(
                    column,
                    f"requested covariate {column} is not a column of the covariate table; columns found: "
                    f"{', '.join(table.columns)}. Fix: correct the name in covariate_columns.",
                )

    values = np.full((use.size, len(names)), np.nan)
    for k, column in enumerate(names):
        if column not in parsed:
            continue
        numbers = parsed[column]
        report_bad_numbers(report, column, numbers, where=used)
        report.each(
            used & ~numbers.bad & ~numbers.finite,
            column,
            lambda i: (
                f"covariate {column} is {shown(numbers.text[i])} for patient {ids[i]!r}; covariates must be "
                f"finite numbers. Fix: fill in the value (and document any imputation), remove the patient, or leave "
                f"{column} out of covariate_columns."
            ),
        )
        values[present, k] = numbers.value[use[present]]
    return _Covariates(names=tuple(names), values=values)


# ---------------------------------------------------------------------------------------------------------
# Assembly and report
# ---------------------------------------------------------------------------------------------------------


def _says_simulated(table: Table | None) -> bool:
    """`says_simulated` on a text table: a leading comment, or a SIMULATED column with a 1."""
    if table is None:
        return False
    column = table.cells.get(SIMULATED_COLUMN)
    flagged = column is not None and bool((parse_numbers(column).value == 1.0).any())
    return flagged or says_simulated(table.comments)


def _assemble(ck: _CK, covariates: _Covariates, source: str, simulated: bool) -> Dataset:
    """Pad the flat records into (patients, obs) arrays, sorted by time within patient."""
    n = len(ck.patients.ids)
    order = np.lexsort((ck.time, ck.code))
    code = ck.code[order]
    counts = np.bincount(code, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(code.size) - starts[code]
    width = int(counts.max())

    def padded(values, fill, dtype):
        out = np.full((n, width), fill, dtype=dtype)
        out[code, slot] = values[order]
        return out

    return Dataset(
        patient_ids=ck.patients.ids,
        times=jnp.asarray(padded(ck.time - ck.dose_time[ck.code], 0.0, np.float64)),
        dv=jnp.asarray(padded(ck.dv, 1.0, np.float64)),
        blq=jnp.asarray(padded(ck.blq, False, bool)),
        lloq=jnp.asarray(padded(ck.lloq, 1.0, np.float64)),
        obs_mask=jnp.asarray(padded(np.ones(code.size, dtype=bool), False, bool)),
        source_rows=jnp.asarray(padded(ck.rows, 0, np.int64)),
        dose=jnp.asarray(ck.dose.astype(np.float64)),
        dose_time=jnp.asarray(ck.dose_time.astype(np.float64)),
        covariates=jnp.asarray(covariates.values.astype(np.float64).reshape(n, len(covariates.names))),
        covariate_names=covariates.names,
        source=source,
        simulated=simulated,
    )


def _note_comments(table: Table, notes: list[str]) -> None:
    """Pass on a file's leading comments (e.g. ``# SIMULATED ...``): they are the file's own caveats."""
    said = [c for c in table.comments if c]
    if said:
        notes.append(f"{Path(table.file).name} says: " + " / ".join(said))


def _print_report(dataset: Dataset, notes: list[str]) -> None:
    print(dataset.summary())
    for note in notes:
        print(f"note: {note}")
