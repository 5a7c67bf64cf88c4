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
from ._dataset import NO_ANALYTE, CovariateSteps, Dataset
from ._doses import DoseEvents, expand_additional_doses, pad_doses
from ._table import SIMULATED_COLUMN, says_simulated

__all__ = ["load_dataset", "read_ck", "read_covariates", "data_hash", "DataRequirements", "AnalyteNeed"]

REQUIRED_CK_COLUMNS = ("ID", "TIME", "DV", "EVID", "AMT", "MDV")
"""Columns every CK file must have."""

DOSING_COLUMNS = ("CMT", "ADDL", "II", "RATE", "DUR", "SS")
"""Optional NONMEM dosing columns: compartment, additional doses at an interval, infusion rate or duration."""

RECORD_COLUMNS = REQUIRED_CK_COLUMNS + ("BLQ", "CENS", "LLOQ", "DVID") + DOSING_COLUMNS
"""Columns with a meaning in the CK file; any other column is ignored unless requested as a covariate."""

_REL_TOL_DURATION = 1e-6
"""Largest relative difference tolerated between DUR and AMT / RATE when a dose record gives both."""


@dataclasses.dataclass(frozen=True)
class AnalyteNeed:
    """One analyte a model declares: its code in the data (DVID, else the observation's CMT), its name, and
    whether its error model works on log DV (then every quantified DV must be > 0).

    ``code`` None: the model's only analyte, which takes any one code (a file without DVID, or with one)."""

    code: float | None
    name: str
    positive_dv: bool = True


