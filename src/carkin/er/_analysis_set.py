"""The exposure-response analysis set: who is analysed, from when, with which exposure and adjustment.

The exposure-response pitfalls of CAR-T analyses (docs/references.md, section 4: [Anderson1983],
[Locke2020], [Singh2021]) are handled here, explicitly and with counts:

- **ITT vs infused.** The patients table holds every randomised patient. Patients of another arm (a
  control arm) are not part of exposure-response; patients of the CAR-T arm who were never infused
  (``INFUSED = 0``) have no exposure and are listed and excluded; infused patients missing from the CK
  fit (not CK-evaluable: KarMMa-3 had 225 infused, 224 evaluable) are listed and excluded as well.
- **Time origin.** PFS in the table runs from randomisation (``PFS_MONTHS``); exposure-response runs
  from the infusion, ``PFS_MONTHS - INFUSION_DAY / 30.4375`` (months). Without an ``INFUSION_DAY``
  column the PFS time is taken as measured from the infusion (said in the notes).
- **Landmark (guarantee-time bias).** Exposure over a window is only fully realised in patients still
  event-free through it. By default follow-up starts at a landmark equal to the end of the metric's
  window (day 28 for Cmax, Tmax and AUC0-28d; `carkin.exposure.Metric.landmark_days`): patients with an
  event by the landmark are excluded and counted, so are patients censored by then (no follow-up after
  it), and the analysed time is time since the landmark.
- **Exposure windows past the event.** With a landmark earlier than the end of the window (e.g.
  ``landmark_days=0`` for AUC0-90d), a patient whose event or censoring falls inside the window has an
  exposure the model extrapolated beyond the patient's follow-up; an `ExposureWindowWarning` names them.
- **Adjustment, by name.** ``adjust`` lists the columns of the patients table adjusted for as covariates;
  none by default, so that a table of one's own needs no trial-specific column. Baseline tumour burden
  (``TUMOR_BURDEN``) is the confounder to think of first (docs/references.md section 4: it drives both expansion
  and progression) and enters per 10 units when listed; trial stratification factors are further
  candidates (`carkin.demo` adjusts the virtual KarMMa-3 analysis for burden and the three KarMMa-3
  factors). ``ERData.covariate_names`` (``adjusted_for`` in the results) says what was used.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import DataTable, says_simulated
from ..errors import DataError, DataProblem
from ..exposure import DAYS_PER_MONTH, Metric, PosteriorExposure
from ..survival._validate import Where, prepare_columns, unwrap

__all__ = ["ERData", "er_analysis_set", "ExposureWindowWarning", "ID", "TIME", "EVENT", "INFUSED", "INFUSION_DAY",
           "TUMOR_BURDEN", "ARM", "SIMULATED"]

# Columns of the patients table (one row per randomised patient; carkin.cohorts writes them).
ID, ARM, TIME, EVENT, INFUSED, INFUSION_DAY, TUMOR_BURDEN, SIMULATED = (
    "ID", "ARM", "PFS_MONTHS", "PFS_EVENT", "INFUSED", "INFUSION_DAY", "TUMOR_BURDEN", "SIMULATED",
)
#: Tumour burden enters the models per this many units (10 percentage points of marrow plasma cells).
BURDEN_PER = 10.0


class ExposureWindowWarning(UserWarning):
    """An exposure window extends past some patients' event or censoring time (guarantee-time bias)."""


