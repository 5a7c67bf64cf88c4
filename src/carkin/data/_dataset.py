"""The validated, immutable data set: padded per-patient arrays plus masks.

Patients have ragged schedules; arrays are padded to the longest schedule along the ``obs`` axis and every
padded array travels with ``obs_mask``. Padded slots hold harmless values (time 0, DV 1, LLOQ 1, not BLQ)
so that nothing downstream produces NaN on them, but they must always be masked out.

Time runs from each patient's first dose (the CAR-T infusion; for a conventional drug the first dose): the
file's TIME minus that dose record's TIME. Doses (``doses``), observations of several analytes (``analyte``)
and covariates that change within a patient (``steps``) all use that clock.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._doses import DoseEvents

__all__ = ["Dataset", "FlatObservations", "CovariateSteps"]

NO_ANALYTE = 0
"""The analyte code of observations in a file without a DVID (or observation CMT) column."""


class CovariateSteps(eqx.Module):
    """Covariates that change within a patient: each a step function of time, carried forward (LOCF).

    A value written on a record holds from that record's time until the next record that gives the column
    a different value (the convention of Monolix and nlmixr2; NONMEM's $PK sees the value of the record being
    processed, which for an ODE advance means the value at the end of the interval).

    Attributes
    ----------
    names : tuple of str, static
        Column names (upper case).
    times : Float[Array, "patients steps"]
        Time of each change, days after the first dose; the first step of every patient is at -inf (its
        baseline value, the value of its first record that gives one).
    values : Float[Array, "patients steps columns"]
        The value from ``times[i, k]`` on (padding repeats the last real step).
    rows : Int[Array, "patients steps"]
        File line of the record that set each step (0 on padding and on the baseline of a table value).
    mask : Bool[Array, "patients steps"]
        True on real steps.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    times: Float[Array, "patients steps"]
    values: Float[Array, "patients steps columns"]
    rows: Int[Array, "patients steps"]
    mask: Bool[Array, "patients steps"]

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One column's steps: (times (patients, steps), values (patients, steps), mask), numpy."""
        k = self.names.index(name.upper())
        return np.asarray(self.times), np.asarray(self.values)[..., k], np.asarray(self.mask)

    def first_time_above(self, name: str, level: float = 0.0) -> np.ndarray:
        """Per patient, the first time the column exceeds ``level`` (days; +inf if never, -inf if at baseline).

        The start of a co-medication from its 0/1 indicator column.
        """
        times, values, mask = self.column(name)
        hit = mask & (values > level)
        first = np.where(hit.any(axis=1), np.argmax(hit, axis=1), -1)
        return np.where(first >= 0, times[np.arange(times.shape[0]), np.maximum(first, 0)], np.inf)