@dataclasses.dataclass(frozen=True)
class DataRequirements:
    """What a model needs of the data, checked when the data are read (so every problem names file, row, column).

    Made by the model (``PopulationSpec.data_requirements()``) and passed to `load_dataset` (``spec=`` or
    ``requirements=``).

    Attributes
    ----------
    covariates : tuple of str
        Columns needed with one value per patient (covariate effects, model inputs).
    event_times : tuple of str
        Columns of per-patient event times, days after the first dose; ``.`` means never (e.g. the start of
        tocilizumab). Taken from the covariate table, or from the CK file (constant within a patient).
    time_varying : tuple of str
        Columns of the CK file that may change within a patient (carried forward from their record), e.g. a
        0/1 co-medication indicator.
    analytes : tuple of AnalyteNeed
        The analytes the model declares; an observation of any other analyte is an error.
    source : str
        The model file, for messages.
    """

    covariates: tuple[str, ...] = ()
    event_times: tuple[str, ...] = ()
    time_varying: tuple[str, ...] = ()
    analytes: tuple[AnalyteNeed, ...] = (AnalyteNeed(None, "the observations"),)
    source: str = "the model"


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
    spec=None,
    requirements: DataRequirements | None = None,
    allow_extra_ids: bool = False,
    verbose: bool = True,
) -> Dataset:
    """Read, validate and assemble a CK file and (optionally) its per-patient covariate table.

    **Main arguments**

    Parameters
    ----------
    ck_path : str or os.PathLike
        NONMEM-style records (CSV). Required columns ``ID, TIME, DV, EVID, AMT, MDV``; optional
        ``BLQ`` (or its synonym ``CENS``), ``LLOQ``, ``DVID`` (the analyte) and the dosing columns ``CMT,
        ADDL, II, RATE, DUR``. For CAR-T: TIME in days (any origin), DV in copies/ug gDNA (linear scale), AMT
        in 10^6 CAR+ T cells; for a conventional drug the units of the data. See `read_ck` for every rule.
    covariates_path : str or os.PathLike, optional
        Covariate table (CSV): one row per patient, an ``ID`` column plus covariate columns
        (e.g. ``TUMOR_BURDEN``, ``AGE``). Text columns (e.g. ``ARM``) may be present as long as they are
        not requested as covariates. See `read_covariates`.
    spec : carkin.PopulationSpec, optional
        The model the data are for: its ``data_requirements()`` (the covariates, co-medication columns and
        analytes it needs) are checked here, and ``covariate_columns`` defaults to what it needs.
    covariate_columns : sequence of str, optional
        Covariates to take, in this order (case-insensitive). With a covariate table and
        ``covariate_columns=None``, every numeric column of the table except ``ID`` is taken (in table
        order) -- beware that this includes outcome columns such as PFS times if the table has them; pass
        the names explicitly to be sure. Without a covariate table, ``None`` means no covariates, and
        named columns are taken from the CK file itself, where each must be numeric and constant within
        every patient.

    **Other arguments**

    requirements : DataRequirements, optional
        What ``spec`` would give, for callers without a spec (``spec`` wins when both are given).
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
    if spec is not None:
        requirements = spec.data_requirements()
    columns = _check_covariate_columns(covariate_columns)
    if columns is None and requirements is not None:
        columns = tuple(dict.fromkeys(c.upper() for c in requirements.covariates + requirements.event_times))
    never_ok = frozenset(c.upper() for c in requirements.event_times) if requirements is not None else frozenset()
    problems: list[DataProblem] = []
    notes: list[str] = []
    ck_table = read_table(ck_path, problems)
    cov_table = read_table(covariates_path, problems) if covariates_path is not None else None
    # A per-patient column is taken from the covariate table when it has it, else from the CK file.
    in_table = columns
    if cov_table is not None and columns is not None and ck_table is not None:
        in_table = tuple(c for c in columns if c in cov_table.cells or c not in ck_table.cells)
    in_ck = columns if cov_table is None else tuple(c for c in (columns or ()) if c not in in_table)
    ck = _validate_ck(ck_table, problems, notes, covariate_columns=in_ck, requirements=requirements,
                      never_ok=never_ok)
    if cov_table is not None:
        from_table = _validate_covariates(
            cov_table,
            problems,
            notes,
            patients=None if ck is None else ck.patients,
            covariate_columns=in_table,
            allow_extra_ids=allow_extra_ids,
            never_ok=never_ok,
        )
        covariates = None if ck is None or from_table is None else _merge_covariates(columns, from_table, ck.covariates)
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
    analyte: np.ndarray  # analyte code: DVID, else the observation's CMT, else NO_ANALYTE
    cmt: np.ndarray  # int, dosing compartment (0: the model's default, where CMT is not given)
    addl: np.ndarray  # int, additional doses (0 where not given)
    ii: np.ndarray  # interdose interval (0 where not given)
    duration: np.ndarray  # infusion duration of a dose record (0: bolus)
    dosing_ok: np.ndarray  # the dose record's CMT/ADDL/II/RATE/DUR are valid


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
    analyte: np.ndarray  # analyte code of each kept observation
    dose: np.ndarray  # per patient: the first dose
    dose_time: np.ndarray  # per patient: TIME of the first dose (the origin)
    doses: DoseEvents | None  # every dose, times from the origin; None when some patient has no usable dose
    covariates: _Covariates
    steps: CovariateSteps | None


def _validate_ck(
    table: Table | None,
    problems: list[DataProblem],
    notes: list[str],
    *,
    covariate_columns: tuple[str, ...] | None,
    requirements: DataRequirements | None = None,
    never_ok: frozenset[str] = frozenset(),
) -> _CK | None:
    """Check every CK rule; append problems and notes. None when no patient could be identified."""
    if table is None:
        return None
    _note_comments(table, notes)
    report = Report(table.file, table.rows, problems)
    readable, blq_name = _check_ck_header(table, report)
    if not readable:
        return None
    records = _check_records(table, report, blq_name, requirements)

    codes, unique_ids = pd.factorize(pd.Series(records.ids, dtype=object), sort=False)
    first_rows = np.full(unique_ids.size, np.iinfo(np.int64).max)
    np.minimum.at(first_rows, codes, table.rows)
    patients = _Patients(ids=tuple(str(i) for i in unique_ids), first_rows=first_rows, file=table.file)
    dose, dose_time = _check_patients(table, report, records, codes, patients)
    _check_duplicates(report, records)
    varying = tuple(c.upper() for c in requirements.time_varying) if requirements is not None else ()
    covariates = _ck_covariates(table, report, codes, patients, records.usable, covariate_columns or (), never_ok)
    steps = _ck_steps(table, report, codes, patients, records, varying, dose_time)
    doses = _dose_events(records, codes, len(patients.ids), dose_time)

    name = Path(table.file).name
    other = [c for c in table.columns if c not in RECORD_COLUMNS and c not in (covariate_columns or ()) + varying]
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
        analyte=records.analyte[keep],
        dose=dose,
        dose_time=dose_time,
        doses=doses,
        covariates=covariates,
        steps=steps,
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


def _check_records(
    table: Table, report: Report, blq_name: str | None, requirements: DataRequirements | None = None
) -> _Records:
    """Record-level rules: values, flags, dosing columns, analytes, DV and LLOQ on quantified and censored
    observations."""
    cells, n = table.cells, table.rows.size
    numeric = ("TIME", "DV", "EVID", "AMT", "MDV", "LLOQ", "DVID", blq_name) + DOSING_COLUMNS
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
            f"EVID must be 0 (observation) or 1 (dose), got {shown(evid.text[i])}. carkin reads doses and "
            "observations only (no EVID 2-4 events: other-type, reset and reset-and-dose records). Fix: correct "
            "the value or remove the record."
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
            f"AMT must be the dose (> 0 and finite; 10^6 CAR+ T cells for a CAR-T infusion) on a dose record "
            f"(EVID=1), got {shown(amt.text[i])}. Fix: write the amount given."
        ),
    )
    cmt, addl, ii, duration, dosing_ok = _check_dosing(parsed, report, is_dose, is_obs, amt)

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

    analyte, positive_needed = _check_analytes(parsed, report, informative, cmt, requirements)

    # DV on quantified observations: finite, and > 0 for an analyte whose error model works on log DV
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
        quantified & ~dv.missing & ~dv.bad & ~dv.positive() & positive_needed,
        "DV",
        lambda i: (
            f"DV must be > 0 and finite on a quantified observation (the model's error model for this analyte "
            f"works on log DV), got {dv.text[i]!r}. Fix: a zero or tiny value usually means below the LLOQ: flag "
            f"the record BLQ=1 (column {blq_name or 'BLQ'}) and put the LLOQ in DV or LLOQ; or use an additive or "
            "proportional error model for this analyte."
        ),
    )
    report.each(
        quantified & ~dv.missing & ~dv.bad & ~dv.finite & ~positive_needed,
        "DV",
        lambda i: f"DV must be finite on a quantified observation, got {dv.text[i]!r}. Fix: write the measured value.",
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
        analyte=analyte,
        cmt=cmt,
        addl=addl,
        ii=ii,
        duration=duration,
        dosing_ok=dosing_ok,
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


def _integer_flag(numbers: Numbers) -> np.ndarray:
    """Cells that hold a whole number."""
    return numbers.finite & (numbers.value == np.round(numbers.value))


def _check_dosing(parsed: dict[str, Numbers], report: Report, is_dose: np.ndarray, is_obs: np.ndarray, amt: Numbers):
    """The NONMEM dosing columns CMT, ADDL, II, RATE, DUR (and SS, which is not supported) on dose records.

    Returns per record: the compartment (int, 0 where not given), ADDL (int), II, the infusion duration (0 for a
    bolus) and whether the record's dosing columns are valid.
    """
    n = is_dose.size
    ok = np.ones(n, dtype=bool)

    def given(name):
        numbers = parsed.get(name)
        if numbers is None:
            return None, np.zeros(n, dtype=bool)
        return numbers, ~numbers.missing & ~numbers.bad

    cmt_n, cmt_given = given("CMT")
    cmt = np.zeros(n, dtype=np.int64)
    if cmt_n is not None:
        wrong = cmt_given & (is_dose | is_obs) & ~(_integer_flag(cmt_n) & (cmt_n.value >= 1))
        report.each(wrong, "CMT", lambda i: (
            f"CMT must be a compartment number (a whole number >= 1), got {cmt_n.text[i]!r}. Fix: write the dosing "
            "compartment (oral models: 1 depot, 2 central; IV models: 1 central) or '.' for the model's default."))
        ok &= ~(wrong & is_dose) & ~(is_dose & cmt_n.bad)
        cmt = np.where(cmt_given & ~wrong, np.nan_to_num(cmt_n.value), 0).astype(np.int64)

    ss_n, ss_given = given("SS")
    if ss_n is not None:
        steady = is_dose & ss_given & (ss_n.value != 0)
        report.each(steady, "SS", lambda i: (
            f"SS={ss_n.text[i]} (a steady-state dose) is not supported. Fix: write the doses explicitly (ADDL/II "
            "from the first dose of the regimen) or set SS to 0."))
        ok &= ~steady

    addl_n, addl_given = given("ADDL")
    addl = np.zeros(n, dtype=np.int64)
    if addl_n is not None:
        wrong = is_dose & addl_given & ~(_integer_flag(addl_n) & (addl_n.value >= 0))
        report.each(wrong, "ADDL", lambda i: (
            f"ADDL must be the number of additional doses (a whole number >= 0), got {addl_n.text[i]!r}. Fix: "
            "correct the value or write '.'."))
        ok &= ~wrong & ~(is_dose & addl_n.bad)
        addl = np.where(is_dose & addl_given & ~wrong, np.nan_to_num(addl_n.value), 0).astype(np.int64)

    ii_n, ii_given = given("II")
    ii = np.zeros(n)
    if ii_n is not None:
        wrong = is_dose & ii_given & ~(ii_n.finite & (ii_n.value >= 0))
        report.each(wrong, "II", lambda i: (
            f"II must be the interval between doses (> 0 and finite), got {ii_n.text[i]!r}. Fix: correct it."))
        ok &= ~wrong & ~(is_dose & ii_n.bad)
        ii = np.where(is_dose & ii_given & ~wrong, ii_n.value, 0.0)
        without = is_dose & ~wrong & (ii > 0) & (addl == 0)
        report.each(without, "II", lambda i: (
            f"II={ii_n.text[i]} is given without ADDL: carkin does not read steady-state dosing from II alone. Fix: "
            "give ADDL (the number of additional doses at this interval), or write '.' in II."))
        ok &= ~without
    needs_ii = is_dose & (addl > 0) & ~(ii > 0)
    report.each(needs_ii, "ADDL" if ii_n is None else "II", lambda i: (
        f"ADDL={addl[i]} additional doses need an interval, but II is "
        f"{'absent' if ii_n is None else shown(ii_n.text[i])}. Fix: write the interdose interval in II (> 0), "
        "in the unit of TIME."))
    ok &= ~needs_ii

    duration = np.zeros(n)
    rate_n, rate_given = given("RATE")
    dur_n, dur_given = given("DUR")
    if rate_n is not None:
        modelled = is_dose & rate_given & np.isin(rate_n.value, (-1.0, -2.0))
        report.each(modelled, "RATE", lambda i: (
            f"RATE={rate_n.text[i]} asks for a modelled infusion rate or duration, which carkin does not estimate. "
            "Fix: give the rate (RATE > 0) or the duration (DUR > 0) of the infusion."))
        wrong = is_dose & rate_given & ~modelled & ~(rate_n.finite & (rate_n.value >= 0))
        report.each(wrong, "RATE", lambda i: (
            f"RATE must be the infusion rate (amount per unit of TIME, > 0; 0 or '.' for a bolus), got "
            f"{rate_n.text[i]!r}. Fix: correct it."))
        ok &= ~modelled & ~wrong & ~(is_dose & rate_n.bad)
        rate_ok = is_dose & rate_given & ~modelled & ~wrong & (rate_n.value > 0) & amt.positive()
        with np.errstate(divide="ignore", invalid="ignore"):
            duration = np.where(rate_ok, amt.value / rate_n.value, 0.0)
    if dur_n is not None:
        wrong = is_dose & dur_given & ~(dur_n.finite & (dur_n.value >= 0))
        report.each(wrong, "DUR", lambda i: (
            f"DUR must be the infusion duration (>= 0, in the unit of TIME; 0 or '.' for a bolus), got "
            f"{dur_n.text[i]!r}. Fix: correct it."))
        ok &= ~wrong & ~(is_dose & dur_n.bad)
        dur = np.where(is_dose & dur_given & ~wrong, dur_n.value, 0.0)
        both = (duration > 0) & (dur > 0)
        clash = both & ~(np.abs(duration - dur) <= _REL_TOL_DURATION * dur)
        report.each(clash, "DUR", lambda i: (
            f"DUR={dur_n.text[i]} disagrees with AMT / RATE = {duration[i]:g}. Fix: give the rate or the duration, "
            "or make them agree."))
        ok &= ~clash
        duration = np.where(duration > 0, duration, dur)
    return cmt, addl, ii, duration, ok


def _check_analytes(parsed: dict[str, Numbers], report: Report, informative: np.ndarray, cmt: np.ndarray,
                    requirements: DataRequirements | None) -> tuple[np.ndarray, np.ndarray]:
    """Each observation's analyte code (DVID, else its CMT, else NO_ANALYTE), checked against the analytes the
    model declares; and whether each record's DV must be > 0 (log-scale error model)."""
    n = informative.size
    dvid = parsed.get("DVID")
    column = "DVID" if dvid is not None else ("CMT" if "CMT" in parsed else None)
    code = np.full(n, float(NO_ANALYTE))
    if dvid is not None:
        report.each(informative & dvid.missing, "DVID", lambda i: (
            f"DVID is {shown(dvid.text[i])} on an observation. Fix: write the analyte code of every observation "
            "(the codes the model's [analytes] tables declare)."))
        report.each(informative & ~dvid.missing & ~dvid.bad & ~dvid.finite, "DVID", lambda i: (
            f"DVID must be a finite number, got {dvid.text[i]!r}. Fix: write the analyte code."))
        code = np.where(informative & dvid.finite, dvid.value, code)
    elif column == "CMT":
        code = np.where(informative & (cmt > 0), cmt.astype(float), code)
    if requirements is None:
        return code, np.ones(n, dtype=bool)
    needs = requirements.analytes
    if len(needs) == 1 and needs[0].code is None:
        codes = np.unique(code[informative])
        if codes.size > 1:
            first = {c: int(np.flatnonzero(informative & (code == c))[0]) for c in codes}
            report.whole(column, (
                f"the observations name {codes.size} analytes ({column} "
                f"{', '.join(f'{c:g} (first on row {report.rows[first[c]]})' for c in codes)}), but "
                f"{requirements.source} declares one. Fix: declare each analyte in the model ([analytes.<name>] with "
                f"dvid = <code>), or keep the records of one analyte."))
        return code, np.full(n, needs[0].positive_dv)
    known = {float(a.code): a for a in needs}
    unknown = informative & ~np.isin(code, list(known))
    declared = ", ".join(f"{a.name} ({column or 'DVID'} {a.code:g})" for a in needs)
    report.each(unknown, column, lambda i: (
        f"analyte code {code[i]:g} is not declared by {requirements.source}, which declares {declared}. Fix: "
        f"declare it ([analytes.<name>] dvid = {code[i]:g}) or remove the records of that analyte.")
        if column is not None else (
        f"the file has no DVID (or CMT) column, but {requirements.source} declares several analytes ({declared}). "
        "Fix: add a DVID column naming each observation's analyte."))
    positive = np.asarray([known[c].positive_dv if c in known else True for c in code], dtype=bool)
    return code, positive