@dataclasses.dataclass(frozen=True, eq=False)
class ERData:
    """The analysis set of an exposure-response analysis (built by `er_analysis_set`).

    Attributes
    ----------
    ids : tuple of str
        Analysed patients.
    time : array (patients,)
        Months from the landmark to the event or censoring (> 0).
    event : int array (patients,)
    covariates : pandas.DataFrame
        Adjustment covariates (rows = ``ids``): the ``adjust`` columns in their order (tumour burden per
        `BURDEN_PER` units), as used by every model; no columns when nothing is adjusted for.
    log2_draws : array (samples, patients)
        log2 exposure, one row per posterior draw.
    log2_plug_in : array (patients,)
        log2 of the posterior median exposure.
    exposure_index : int array (patients,)
        Position of each analysed patient in the exposure draws (the fit's patient order).
    metric : Metric
    landmark_days : float
    exclusions : dict reason -> tuple of IDs
        ``other_arm``, ``not_infused``, ``not_ck_evaluable``, ``event_before_landmark``,
        ``censored_before_landmark``.
    counts : dict name -> int
    notes, warnings : tuple of str
    dose : array (patients,) or None
    simulated : bool
    """

    ids: tuple[str, ...]
    time: np.ndarray
    event: np.ndarray
    covariates: pd.DataFrame
    log2_draws: np.ndarray
    log2_plug_in: np.ndarray
    exposure_index: np.ndarray
    metric: Metric
    landmark_days: float
    exclusions: Mapping[str, tuple[str, ...]]
    counts: Mapping[str, int]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    dose: np.ndarray | None
    simulated: bool

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(self.covariates.columns)

    def frame(self) -> pd.DataFrame:
        """Time since landmark, event, plug-in log2 exposure and covariates, one row per analysed patient."""
        out = pd.DataFrame({"ID": self.ids, "TIME": self.time, "EVENT": self.event,
                            "LOG2_EXPOSURE": self.log2_plug_in})
        for column in self.covariates.columns:
            out[column] = self.covariates[column].to_numpy()
        return out