class Dataset(eqx.Module):
    """CK records of a population, one row per patient (a pytree; pass it through ``jit`` freely).

    Attributes
    ----------
    patient_ids : tuple of str, static
        Patient identifiers in row order (as written in the ID column).
    times : Float[Array, "patients obs"]
        Observation times, days after the infusion (TIME minus the dose record's TIME).
    dv : Float[Array, "patients obs"]
        Observed transgene level, copies/ug gDNA; on a BLQ record it holds the LLOQ.
    blq : Bool[Array, "patients obs"]
        True where the record is below the limit of quantification (censored, M3).
    lloq : Float[Array, "patients obs"]
        Lower limit of quantification, copies/ug gDNA (NaN where the file gave none on a quantified row).
    obs_mask : Bool[Array, "patients obs"]
        True on real records, False on padding.
    source_rows : Int[Array, "patients obs"]
        1-based line of each record in the CK file (0 on padding), so that any later message can point at it.
    dose : Float[Array, " patients"]
        The first dose (AMT of the patient's first dose record): the infused CAR-T dose in 10^6 CAR+ T cells, or
        the first dose of a drug in the data's amount unit. The covariate ``DOSE``.
    dose_time : Float[Array, " patients"]
        TIME of the first dose record in the file (the patient's time origin), in the file's time unit.
    covariates : Float[Array, "patients covariates"]
        Per-patient covariates in the order of ``covariate_names``.
    covariate_names : tuple of str, static
        Covariate column names (upper case, as in the file).
    source : str, static
        Where the data came from (file paths), for messages and manifests.
    simulated : bool, static
        The data are simulated (a file's leading comment or a SIMULATED column said so, or a carkin simulator
        made them). Every fit, table, plot and report built on them says so.
    doses : DoseEvents (patients, doses) or None
        Every dose, ADDL/II expanded, times from the first dose; None: the single dose ``dose`` at time 0
        (see ``dose_events``).
    analyte : Float[Array, "patients obs"] or None
        Each observation's analyte code as written in the file (DVID, else the observation's CMT); None: one
        analyte (code ``NO_ANALYTE``).
    steps : CovariateSteps or None
        Covariate columns that change within a patient (from the records of the CK file), as step functions.
    """

    patient_ids: tuple[str, ...] = eqx.field(static=True)
    times: Float[Array, "patients obs"]
    dv: Float[Array, "patients obs"]
    blq: Bool[Array, "patients obs"]
    lloq: Float[Array, "patients obs"]
    obs_mask: Bool[Array, "patients obs"]
    source_rows: Int[Array, "patients obs"]
    dose: Float[Array, " patients"]
    dose_time: Float[Array, " patients"]
    covariates: Float[Array, "patients covariates"]
    covariate_names: tuple[str, ...] = eqx.field(static=True)
    source: str = eqx.field(static=True, default="<memory>")
    simulated: bool = eqx.field(static=True, default=False)
    doses: DoseEvents | None = None
    analyte: Float[Array, "patients obs"] | None = None
    steps: CovariateSteps | None = None

    def __check_init__(self):
        n, m = self.times.shape
        for name in ("dv", "blq", "lloq", "obs_mask", "source_rows"):
            shape = getattr(self, name).shape
            if shape != (n, m):
                raise ValueError(f"Dataset.{name} has shape {shape}, expected (patients, obs) = {(n, m)}")
        for name in ("dose", "dose_time"):
            shape = getattr(self, name).shape
            if shape != (n,):
                raise ValueError(f"Dataset.{name} has shape {shape}, expected (patients,) = {(n,)}")
        if self.covariates.shape != (n, len(self.covariate_names)):
            raise ValueError(
                f"Dataset.covariates has shape {self.covariates.shape}, expected "
                f"(patients, covariates) = {(n, len(self.covariate_names))}"
            )
        if len(self.patient_ids) != n:
            raise ValueError(f"Dataset.patient_ids has {len(self.patient_ids)} entries for {n} patients")
        if self.doses is not None and self.doses.shape[0] != n:
            raise ValueError(
                f"Dataset.doses has shape {self.doses.shape}, expected (patients, doses) with {n} patients"
            )
        if self.analyte is not None and self.analyte.shape != (n, m):
            raise ValueError(f"Dataset.analyte has shape {self.analyte.shape}, expected (patients, obs) = {(n, m)}")
        if self.steps is not None and self.steps.times.shape[0] != n:
            raise ValueError(f"Dataset.steps has {self.steps.times.shape[0]} patients, expected {n}")

    @property
    def dose_events(self) -> DoseEvents:
        """Every dose as `DoseEvents` (patients, doses): ``doses``, or the single dose ``dose`` at time 0."""
        if self.doses is not None:
            return self.doses
        return DoseEvents(time=jnp.zeros((self.n_patients, 1)), amount=jnp.asarray(self.dose)[:, None])

    @property
    def analyte_codes(self) -> np.ndarray:
        """Each observation's analyte code (patients, obs), ``NO_ANALYTE`` where the file named none."""
        if self.analyte is None:
            return np.full(np.shape(self.times), float(NO_ANALYTE))
        return np.asarray(self.analyte, dtype=float)

    @property
    def n_doses(self) -> np.ndarray:
        """Number of doses per patient (patients,)."""
        return np.asarray(self.dose_events.mask).sum(axis=1)

    @property
    def n_patients(self) -> int:
        return self.times.shape[0]

    @property
    def n_observations(self) -> int:
        return int(np.asarray(self.obs_mask).sum())

    @property
    def n_blq(self) -> int:
        return int(np.asarray(self.blq & self.obs_mask).sum())

    def covariate(self, name: str) -> Float[Array, " patients"]:
        """One covariate column by name (``"DOSE"`` is always available: the infused dose)."""
        if name.upper() == "DOSE":
            return self.dose
        if self.steps is not None and name.upper() in self.steps.names:
            times, values, mask = self.steps.column(name)
            varies = (mask & (values != values[:, :1])).any(axis=1)
            if varies.any():
                p = int(np.flatnonzero(varies)[0])
                rows = np.asarray(self.steps.rows)[p][np.asarray(mask[p])]
                raise ValueError(
                    f"covariate {name.upper()} changes within patient {self.patient_ids[p]!r} (rows "
                    f"{', '.join(str(int(r)) for r in rows if r)}; {int(varies.sum())} patient(s) in all), but a "
                    "value per patient is needed here. Fix: use a column that is constant within each patient, or "
                    "use the time-varying column where the model takes one (e.g. a [comedication] indicator)."
                )
            return jnp.asarray(values[:, 0])
        try:
            return self.covariates[:, self.covariate_names.index(name.upper())]
        except ValueError:
            raise KeyError(
                f"covariate {name!r} is not in the dataset; available: "
                f"{', '.join(('DOSE',) + self.covariate_names) or '(none)'}"
            ) from None

    def flat(self) -> "FlatObservations":
        """The real records as flat arrays (the likelihood's layout: no padding is evaluated)."""
        mask = np.asarray(self.obs_mask)
        patient = np.broadcast_to(np.arange(self.n_patients)[:, None], mask.shape)[mask]
        blq = np.asarray(self.blq)[mask]
        dv = np.asarray(self.dv, dtype=float)[mask]
        with np.errstate(divide="ignore", invalid="ignore"):  # DV <= 0 (linear-scale error models): -inf / NaN
            log_dv = np.log(dv)
        return FlatObservations(
            patient=jnp.asarray(patient, dtype=jnp.int32),
            times=jnp.asarray(np.asarray(self.times)[mask]),
            log_dv=jnp.asarray(log_dv),
            blq=jnp.asarray(blq),
            quantified_index=jnp.asarray(np.flatnonzero(~blq), dtype=jnp.int32),
            censored_index=jnp.asarray(np.flatnonzero(blq), dtype=jnp.int32),
            dv=jnp.asarray(dv),
            analyte_code=jnp.asarray(self.analyte_codes[mask]),
        )

    def summary(self) -> str:
        """One line a person reads on load: patients, records, BLQ fraction, doses."""
        n_obs = self.n_observations
        dose = np.asarray(self.dose)
        blq_frac = self.n_blq / n_obs if n_obs else 0.0
        covs = ", ".join(self.covariate_names + (self.steps.names if self.steps is not None else ())) or "none"
        n_doses = self.n_doses
        several = (
            f"; {int(n_doses.sum())} dose events (up to {int(n_doses.max())} per patient)" if n_doses.max() > 1 else ""
        )
        codes = np.unique(self.analyte_codes[np.asarray(self.obs_mask)])
        analytes = f"; analytes (DVID) {', '.join(f'{c:g}' for c in codes)}" if codes.size > 1 else ""
        return (
            ("SIMULATED data: " if self.simulated else "")
            + f"{self.n_patients} patients, {n_obs} observation records "
            f"({self.n_blq} BLQ = {100 * blq_frac:.1f}%), first doses {dose.min():g}-{dose.max():g} "
            f"(median {np.median(dose):g}){several}{analytes}; covariates: {covs}"
        )


class FlatObservations(eqx.Module):
    """Real records in one flat layout, for the population log-likelihood.

    ``patient`` maps each record to its row in the Dataset; the quantified and censored records are
    addressed by index so that the M3 term is evaluated only on censored records. ``log_dv`` is the log of
    ``dv`` (the LLOQ on censored records; -inf or NaN where DV <= 0, which only linear-scale error models
    accept); ``analyte_code`` is the record's analyte code from the file (`Dataset.analyte_codes`).
    """

    patient: Int[Array, " records"]
    times: Float[Array, " records"]
    log_dv: Float[Array, " records"]
    blq: Bool[Array, " records"]
    quantified_index: Int[Array, " quantified"]
    censored_index: Int[Array, " censored"]
    dv: Float[Array, " records"] | None = None
    analyte_code: Float[Array, " records"] | None = None