def _check_patients(
    table: Table, report: Report, records: _Records, codes: np.ndarray, patients: _Patients
) -> tuple[np.ndarray, np.ndarray]:
    """Patient-level rules: at least one dose, records in time order, observations at or after the first dose,
    at least one observation.

    Returns the first dose (AMT) and its TIME per patient (NaN where not known).
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

    for p in np.flatnonzero(checked & (n_dose == 0)):
        report.whole(
            "ID",
            f"patient {ids[p]!r} has no dose record (EVID=1). Fix: add the dose record (EVID=1, AMT = the dose, "
            "TIME = when it was given; for CAR-T the infusion, AMT in 10^6 CAR+ T cells) or remove the patient's "
            "records.",
            row=int(patients.first_rows[p]),
        )

    # NONMEM reads a patient's records in file order: a record earlier in time than the one before it is an error
    usable = np.flatnonzero(records.usable)
    same = codes[usable[1:]] == codes[usable[:-1]]
    back = np.zeros(records.usable.size, dtype=bool)
    back[usable[1:][same & (time.value[usable[1:]] < time.value[usable[:-1]])]] = True
    previous = np.zeros(records.usable.size, dtype=np.int64)
    previous[usable[1:]] = usable[:-1]
    report.each(
        back,
        "TIME",
        lambda i: (
            f"TIME {time.text[i]} is earlier than the patient's record before it (row {rows[previous[i]]}, TIME "
            f"{time.text[previous[i]]}): records must be in time order within a patient, doses and observations "
            "alike. Fix: sort the file by ID and TIME (doses before observations at the same time)."
        ),
    )

    dosed = checked & (n_dose >= 1)
    dose_rows = np.flatnonzero(records.is_dose & records.usable)
    first = np.full(n, -1, dtype=np.int64)
    if dose_rows.size:  # the earliest dose of each patient (the first in the file at that time)
        order = dose_rows[np.lexsort((dose_rows, time.value[dose_rows]))]
        patient, at = np.unique(codes[order], return_index=True)
        first[patient] = order[at]
    has_first = dosed & (first >= 0)
    dose = np.where(has_first, records.amt.value[np.maximum(first, 0)], np.nan)
    dose_time = np.where(has_first, time.value[np.maximum(first, 0)], np.nan)
    report.each(
        records.informative & has_first[codes] & (time.value < dose_time[codes]),
        "TIME",
        lambda i: (
            f"observation at TIME {time.text[i]} is before the first dose of patient {ids[codes[i]]!r} at TIME "
            f"{time.text[first[codes[i]]]} (row {rows[first[codes[i]]]}); carkin models the kinetics from the first "
            "dose on. Fix: remove pre-dose records (or set MDV=1 on them) or correct TIME."
        ),
    )
    for p in np.flatnonzero(dosed & (n_informative == 0)):
        ignored = f" (its {n_mdv_one[p]} observation record(s) have MDV=1)" if n_mdv_one[p] else ""
        report.whole(
            "ID",
            f"patient {ids[p]!r} has a dose record but no observation record with MDV=0{ignored}; a fit cannot "
            "use it. Fix: remove the patient's records from the file (and from the covariate table, or load with "
            "allow_extra_ids=True).",
            row=int(patients.first_rows[p]),
        )
    return dose, dose_time


def _dose_events(records: _Records, codes: np.ndarray, n: int, dose_time: np.ndarray) -> DoseEvents | None:
    """Every patient's doses (ADDL/II expanded), times from its first dose, padded to (patients, doses)."""
    if not np.all(np.isfinite(dose_time)):
        return None
    use = records.is_dose & records.usable & records.dosing_ok & records.amt.positive()
    histories = []
    for p in range(n):
        mine = np.flatnonzero(use & (codes == p))
        histories.append(
            expand_additional_doses(
                records.time.value[mine] - dose_time[p], records.amt.value[mine], records.addl[mine],
                records.ii[mine], duration=records.duration[mine], cmt=records.cmt[mine],
            )
        )
    return pad_doses(histories)