def id_text(value) -> str:
    """An ID as text; an integral number prints without decimals (1.0 -> "1"), as carkin.data does."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value).strip()


def log2_exposure(values: np.ndarray, metric: Metric) -> tuple[np.ndarray, int]:
    """log2 of exposure values, raising values below the metric's floor to it (returns the count raised).

    Only ``persistence`` has a floor (1 day): a patient never above the LLOQ has 0 days, whose log is
    undefined. Any other metric must be positive (a ValueError says which values are not).
    """
    values = np.asarray(values, dtype=float)
    if metric.log_floor > 0:
        low = values < metric.log_floor
        return np.log2(np.maximum(values, metric.log_floor)), int(low.sum())
    if np.any(~(values > 0)):
        raise ValueError(f"metric {metric.name!r} has non-positive values; log2 exposure is undefined")
    return np.log2(values), 0


def _flag(df: pd.DataFrame, column: str, where: Where) -> pd.Series:
    clean, _ = prepare_columns(df, binary={column: column}, source=where.file, rows=where.rows)
    return clean[column]


def er_analysis_set(
    exposure: PosteriorExposure,
    patients: pd.DataFrame | DataTable,
    *,
    metric: str | Metric = "cmax",
    landmark_days: float | None = None,
    adjust: Sequence[str] = (),
    burden: str = TUMOR_BURDEN,
    time: str = TIME,
    event: str = EVENT,
    infusion_day: str | None = INFUSION_DAY,
    days_per_time_unit: float = DAYS_PER_MONTH,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> ERData:
    """Build the exposure-response analysis set (see the module docstring for every rule).

    Main arguments
    --------------
    exposure : carkin.exposure.PosteriorExposure
        Exposure draws of the CK-evaluable patients (must include ``metric``).
    patients : carkin.data.DataTable or pandas.DataFrame
        One row per randomised patient: ``ID``, ``PFS_MONTHS``, ``PFS_EVENT``; optional ``ARM``,
        ``INFUSED`` (0/1), ``INFUSION_DAY`` (days from randomisation to infusion), ``SIMULATED``, and the
        columns named in ``adjust``.
    metric : str or Metric
    landmark_days : float, optional
        Days after infusion at which follow-up starts; default the end of the metric's window (28 for
        Cmax/AUC0-28d). 0 disables the landmark.

    Other arguments
    ---------------
    adjust : sequence of str
        Columns adjusted for as covariates (numeric; 0/1 for a factor), in this order; default none. A
        single name may be given as a string.
    burden : str
        The tumour-burden column: when it is in ``adjust`` it enters per `BURDEN_PER` (10) units, named
        ``<burden>_PER10``.
    time, event, infusion_day : str
        Column names (``infusion_day=None``: times are already from the infusion).
    days_per_time_unit : float
        Days per unit of the time column (30.4375 for months; 1 for days).
    source, rows : optional
        File name and index-to-line mapping for error messages (default: those of a `carkin.data.DataTable`).

    Returns
    -------
    ERData

    Raises
    ------
    carkin.errors.DataError
        Naming file, line and column: a missing or malformed column, a fit patient absent from the table
        or marked not infused, an infusion day missing or after the end of follow-up.
    ValueError
        A negative landmark, a metric that was not computed, or a column named twice in ``adjust``.

    Warns
    -----
    ExposureWindowWarning
        When the landmark is earlier than the end of the metric's window and some analysed patients'
        follow-up ends inside the window.
    """
    metric = exposure.metric(metric)
    adjust = [adjust] if isinstance(adjust, str) else list(adjust)
    repeated = sorted({c for c in adjust if adjust.count(c) > 1})
    if repeated:
        raise ValueError(f"adjust={adjust!r} names {', '.join(repeated)} more than once; name each column once")
    landmark = metric.landmark_days if landmark_days is None else float(landmark_days)
    if not (np.isfinite(landmark) and landmark >= 0):
        raise ValueError(f"landmark_days must be >= 0 (days after infusion), got {landmark_days!r}")
    table_simulated = isinstance(patients, DataTable) and patients.simulated
    patients, source, rows = unwrap(patients, source, rows)
    if not isinstance(patients, pd.DataFrame):
        raise TypeError(f"patients must be a carkin DataTable (carkin.data.read_table) or a pandas DataFrame, got "
                        f"{type(patients).__name__}")
    where = Where.of(patients, source, rows)
    clean_ids, _ = prepare_columns(patients, labels=[ID], unique=[ID], source=source, rows=rows)
    table_ids = clean_ids[ID].map(id_text)
    position = {pid: label for label, pid in table_ids.items()}
    fit_ids = list(exposure.patient_ids)
    notes: list[str] = []
    warned: list[str] = []

    missing = [p for p in fit_ids if p not in position]
    if missing:
        raise DataError(DataProblem(
            where.file, None, ID,
            f"{len(missing)} patient(s) of the CK fit are not in the patients table (first {missing[:5]}); "
            "give the table of the trial the fit was made on",
        ))
    fit_labels = [position[p] for p in fit_ids]

    # ITT -> CAR-T arm -> infused -> CK-evaluable
    car_t = pd.Series(True, index=patients.index)
    if ARM in patients.columns:
        arms = patients.loc[fit_labels, ARM].dropna().unique()
        if len(arms) > 1:
            raise DataError(DataProblem(where.file, None, ARM,
                                        f"the CK fit holds patients of several arms ({list(arms)}); fit one arm"))
        if len(arms) == 1:
            car_t = patients[ARM] == arms[0]
            notes.append(f"CAR-T arm: {arms[0]!r} ({int(car_t.sum())} of {len(patients)} randomised)")
    if INFUSED in patients.columns:
        infused = _flag(patients, INFUSED, where).astype(bool) & car_t
        not_infused_fit = [p for p, label in zip(fit_ids, fit_labels, strict=True) if not infused[label]]
        if not_infused_fit:
            raise DataError(where.rows_problem(
                INFUSED, table_ids.isin(not_infused_fit) & ~infused,
                "patient has CK data in the fit but is not an infused patient of the CAR-T arm (INFUSED = {value}); "
                "fix the INFUSED or ARM column", patients[INFUSED],
            ))
    else:
        infused = car_t & table_ids.isin(fit_ids)
        notes.append("no INFUSED column: patients of the CK fit are taken as the infused set")
    in_fit = table_ids.isin(fit_ids)
    other_arm = table_ids[~car_t]
    not_infused = table_ids[car_t & ~infused]
    not_evaluable = table_ids[infused & ~in_fit]

    # time from infusion (units of the time column) for the CK-evaluable patients
    evaluable = patients.loc[fit_labels]
    try:
        clean, _ = prepare_columns(
            evaluable, time=time, binary={event: "event"}, covariates=adjust, source=source, rows=rows,
        )
    except DataError as err:
        absent = [c for c in adjust if c not in patients.columns]
        if absent:
            hint = DataProblem(where.file, None, ", ".join(absent),
                               f"adjusted for because adjust={adjust!r} (carkin er --adjust) names it; add the "
                               "column to the table or leave it out of the adjustment")
            raise DataError(err.problems + [hint]) from None
        raise
    t = clean[time].to_numpy(dtype=float)
    if infusion_day is not None and infusion_day in patients.columns:
        day, _ = prepare_columns(evaluable, time=infusion_day, source=source, rows=rows)
        t = t - day[infusion_day].to_numpy(dtype=float) / days_per_time_unit
        before = t < -1e-9
        if before.any():
            raise DataError(where.rows_problem(
                time, pd.Series(before, index=evaluable.index),
                f"{time} = {{value}} ends before the infusion ({infusion_day}); follow-up must reach the infusion",
                evaluable[time],
            ))
        t = np.maximum(t, 0.0)
    else:
        notes.append(f"no {infusion_day or 'infusion-day'} column: {time} is taken as measured from the infusion")
    e = clean[event].to_numpy(dtype=int)

    # landmark
    landmark_units = landmark / days_per_time_unit
    by_landmark = t <= landmark_units if landmark > 0 else np.zeros(t.shape, dtype=bool)
    event_before = [p for p, b, ev in zip(fit_ids, by_landmark, e, strict=True) if b and ev]
    censored_before = [p for p, b, ev in zip(fit_ids, by_landmark, e, strict=True) if b and not ev]
    keep = ~by_landmark
    if not keep.any():
        raise DataError(DataProblem(where.file, None, time,
                                    f"no patient is event-free and followed beyond the landmark (day {landmark:g})"))

    # exposure windows past the end of follow-up
    window_end = metric.window_days[1]
    if landmark < window_end:
        inside = keep & (t * days_per_time_unit < window_end)
        if inside.any():
            names = [p for p, k in zip(fit_ids, inside, strict=True) if k]
            message = (
                f"the exposure window of {metric.name} (days 0-{window_end:g}) extends past the event or censoring "
                f"time of {len(names)} analysed patient(s) (first {names[:5]}); their exposure is extrapolated by "
                f"the model beyond their follow-up (guarantee-time bias); use a landmark at day {window_end:g}"
            )
            warned.append(message)
            warnings.warn(message, ExposureWindowWarning, stacklevel=2)

    index = np.flatnonzero(keep)
    ids = tuple(fit_ids[k] for k in index)
    raw = exposure.values(metric)[:, index]
    log2_draws, floored = log2_exposure(raw, metric)
    log2_plug_in, _ = log2_exposure(np.median(raw, axis=0), metric)
    if floored:
        notes.append(f"{floored} exposure value(s) below {metric.log_floor:g} {metric.unit} raised to it before log2")
    covariates = pd.DataFrame(index=range(len(index)))
    for column in adjust:
        values = clean[column].to_numpy(dtype=float)[index]
        if column == burden:
            covariates[f"{burden}_PER{BURDEN_PER:g}"] = values / BURDEN_PER
        else:
            covariates[column] = values
    simulated = exposure.simulated or table_simulated or says_simulated(frame=patients)
    counts = {
        "randomised": len(patients),
        "other_arm": len(other_arm),
        "car_t_arm": int(car_t.sum()),
        "not_infused": len(not_infused),
        "infused": int(infused.sum()),
        "not_ck_evaluable": len(not_evaluable),
        "ck_evaluable": len(fit_ids),
        "event_before_landmark": len(event_before),
        "censored_before_landmark": len(censored_before),
        "analysed": len(ids),
        "events": int(e[index].sum()),
    }
    return ERData(
        ids=ids,
        time=t[index] - landmark_units,
        event=e[index],
        covariates=covariates,
        log2_draws=log2_draws,
        log2_plug_in=log2_plug_in,
        exposure_index=index,
        metric=metric,
        landmark_days=landmark,
        exclusions={
            "other_arm": tuple(other_arm),
            "not_infused": tuple(not_infused),
            "not_ck_evaluable": tuple(not_evaluable),
            "event_before_landmark": tuple(event_before),
            "censored_before_landmark": tuple(censored_before),
        },
        counts=counts,
        notes=tuple(notes),
        warnings=tuple(warned),
        dose=None if exposure.dose is None else np.asarray(exposure.dose)[index],
        simulated=simulated,
    )