def _check_duplicates(report: Report, records: _Records) -> None:
    """No two records may share (ID, TIME, EVID, CMT, analyte); each later one is reported with the first one's
    row. (Doses into two compartments, or observations of two analytes, at one time are fine.)"""
    keyed = np.flatnonzero(records.usable)
    frame = pd.DataFrame(
        {"id": records.ids[keyed], "time": records.time.value[keyed], "evid": records.evid.value[keyed],
         "cmt": records.cmt[keyed], "analyte": records.analyte[keyed]}
    )
    later = frame.duplicated(keep="first").to_numpy()
    if not later.any():
        return
    group = frame.groupby(["id", "time", "evid", "cmt", "analyte"], sort=False).ngroup().to_numpy()
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
    never_ok: frozenset[str] = frozenset(),
) -> _Covariates:
    """Covariates read from the CK file: each named column numeric, finite and constant within every patient.

    A column of ``never_ok`` (an event time, e.g. the start of a co-medication) may be missing for a patient:
    its value is then +inf (the event never happened)."""
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
            lambda i, name=name, numbers=numbers: (
                f"covariate {name} must be finite, got {numbers.text[i]!r}. Fix: write the value, or '.' on "
                "rows that do not carry it."
            ),
        )
        given &= numbers.finite
        # each patient's first given value is its covariate; any other value is reported (once per patient)
        first = first_index(codes[given], np.flatnonzero(given), n)
        for p in np.flatnonzero(first < 0) if name not in never_ok else ():
            report.whole(
                name,
                f"covariate {name} has no value for patient {patients.ids[p]!r} (every record is missing or "
                "invalid). Fix: write the value on the patient's records, or leave it out of covariate_columns.",
                row=int(patients.first_rows[p]),
            )
        values[:, k] = np.where(first >= 0, numbers.value[np.maximum(first, 0)], np.inf if name in never_ok else np.nan)
        differs = given & (numbers.value != values[codes, k])
        once = np.zeros(differs.size, dtype=bool)
        once[first_index(codes[differs], np.flatnonzero(differs), n)[np.unique(codes[differs])]] = True
        report.each(
            once,
            name,
            lambda i, name=name, numbers=numbers, first=first: (
                f"covariate {name} is not constant within patient {patients.ids[codes[i]]!r}: "
                f"{numbers.text[i]!r} here, {numbers.text[first[codes[i]]]!r} on row {rows[first[codes[i]]]}, but the "
                "model needs one value per patient. Fix: correct it, give covariates in a covariate table, or, if "
                "the model can take a value that changes in time (a [comedication] indicator), declare it there."
            ),
        )
    return _Covariates(names=tuple(covariate_columns), values=values)


def _ck_steps(
    table: Table,
    report: Report,
    codes: np.ndarray,
    patients: _Patients,
    records: _Records,
    columns: tuple[str, ...],
    dose_time: np.ndarray,
) -> CovariateSteps | None:
    """Time-varying columns of the CK file as step functions, carried forward from each record (LOCF).

    A patient's baseline is the value of its first record that gives the column (missing cells take the value
    before them); a step is added at every record where a column's carried-forward value changes.
    """
    if not columns:
        return None
    rows, n = table.rows, len(patients.ids)
    use = records.usable & np.isfinite(dose_time[codes])
    values = np.full((use.size, len(columns)), np.nan)
    for k, name in enumerate(columns):
        if name not in table.cells:
            report.whole(name, (
                f"the model takes {name} as a time-varying column of the CK file, but the file has no such column; "
                f"columns found: {', '.join(table.columns)}. Fix: add the column (its value on each record, carried "
                "forward) or correct the name in the model."))
            continue
        numbers = parse_numbers(table.cells[name])
        report_bad_numbers(report, name, numbers)
        report.each(use & ~numbers.missing & ~numbers.bad & ~numbers.finite, name,
                    lambda i, name=name, numbers=numbers: (
                        f"{name} must be finite, got {numbers.text[i]!r}. Fix: write the value or '.'."))
        values[:, k] = np.where(numbers.finite, numbers.value, np.nan)
    index = np.flatnonzero(use)
    frame = pd.DataFrame(values[index], columns=list(columns))
    frame["patient"] = codes[index]
    filled = frame.groupby("patient")[list(columns)].ffill()
    filled = filled.groupby(frame["patient"]).bfill()  # records before a patient's first value take it
    carried = filled.to_numpy()
    missing = np.isnan(carried).all(axis=0) if carried.size else np.zeros(len(columns), bool)
    patient = codes[index]
    start = np.r_[True, patient[1:] != patient[:-1]]
    differs = np.nan_to_num(carried[1:], nan=np.inf) != np.nan_to_num(carried[:-1], nan=np.inf)
    change = start | np.r_[False, differs.any(axis=1)]
    for k in np.flatnonzero(missing):
        report.whole(columns[k], f"{columns[k]} has no value on any record. Fix: write its value on the records.")
    step_rows = index[change]
    step_patient = patient[change]
    step_time = np.where(start[change], -np.inf, records.time.value[step_rows] - dose_time[step_patient])
    counts = np.bincount(step_patient, minlength=n)
    width = max(int(counts.max(initial=1)), 1)
    slot = np.arange(step_patient.size) - np.repeat(np.cumsum(counts) - counts, counts)
    times = np.full((n, width), np.inf)
    vals = np.full((n, width, len(columns)), np.nan)
    srows = np.zeros((n, width), dtype=np.int64)
    mask = np.zeros((n, width), dtype=bool)
    times[step_patient, slot] = step_time
    vals[step_patient, slot] = carried[change]
    srows[step_patient, slot] = rows[step_rows]
    mask[step_patient, slot] = True
    last = np.maximum(counts - 1, 0)
    vals = np.where(mask[..., None], vals, vals[np.arange(n), last][:, None, :])  # padding repeats the last step
    return CovariateSteps(names=columns, times=jnp.asarray(times), values=jnp.asarray(vals),
                          rows=jnp.asarray(srows), mask=jnp.asarray(mask))


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
    never_ok: frozenset[str] = frozenset(),
) -> _Covariates | None:
    """Check the covariate table against the patients (when known); append problems and notes.

    A column of ``never_ok`` (an event time) may be missing: its value is then +inf (never)."""
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
        never = numbers.missing if column in never_ok else np.zeros(numbers.missing.shape, dtype=bool)
        report.each(
            used & ~numbers.bad & ~numbers.finite & ~never,
            column,
            lambda i, column=column, numbers=numbers: (
                f"covariate {column} is {shown(numbers.text[i])} for patient {ids[i]!r}; covariates must be "
                f"finite numbers. Fix: fill in the value (and document any imputation), remove the patient, or leave "
                f"{column} out of covariate_columns."
            ),
        )
        values[present, k] = np.where(never, np.inf, numbers.value)[use[present]]
    return _Covariates(names=tuple(names), values=values)


# ---------------------------------------------------------------------------------------------------------
# Assembly and report
# ---------------------------------------------------------------------------------------------------------


def _merge_covariates(order: tuple[str, ...] | None, *parts: _Covariates) -> _Covariates:
    """Covariates from the covariate table and the CK file as one table, in the requested order."""
    names = [n for part in parts for n in part.names]
    values = np.concatenate([part.values for part in parts], axis=1)
    order = tuple(names) if order is None else order
    index = [names.index(n) for n in order]
    return _Covariates(names=tuple(order), values=values[:, index])


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
        doses=None if _single_infusion(ck.doses) else ck.doses,
        analyte=None if np.all(ck.analyte == NO_ANALYTE) else jnp.asarray(padded(ck.analyte, NO_ANALYTE, np.float64)),
        steps=ck.steps,
    )


def _single_infusion(doses: DoseEvents | None) -> bool:
    """One bolus per patient at its time origin, into the default compartment: `Dataset.dose` says it all."""
    if doses is None:
        return True
    mask = np.asarray(doses.mask)
    return (mask.shape[1] == 1 and bool(mask.all()) and not np.any(np.asarray(doses.duration))
            and not np.any(np.asarray(doses.cmt)))


def _note_comments(table: Table, notes: list[str]) -> None:
    """Pass on a file's leading comments (e.g. ``# SIMULATED ...``): they are the file's own caveats."""
    said = [c for c in table.comments if c]
    if said:
        notes.append(f"{Path(table.file).name} says: " + " / ".join(said))


def _print_report(dataset: Dataset, notes: list[str]) -> None:
    print(dataset.summary())
    for note in notes:
        print(f"note: {note}")
